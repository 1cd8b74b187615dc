"""Pure conversions between ROS message fields and numbers (no rclpy import, ever).

Every function reads attributes only, so it accepts rclpy messages and rosbags message objects
alike: the nodes, the tools and vla_nav.data (bags) share these, and nothing else converts a
stamp, a quaternion or a chunk.

Chunk message: trajectory_msgs/MultiDOFJointTrajectory, header.stamp = observation time of the
newest frame, points[i].velocities[0] = Twist(linear.x, angular.z), time_from_start = i*dt.
A chunk with NO points is a preempt (see vla_nav.core.executor).

Malformed chunks (the one behaviour, everywhere): a chunk with a point that lacks velocities, or
whose time_from_start is not 0, dt, 2dt, ... (dt > 0) is REJECTED as a whole:
`msg_to_chunk` raises MalformedChunkError (a ValueError) naming the problem. chunk_executor logs it
(throttled), counts it and keeps the old plan; the tools skip it and say how many they skipped.
Nothing pads a missing velocity with zeros or drops a point silently (either would shift every
later action onto the wrong time).
"""
from __future__ import annotations

import math

import numpy as np

from vla_nav.core.robot_state import yaw_from_quaternion

NS_PER_S = 1_000_000_000
DT_TOLERANCE_S = 1e-3


class MalformedChunkError(ValueError):
    """A chunk message that cannot be read as (stamp, actions, dt); the message says why."""


# --- time ----------------------------------------------------------------------------------------
def stamp_to_sec(stamp) -> float:
    """builtin_interfaces/Time (or Duration) -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (or Duration) -> integer nanoseconds (exact)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def sec_to_ns(seconds: float) -> int:
    return int(round(seconds * NS_PER_S))


def ns_to_sec_nanosec(nanoseconds: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec) with 0 <= nanosec < 1e9 (fields of a Time)."""
    return int(nanoseconds) // NS_PER_S, int(nanoseconds) % NS_PER_S


# --- geometry ------------------------------------------------------------------------------------
def quaternion_to_yaw(q) -> float:
    """Heading (rad) of a geometry_msgs/Quaternion (any object with x, y, z, w)."""
    return yaw_from_quaternion(float(q.x), float(q.y), float(q.z), float(q.w))


def yaw_to_quaternion_zw(yaw: float) -> tuple[float, float]:
    """(z, w) of the planar quaternion for `yaw` (x = y = 0)."""
    return math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def odometry_to_pose_twist(msg) -> tuple[float, float, float, float, float]:
    """nav_msgs/Odometry -> (x, y, yaw, linear.x, angular.z)."""
    pose, twist = msg.pose.pose, msg.twist.twist
    return (float(pose.position.x), float(pose.position.y), quaternion_to_yaw(pose.orientation),
            float(twist.linear.x), float(twist.angular.z))


def twist_to_pair(msg) -> tuple[float, float]:
    """(linear.x, angular.z) of a Twist or a TwistStamped."""
    twist = getattr(msg, 'twist', msg)
    return float(twist.linear.x), float(twist.angular.z)


# --- chunks --------------------------------------------------------------------------------------
def msg_to_chunk(msg) -> tuple[float, np.ndarray, float]:
    """MultiDOFJointTrajectory -> (stamp s, float64 (N, 2) actions, dt s); N = 0 is a preempt.

    A single-point chunk has dt 0.0 (the caller chooses). Raises MalformedChunkError for a
    malformed chunk (see the module docstring: the whole chunk is rejected).
    """
    stamp = stamp_to_sec(msg.header.stamp)
    points = msg.points
    if not len(points):
        return stamp, np.zeros((0, 2)), 0.0
    actions = np.empty((len(points), 2))
    times = np.empty(len(points))
    for index, point in enumerate(points):
        if not len(point.velocities):
            raise MalformedChunkError(f'chunk point {index} has no velocities')
        velocity = point.velocities[0]
        actions[index] = (velocity.linear.x, velocity.angular.z)
        times[index] = stamp_to_sec(point.time_from_start)
    if len(points) == 1:
        return stamp, actions, 0.0
    steps = np.diff(times)
    dt = float(steps.mean())
    if times[0] != 0.0 or dt <= 0.0 or np.max(np.abs(steps - dt)) > DT_TOLERANCE_S:
        raise MalformedChunkError(
            f'chunk time_from_start must be 0, dt, 2dt, ...; got {times.tolist()}')
    return stamp, actions, dt


def chunk_offsets_ns(count: int, dt: float) -> list[tuple[int, int]]:
    """(sec, nanosec) of time_from_start for points 0..count-1 spaced dt apart."""
    return [ns_to_sec_nanosec(int(round(index * dt * NS_PER_S))) for index in range(count)]


# --- topic names ---------------------------------------------------------------------------------
def absolute_topic(name: str, namespace: str = '/') -> str:
    """`name` resolved like ROS resolves a topic of a node in `namespace` ('~' unsupported).

    config/vla_nav.yaml keeps topic names relative (`cmd_vel`) so a namespace moves them; tools
    that need the fully qualified name (a bag's connection, a probe in another namespace) use
    this. Absolute names (`/diagnostics`) stay as they are.
    """
    if name.startswith('/'):
        return name
    namespace = '/' + namespace.strip('/')
    return (namespace.rstrip('/') + '/' + name) if namespace != '/' else '/' + name
