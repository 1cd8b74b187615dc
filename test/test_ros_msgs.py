"""vla_nav.ros: message conversions and parameters declared from config/vla_nav.yaml (real rclpy)."""
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402

from vla_nav.config import node_defaults  # noqa: E402
from vla_nav.ros import convert, msgs, params  # noqa: E402

pytestmark = pytest.mark.ros


def test_chunk_round_trip_and_preempt():
    actions = np.array([[0.1 * i, -0.05 * i] for i in range(10)])
    msg = msgs.chunk_to_msg(1234.5678, actions, 0.1, 'base_link')
    assert msg.header.frame_id == 'base_link' and len(msg.points) == 10
    assert msg.points[3].time_from_start.nanosec == 300_000_000
    stamp, decoded, dt = convert.msg_to_chunk(msg)
    assert stamp == pytest.approx(1234.5678, abs=1e-9) and dt == pytest.approx(0.1)
    np.testing.assert_allclose(decoded, actions)
    stamp, decoded, _ = convert.msg_to_chunk(msgs.preempt_msg(7.25, 'base_link'))
    assert stamp == 7.25 and decoded.shape == (0, 2)


def test_malformed_chunk_raises():
    msg = msgs.chunk_to_msg(1.0, np.zeros((3, 2)), 0.1, 'base_link')
    msg.points[2].time_from_start.sec = 5
    with pytest.raises(ValueError, match='time_from_start'):
        convert.msg_to_chunk(msg)
    msg.points[1].velocities = []
    with pytest.raises(ValueError, match='no velocities'):
        convert.msg_to_chunk(msg)


def test_images_and_twists():
    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    for encoding in ('rgb8', 'bgr8', 'bgra8'):
        msg = msgs.rgb_to_image_msg(rgb, 3.5, encoding=encoding, padding=2)
        np.testing.assert_array_equal(msgs.image_msg_to_rgb(msg), rgb)
    png = msgs.rgb_to_compressed_msg(rgb, 3.5, image_format='png')
    np.testing.assert_array_equal(msgs.compressed_msg_to_rgb(png), rgb)
    twist = msgs.twist_msg(0.2, -0.3)
    assert (twist.linear.x, twist.angular.z) == (0.2, -0.3)
    stamped = msgs.twist_msg(0.2, -0.3, stamped=True, frame_id='base_link', stamp=2.0)
    assert stamped.header.frame_id == 'base_link' and stamped.twist.angular.z == -0.3


@pytest.fixture
def node():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    test_node = rclpy.create_node(
        'chunk_executor', context=context,
        parameter_overrides=[Parameter('max_linear_vel', Parameter.Type.INTEGER, 1)])
    yield test_node
    test_node.destroy_node()
    rclpy.shutdown(context=context)


def test_parameters_declared_typed_and_checked(node):
    view = params.declare_parameters_from_config(node, 'chunk_executor')
    defaults = node_defaults('chunk_executor')
    assert set(view.names()) == set(defaults)
    assert view.max_linear_vel == 1.0 and isinstance(view.max_linear_vel, float)   # int given
    assert view.control_rate == defaults['control_rate']
    result = node.set_parameters([Parameter('max_angular_vel', Parameter.Type.STRING, 'fast')])
    assert not result[0].successful and 'max_angular_vel' in result[0].reason
    assert node.set_parameters([Parameter('max_angular_vel', value=0.7)])[0].successful
    assert view.max_angular_vel == 0.7
    assert view.as_dict({'blend_steps': 2.0})['blend_steps'] == 2
    with pytest.raises(AttributeError):
        view.no_such_parameter  # noqa: B018
