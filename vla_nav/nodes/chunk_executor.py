"""chunk_executor: action chunks in, a safe /cmd_vel out on every tick (zeros included).

A thin shell over vla_nav.core.executor (plan, blend, limits, watchdog, e-stop, preempt); what it
does, its run-time parameters and its diagnostics: README "What each node does" and "Diagnostics".
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

from vla_nav.core.diagnostics import ExecutorMonitor
from vla_nav.core.executor import ChunkExecutor, ChunkVerdict, ExecutorConfig
from vla_nav.core.node_config import ChunkExecutorNodeConfig
from vla_nav.ros import convert, msgs, qos
from vla_nav.ros.params import declare_node_config
from vla_nav.ros.runner import run_node, wait_for_acks

NODE_NAME = 'chunk_executor'
LIVE_PARAMETERS = {field.name for field in dataclasses.fields(ExecutorConfig)} | {
    'diagnostics_period', 'clock_mismatch_threshold'}
THROTTLE_S = 2.0


class ChunkExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params, self.config = declare_node_config(self, NODE_NAME, ChunkExecutorNodeConfig)
        p = self.config
        self.core = ChunkExecutor(p.executor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.cmd_pub = self.create_publisher(TwistStamped if p.stamped else Twist, p.cmd_vel_topic,
                                             qos.reliable_qos())
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, p.diagnostics_topic, 10)
        self.create_subscription(MultiDOFJointTrajectory, p.chunk_topic, self._on_chunk, qos.reliable_qos())
        self.create_subscription(Bool, p.estop_topic, self._on_estop, qos.reliable_qos())
        self.control_timer = self.create_timer(self.core.config.period, self._on_tick)
        self.diagnostics_timer = self.create_timer(p.diagnostics_period, self._on_diagnostics)
        self.monitor = ExecutorMonitor()   # chunk rate, refusals other than preempt / e-stop
        self._stopping = False
        self.get_logger().info(f'publishing {self.resolve_topic_name(p.cmd_vel_topic)} at '
                               f'{p.executor.control_rate} Hz from {self.resolve_topic_name(p.chunk_topic)}')

    def _now(self) -> float:
        return msgs.now_sec(self)

    def _publish(self, linear: float, angular: float) -> None:
        p = self.config
        self.cmd_pub.publish(msgs.twist_msg(linear, angular, p.stamped, p.base_frame, self._now()))

    def _on_tick(self) -> None:
        if not self._stopping:
            self._publish(*self.core.tick(self._now()))

    def _refuse(self, reason: str) -> None:
        self.monitor.refused(reason)
        self.get_logger().error(f'chunk refused: {reason}', throttle_duration_sec=THROTTLE_S)

    def _on_chunk(self, msg: MultiDOFJointTrajectory) -> None:
        now = self._now()
        self.monitor.chunk_received(time.monotonic())
        try:
            stamp, actions, dt = convert.msg_to_chunk(msg)
        except convert.MalformedChunkError as error:
            self._refuse(f'malformed chunk: {error}')
            return
        # a preempt stamped 0 comes from a vla_node that has seen no frame yet: no clock to compare
        if (len(actions) or stamp > 0.0) and abs(now - stamp) > self.config.clock_mismatch_threshold:
            self.get_logger().error(
                f"chunk stamped {stamp:.3f} s but this node's clock reads {now:.3f} s: clock mismatch "
                '(use_sim_time must match on every node)', throttle_duration_sec=THROTTLE_S)
        if len(actions) == 0:
            self.core.preempt(stamp, now)
            self.get_logger().info(f'preempt at {stamp:.3f}: plan dropped, braking',
                                   throttle_duration_sec=THROTTLE_S)
            return
        verdict = self.core.add_chunk(stamp, actions, dt if dt > 0 else self.core.config.period, now)
        reason = self.core.last_reject_reason
        if verdict is ChunkVerdict.OLD_GOAL:   # in-flight chunk of the previous goal: harmless
            self.get_logger().debug(f'chunk refused: {reason}')
        elif verdict is ChunkVerdict.ESTOP or (not verdict and self.core.estop):  # its own WARN
            self.get_logger().warning(f'chunk refused: {reason}', throttle_duration_sec=THROTTLE_S)
        elif not verdict:
            self._refuse(reason)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data != self.core.estop:
            self.get_logger().warning('e-stop LATCHED: zero command until released') if msg.data \
                else self.get_logger().info('e-stop released')
        self.core.set_estop(bool(msg.data))
        if msg.data:
            self._publish(0.0, 0.0)   # at once, not at the next tick

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {item.name: item.value for item in parameters if item.name in self.params.names()}
        frozen = sorted(set(changes) - LIVE_PARAMETERS)
        if frozen:
            return SetParametersResult(successful=False, reason=f'{", ".join(frozen)} are read at '
                                       'start-up only: restart the node to change them')
        try:
            node_config = ChunkExecutorNodeConfig.from_params(self.params.as_dict(changes))
        except (TypeError, ValueError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        config = node_config.executor
        if config.control_rate != self.core.config.control_rate:
            self.destroy_timer(self.control_timer)
            self.control_timer = self.create_timer(config.period, self._on_tick)
        if node_config.diagnostics_period != self.config.diagnostics_period:
            self.destroy_timer(self.diagnostics_timer)
            self.diagnostics_timer = self.create_timer(node_config.diagnostics_period, self._on_diagnostics)
        self.config = node_config
        self.core.set_config(config)
        return SetParametersResult(successful=True)

    def _on_diagnostics(self) -> None:
        level, message, values = self.monitor.report(self.core, self._now(), time.monotonic())
        self.diagnostics_pub.publish(msgs.diagnostic_array(self, NODE_NAME, level, message, values))

    def on_shutdown(self) -> None:
        """Called by run_node while the context is still valid: the last word is a zero."""
        self._stopping = True
        self.destroy_timer(self.control_timer)
        self.core.preempt(self._now())
        self._publish(0.0, 0.0)
        wait_for_acks(self.cmd_pub)
        self.get_logger().info('shutdown: zero command published')


def main(args=None) -> int:
    return run_node(ChunkExecutorNode, args=args, name=NODE_NAME)


if __name__ == '__main__':
    sys.exit(main())
