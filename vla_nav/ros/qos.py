"""The QoS profiles of vla_nav topics (rclpy imported when called).

| profile        | used for                                   | why                                   |
| sensor_qos     | camera Image / CompressedImage             | best effort, depth 1: newest frame    |
| latched_qos    | /instruction, /sim/scene                    | a late subscriber gets the last goal  |
| reliable_qos   | chunks, cmd_vel, e-stop, odom, status       | no command may be lost                |

A publisher of /instruction must be transient local too (`ros2 topic pub --qos-durability
transient_local`): on Jazzy and later the CLI's default (volatile) never matches this subscription.
"""
from __future__ import annotations


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
    """Reliable, volatile, keep last `depth`."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
