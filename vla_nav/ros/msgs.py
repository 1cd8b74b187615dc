"""Numbers -> rclpy messages, and image messages -> RGB arrays (rclpy types imported on call).

Reading stamps, chunks, odometry and twists is in vla_nav.ros.convert (pure, shared with bags);
this module builds the messages the nodes publish.
"""
from __future__ import annotations

import array
import io
import math
from typing import Any

import numpy as np

from vla_nav.core.image_decode import (
    check_image_geometry,
    decode_compressed,
    decode_image,
    encode_image_fields,
)
from vla_nav.ros.convert import chunk_offsets_ns, ns_to_sec_nanosec, sec_to_ns, yaw_to_quaternion_zw

_BRIDGE_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')


# --- time ----------------------------------------------------------------------------------------
def sec_to_stamp(seconds: float):
    """float seconds -> builtin_interfaces/Time."""
    from builtin_interfaces.msg import Time
    sec, nanosec = ns_to_sec_nanosec(sec_to_ns(seconds))
    return Time(sec=sec, nanosec=nanosec)


def now_sec(node) -> float:
    """The node's clock (ROS time when use_sim_time) in float seconds."""
    return node.get_clock().now().nanoseconds * 1e-9


# --- chunks and commands -------------------------------------------------------------------------
def chunk_to_msg(stamp: float, actions: np.ndarray, dt: float, frame_id: str):
    """(N, 2) actions -> MultiDOFJointTrajectory; N = 0 makes a preempt."""
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Twist
    from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

    msg = MultiDOFJointTrajectory()
    msg.header.stamp = sec_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.joint_names = [frame_id]
    rows = np.asarray(actions, dtype=np.float64).reshape(-1, 2)
    for (linear, angular), (sec, nanosec) in zip(rows, chunk_offsets_ns(len(rows), dt), strict=True):
        twist = Twist()
        twist.linear.x, twist.angular.z = float(linear), float(angular)
        point = MultiDOFJointTrajectoryPoint()
        point.velocities = [twist]
        point.time_from_start = Duration(sec=sec, nanosec=nanosec)
        msg.points.append(point)
    return msg


def preempt_msg(stamp: float, frame_id: str):
    """The empty chunk that tells chunk_executor: new goal/stop, drop everything stamped <= stamp."""
    return chunk_to_msg(stamp, np.zeros((0, 2)), 0.0, frame_id)


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


def odometry_msg(stamp: float, pose: tuple[float, float, float], twist: tuple[float, float],
                 frame_id: str, child_frame_id: str):
    """nav_msgs/Odometry of a planar pose (x, y, yaw) and body twist (linear.x, angular.z)."""
    from nav_msgs.msg import Odometry
    msg = Odometry()
    msg.header.stamp = sec_to_stamp(stamp)
    msg.header.frame_id, msg.child_frame_id = frame_id, child_frame_id
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(pose[0]), float(pose[1])
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = yaw_to_quaternion_zw(pose[2])
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = float(twist[0]), float(twist[1])
    return msg


def make_tf_publisher(node):
    """A /tf publisher of `node`, or None (logged) when tf2_msgs is not installed."""
    try:
        from tf2_msgs.msg import TFMessage
        return node.create_publisher(TFMessage, '/tf', 100)
    except ImportError:
        node.get_logger().info('tf2_msgs is not installed: no odom->base_link TF (odometry only)')
        return None


def transform_msg(odometry):
    """The odom -> base TF (tf2_msgs/TFMessage) of an Odometry message; ImportError without tf2."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
    transform = TransformStamped()
    transform.header, transform.child_frame_id = odometry.header, odometry.child_frame_id
    transform.transform.translation.x = odometry.pose.pose.position.x
    transform.transform.translation.y = odometry.pose.pose.position.y
    transform.transform.rotation = odometry.pose.pose.orientation
    return TFMessage(transforms=[transform])


# --- images --------------------------------------------------------------------------------------
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
    fields = encode_image_fields(rgb, encoding, padding)
    msg = Image()
    msg.header.stamp = sec_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width, msg.step = fields['height'], fields['width'], fields['step']
    msg.encoding, msg.is_bigendian = fields['encoding'], 0
    msg.data = array.array('B', fields['data'])   # fast path on every rclpy (no per-byte checks)
    return msg


def encode_compressed(rgb: np.ndarray, image_format: str = 'jpeg', quality: int = 90) -> bytes:
    """uint8 RGB -> JPEG or PNG bytes (Pillow)."""
    from PIL import Image as PilImage
    buffer = io.BytesIO()
    PilImage.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        buffer, format=image_format.upper(), quality=quality)
    return buffer.getvalue()


def rgb_to_compressed_msg(rgb: np.ndarray, stamp: float, frame_id: str = 'camera',
                          image_format: str = 'jpeg', quality: int = 90):
    """uint8 RGB -> sensor_msgs/CompressedImage (what image_transport's compressed plugin sends)."""
    from sensor_msgs.msg import CompressedImage
    msg = CompressedImage()
    msg.header.stamp = sec_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.format = image_format
    msg.data = array.array('B', encode_compressed(rgb, image_format, quality))
    return msg


# --- diagnostics ---------------------------------------------------------------------------------
def diagnostic_array(node, name: str, level: int, message: str, values: dict[str, Any]):
    """One DiagnosticStatus in a DiagnosticArray stamped with the node clock."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    status = DiagnosticStatus()
    status.level = bytes([level]) if isinstance(DiagnosticStatus().level, bytes) else level
    status.name = name
    status.message = message
    status.hardware_id = node.get_fully_qualified_name()
    status.values = [KeyValue(key=key, value=format_value(value)) for key, value in values.items()]
    diagnostics = DiagnosticArray()
    diagnostics.header.stamp = node.get_clock().now().to_msg()
    diagnostics.status = [status]
    return diagnostics


def format_value(value: Any) -> str:
    """A diagnostic value as text (floats with 3 decimals, NaN as 'nan')."""
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.3f}'
    return str(value)


def level_of(status) -> int:
    """A DiagnosticStatus level as an int (rclpy gives bytes, rosbags an int)."""
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


def status_values(status) -> dict[str, str]:
    """A DiagnosticStatus' key/values as a dict."""
    return {kv.key: kv.value for kv in status.values}
