"""vla_node: camera frames + a natural-language goal in, 10-step action chunks out.

A thin shell over vla_nav.core.loop.PolicyLoop, stepped on a worker thread from a one-slot mailbox;
what it does (preempts, bad input, start-up errors) and its diagnostics: README "What each node
does" and "Diagnostics".
"""
from __future__ import annotations

import os
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from trajectory_msgs.msg import MultiDOFJointTrajectory

from vla_nav.config import resolve_model_dir
from vla_nav.core.diagnostics import PolicyMonitor
from vla_nav.core.image_decode import ImageDecodeError
from vla_nav.core.loop import PolicyLoop
from vla_nav.core.mailbox import LatestMailbox
from vla_nav.core.node_config import VlaNodeConfig
from vla_nav.ros import convert, msgs, qos
from vla_nav.ros.goal_views import GoalViews
from vla_nav.ros.params import declare_node_config
from vla_nav.ros.runner import NodeStartupError, run_node, wait_for_acks
from vla_nav.runtime import ModelLoadError, load_engine_or_explain

NODE_NAME = 'vla_node'
THROTTLE_S = 2.0
WORKER_POLL_S = 0.2


class VlaNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params, self.config = declare_node_config(self, NODE_NAME, VlaNodeConfig)
        p = self.config
        try:
            engine = load_engine_or_explain(resolve_model_dir(p.model), p.backend, p.device,
                                            os.path.expanduser(p.engine_cache_dir))
        except ModelLoadError as error:   # one fatal line that names the model
            raise NodeStartupError(f'cannot load the policy: {error}') from error
        self.loop = PolicyLoop.from_config(engine, p)
        self.bridge = msgs.make_cv_bridge()
        self.chunk_pub = self.create_publisher(MultiDOFJointTrajectory, p.chunk_topic, qos.reliable_qos())
        draw = None
        if p.publish_annotated_image:
            from vla_nav.tools.overlay import draw_chunk as draw
        self.views = GoalViews(self, p, self.chunk_pub, draw)
        self.views.loop, self.loop.status_listener = self.loop, self.views.on_status
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, p.diagnostics_topic, 10)
        compressed = p.image_transport == 'compressed'
        self.create_subscription(CompressedImage if compressed else Image,
                                 p.compressed_image_topic if compressed else p.image_topic,
                                 self._on_image, qos.sensor_qos())
        self.create_subscription(String, p.instruction_topic, self._on_instruction, qos.latched_qos())
        from nav_msgs.msg import Odometry  # the model's state and the done rule's progress
        self.create_subscription(Odometry, p.state_topic, self._on_odometry, 10)
        self.create_timer(p.diagnostics_period, self._on_diagnostics)
        self.monitor = PolicyMonitor()   # frame and chunk rates, latency, undecodable frames
        self._last_inference = float('-inf')
        self.mailbox = LatestMailbox()
        self.worker = threading.Thread(target=self._work, name='vla_inference', daemon=True)
        self.worker.start()
        self.get_logger().info(f'policy {engine.backend}/{engine.provider} ready; waiting for '
                               f'{self.resolve_topic_name(p.instruction_topic)} and frames')

    # --- executor-thread callbacks (cheap) ---------------------------------------------------
    def _on_image(self, msg) -> None:
        self.monitor.frame_received(time.monotonic())
        self.mailbox.put(msg)

    def _on_instruction(self, msg: String) -> None:
        result = self.loop.set_instruction(msg.data, msgs.now_sec(self))
        if result.kind == 'rejected':
            self.get_logger().warning(f'instruction rejected: {result.reason}',
                                      throttle_duration_sec=THROTTLE_S)
            return
        stamp = self.loop.goal_start_stamp
        self.chunk_pub.publish(msgs.preempt_msg(stamp, self.config.base_frame))
        self.get_logger().info(f'{result.kind} {result.text!r} (goal {self.loop.goal_id}, '
                               f'preempt at {stamp:.3f})')

    def _on_odometry(self, msg) -> None:
        self.loop.update_odometry(*convert.odometry_to_pose_twist(msg))

    # --- worker thread -------------------------------------------------------------------------
    def _work(self) -> None:
        while not self.mailbox.closed:
            msg = self.mailbox.take(timeout=WORKER_POLL_S)
            if msg is not None:
                try:
                    self._infer(msg)
                except Exception as error:  # keep the worker alive whatever happens
                    self.get_logger().error(f'inference step failed: {type(error).__name__}: {error}',
                                            throttle_duration_sec=THROTTLE_S)

    def _infer(self, msg) -> None:
        rate, started = self.config.inference_rate, time.monotonic()
        if rate > 0 and started - self._last_inference < 1.0 / rate:
            return
        try:
            rgb = (msgs.compressed_msg_to_rgb(msg) if isinstance(msg, CompressedImage)
                   else msgs.image_msg_to_rgb(msg, self.bridge))
        except ImageDecodeError as error:
            self.monitor.decode_failed()
            self.get_logger().error(f'frame dropped: {error}', throttle_duration_sec=THROTTLE_S)
            return
        errors_before = self.loop.error_count
        chunk = self.loop.step(rgb, convert.stamp_to_sec(msg.header.stamp), msgs.now_sec(self))
        if chunk is None:
            if self.loop.error_count != errors_before:
                self.get_logger().error(f'no chunk: {self.loop.last_error}', throttle_duration_sec=THROTTLE_S)
            return
        self._last_inference = started
        self.chunk_pub.publish(msgs.chunk_to_msg(chunk.stamp, chunk.actions, chunk.dt,
                                                 self.config.base_frame))
        self.views.on_chunk(chunk, rgb)
        self.monitor.chunk_published(started, time.monotonic())
        if chunk.clamped:
            self.get_logger().warning('policy output beyond the physical limits was clamped',
                                      throttle_duration_sec=THROTTLE_S)

    # --- diagnostics and shutdown --------------------------------------------------------------
    def _on_diagnostics(self) -> None:
        level, message, values = self.monitor.report(self.loop, time.monotonic(), self.mailbox.overwritten,
                                                     self.views.diagnostic_values())
        self.diagnostics_pub.publish(msgs.diagnostic_array(self, NODE_NAME, level, message, values))

    def on_shutdown(self) -> None:
        """Stop inference, then tell the executor to brake now (the context is still valid)."""
        self.mailbox.close()
        self.worker.join(timeout=2.0)
        self.chunk_pub.publish(msgs.preempt_msg(self.loop.preempt_stamp, self.config.base_frame))
        wait_for_acks(self.chunk_pub)
        self.get_logger().info('shutdown: preempt published')


def main(args=None) -> int:
    return run_node(VlaNode, args=args, name=NODE_NAME)


if __name__ == '__main__':
    sys.exit(main())
