"""sim_node: the built-in simulated robot (vla_nav.sim.NavSim) on ROS topics.

Camera, odometry, TF, /clock, the room and the judged episode status out; cmd_vel and the
instruction in. Topics, pacing and stamps: README "What each node does" (sim_node).
"""
from __future__ import annotations

import json
import sys
import time

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from vla_nav.config import load_config, resolve_sim_world
from vla_nav.core.node_config import SimNodeConfig
from vla_nav.core.pacing import StepPacer
from vla_nav.ros import msgs, qos
from vla_nav.ros.params import declare_node_config
from vla_nav.ros.runner import run_node, wait_for_acks
from vla_nav.sim import NavSim
from vla_nav.sim.commanded import CommandedBase
from vla_nav.sim.robot import RobotLimits
from vla_nav.sim.status import episode_outcome, episode_status

NODE_NAME = 'sim_node'
MAX_CATCH_UP_S = 0.25        # wall seconds of physics one timer callback may run when behind
MIN_TIMER_PERIOD_S = 0.005
MAX_SHUTDOWN_BRAKE_S = 2.0   # sim seconds of braking on shutdown (the limits need < 0.3 s)
JPEG_QUALITY = 90


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params, self.config = declare_node_config(self, NODE_NAME, SimNodeConfig)
        p = self.config
        self.physics_dt = 1.0 / p.physics_rate
        shared = load_config()   # the robot's limits and the stop phrases the judge knows
        self.world = resolve_sim_world(p.world, shared.vla_node.model)   # 'model': what it learned
        self.sim = NavSim(p.split, p.seed, (p.image_height, p.image_width), control_dt=self.physics_dt,
                          physics_dt=min(0.02, self.physics_dt),
                          limits=RobotLimits.from_executor(shared.executor), stop_words=shared.stop_words,
                          world=self.world)
        self.sim.reset(p.episode)
        self.sim.set_instruction('')  # no task until the instruction topic says one
        self.base, self.instruction = CommandedBase(self.sim, self.physics_dt, p.cmd_vel_timeout), ''
        self.use_clock = p.publish_clock or p.real_time_factor != 1.0
        reliable = qos.reliable_qos()
        self.image_pub = self.create_publisher(Image, p.image_topic, qos.sensor_qos())
        self.compressed_pub = self.create_publisher(CompressedImage, p.image_topic + '/compressed',
                                                    qos.sensor_qos())
        self.odom_pub = self.create_publisher(Odometry, p.odom_topic, reliable)
        self.status_pub = self.create_publisher(String, p.status_topic, reliable)
        self.scene_pub = self.create_publisher(String, p.scene_topic, qos.latched_qos())
        self.clock_pub = self.create_publisher(Clock, '/clock', reliable) if self.use_clock else None
        self.tf_pub = msgs.make_tf_publisher(self)
        self.create_subscription(Twist, p.cmd_vel_topic, self._on_cmd_vel, reliable)
        self.create_subscription(String, p.instruction_topic, self._on_instruction, qos.latched_qos())
        self.next_camera = self.next_odom = self.next_status = 0.0
        self.last_outcome = 'running'
        self.pacer = StepPacer(self.physics_dt, p.real_time_factor, MAX_CATCH_UP_S, time.monotonic())
        self.scene_pub.publish(String(data=json.dumps(self.sim.layout.to_dict())))
        self.create_timer(max(MIN_TIMER_PERIOD_S, self.physics_dt / p.real_time_factor), self._on_timer)
        layout = self.sim.layout
        self.get_logger().info(
            f'{self.world} world, {p.split} room seed {p.seed} episode {p.episode} '
            f'({layout.width:.1f} x {layout.depth:.1f} m, '
            f'{len(layout.objects)} objects); camera {p.image_width}x{p.image_height} at {p.camera_rate} Hz '
            f'on {self.image_pub.topic_name}, x{p.real_time_factor:g} real time'
            f'{" with /clock" if self.use_clock else ""}')

    def _stamp(self) -> float:
        return self.base.sim_time if self.use_clock else msgs.now_sec(self)

    def _on_cmd_vel(self, msg: Twist) -> None:
        self.base.set_command(msg.linear.x, msg.angular.z)

    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data
        if self.sim.set_instruction(msg.data) is None:
            self.get_logger().warning(f'instruction not understood in this room: {msg.data!r}')
        self._publish_status()

    def _on_timer(self) -> None:
        for _ in range(self.pacer.due(time.monotonic(), self.base.steps)):
            self.base.step()
            self._publish_due()

    def _publish_due(self) -> None:
        p, now = self.config, self.base.sim_time + 1e-9
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=msgs.sec_to_stamp(self.base.sim_time)))
        if now >= self.next_camera:
            self.next_camera += 1.0 / p.camera_rate
            self._publish_camera()
        if now >= self.next_odom:
            self.next_odom += 1.0 / p.odom_rate
            self._publish_odometry()
        if episode_outcome(self.sim, self.instruction) != self.last_outcome or now >= self.next_status:
            self._publish_status()

    def _publish_camera(self) -> None:
        rgb, stamp, frame = self.sim.render(), self._stamp(), self.config.camera_frame
        self.image_pub.publish(msgs.rgb_to_image_msg(rgb, stamp, frame))
        if self.compressed_pub.get_subscription_count() > 0:   # JPEG only for a listener
            self.compressed_pub.publish(msgs.rgb_to_compressed_msg(rgb, stamp, frame, 'jpeg', JPEG_QUALITY))

    def _publish_odometry(self) -> None:
        p, obs = self.config, self.sim.observation
        msg = msgs.odometry_msg(self._stamp(), obs.pose, obs.twist, p.odom_frame, p.base_frame)
        self.odom_pub.publish(msg)
        if self.tf_pub is not None:
            self.tf_pub.publish(msgs.transform_msg(msg))

    def _publish_status(self) -> None:
        sim_time = self.base.sim_time
        status = episode_status(self.sim, self.instruction, sim_time)
        self.last_outcome, self.next_status = status['outcome'], sim_time + self.config.status_period
        self.status_pub.publish(String(data=json.dumps(status)))

    def on_shutdown(self) -> None:
        """SIGINT/SIGTERM (context still valid): the simulated base brakes to a standstill under
        its deceleration limits, as a real base does when its driver goes; /odom says so."""
        self.base.brake(MAX_SHUTDOWN_BRAKE_S)
        self._publish_odometry()
        self._publish_status()
        wait_for_acks(self.odom_pub)
        self.get_logger().info('shutdown: base stopped')

    def destroy_node(self) -> None:
        self.sim.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, args, NODE_NAME)


if __name__ == '__main__':
    sys.exit(main())
