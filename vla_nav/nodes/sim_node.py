"""sim_node: the built-in simulated robot (vla_nav.sim.NavSim) on ROS topics.

Publishes the forward camera (/camera/image_raw, rgb8, sensor-data QoS, stamped with the time of
the render) at camera_rate, /odom at odom_rate (the odom frame IS the room frame: no drift), TF
odom->base_link when tf2_msgs is installed, /clock when publish_clock or real_time_factor != 1,
/sim/scene (JSON room, transient local) once, and /sim/status (JSON: instruction, kind, outcome
running|success|collision|timeout|failure, time, time_limit, pose, metrics) whenever the outcome
changes, on every instruction and every status_period. Consumes /cmd_vel (the base brakes to a
stop cmd_vel_timeout after the last command, like a real one) and /instruction (the task it
judges: parsed against the room with vla_nav.sim.parse_instruction; an instruction it does not
understand gets outcome 'failure' and kind null).

Physics advances in steps of 1/physics_rate; a wall timer runs as many steps as are due for
real_time_factor x wall time (catching up at most MAX_CATCH_UP_S at once). Stamps: sim time when
the clock is published (nodes then run with use_sim_time), else the node's clock at render time.
"""
from __future__ import annotations

import json
import math
import sys
import time

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vla_nav.config import load_config
from vla_nav.nodes import ros_io
from vla_nav.sim import NavSim
from vla_nav.sim.navsim import WORLDS
from vla_nav.sim.robot import RobotLimits

NODE_NAME = 'sim_node'
MAX_CATCH_UP_S = 0.25    # wall seconds of physics one timer callback may run when behind
MIN_TIMER_PERIOD_S = 0.005
MAX_SHUTDOWN_BRAKE_S = 2.0   # sim seconds of braking on shutdown (the limits need < 0.3 s)


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = p = ros_io.declare_parameters_from_config(self, NODE_NAME)
        for name in ('camera_rate', 'odom_rate', 'physics_rate', 'real_time_factor', 'status_period'):
            if not getattr(p, name) > 0.0:
                raise ros_io.NodeStartupError(f'parameter {name} must be > 0, got {getattr(p, name)}')
        if p.split not in ('train', 'test'):
            raise ros_io.NodeStartupError(f"parameter split must be 'train' or 'test', got {p.split!r}")
        if p.world not in WORLDS:
            raise ros_io.NodeStartupError(f'parameter world must be one of {WORLDS}, got {p.world!r}')
        self.physics_dt = 1.0 / p.physics_rate
        config = load_config()
        self.sim = NavSim(p.split, p.seed, (p.image_height, p.image_width), control_dt=self.physics_dt,
                          physics_dt=min(0.02, self.physics_dt),
                          limits=RobotLimits.from_executor(config.executor),
                          stop_words=config.stop_words, world=p.world)
        self.sim.reset(p.episode)
        self.sim.set_instruction('')  # no task until /instruction says one
        self.instruction = ''
        self.use_clock = p.publish_clock or p.real_time_factor != 1.0
        self.image_pub = self.create_publisher(Image, p.image_topic, ros_io.sensor_qos())
        self.odom_pub = self.create_publisher(Odometry, p.odom_topic, ros_io.reliable_qos())
        self.status_pub = self.create_publisher(String, p.status_topic, ros_io.reliable_qos())
        self.scene_pub = self.create_publisher(String, p.scene_topic, ros_io.latched_qos())
        self.clock_pub = self.create_publisher(Clock, '/clock', ros_io.reliable_qos()) \
            if self.use_clock else None
        self.tf_pub = self._make_tf_publisher()
        self.create_subscription(Twist, p.cmd_vel_topic, self._on_cmd_vel, ros_io.reliable_qos())
        self.create_subscription(String, p.instruction_topic, self._on_instruction,
                                 ros_io.latched_qos())
        self.command = (0.0, 0.0)
        self.last_command_time = -math.inf
        self.steps = 0
        self.next_camera = self.next_odom = self.next_status = 0.0
        self.last_outcome = 'running'
        self.wall_start = time.monotonic()
        self.scene_pub.publish(String(data=json.dumps(self.sim.layout.to_dict())))
        self.create_timer(max(MIN_TIMER_PERIOD_S, self.physics_dt / p.real_time_factor), self._on_timer)
        layout = self.sim.layout
        self.get_logger().info(
            f'{p.split} room seed {p.seed} episode {p.episode} ({layout.width:.1f} x '
            f'{layout.depth:.1f} m, {len(layout.objects)} objects); camera {p.image_width}x'
            f'{p.image_height} at {p.camera_rate} Hz on {p.image_topic}, x{p.real_time_factor:g} '
            f'real time{" with /clock" if self.use_clock else ""}')

    def _make_tf_publisher(self):
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self.get_logger().info('tf2_msgs is not installed: no odom->base_link TF (odometry only)')
            return None
        return self.create_publisher(TFMessage, '/tf', 100)

    @property
    def sim_time(self) -> float:
        return self.steps * self.physics_dt

    def _stamp(self) -> float:
        return self.sim_time if self.use_clock else ros_io.now_sec(self)

    # -- inputs -------------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Twist) -> None:
        self.command = (msg.linear.x, msg.angular.z)
        self.last_command_time = self.sim_time

    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data
        scenario = self.sim.set_instruction(msg.data)
        if scenario is None:
            self.get_logger().warning(f'instruction not understood in this room: {msg.data!r}')
        self.last_outcome = None  # forces a status now
        self._publish_status()

    # -- the loop -----------------------------------------------------------------------------
    def _on_timer(self) -> None:
        p = self.params
        due = int((time.monotonic() - self.wall_start) * p.real_time_factor / self.physics_dt)
        budget = max(1, int(MAX_CATCH_UP_S * p.real_time_factor / self.physics_dt))
        if due - self.steps > budget:  # fell behind (slow machine): drop the backlog, not realtime
            self.wall_start += (due - self.steps - budget) * self.physics_dt / p.real_time_factor
            due = self.steps + budget
        while self.steps < due:
            if self.sim_time - self.last_command_time > p.cmd_vel_timeout:
                self.command = (0.0, 0.0)
            self.sim.step(*self.command, render=False)
            self.steps += 1
            self._publish_due()

    def _publish_due(self) -> None:
        p, now = self.params, self.sim_time + 1e-9
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=ros_io.sec_to_stamp(self.sim_time)))
        if now >= self.next_camera:
            self.next_camera += 1.0 / p.camera_rate
            self.image_pub.publish(ros_io.rgb_to_image_msg(self.sim.render(), self._stamp(),
                                                           p.camera_frame))
        if now >= self.next_odom:
            self.next_odom += 1.0 / p.odom_rate
            self._publish_odometry()
        outcome = self._outcome()
        if outcome != self.last_outcome or now >= self.next_status:
            self._publish_status()

    def _outcome(self) -> str:
        if self.sim.scenario is None and self.instruction.strip():
            return self.sim.outcome or 'failure'  # not understood
        return self.sim.outcome or 'running'

    def _publish_odometry(self) -> None:
        p, obs = self.params, self.sim.observation
        x, y, yaw = obs.pose
        msg = Odometry()
        msg.header.stamp = ros_io.sec_to_stamp(self._stamp())
        msg.header.frame_id, msg.child_frame_id = p.odom_frame, p.base_frame
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        msg.twist.twist.linear.x, msg.twist.twist.angular.z = obs.twist
        self.odom_pub.publish(msg)
        if self.tf_pub is not None:
            from geometry_msgs.msg import TransformStamped
            from tf2_msgs.msg import TFMessage
            transform = TransformStamped()
            transform.header, transform.child_frame_id = msg.header, p.base_frame
            transform.transform.translation.x, transform.transform.translation.y = x, y
            transform.transform.rotation = msg.pose.pose.orientation
            self.tf_pub.publish(TFMessage(transforms=[transform]))

    def _publish_status(self) -> None:
        self.last_outcome = outcome = self._outcome()
        self.next_status = self.sim_time + self.params.status_period
        scenario, obs = self.sim.scenario, self.sim.observation
        status = {'instruction': self.instruction, 'kind': None if scenario is None else scenario.kind,
                  'target': None if scenario is None or scenario.target is None
                  else scenario.target.name,
                  'outcome': outcome, 'time': round(obs.time, 3),
                  'time_limit': None if scenario is None else scenario.time_limit,
                  'sim_time': round(self.sim_time, 3), 'pose': [round(v, 4) for v in obs.pose],
                  'twist': [round(v, 4) for v in obs.twist], 'metrics': self.sim.metrics()}
        self.status_pub.publish(String(data=json.dumps(status)))

    def on_shutdown(self) -> None:
        """Called by run_node on SIGINT/SIGTERM while the context is valid: the simulated base
        brakes to a standstill under its deceleration limits (as a real base does when its driver
        goes), and the last /odom and /sim/status say so."""
        self.command = (0.0, 0.0)
        for _ in range(int(MAX_SHUTDOWN_BRAKE_S / self.physics_dt)):
            if self.sim.observation.twist == (0.0, 0.0):
                break
            self.sim.step(0.0, 0.0, render=False)
            self.steps += 1
        self._publish_odometry()
        self._publish_status()
        ros_io.wait_for_acks(self.odom_pub)
        self.get_logger().info('shutdown: base stopped')

    def destroy_node(self) -> None:
        self.sim.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return ros_io.run_node(SimNode, args, NODE_NAME)


if __name__ == '__main__':
    sys.exit(main())
