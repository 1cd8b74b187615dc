"""rosbag2 write/read round trips through vla_nav.data.bags (mcap and sqlite3)."""
import io

import numpy as np
import pytest
from PIL import Image

from vla_nav.data.bags import (
    BagError,
    BagTopics,
    EpisodeBagWriter,
    bag_custom_data,
    bag_topics,
    camera_to_rgb,
    chunk_of,
    find_bags,
    iter_bag_messages,
    odom_of,
    twist_of,
)

S = 1_000_000_000


def _frame(seed, height=6, width=10):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_round_trip_every_message_kind(tmp_path, storage):
    path = tmp_path / 'bag'
    with EpisodeBagWriter(path, storage=storage, metadata={'outcome': 'success'}) as writer:
        writer.write_instruction(1 * S, 'go to the red cone')
        writer.write_image(2 * S, _frame(1), encoding='rgb8')
        writer.write_image(3 * S, _frame(2), encoding='bgr8', row_padding=6)
        writer.write_image(4 * S, _frame(3), encoding='rgba8', row_padding=4)
        writer.write_image(5 * S, _frame(4), encoding='bgra8')
        writer.write_cmd_vel(6 * S, 0.25, -0.5)
        writer.write_cmd_vel(7 * S, -0.1, 1.25, stamped=True)
        writer.write_odom(8 * S, 1.0, -2.0, 0.75, 0.3, -0.2)
        writer.write_chunk(9 * S, np.array([[0.1, 0.2], [0.3, -0.4], [0.5, 0.0]]), dt=0.1)
        writer.write_chunk(10 * S, np.zeros((0, 2)), dt=0.1)   # a preempt
    assert find_bags(tmp_path) == [path]
    assert bag_custom_data(path) == {'outcome': 'success'}
    assert bag_topics(path)['/camera/image_raw'] == ('sensor_msgs/msg/Image', 4)

    messages = list(iter_bag_messages(path))
    assert [m.kind for m in messages] == ['instruction'] + ['camera'] * 4 + ['cmd_vel'] * 2 + [
        'odom'] + ['chunk'] * 2
    assert [m.stamp_ns for m in messages] == [k * S for k in range(1, 11)]
    assert messages[0].msg.data == 'go to the red cone'
    for message, seed in zip(messages[1:5], (1, 2, 3, 4), strict=True):
        np.testing.assert_array_equal(camera_to_rgb(message.msg), _frame(seed))
    assert messages[2].msg.step == 10 * 3 + 6
    assert twist_of(messages[5].msg) == (0.25, -0.5)
    assert twist_of(messages[6].msg) == (-0.1, 1.25)
    x, y, yaw, linear, angular = odom_of(messages[7].msg)
    assert (x, y, linear, angular) == (1.0, -2.0, 0.3, -0.2)
    assert yaw == pytest.approx(0.75)
    stamp, actions, dt = chunk_of(messages[8].msg)
    assert stamp == 9 * S and dt == pytest.approx(0.1)
    np.testing.assert_allclose(actions, [[0.1, 0.2], [0.3, -0.4], [0.5, 0.0]], atol=1e-6)
    assert chunk_of(messages[9].msg)[1].shape == (0, 2)


def test_mono8_and_compressed_camera(tmp_path):
    gray = np.repeat(np.arange(60, dtype=np.uint8).reshape(6, 10, 1), 3, axis=2)
    png = io.BytesIO()
    Image.fromarray(_frame(5)).save(png, format='PNG')
    jpeg = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(jpeg, format='JPEG', quality=95)
    with EpisodeBagWriter(tmp_path / 'raw') as writer:
        writer.write_image(1, gray, encoding='mono8', row_padding=2)
    (message,) = iter_bag_messages(tmp_path / 'raw')
    np.testing.assert_array_equal(camera_to_rgb(message.msg), gray)

    with EpisodeBagWriter(tmp_path / 'compressed') as writer:
        writer.write_compressed_image(1, png.getvalue(), format='png')
        writer.write_compressed_image(2, jpeg.getvalue(), format='rgb8; jpeg compressed bgr8')
    first, second = iter_bag_messages(tmp_path / 'compressed', kinds=['camera'])
    assert first.topic == '/camera/image_raw/compressed'
    np.testing.assert_array_equal(camera_to_rgb(first.msg), _frame(5))
    assert np.abs(camera_to_rgb(second.msg).astype(int) - 120).max() <= 3


def test_raw_camera_preferred_over_compressed_and_topic_overrides(tmp_path):
    topics = BagTopics.from_config(image='/front/image', cmd_vel='/base/cmd_vel')
    png = io.BytesIO()
    Image.fromarray(_frame(1)).save(png, format='PNG')
    with EpisodeBagWriter(tmp_path / 'bag', topics=topics) as writer:
        writer.write_image(1, _frame(2))
        writer.write_compressed_image(2, png.getvalue(), format='png')
        writer.write_cmd_vel(3, 0.1, 0.0)
    kinds = [(m.kind, m.topic) for m in iter_bag_messages(tmp_path / 'bag', topics)]
    assert kinds == [('camera', '/front/image'), ('cmd_vel', '/base/cmd_vel')]
    # with the default names nothing of this bag is ours but the compressed camera
    assert [m.topic for m in iter_bag_messages(tmp_path / 'bag')] == [
        '/camera/image_raw/compressed']


def test_header_clock(tmp_path):
    with EpisodeBagWriter(tmp_path / 'bag') as writer:
        writer.write_chunk(5 * S, np.zeros((2, 2)), dt=0.1, receive_ns=7 * S)
        writer.write_cmd_vel(8 * S, 0.0, 0.0)
    receive = [m.stamp_ns for m in iter_bag_messages(tmp_path / 'bag')]
    header = [m.stamp_ns for m in iter_bag_messages(tmp_path / 'bag', clock='header')]
    assert receive == [7 * S, 8 * S] and header == [5 * S, 8 * S]


def test_errors_name_the_bag(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing'):
        find_bags(tmp_path / 'missing')
    (tmp_path / 'junk').mkdir()
    (tmp_path / 'junk' / 'metadata.yaml').write_text('not: a bag\n')
    with pytest.raises(BagError, match='junk'):
        list(iter_bag_messages(tmp_path / 'junk'))
    with pytest.raises(ValueError, match='topic name'):
        BagTopics.from_config(image='/')
    assert BagTopics.from_config(image='camera').image == '/camera'   # config names may be relative
    with pytest.raises(ValueError, match='storage'):
        EpisodeBagWriter(tmp_path / 'x', storage='bag1')


def test_find_bags_skips_hidden_partial_dirs(tmp_path):
    for name in ('b', 'a', '.partial-c', 'nested/d'):
        with EpisodeBagWriter(tmp_path / name) as writer:
            writer.write_instruction(1, 'stop')
    assert [p.relative_to(tmp_path).as_posix() for p in find_bags(tmp_path)] == [
        'a', 'b', 'nested/d']
