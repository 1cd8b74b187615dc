"""vla_nav.ros.runner's routing of Python logging and warnings to a ROS logger, and the pure
conversions of vla_nav.ros.convert on plain objects (as rosbags gives them) — no rclpy needed."""
from __future__ import annotations

import logging
import math
import subprocess
import sys
import warnings
from types import SimpleNamespace as Obj

import numpy as np
import pytest

from vla_nav.ros import convert
from vla_nav.ros.runner import RosLogHandler, route_python_logging


class FakeRosLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level):
        return lambda text: self.lines.append((level, text))


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_library_warnings_reach_the_ros_logger(restore_logging):
    ros = FakeRosLogger()
    quiet = logging.getLogger('vla_nav_test.quiet_library')     # a library with its own handlers
    quiet.propagate = False
    route_python_logging(ros)
    logging.getLogger('onnxruntime').warning('lacks %s; falling back', 'CUDAExecutionProvider')
    logging.getLogger('vla_nav_test.runtime').error('boom')
    quiet.warning('not propagated, still routed')
    logging.getLogger('chatty').info('not forwarded below WARNING')
    with warnings.catch_warnings():
        warnings.simplefilter('always')
        warnings.warn('falling back to CPU', UserWarning, stacklevel=1)
    assert ('warning', '[onnxruntime] lacks CUDAExecutionProvider; falling back') in ros.lines
    assert ('error', '[vla_nav_test.runtime] boom') in ros.lines
    assert ('warning', '[vla_nav_test.quiet_library] not propagated, still routed') in ros.lines
    assert not any('chatty' in text for _, text in ros.lines)
    assert any(level == 'warning' and text.startswith('[py.warnings]') and 'falling back to CPU' in text
               for level, text in ros.lines)
    # a second route replaces the first (one per process: the node's logger after start-up)
    again = FakeRosLogger()
    route_python_logging(again)
    logging.getLogger('x').warning('once')
    assert ('warning', '[x] once') in again.lines and not any('once' in t for _, t in ros.lines)
    assert sum(isinstance(h, RosLogHandler) for h in logging.getLogger().handlers) == 1
    assert sum(isinstance(h, RosLogHandler) for h in quiet.handlers) == 1
    quiet.handlers.clear()


def test_importing_the_ros_layer_and_data_imports_no_rclpy():
    """data/ and a no-ROS venv use the pure conversions: no module of vla_nav.ros imports rclpy
    (or a message package) at import time."""
    code = ('import sys, vla_nav.ros, vla_nav.ros.convert, vla_nav.ros.msgs, vla_nav.ros.qos, '
            'vla_nav.ros.runner, vla_nav.ros.params, vla_nav.data.bags\n'
            "loaded = [m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'sensor_msgs', 'geometry_msgs', 'trajectory_msgs')]\n"
            'assert not loaded, loaded')
    subprocess.run([sys.executable, '-c', code], check=True)


def stamp(sec, nanosec):
    return Obj(sec=sec, nanosec=nanosec)


def twist(linear, angular):
    return Obj(linear=Obj(x=linear), angular=Obj(z=angular))


def chunk(points, sec=5, nanosec=500_000_000):
    return Obj(header=Obj(stamp=stamp(sec, nanosec)), points=points)


def point(index, linear=0.1, angular=-0.2, dt_ns=100_000_000):
    offset = index * dt_ns
    return Obj(velocities=[twist(linear, angular)], time_from_start=stamp(offset // 10**9, offset % 10**9))


def test_pure_conversions_work_on_plain_objects_without_rclpy():
    assert convert.stamp_to_sec(stamp(3, 250_000_000)) == 3.25
    assert convert.stamp_to_ns(stamp(3, 250_000_000)) == 3_250_000_000
    assert convert.ns_to_sec_nanosec(-1) == (-1, 999_999_999)
    z, w = convert.yaw_to_quaternion_zw(1.0)
    assert convert.quaternion_to_yaw(Obj(x=0.0, y=0.0, z=z, w=w)) == pytest.approx(1.0)
    odom = Obj(pose=Obj(pose=Obj(position=Obj(x=1.0, y=2.0), orientation=Obj(x=0, y=0, z=z, w=w))),
               twist=Obj(twist=twist(0.3, -0.1)))
    assert convert.odometry_to_pose_twist(odom) == pytest.approx((1.0, 2.0, 1.0, 0.3, -0.1))
    assert convert.twist_to_pair(twist(0.3, 0.1)) == (0.3, 0.1)
    assert convert.twist_to_pair(Obj(twist=twist(0.3, 0.1))) == (0.3, 0.1)     # TwistStamped


def test_chunk_conversion_and_the_one_malformed_behaviour():
    stamp_s, actions, dt = convert.msg_to_chunk(chunk([point(i) for i in range(10)]))
    assert stamp_s == 5.5 and dt == pytest.approx(0.1) and actions.shape == (10, 2)
    np.testing.assert_allclose(actions[0], [0.1, -0.2])
    assert convert.msg_to_chunk(chunk([]))[1].shape == (0, 2)                  # a preempt
    assert convert.msg_to_chunk(chunk([point(0)]))[2] == 0.0                   # one point: no dt
    missing = [point(i) for i in range(3)]
    missing[1].velocities = []
    with pytest.raises(convert.MalformedChunkError, match='point 1 has no velocities'):
        convert.msg_to_chunk(chunk(missing))                                    # rejected, not padded
    uneven = [point(0), point(1), point(5)]
    with pytest.raises(convert.MalformedChunkError, match='time_from_start'):
        convert.msg_to_chunk(chunk(uneven))
    assert issubclass(convert.MalformedChunkError, ValueError)
    assert convert.chunk_offsets_ns(3, 0.1) == [(0, 0), (0, 100_000_000), (0, 200_000_000)]
    assert math.isclose(convert.stamp_to_sec(stamp(0, 1)), 1e-9)
