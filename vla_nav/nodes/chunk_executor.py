"""chunk_executor: action chunks in, a safe /cmd_vel out on every tick (zeros included).

All decisions live in vla_nav.core.executor (plan, blend, limits, watchdog, e-stop, preempt: read
its docstring); this node converts messages and the clock (the node clock: ROS time when
use_sim_time). An empty chunk from vla_node is a preempt (new goal or stop). A zero Twist is
published on every way out: e-stop, watchdog, preempt, SIGINT/SIGTERM (see ros_io.run_node).

Limits (every ExecutorConfig field, plus diagnostics_period and clock_mismatch_threshold) can be
changed at run time: `ros2 param set /chunk_executor max_linear_vel 0.2` applies on the next tick;
topic names, `stamped` and `base_frame` are read at start-up only.

Diagnostics (/diagnostics, every diagnostics_period), status "chunk_executor":
OK while idle, tracking or stopped; WARN while the e-stop is latched or when the watchdog tripped
since the last report (the chunk source went silent); ERROR when chunks arrived since the last
report but every one was refused for a reason other than a preempt (clock mismatch, too old,
malformed): the robot cannot move. Preempts (empty chunks) and the old goal's in-flight chunks they
refuse are expected and never an error. Values include chunk_rate_hz (input) and last_error.
"""
from __future__ import annotations

import dataclasses
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import Bool
from trajectory_msgs.msg import MultiDOFJointTrajectory

from vla_nav.core.executor import ChunkExecutor, ChunkVerdict, ExecutorConfig
from vla_nav.core.stats import RateMeter
from vla_nav.nodes import ros_io

NODE_NAME = 'chunk_executor'
LIVE_PARAMETERS = {field.name for field in dataclasses.fields(ExecutorConfig)} | {
    'diagnostics_period', 'clock_mismatch_threshold'}
THROTTLE_S = 2.0


class ChunkExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = ros_io.declare_parameters_from_config(self, NODE_NAME)
        params = self.params
        try:
            self.core = ChunkExecutor(ExecutorConfig.from_params(params.as_dict()))
        except ValueError as error:
            raise ros_io.NodeStartupError(f'invalid chunk_executor parameters: {error}') from error
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.cmd_pub = self.create_publisher(TwistStamped if params.stamped else Twist,
                                             params.cmd_vel_topic, ros_io.reliable_qos())
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, params.diagnostics_topic, 10)
        self.create_subscription(MultiDOFJointTrajectory, params.chunk_topic, self._on_chunk,
                                 ros_io.reliable_qos())
        self.create_subscription(Bool, params.estop_topic, self._on_estop, ros_io.reliable_qos())
        self.control_timer = self.create_timer(self.core.config.period, self._on_tick)
        self.diagnostics_timer = self.create_timer(params.diagnostics_period, self._on_diagnostics)
        self._refused = 0                     # chunks refused (not by a preempt) since the last report
        self.chunk_rate = RateMeter()         # chunk messages (preempts included) per second
        self.last_error = ''                  # why the last chunk was refused or malformed
        self._accepted_at_report = 0
        self._trips_at_report = 0
        self._stopping = False
        self.get_logger().info(f'publishing {params.cmd_vel_topic} at {params.control_rate} Hz '
                               f'from {params.chunk_topic}')

    def _now(self) -> float:
        return ros_io.now_sec(self)

    def _publish(self, linear: float, angular: float) -> None:
        self.cmd_pub.publish(ros_io.twist_msg(linear, angular, self.params.stamped,
                                              self.params.base_frame, self._now()))

    def _on_tick(self) -> None:
        if not self._stopping:
            self._publish(*self.core.tick(self._now()))

    def _on_chunk(self, msg: MultiDOFJointTrajectory) -> None:
        now = self._now()
        self.chunk_rate.tick(time.monotonic())
        try:
            stamp, actions, dt = ros_io.msg_to_chunk(msg)
        except ValueError as error:
            self._refused += 1
            self.last_error = f'malformed chunk: {error}'
            self.get_logger().error(f'malformed chunk ignored: {error}', throttle_duration_sec=THROTTLE_S)
            return
        # a preempt stamped 0 comes from a vla_node that has seen no frame yet: no clock to compare
        if (len(actions) or stamp > 0.0) and abs(now - stamp) > self.params.clock_mismatch_threshold:
            self.get_logger().error(
                f'chunk stamped {stamp:.3f} s but this node\'s clock reads {now:.3f} s: clock '
                'mismatch (use_sim_time must match on every node)', throttle_duration_sec=THROTTLE_S)
        if len(actions) == 0:
            self.core.preempt(stamp, now)
            self.get_logger().info(f'preempt at {stamp:.3f}: plan dropped, braking',
                                   throttle_duration_sec=THROTTLE_S)
            return
        verdict = self.core.add_chunk(stamp, actions, dt if dt > 0 else self.core.config.period, now)
        if verdict:
            return
        reason = self.core.last_reject_reason
        if verdict is ChunkVerdict.OLD_GOAL:   # in-flight chunk of the previous goal: harmless
            self.get_logger().debug(f'chunk refused: {reason}')
            return
        if not self.core.estop:   # refused because of the e-stop: expected (its own WARN)
            self._refused += 1
            self.last_error = reason
        self.get_logger().warning(f'chunk refused: {reason}', throttle_duration_sec=THROTTLE_S)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.core.estop:
            self.get_logger().warning('e-stop LATCHED: zero command until released')
        elif not msg.data and self.core.estop:
            self.get_logger().info('e-stop released')
        self.core.set_estop(bool(msg.data))
        if msg.data:
            self._publish(0.0, 0.0)   # at once, not at the next tick

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {parameter.name: parameter.value for parameter in parameters
                   if parameter.name in self.params.names()}
        frozen = sorted(set(changes) - LIVE_PARAMETERS)
        if frozen:
            return SetParametersResult(successful=False, reason=f'{", ".join(frozen)} are read '
                                       'at start-up only: restart the node to change them')
        try:
            config = ExecutorConfig.from_params(self.params.as_dict(changes))
        except (TypeError, ValueError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        if config.control_rate != self.core.config.control_rate:
            self.destroy_timer(self.control_timer)
            self.control_timer = self.create_timer(config.period, self._on_tick)
        if 'diagnostics_period' in changes and float(changes['diagnostics_period']) > 0:
            self.destroy_timer(self.diagnostics_timer)
            self.diagnostics_timer = self.create_timer(float(changes['diagnostics_period']),
                                                       self._on_diagnostics)
        self.core.set_config(config)
        return SetParametersResult(successful=True)

    def _on_diagnostics(self) -> None:
        core, now = self.core, self._now()
        accepted = core.accepted_chunks - self._accepted_at_report
        tripped = core.watchdog_trips - self._trips_at_report
        level, message = ros_io.OK, core.state
        if self._refused and not accepted and not core.estop:
            level, message = ros_io.ERROR, f'every chunk refused: {self.last_error}'
        elif core.estop:
            level, message = ros_io.WARN, 'e-stop latched'
        elif tripped:
            level, message = ros_io.WARN, 'watchdog: no fresh chunk, braked to zero'
        age = core.chunk_age(now)
        self.diagnostics_pub.publish(ros_io.diagnostic_array(self, NODE_NAME, level, message, {
            'state': core.state,
            'chunk_rate_hz': self.chunk_rate.rate(time.monotonic()),
            'linear_x': core.command[0],
            'angular_z': core.command[1],
            'chunk_age_s': float('nan') if age is None else age,
            'plan_remaining': core.plan_remaining(now),
            'chunks_accepted': core.accepted_chunks,
            'chunks_refused': core.rejected_chunks,
            'last_refusal': core.last_reject_reason,
            'watchdog_trips': core.watchdog_trips,
            'estop': core.estop,
            'last_error': self.last_error,
        }))
        self._refused, self._accepted_at_report = 0, core.accepted_chunks
        self._trips_at_report = core.watchdog_trips

    def on_shutdown(self) -> None:
        """Called by run_node while the context is still valid: the last word is a zero."""
        self._stopping = True
        self.destroy_timer(self.control_timer)
        self.core.preempt(self._now())
        self._publish(0.0, 0.0)
        ros_io.wait_for_acks(self.cmd_pub)
        self.get_logger().info('shutdown: zero command published')


def main(args=None) -> int:
    return ros_io.run_node(ChunkExecutorNode, args=args, name=NODE_NAME)


if __name__ == '__main__':
    sys.exit(main())
