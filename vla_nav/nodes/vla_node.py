"""vla_node: camera frames + a natural-language goal in, 10-step action chunks out.

The image callback only drops the message into a one-slot mailbox (newest frame wins); a worker
thread decodes it and steps the PolicyLoop, so inference never delays an instruction, a preempt or
diagnostics. An accepted goal or stop publishes an EMPTY chunk (a preempt) stamped
PolicyLoop.goal_start_stamp at once, and again on shutdown: chunk_executor then brakes and refuses
the old goal's chunks. Image, or CompressedImage with image_transport 'compressed'. Bad frames and
junk instructions are logged (throttled) and counted, never fatal; a model that does not load is
one fatal line, exit code 1. Diagnostics levels: vla_nav.core.health.policy_health. Goals run
through the robot-side sequencer in PolicyLoop (vla_nav.core.goal); vla_nav.ros.goal_views
publishes each goal's status (and the chunk as a Path / drawn on the frame).
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
from vla_nav.core.health import PolicyPeriod, policy_health
from vla_nav.core.image_decode import ImageDecodeError
from vla_nav.core.loop import PolicyLoop
from vla_nav.core.mailbox import LatestMailbox
from vla_nav.core.node_config import VlaNodeConfig
from vla_nav.core.stats import LatencyStats, PeriodCounter, RateMeter
from vla_nav.ros import convert, msgs, qos
from vla_nav.ros.goal_views import GoalViews
from vla_nav.ros.params import declare_node_config
from vla_nav.ros.runner import NodeStartupError, run_node, wait_for_acks
from vla_nav.runtime import ModelLoadError, load_engine

NODE_NAME = 'vla_node'
THROTTLE_S = 2.0
WORKER_POLL_S = 0.2


class VlaNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params, self.config = declare_node_config(self, NODE_NAME, VlaNodeConfig)
        p = self.config
        engine = self._load_engine()
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
        self.frame_rate, self.chunk_rate, self.latency = RateMeter(), RateMeter(), LatencyStats()
        self.counts = PeriodCounter('frames', 'chunks', 'decode_errors')
        self._last_inference = float('-inf')
        self.mailbox = LatestMailbox()
        self.worker = threading.Thread(target=self._work, name='vla_inference', daemon=True)
        self.worker.start()
        self.get_logger().info(f'policy {engine.backend}/{engine.provider} ready; waiting for '
                               f'{self.resolve_topic_name(p.instruction_topic)} and frames')

    def _load_engine(self):
        p, model_dir = self.config, resolve_model_dir(self.config.model)
        try:
            return load_engine(model_dir, p.backend, p.device, os.path.expanduser(p.engine_cache_dir))
        except Exception as error:   # one fatal line that names the model
            detail = str(error) if isinstance(error, ModelLoadError) else (
                f'{model_dir} (backend {p.backend!r}): {type(error).__name__}: {error}')
            raise NodeStartupError(f'cannot load the policy: {detail}') from error

    # --- executor-thread callbacks (cheap) ---------------------------------------------------
    def _on_image(self, msg) -> None:
        self.frame_rate.tick(time.monotonic())
        self.counts.add('frames')
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
            self.counts.add('decode_errors')
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
        self.latency.add(time.monotonic() - started)
        self.chunk_rate.tick(time.monotonic())
        self.counts.add('chunks')
        if chunk.clamped:
            self.get_logger().warning('policy output beyond the physical limits was clamped',
                                      throttle_duration_sec=THROTTLE_S)

    # --- diagnostics and shutdown --------------------------------------------------------------
    def _on_diagnostics(self) -> None:
        loop, now = self.loop, time.monotonic()
        period = self.counts.take(policy_errors=loop.error_count, stale=loop.stale_count)
        p50, p99 = self.latency.percentile_ms(50), self.latency.percentile_ms(99)
        level, message = policy_health(PolicyPeriod(
            active=loop.active, frames=period['frames'], chunks=period['chunks'],
            policy_errors=period['policy_errors'], decode_errors=period['decode_errors'],
            stale=period['stale'], p99_ms=p99, chunk_dt=loop.spec.dt, last_error=loop.last_error))
        self.diagnostics_pub.publish(msgs.diagnostic_array(self, NODE_NAME, level, message, {
            'frame_rate_hz': self.frame_rate.rate(now), 'chunk_rate_hz': self.chunk_rate.rate(now),
            'inference_p50_ms': p50, 'inference_p99_ms': p99, 'history_fill': loop.history_fill,
            'goal': loop.instruction or '(none)', 'goal_id': loop.goal_id, 'frames_stale': loop.stale_count,
            'frames_undecodable': self.counts.total('decode_errors'),
            'frames_overwritten': self.mailbox.overwritten, 'chunks': loop.chunk_count,
            'policy_errors': loop.error_count, 'last_error': loop.last_error,
            'backend': loop.engine.backend, **self.views.diagnostic_values()}))

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
