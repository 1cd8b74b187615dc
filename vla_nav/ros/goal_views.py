"""vla_node's operator-facing outputs: the goal status, the chunk as a Path, the annotated frame.

    GoalViews(node, config, chunk_pub, draw=None)
      .on_status(status)          PolicyLoop.status_listener: publishes the goal-status JSON
                                  (vla_nav.core.goal.goal_status_record; status_qos: transient
                                  local, so a late mission planner reads the last state), logs it,
                                  and on a
                                  step change or a failure publishes the executor preempt
      .on_chunk(chunk, rgb)       nav_msgs/Path of the chunk in base_frame (publish_path) and the
                                  chunk drawn on the frame by `draw` (vla_nav.tools.overlay.draw_chunk,
                                  passed in by the node; publish_annotated_image, off by default:
                                  it copies and scales every frame)
      .diagnostic_values()        the goal status now as /diagnostics key-values (with the live
                                  done estimate; the topic is published on state/step changes)
rclpy message types are imported when called; the geometry is vla_nav.core.chunk_geometry.
"""
from __future__ import annotations

import json
import threading

import numpy as np

from vla_nav.core.chunk_geometry import integrate_chunk_poses
from vla_nav.core.goal import GoalState, GoalStatus, goal_status_record
from vla_nav.core.loop import Chunk, preempt_on
from vla_nav.core.node_config import VlaNodeConfig
from vla_nav.ros import msgs, qos
from vla_nav.ros.convert import yaw_to_quaternion_zw

THROTTLE_S = 2.0
STATUS_HISTORY = 10   # records kept for late subscribers (a new goal publishes two at once)


def status_qos(depth: int = STATUS_HISTORY):
    """Reliable, transient local, keep last `depth`. A new goal publishes two records back to
    back (the old goal `preempted`, the new one `active`): a reader with depth 1 sees the current
    state (transitions may coalesce), a reader with depth >= 2 sees every transition; a late
    reader gets up to `depth` recent records, the last one being the current state."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def path_msg(stamp: float, actions: np.ndarray, dt: float, frame_id: str):
    """A chunk -> nav_msgs/Path: the integrated (v, w) poses in the base frame, from the origin."""
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path

    msg = Path()
    msg.header.stamp = msgs.sec_to_stamp(stamp)
    msg.header.frame_id = frame_id
    for index, (x, y, yaw) in enumerate(integrate_chunk_poses(actions, dt)):
        pose = PoseStamped()
        pose.header.stamp = msgs.sec_to_stamp(stamp + index * dt)
        pose.header.frame_id = frame_id
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z, pose.pose.orientation.w = yaw_to_quaternion_zw(float(yaw))
        msg.poses.append(pose)
    return msg


def status_msg(status: GoalStatus):
    from std_msgs.msg import String
    return String(data=json.dumps(goal_status_record(status)))


class GoalViews:
    def __init__(self, node, config: VlaNodeConfig, chunk_pub, draw=None) -> None:
        from std_msgs.msg import String

        self.node, self.config, self.chunk_pub = node, config, chunk_pub
        self.loop = None   # set by the node: the PolicyLoop whose goal_start_stamp a preempt carries
        self.status_pub = node.create_publisher(String, config.goal_status_topic, status_qos())
        self.path_pub = self.image_pub = None
        if config.publish_path:
            from nav_msgs.msg import Path
            self.path_pub = node.create_publisher(Path, config.path_topic, qos.reliable_qos(depth=2))
        self.draw = draw
        if config.publish_annotated_image and draw is not None:
            from sensor_msgs.msg import Image
            self.image_pub = node.create_publisher(Image, config.annotated_image_topic,
                                                   qos.sensor_qos())
        self._lock = threading.Lock()
        self._last: GoalStatus | None = None

    def on_status(self, status: GoalStatus) -> None:
        """Every goal status change (any thread)."""
        with self._lock:
            previous, self._last = self._last, status
            self.status_pub.publish(status_msg(status))
        step = f' step {status.step_index + 1}/{status.step_count} {status.step_text!r}' \
            if status.step_count > 1 and status.state == GoalState.ACTIVE else ''
        reason = f': {status.reason}' if status.reason else ''
        log = self.node.get_logger()
        if status.state in (GoalState.REFUSED, GoalState.FAILED):
            log.warning(f'goal {status.goal_id} {status.state} {status.text!r}{reason}',
                        throttle_duration_sec=THROTTLE_S)
        else:
            log.info(f'goal {status.goal_id} {status.state}{step}{reason}')
        if self.loop is not None and preempt_on(status, previous):
            self.chunk_pub.publish(msgs.preempt_msg(self.loop.goal_start_stamp, self.config.base_frame))

    def on_chunk(self, chunk: Chunk, rgb: np.ndarray) -> None:
        if self.path_pub is not None:
            self.path_pub.publish(path_msg(chunk.stamp, chunk.actions, chunk.dt, self.config.base_frame))
        if self.image_pub is not None:
            last = self._last
            caption = last.step_text if last is not None else ''
            drawn = self.draw(rgb, chunk.actions, chunk.dt, caption=caption,
                               camera=self.config.annotate_camera)
            self.image_pub.publish(msgs.rgb_to_image_msg(drawn, chunk.stamp, self.config.base_frame))

    def diagnostic_values(self) -> dict:
        """The goal status now (its done estimate is live here; the topic carries changes)."""
        last = self.loop.status if self.loop is not None else self._last
        if last is None or last.goal_id == 0:
            return {'goal_state': '(none)'}
        record = goal_status_record(last)
        return {'goal_state': record['state'], 'goal_step': f"{record['step']}/{record['steps']}",
                'goal_step_text': record['step_text'] or '(none)',
                'goal_done_estimate': record['done_estimate'],
                'goal_reason': record['reason'] or '(none)'}
