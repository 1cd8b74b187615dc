"""The tool side of a live run: one rclpy node in the demo/soak process that watches the node suite
over DDS and sends its goals.

It hears what an operator would look at (/sim/scene, /sim/status, /odom, /vla/action_chunk,
/cmd_vel, /diagnostics, optionally the camera) and keeps the figures the tools report: chunk count
and rate, camera-stamp-to-cmd_vel latency (from the frame stamp a chunk carries to the first
/cmd_vel heard after that chunk arrived: inference + transport + the wait for the executor's next
control tick), the latest diagnostics per node, the robot's pose and trajectory.

Topic names come from config/vla_nav.yaml. Call `vla_nav.config.use_loopback_ros(domain_id)`
before constructing one (the tools do). No vla_nav.nodes import: tools never depend on nodes.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_nav.config import node_defaults
from vla_nav.core.stats import LatencyStats
from vla_nav.ros import qos
from vla_nav.ros.convert import msg_to_chunk, odometry_to_pose_twist, stamp_to_sec
from vla_nav.ros.msgs import level_of, status_values
from vla_nav.ros.runner import init_ros

LATENCY_CAPACITY = 1 << 16          # samples kept for p50/p99 (a 10-minute soak at 30 Hz fits)
TRAJECTORY_PERIOD_S = 0.1           # odometry samples kept for plots, s apart
FRAMES_KEPT = 16                    # recent camera frames kept to pair chunks with their frame


@dataclass(frozen=True)
class SuiteTopics:
    """Every topic the tools touch, from config/vla_nav.yaml."""

    instruction: str
    chunk: str
    cmd_vel: str
    estop: str
    diagnostics: str
    image: str
    odom: str
    status: str
    scene: str

    @classmethod
    def from_config(cls) -> SuiteTopics:
        vla, executor, sim = (node_defaults(name) for name in ('vla_node', 'chunk_executor',
                                                                 'sim_node'))
        return cls(instruction=vla['instruction_topic'], chunk=vla['chunk_topic'],
                   cmd_vel=executor['cmd_vel_topic'], estop=executor['estop_topic'],
                   diagnostics=vla['diagnostics_topic'], image=sim['image_topic'],
                   odom=sim['odom_topic'], status=sim['status_topic'],
                   scene=sim['scene_topic'])


def _diagnostic_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {'True': True, 'False': False}.get(text, text)


class SuiteObserver:
    """Subscriptions + the instruction publisher, spun by the caller (`spin_for`, `wait_for`)."""

    def __init__(self, node_name: str = 'vla_nav_observer', use_sim_time: bool = False,
                 keep_frames: bool = False,
                 on_chunk: Callable[[float, np.ndarray, np.ndarray | None], None] | None = None
                 ) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from trajectory_msgs.msg import MultiDOFJointTrajectory

        self._rclpy = rclpy
        if not rclpy.ok():
            init_ros()
        self.node = rclpy.create_node(node_name, parameter_overrides=[
            Parameter('use_sim_time', Parameter.Type.BOOL, bool(use_sim_time))])
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.topics = topics = SuiteTopics.from_config()
        latched, reliable = qos.latched_qos(), qos.reliable_qos(depth=50)
        self.instruction_pub = self.node.create_publisher(String, topics.instruction, latched)
        self.node.create_subscription(String, topics.scene, self._on_scene, latched)
        self.node.create_subscription(String, topics.status, self._on_status, reliable)
        self.node.create_subscription(Odometry, topics.odom, self._on_odom, reliable)
        self.node.create_subscription(MultiDOFJointTrajectory, topics.chunk, self._on_chunk, reliable)
        self.node.create_subscription(Twist, topics.cmd_vel, self._on_cmd_vel, reliable)
        self.node.create_subscription(DiagnosticArray, topics.diagnostics, self._on_diagnostics,
                                      reliable)
        self.keep_frames = keep_frames
        if keep_frames:
            self.node.create_subscription(Image, topics.image, self._on_image,
                                          qos.sensor_qos())
        self.on_chunk = on_chunk
        self.reset_figures()
        self.scene: dict | None = None
        self.status: dict | None = None
        self.statuses: list[dict] = []
        self.pose: tuple[float, float, float] | None = None
        self.twist = (0.0, 0.0)
        self.odom_count = 0
        self.trajectory: list[tuple[float, float, float, float]] = []   # (t, x, y, yaw)
        self.diagnostics: dict[str, dict[str, Any]] = {}
        self.frames: dict[float, np.ndarray] = {}
        self.frame_count = 0

    # --- figures ------------------------------------------------------------------------------
    def reset_figures(self) -> None:
        """Start counting chunks, latency and commands afresh (e.g. after warm-up)."""
        self.chunk_count = 0
        self.preempt_count = 0
        self.malformed_chunks = 0
        self.first_chunk_at: float | None = None
        self.last_chunk_at: float | None = None
        self.latency = LatencyStats(LATENCY_CAPACITY)
        self._pending_stamps: list[float] = []
        self.cmd_count = 0
        self.moving_cmd_count = 0
        self.last_cmd = (0.0, 0.0)
        self.max_abs_cmd = (0.0, 0.0)
        self.last_chunk_stamp = -math.inf
        self.chunk_stamp_regressions = 0

    def chunk_rate(self) -> float:
        """Chunks per second of wall time between the first and the last chunk heard."""
        if self.first_chunk_at is None or self.last_chunk_at is None \
                or self.last_chunk_at <= self.first_chunk_at:
            return 0.0
        return (self.chunk_count - 1) / (self.last_chunk_at - self.first_chunk_at)

    def now(self) -> float:
        """The observer's clock (ROS time when use_sim_time), float seconds."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    # --- callbacks ----------------------------------------------------------------------------
    def _on_scene(self, msg) -> None:
        try:
            self.scene = json.loads(msg.data)
        except ValueError:
            self.node.get_logger().error('unreadable scene JSON', throttle_duration_sec=5.0)

    def _on_status(self, msg) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            self.node.get_logger().error('unreadable status JSON', throttle_duration_sec=5.0)
            return
        self.status = status
        self.statuses.append(status)

    def _on_odom(self, msg) -> None:
        x, y, yaw, linear, angular = odometry_to_pose_twist(msg)
        self.pose, self.twist = (x, y, yaw), (linear, angular)
        self.odom_count += 1
        stamp = stamp_to_sec(msg.header.stamp)
        if not self.trajectory or stamp - self.trajectory[-1][0] >= TRAJECTORY_PERIOD_S:
            self.trajectory.append((stamp, *self.pose))

    def _on_chunk(self, msg) -> None:
        try:
            stamp, actions, _ = msg_to_chunk(msg)
        except ValueError as error:   # MalformedChunkError: rejected whole, as the executor does
            self.malformed_chunks += 1
            self.node.get_logger().error(f'malformed chunk skipped: {error}', throttle_duration_sec=5.0)
            return
        if not len(actions):
            self.preempt_count += 1
            return
        arrived = time.monotonic()
        self.chunk_count += 1
        self.first_chunk_at = self.first_chunk_at if self.first_chunk_at is not None else arrived
        self.last_chunk_at = arrived
        if stamp <= self.last_chunk_stamp:
            self.chunk_stamp_regressions += 1
        self.last_chunk_stamp = stamp
        self._pending_stamps.append(stamp)
        if self.on_chunk is not None:
            self.on_chunk(stamp, actions.astype(np.float32), self.frame_at(stamp))

    def _on_cmd_vel(self, msg) -> None:
        now = self.now()
        command = (msg.linear.x, msg.angular.z)
        self.cmd_count += 1
        self.last_cmd = command
        if command != (0.0, 0.0):
            self.moving_cmd_count += 1
        self.max_abs_cmd = (max(self.max_abs_cmd[0], abs(command[0])),
                            max(self.max_abs_cmd[1], abs(command[1])))
        for stamp in self._pending_stamps:
            self.latency.add(now - stamp)
        self._pending_stamps.clear()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            entry = {key: _diagnostic_value(value) for key, value in status_values(status).items()}
            entry.update(_level=level_of(status), _message=status.message, _received=time.monotonic())
            self.diagnostics[status.name] = entry

    def _on_image(self, msg) -> None:
        from vla_nav.core.image_decode import ImageDecodeError, decode_image
        try:
            rgb = decode_image(msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data),
                               msg.is_bigendian)
        except ImageDecodeError:
            return
        self.frame_count += 1
        self.frames[stamp_to_sec(msg.header.stamp)] = rgb
        while len(self.frames) > FRAMES_KEPT:
            self.frames.pop(next(iter(self.frames)))

    def frame_at(self, stamp: float, tolerance_s: float = 1e-3) -> np.ndarray | None:
        """The kept camera frame with this stamp (chunks carry their newest frame's stamp)."""
        best = min(self.frames, key=lambda kept: abs(kept - stamp), default=None)
        if best is None or abs(best - stamp) > tolerance_s:
            return None
        return self.frames[best]

    # --- driving ------------------------------------------------------------------------------
    def send_instruction(self, text: str) -> None:
        from std_msgs.msg import String
        self.instruction_pub.publish(String(data=text))

    def spin_once(self, timeout_s: float = 0.05) -> None:
        self.executor.spin_once(timeout_sec=timeout_s)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.spin_once(min(0.05, max(0.0, deadline - time.monotonic())))

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float,
                 on_poll: Callable[[], Any] | None = None) -> bool:
        """Spin until `predicate()` holds or `timeout_s` passes; `on_poll` runs between spins
        (progress lines, dead-node checks that raise)."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            self.spin_once(0.05)
            if on_poll is not None:
                on_poll()
        return True

    def close(self) -> None:
        try:
            self.executor.remove_node(self.node)
            self.node.destroy_node()
        finally:
            self._rclpy.try_shutdown()


# --- start-up ------------------------------------------------------------------------------------
class SuiteError(RuntimeError):
    """The node suite did not come up or a node died; the message says which and why."""


def node_ready(observer: SuiteObserver, name: str) -> bool:
    """What an operator would check: the sim publishes its scene and odometry; vla_node reports
    diagnostics (it does so only after its model loaded); the executor reports or commands."""
    if name == 'sim_node':
        return observer.scene is not None and observer.odom_count > 0
    if name == 'vla_node':
        return 'vla_node' in observer.diagnostics
    if name == 'chunk_executor':
        return 'chunk_executor' in observer.diagnostics or observer.cmd_count > 0
    raise ValueError(f'unknown node {name!r}')


def raise_if_dead(suite) -> None:
    dead = suite.dead()
    if dead:
        name, code = next(iter(dead.items()))
        raise SuiteError(f'{name} exited with code {code}; the end of its log '
                         f'({suite.processes[name].log_path}):\n{suite.processes[name].log_tail()}')


def wait_for_suite(observer: SuiteObserver, suite, timeout_s: float,
                   on_progress: Callable[[float, dict[str, bool]], None] | None = None) -> float:
    """Spin until every started node is ready; returns the seconds it took.

    Raises SuiteError when a node dies or `timeout_s` passes (naming the nodes not ready)."""
    started = time.monotonic()
    names = list(suite.processes)

    def poll() -> None:
        raise_if_dead(suite)
        if on_progress is not None:
            on_progress(time.monotonic() - started, {name: node_ready(observer, name)
                                                     for name in names})

    ok = observer.wait_for(lambda: all(node_ready(observer, name) for name in names), timeout_s,
                           poll)
    if not ok:
        missing = [name for name in names if not node_ready(observer, name)]
        raise SuiteError(f'not ready after {timeout_s:.0f} s: {", ".join(missing)} (logs in '
                         f'{suite.log_dir})')
    return time.monotonic() - started


def exporting_onnx(suite) -> bool:
    """vla_node's log says the ONNX graphs are being exported (first run with a model)."""
    process = suite.processes.get('vla_node')
    return process is not None and 'exporting' in process.log_tail(40)


def stop_suite(suite, observer: SuiteObserver | None) -> dict:
    """Stop every node, then read the robot's last command (a clean stop leaves it at zero)."""
    result: dict = {'exit_codes': suite.stop()}
    if observer is not None:
        observer.spin_for(0.3)
        result['final_cmd_vel'] = list(observer.last_cmd)
        observer.close()
    return result
