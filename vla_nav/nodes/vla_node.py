"""vla_node: camera frames + a natural-language goal in, 10-step action chunks out.

Threads: the single-threaded executor only runs cheap callbacks; the image callback drops the
message into a one-slot mailbox (only the newest frame is kept) and a dedicated worker thread
decodes it and runs the policy (vla_nav.runtime.loop.PolicyLoop), so inference never delays an
instruction, a preempt or diagnostics.

Preemption: on an accepted goal or stop the node at once publishes an EMPTY chunk stamped with
PolicyLoop.goal_start_stamp (the newest frame stamp seen); chunk_executor brakes and refuses every
chunk stamped at or before it, i.e. the old goal's chunks still in flight. vla_node is the single
authority on goals; the executor never parses instructions. The same empty chunk is sent on
shutdown so the base brakes at once instead of waiting for the watchdog.

Images: sensor_msgs/Image (sensor-data QoS) or CompressedImage when image_transport is
'compressed'; cv_bridge when importable, numpy otherwise. Bad frames, junk instructions and NaN
chunks are logged (throttled) and counted, never fatal. A model that fails to load is fatal: one
log line naming the file, exit code 1.

Diagnostics (/diagnostics, every diagnostics_period), status "vla_node":
ERROR when a goal is active, frames arrived since the last report, and none produced a chunk
because of policy errors (NaN output, engine exceptions) in that period; WARN when a goal is active
but no frame arrived, when frames could not be decoded, when frames arrived but every one was
refused as stale (too old, not newer, stamped in the future), or when inference p99 exceeds 2 x
the chunk dt; OK otherwise.
"""
from __future__ import annotations

import math
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
from vla_nav.core.image_decode import ImageDecodeError
from vla_nav.core.loop import PolicyLoop
from vla_nav.core.mailbox import LatestMailbox
from vla_nav.core.stats import LatencyStats, RateMeter
from vla_nav.nodes import ros_io
from vla_nav.runtime import ModelLoadError, load_engine

NODE_NAME = 'vla_node'
THROTTLE_S = 2.0
WORKER_POLL_S = 0.2


class VlaNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = params = ros_io.declare_parameters_from_config(self, NODE_NAME)
        if params.image_transport not in ('raw', 'compressed'):
            raise ros_io.NodeStartupError(
                f"image_transport must be 'raw' or 'compressed', got {params.image_transport!r}")
        engine = self._load_engine()
        self.loop = PolicyLoop(engine, params.stop_words, params.max_instruction_chars,
                               params.max_image_age,
                               (params.action_limit_linear, params.action_limit_angular))
        self.bridge = ros_io.make_cv_bridge()
        self.chunk_pub = self.create_publisher(MultiDOFJointTrajectory, params.chunk_topic,
                                               ros_io.reliable_qos())
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, params.diagnostics_topic, 10)
        compressed = params.image_transport == 'compressed'
        self.create_subscription(CompressedImage if compressed else Image,
                                 params.compressed_image_topic if compressed else params.image_topic,
                                 self._on_image, ros_io.sensor_qos())
        self.create_subscription(String, params.instruction_topic, self._on_instruction,
                                 ros_io.latched_qos())
        if engine.spec.state_dim > 0:
            from nav_msgs.msg import Odometry
            self.create_subscription(Odometry, params.state_topic, self._on_odometry, 10)
        self.create_timer(params.diagnostics_period, self._on_diagnostics)
        self._stats_lock = threading.Lock()
        self.frame_rate, self.chunk_rate = RateMeter(), RateMeter()
        self.latency = LatencyStats()
        self.decode_errors = 0
        self._period_frames = self._period_chunks = self._period_decode_errors = 0
        self._last_inference = -math.inf
        self._errors_at_report = self._stale_at_report = 0   # loop counters at the last report
        self.mailbox = LatestMailbox()
        self.worker = threading.Thread(target=self._work, name='vla_inference', daemon=True)
        self.worker.start()
        self.get_logger().info(f'policy {engine.backend}/{engine.provider} ready; waiting for '
                               f'{params.instruction_topic} and frames')

    def _load_engine(self):
        params = self.params
        model_dir = resolve_model_dir(params.model)
        try:
            return load_engine(model_dir, params.backend, params.device,
                               os.path.expanduser(params.engine_cache_dir))
        except ModelLoadError as error:
            raise ros_io.NodeStartupError(f'cannot load the policy: {error}') from error
        except Exception as error:
            raise ros_io.NodeStartupError(
                f'cannot load the policy from {model_dir} (backend {params.backend!r}): '
                f'{type(error).__name__}: {error}') from error

    # --- executor-thread callbacks (cheap) ---------------------------------------------------
    def _on_image(self, msg) -> None:
        with self._stats_lock:
            self.frame_rate.tick(time.monotonic())
            self._period_frames += 1
        self.mailbox.put(msg)

    def _on_instruction(self, msg: String) -> None:
        result = self.loop.set_instruction(msg.data)
        if result.kind == 'rejected':
            self.get_logger().warning(f'instruction rejected: {result.reason}',
                                      throttle_duration_sec=THROTTLE_S)
            return
        stamp = self.loop.goal_start_stamp
        self.chunk_pub.publish(ros_io.preempt_msg(stamp, self.params.base_frame))
        self.get_logger().info(f'{result.kind} {result.text!r} (goal {self.loop.goal_id}, '
                               f'preempt at {stamp:.3f})')

    def _on_odometry(self, msg) -> None:
        self.loop.update_odometry(*ros_io.odometry_to_pose_twist(msg))

    # --- worker thread -------------------------------------------------------------------------
    def _work(self) -> None:
        while not self.mailbox.closed:
            msg = self.mailbox.take(timeout=WORKER_POLL_S)
            if msg is not None:
                try:
                    self._infer(msg)
                except Exception as error:  # keep the worker alive whatever happens
                    self.get_logger().error(f'inference step failed: {type(error).__name__}: '
                                            f'{error}', throttle_duration_sec=THROTTLE_S)

    def _infer(self, msg) -> None:
        rate = self.params.inference_rate
        started = time.monotonic()
        if rate > 0 and started - self._last_inference < 1.0 / rate:
            return
        try:
            if isinstance(msg, CompressedImage):
                rgb = ros_io.compressed_msg_to_rgb(msg)
            else:
                rgb = ros_io.image_msg_to_rgb(msg, self.bridge)
        except ImageDecodeError as error:
            with self._stats_lock:
                self.decode_errors += 1
                self._period_decode_errors += 1
            self.get_logger().error(f'frame dropped: {error}', throttle_duration_sec=THROTTLE_S)
            return
        errors_before = self.loop.error_count
        chunk = self.loop.step(rgb, ros_io.stamp_to_sec(msg.header.stamp), ros_io.now_sec(self))
        if chunk is None:
            if self.loop.error_count != errors_before:
                self.get_logger().error(f'no chunk: {self.loop.last_error}',
                                        throttle_duration_sec=THROTTLE_S)
            return
        self._last_inference = started
        self.chunk_pub.publish(ros_io.chunk_to_msg(chunk.stamp, chunk.actions, chunk.dt,
                                                   self.params.base_frame))
        with self._stats_lock:
            self.latency.add(time.monotonic() - started)
            self.chunk_rate.tick(time.monotonic())
            self._period_chunks += 1
        if chunk.clamped:
            self.get_logger().warning('policy output beyond the physical limits was clamped',
                                      throttle_duration_sec=THROTTLE_S)

    # --- diagnostics and shutdown --------------------------------------------------------------
    def _on_diagnostics(self) -> None:
        loop, now = self.loop, time.monotonic()
        with self._stats_lock:
            frames, chunks, decode_errors = (self._period_frames, self._period_chunks,
                                             self._period_decode_errors)
            self._period_frames = self._period_chunks = self._period_decode_errors = 0
            p50, p99 = self.latency.percentile_ms(50), self.latency.percentile_ms(99)
            values = {'frame_rate_hz': self.frame_rate.rate(now),
                      'chunk_rate_hz': self.chunk_rate.rate(now),
                      'inference_p50_ms': p50, 'inference_p99_ms': p99}
        values.update({
            'history_fill': loop.history_fill, 'goal': loop.instruction or '(none)',
            'goal_id': loop.goal_id, 'frames_stale': loop.stale_count,
            'frames_undecodable': self.decode_errors, 'frames_overwritten': self.mailbox.overwritten,
            'chunks': loop.chunk_count, 'policy_errors': loop.error_count,
            'last_error': loop.last_error, 'backend': loop.engine.backend,
        })
        errors, stale = loop.error_count, loop.stale_count
        new_errors, new_stale = errors - self._errors_at_report, stale - self._stale_at_report
        self._errors_at_report, self._stale_at_report = errors, stale
        level, message = ros_io.OK, 'running' if loop.active else 'idle: no goal'
        if loop.active and frames and not chunks and new_errors:
            level, message = ros_io.ERROR, f'policy failing: {loop.last_error}'
        elif loop.active and not frames:
            level, message = ros_io.WARN, 'no camera frames'
        elif decode_errors:
            level, message = ros_io.WARN, f'{decode_errors} frames could not be decoded'
        elif loop.active and frames and not chunks and new_stale:
            level, message = ros_io.WARN, (f'{new_stale} frames refused as stale (too old, not '
                                           'newer, or stamped in the future)')
        elif p99 > 2000.0 * loop.spec.dt:
            level, message = ros_io.WARN, f'inference p99 {p99:.0f} ms exceeds 2 x chunk dt'
        self.diagnostics_pub.publish(ros_io.diagnostic_array(self, NODE_NAME, level, message, values))

    def on_shutdown(self) -> None:
        """Stop inference, then tell the executor to brake now (the context is still valid)."""
        self.mailbox.close()
        self.worker.join(timeout=2.0)
        self.chunk_pub.publish(ros_io.preempt_msg(self.loop.preempt_stamp, self.params.base_frame))
        ros_io.wait_for_acks(self.chunk_pub)
        self.get_logger().info('shutdown: preempt published')


def main(args=None) -> int:
    return ros_io.run_node(VlaNode, args=args, name=NODE_NAME)


if __name__ == '__main__':
    sys.exit(main())
