"""What every vla_nav node shares: parameters from config/vla_nav.yaml, the shutdown idiom,
QoS profiles and message <-> numpy conversions. Nodes stay thin by leaning on this module.

Shutdown. rclpy's default SIGINT handler shuts the context down before a `finally:` runs, so a
zero command published there would fail. `run_node` therefore starts rclpy WITHOUT its signal
handlers (SignalHandlerOptions.NO, Humble and later), catches SIGINT and SIGTERM itself, leaves the
spin loop, calls the node's `on_shutdown()` hook while the context is still valid (the executor
publishes its zero Twist there), then destroys the node and shuts rclpy down. Exit code 0 after a
signal, 1 after a failed start (one fatal log line saying why) or an external shutdown.

Chunk message: trajectory_msgs/MultiDOFJointTrajectory, header.stamp = observation time of the
newest frame, points[i].velocities[0] = Twist(linear.x, angular.z), time_from_start = i*dt. A chunk
with NO points is a preempt (see vla_nav.core.executor).
"""
from __future__ import annotations

import array
import math
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from vla_nav.config import node_defaults
from vla_nav.core.image_decode import (
    ImageDecodeError,
    check_image_geometry,
    decode_compressed,
    decode_image,
)

SPIN_POLL_S = 0.1      # how often the spin loop looks at the shutdown flag
ACK_TIMEOUT_S = 0.5    # how long on_shutdown hooks wait for a reliable zero to be acknowledged


# --- start-up and shutdown -----------------------------------------------------------------------
def init_ros(args: list[str] | None = None) -> None:
    """rclpy.init without rclpy's own SIGINT/SIGTERM handlers (we install ours in run_node)."""
    import rclpy
    try:
        from rclpy.signals import SignalHandlerOptions
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (ImportError, TypeError):   # an rclpy older than Humble
        rclpy.init(args=args)


class NodeStartupError(RuntimeError):
    """A node cannot start (bad model, bad parameter); the message is the one fatal log line."""


def run_node(make_node: Callable[[], Any], args: list[str] | None = None,
             name: str = 'vla_nav') -> int:
    """init -> build the node -> spin a SingleThreadedExecutor until SIGINT/SIGTERM ->
    node.on_shutdown() (context still valid) -> destroy -> shutdown. Returns the exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    init_ros(args)
    stop = threading.Event()
    previous = {}

    def request_stop(signum, _frame):
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, request_stop)
    node, code = None, 0
    try:
        try:
            node = make_node()
        except Exception as error:  # one clear line, never a half-running node
            detail = str(error) if isinstance(error, NodeStartupError) else (
                f'{type(error).__name__}: {error}')
            rclpy.logging.get_logger(name).fatal(f'{name} cannot start: {detail}')
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set():
            executor.spin_once(timeout_sec=SPIN_POLL_S)
            if not rclpy.ok():
                code = 1
                break
    except ExternalShutdownException:
        code = 1
    except KeyboardInterrupt:
        pass
    except Exception:  # a bug in a callback: stop cleanly (zero published) and say where
        rclpy.logging.get_logger(name).fatal(f'{name} stopped by an error:\n{traceback.format_exc()}')
        code = 1
    finally:
        if node is not None:
            hook = getattr(node, 'on_shutdown', None)
            if hook is not None and rclpy.ok():
                try:
                    hook()
                except Exception as error:
                    node.get_logger().error(f'on_shutdown failed: {type(error).__name__}: {error}')
            node.destroy_node()
        rclpy.try_shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def wait_for_acks(publisher, timeout_s: float = ACK_TIMEOUT_S) -> None:
    """Give a reliable publisher's last message a chance to be delivered before destruction."""
    wait = getattr(publisher, 'wait_for_all_acked', None)
    if wait is not None:
        from rclpy.duration import Duration
        try:
            wait(Duration(nanoseconds=int(timeout_s * 1e9)))
        except Exception:  # best effort: never block shutdown on it
            pass


# --- parameters ----------------------------------------------------------------------------------
def _coerce(default: Any, value: Any) -> Any:
    """`value` converted to the type of the YAML default; TypeError if it cannot be."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
            return list(value)
    else:
        return value
    raise TypeError(f'expected {type(default).__name__}, got {value!r}')


class NodeParameters:
    """Live, typed read access to a node's parameters: `params.max_linear_vel` is always the
    current value (run-time `ros2 param set` included), converted to the YAML default's type."""

    def __init__(self, node, defaults: dict[str, Any]) -> None:
        self._node = node
        self._defaults = defaults

    def __getattr__(self, name: str) -> Any:
        defaults = self.__dict__.get('_defaults', {})
        if name not in defaults:
            raise AttributeError(f'no parameter {name!r} in the config of this node')
        return _coerce(defaults[name], self._node.get_parameter(name).value)

    def names(self) -> list[str]:
        return list(self._defaults)

    def as_dict(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """All current values; `overrides` (name -> raw value) are applied on top, coerced."""
        values = {name: getattr(self, name) for name in self._defaults}
        for name, value in (overrides or {}).items():
            if name in self._defaults:
                values[name] = _coerce(self._defaults[name], value)
        return values


def declare_parameters_from_config(node, node_name: str) -> NodeParameters:
    """Declare every key of config/vla_nav.yaml `node_name` with its default; return a typed view.

    Parameters are dynamically typed (so `-p max_linear_vel:=1` is accepted as 1.0) but every
    value, at start and on `ros2 param set`, must convert to the default's type, else it is
    refused with a reason.
    """
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

    defaults = node_defaults(node_name)
    for name, default in defaults.items():
        node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
    params = NodeParameters(node, defaults)
    for name in defaults:
        try:
            getattr(params, name)
        except TypeError as error:
            raise NodeStartupError(f'parameter {name}: {error}') from error

    def check_types(parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name in defaults:
                try:
                    _coerce(defaults[parameter.name], parameter.value)
                except TypeError as error:
                    return SetParametersResult(successful=False,
                                               reason=f'{parameter.name}: {error}')
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check_types)
    return params


# --- QoS -----------------------------------------------------------------------------------------
def sensor_qos():
    """Best effort, keep last 1: only the newest camera frame matters."""
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    return QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability,
                      history=qos_profile_sensor_data.history)


def latched_qos():
    """Reliable, transient local, depth 1: a late subscriber still gets the last instruction."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def reliable_qos(depth: int = 10):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


# --- time ----------------------------------------------------------------------------------------
def stamp_to_sec(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def sec_to_stamp(seconds: float):
    from builtin_interfaces.msg import Time
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def now_sec(node) -> float:
    """The node's clock (ROS time when use_sim_time) in float seconds."""
    return node.get_clock().now().nanoseconds * 1e-9


# --- chunks --------------------------------------------------------------------------------------
def chunk_to_msg(stamp: float, actions: np.ndarray, dt: float, frame_id: str):
    """(N, 2) actions -> MultiDOFJointTrajectory; N = 0 makes a preempt."""
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Twist
    from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

    msg = MultiDOFJointTrajectory()
    msg.header.stamp = sec_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.joint_names = [frame_id]
    for index, (linear, angular) in enumerate(np.asarray(actions, dtype=np.float64).reshape(-1, 2)):
        twist = Twist()
        twist.linear.x, twist.angular.z = float(linear), float(angular)
        offset = int(round(index * dt * 1e9))
        point = MultiDOFJointTrajectoryPoint()
        point.velocities = [twist]
        point.time_from_start = Duration(sec=offset // 1_000_000_000, nanosec=offset % 1_000_000_000)
        msg.points.append(point)
    return msg


def preempt_msg(stamp: float, frame_id: str):
    """The empty chunk that tells chunk_executor: new goal/stop, drop everything stamped <= stamp."""
    return chunk_to_msg(stamp, np.zeros((0, 2)), 0.0, frame_id)


def msg_to_chunk(msg) -> tuple[float, np.ndarray, float]:
    """MultiDOFJointTrajectory -> (stamp, float64 (N, 2) actions, dt); N = 0 is a preempt.

    Raises ValueError for a malformed chunk (missing velocities, uneven or non-positive spacing).
    """
    stamp = stamp_to_sec(msg.header.stamp)
    points = msg.points
    if not points:
        return stamp, np.zeros((0, 2)), 0.0
    actions = np.empty((len(points), 2))
    times = np.empty(len(points))
    for index, point in enumerate(points):
        if not point.velocities:
            raise ValueError(f'chunk point {index} has no velocities')
        actions[index] = (point.velocities[0].linear.x, point.velocities[0].angular.z)
        times[index] = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
    if len(points) == 1:
        return stamp, actions, 0.0
    steps = np.diff(times)
    dt = float(steps.mean())
    if times[0] != 0.0 or dt <= 0.0 or np.max(np.abs(steps - dt)) > 1e-3:
        raise ValueError(f'chunk time_from_start must be 0, dt, 2dt, ...; got {times.tolist()}')
    return stamp, actions, dt


def twist_msg(linear: float, angular: float, stamped: bool = False, frame_id: str = '',
              stamp: float | None = None):
    """Twist, or TwistStamped (for diff_drive controllers that want one) when `stamped`."""
    from geometry_msgs.msg import Twist, TwistStamped
    twist = Twist()
    twist.linear.x, twist.angular.z = float(linear), float(angular)
    if not stamped:
        return twist
    msg = TwistStamped()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = sec_to_stamp(stamp)
    msg.twist = twist
    return msg


# --- images --------------------------------------------------------------------------------------
_BRIDGE_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')


def make_cv_bridge():
    """cv_bridge's CvBridge when importable (Humble with OpenCV), else None (numpy path)."""
    try:
        from cv_bridge import CvBridge
        return CvBridge()
    except Exception:
        return None


def image_msg_to_rgb(msg, bridge=None) -> np.ndarray:
    """sensor_msgs/Image -> uint8 RGB (H, W, 3); ImageDecodeError when it cannot be read.

    Geometry is always checked by the numpy path first (cheap, before any allocation); cv_bridge,
    when given, converts the common encodings.
    """
    if bridge is not None and msg.encoding in _BRIDGE_ENCODINGS:
        check_image_geometry(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
        try:
            rgb = bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')
            return np.ascontiguousarray(rgb, dtype=np.uint8).reshape(msg.height, msg.width, 3)
        except Exception:
            pass   # fall through: the numpy path gives the precise error message
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)


def compressed_msg_to_rgb(msg) -> np.ndarray:
    return decode_compressed(msg.data, msg.format)


def rgb_to_image_msg(rgb: np.ndarray, stamp: float, frame_id: str = 'camera',
                     encoding: str = 'rgb8', padding: int = 0):
    """uint8 RGB -> sensor_msgs/Image (tests, simulator)."""
    from sensor_msgs.msg import Image

    from vla_nav.core.image_decode import encode_image_fields
    fields = encode_image_fields(rgb, encoding, padding)
    msg = Image()
    msg.header.stamp = sec_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width, msg.step = fields['height'], fields['width'], fields['step']
    msg.encoding, msg.is_bigendian = fields['encoding'], 0
    msg.data = array.array('B', fields['data'])   # fast path on every rclpy (no per-byte checks)
    return msg


def rgb_to_compressed_msg(rgb: np.ndarray, stamp: float, frame_id: str = 'camera',
                          image_format: str = 'jpeg', quality: int = 90):
    """uint8 RGB -> sensor_msgs/CompressedImage (JPEG or PNG)."""
    import io

    from PIL import Image as PilImage
    from sensor_msgs.msg import CompressedImage
    buffer = io.BytesIO()
    PilImage.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        buffer, format=image_format.upper(), quality=quality)
    msg = CompressedImage()
    msg.header.stamp = sec_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.format = image_format
    msg.data = array.array('B', buffer.getvalue())
    return msg


# --- odometry and diagnostics ----------------------------------------------------------------------
def odometry_to_pose_twist(msg) -> tuple[float, float, float, float, float]:
    """nav_msgs/Odometry -> (x, y, yaw, linear.x, angular.z)."""
    from vla_nav.core.robot_state import yaw_from_quaternion
    pose, twist = msg.pose.pose, msg.twist.twist
    yaw = yaw_from_quaternion(pose.orientation.x, pose.orientation.y, pose.orientation.z,
                              pose.orientation.w)
    return pose.position.x, pose.position.y, yaw, twist.linear.x, twist.angular.z


OK, WARN, ERROR = 0, 1, 2


def diagnostic_array(node, name: str, level: int, message: str, values: dict[str, Any]):
    """One DiagnosticStatus in a DiagnosticArray stamped with the node clock."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    status = DiagnosticStatus()
    status.level = bytes([level]) if isinstance(DiagnosticStatus().level, bytes) else level
    status.name = name
    status.message = message
    status.hardware_id = node.get_fully_qualified_name()
    status.values = [KeyValue(key=key, value=_format_value(value)) for key, value in values.items()]
    array = DiagnosticArray()
    array.header.stamp = node.get_clock().now().to_msg()
    array.status = [status]
    return array


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.3f}'
    return str(value)


__all__ = [
    'ImageDecodeError', 'NodeParameters', 'NodeStartupError', 'OK', 'WARN', 'ERROR',
    'chunk_to_msg', 'compressed_msg_to_rgb', 'declare_parameters_from_config', 'diagnostic_array',
    'image_msg_to_rgb', 'init_ros', 'latched_qos', 'make_cv_bridge', 'msg_to_chunk', 'now_sec',
    'odometry_to_pose_twist', 'preempt_msg', 'reliable_qos', 'rgb_to_compressed_msg',
    'rgb_to_image_msg', 'run_node', 'sec_to_stamp', 'sensor_qos', 'stamp_to_sec', 'twist_msg',
    'wait_for_acks',
]
