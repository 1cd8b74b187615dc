"""vla_nav.ros.goal_views conversions (message types only, no node): the chunk as a Path, the status
as JSON; and the chunk geometry they share with the demo's overlay."""
import json
import math

import numpy as np
import pytest

pytest.importorskip('nav_msgs')

from vla_nav.config import load_config  # noqa: E402
from vla_nav.core.chunk_geometry import integrate_chunk_poses  # noqa: E402
from vla_nav.core.goal import GoalSequencer  # noqa: E402
from vla_nav.ros.convert import quaternion_to_yaw, stamp_to_sec  # noqa: E402
from vla_nav.ros.goal_views import path_msg, status_msg  # noqa: E402

STOP = load_config().stop_words


def test_a_quarter_circle_chunk_integrates_to_its_arc():
    actions = np.tile([0.5, math.pi / 2], (10, 1))     # 1 s at 0.5 m/s turning 90 deg: radius 1/pi
    poses = integrate_chunk_poses(actions, 0.1, substeps=50)
    radius = 0.5 / (math.pi / 2)
    assert poses.shape == (11, 3) and np.allclose(poses[0], 0.0)
    assert poses[-1] == pytest.approx([radius, radius, math.pi / 2], abs=2e-3)


def test_path_msg_is_the_integrated_chunk_in_the_base_frame():
    actions = np.tile([0.4, 0.5], (10, 1))
    msg = path_msg(12.5, actions, 0.1, 'base_link')
    expected = integrate_chunk_poses(actions, 0.1)
    assert msg.header.frame_id == 'base_link' and stamp_to_sec(msg.header.stamp) == pytest.approx(12.5)
    assert len(msg.poses) == 11
    for pose, (x, y, yaw) in zip(msg.poses, expected, strict=True):
        assert (pose.pose.position.x, pose.pose.position.y) == pytest.approx((x, y))
        assert quaternion_to_yaw(pose.pose.orientation) == pytest.approx(yaw)
    assert stamp_to_sec(msg.poses[-1].header.stamp) == pytest.approx(13.5)


def test_status_msg_carries_the_status_record():
    status = GoalSequencer(STOP).start(3, 'turn left, then go forward 1 meter', 2.0)
    record = json.loads(status_msg(status).data)
    assert (record['goal_id'], record['state'], record['step'], record['steps']) == (3, 'active', 1, 2)
