"""Episodes from bags: segmentation by instruction, dt resampling alignment, training windows."""
import numpy as np
import pytest

from vla_nav.data import EpisodeBagWriter, make_windows, read_episodes, window_indices
from vla_nav.data.dataset import Episode

MS = 1_000_000


def _flat(value):
    """A 4x4 frame whose every pixel is `value`: the frame index survives decode + resize."""
    return np.full((4, 4, 3), value, np.uint8)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_resampling_alignment(tmp_path, storage):
    with EpisodeBagWriter(tmp_path / 'bag', storage=storage) as writer:
        writer.write_image(900 * MS, _flat(200))               # before the goal: not used
        writer.write_cmd_vel(950 * MS, 9.0, 9.0)               # before the goal: not carried over
        for index in range(41):                                # 40 Hz camera from 1.000 s to 2.000 s
            writer.write_image((1000 + 25 * index) * MS, _flat(index))
        writer.write_instruction(1000 * MS, 'go to the red cone')   # same stamp as the first frame
        writer.write_cmd_vel(1050 * MS, 0.1, 0.0)
        writer.write_cmd_vel(1320 * MS, 0.2, 0.5, stamped=True)
        writer.write_odom(1000 * MS, 1.0, 1.0, 0.0, 0.05, 0.0)
        writer.write_odom(1250 * MS, 1.3, 1.4, 0.5, 0.15, 0.25)
    skipped = []
    (episode,) = read_episodes(tmp_path, dt=0.1, image_size=(2, 3), skipped=skipped,
                               command_timeout=0.5)
    assert skipped == []
    assert episode.instruction == 'go to the red cone'
    assert episode.has_odom
    np.testing.assert_allclose(episode.stamps, 1.0 + 0.1 * np.arange(11), atol=1e-9)
    assert episode.frames.shape == (11, 2, 3, 3)
    assert episode.frames[:, 0, 0, 0].tolist() == [4 * k for k in range(11)]   # newest at/before
    expected_actions = ([[0.0, 0.0]] + [[0.1, 0.0]] * 3 + [[0.2, 0.5]] * 5   # 1.8 - 1.32 <= 0.5
                        + [[0.0, 0.0]] * 2)                                   # stale -> stopped
    np.testing.assert_allclose(episode.actions, expected_actions, atol=1e-7)
    before, after = [0.05, 0.0, 0.0, 0.0], [0.15, 0.25, 0.5, 0.5]
    np.testing.assert_allclose(episode.states, [before] * 3 + [after] * 8, atol=1e-6)


def test_slow_camera_repeats_frames_and_no_odom_gives_zero_states(tmp_path):
    with EpisodeBagWriter(tmp_path / 'bag') as writer:
        writer.write_instruction(0, 'turn left')
        for index in range(3):                                  # 5 Hz camera
            writer.write_image(200 * MS * index, _flat(index))
            writer.write_cmd_vel(200 * MS * index, 0.0, 1.0)
    (episode,) = read_episodes(tmp_path / 'bag', dt=0.1)
    assert episode.frames.shape == (5, 4, 4, 3)               # native size kept
    assert episode.frames[:, 0, 0, 0].tolist() == [0, 0, 1, 1, 2]
    assert not episode.has_odom and not episode.states.any()


def test_segmentation_by_instruction(tmp_path):
    with EpisodeBagWriter(tmp_path / 'bag') as writer:
        def segment(start_ms, instruction, frames, commands=True):
            if instruction is not None:
                writer.write_instruction(start_ms * MS, instruction)
            for index in range(frames):
                stamp = (start_ms + 100 * index) * MS
                writer.write_image(stamp, _flat(start_ms // 1000))
                if commands:
                    writer.write_cmd_vel(stamp + 30 * MS, 0.3, 0.0)
        segment(0, None, 5)                     # no goal yet
        segment(1000, 'go to the red cone', 5)
        segment(3000, '  ', 5)                  # empty goal
        segment(4000, 'turn right', 8)
        segment(6000, 'stop', 1)                # too short
        segment(7000, 'go forward 1 meter', 5, commands=False)
    skipped = []
    episodes = list(read_episodes(tmp_path, dt=0.1, skipped=skipped))
    assert [(e.instruction, len(e), e.source.rsplit('#')[1]) for e in episodes] == [
        ('go to the red cone', 5, '0'), ('turn right', 8, '2')]
    assert [e.frames[0, 0, 0, 0] for e in episodes] == [1, 4]
    # a new segment never inherits the previous goal's command: zero until its own first one
    assert episodes[1].actions[0].tolist() == [0.0, 0.0]
    assert episodes[1].actions[1].tolist() == pytest.approx([0.3, 0.0])
    reasons = {source.rsplit('#')[1]: reason for source, reason in skipped}
    assert reasons['1'] == 'empty instruction'
    assert reasons['3'].startswith('too short')
    assert reasons['4'] == 'no cmd_vel messages'


def test_bag_without_instruction_is_skipped_with_reason(tmp_path):
    with EpisodeBagWriter(tmp_path / 'teleop') as writer:
        writer.write_image(0, _flat(1))
        writer.write_cmd_vel(0, 0.1, 0.0)
    skipped = []
    assert list(read_episodes(tmp_path, skipped=skipped)) == []
    assert len(skipped) == 1 and 'no instruction' in skipped[0][1]


def test_window_indices_at_episode_ends():
    frame_index, action_index, mask = window_indices(3, window=2, chunk=3)
    assert frame_index.tolist() == [[0, 0], [0, 1], [1, 2]]
    assert mask.tolist() == [
        [[False] * 3, [True, True, True]],
        [[True, True, True], [True, True, False]],
        [[True, True, False], [True, False, False]]]
    assert action_index[2, 1].tolist()[:1] == [2]


def test_make_windows_targets_follow_the_actions():
    length = 12
    actions = np.stack([np.arange(length), -np.arange(length)], axis=1).astype(np.float32)
    episode = Episode('go', np.zeros((length, 2, 2, 3), np.uint8), actions,
                      np.zeros((length, 4), np.float32), np.arange(length) * 0.1, 'synthetic')
    frame_index, target, mask = make_windows(episode, window=8, chunk=10)
    assert frame_index.shape == (12, 8) and target.shape == (12, 8, 10, 2)
    assert target.dtype == np.float32 and mask.dtype == bool
    # the newest position of window t is tick t; its chunk is actions[t:t+10], cut at the end
    assert target[0, 7, :, 0].tolist() == list(range(10))
    assert mask[5, 7].sum() == 7 and target[5, 7, :7, 0].tolist() == [5, 6, 7, 8, 9, 10, 11]
    assert not target[~mask].any()
    # position p of window t stands for tick t-7+p
    assert target[9, 3, 0].tolist() == [5, -5] and frame_index[9, 3] == 5
    assert not mask[3, :4].any() and frame_index[3, :5].tolist() == [0] * 5


def test_episode_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match='actions'):
        Episode('go', np.zeros((3, 2, 2, 3), np.uint8), np.zeros((2, 2), np.float32),
                np.zeros((3, 4), np.float32), np.zeros(3), 'bad')


def test_compressed_camera_and_undecodable_frames(tmp_path):
    import io

    from PIL import Image

    def png(value):
        buffer = io.BytesIO()
        Image.fromarray(_flat(value)).save(buffer, format='PNG')
        return buffer.getvalue()

    with EpisodeBagWriter(tmp_path / 'bag') as writer:
        writer.write_instruction(0, 'go to the blue ball')
        for index in range(4):
            stamp = 100 * MS * index
            if index == 2:   # a corrupt payload: the previous good frame stays in use
                writer.write_compressed_image(stamp, b'not a png', format='png')
            else:
                writer.write_compressed_image(stamp, png(10 * index), format='png')
            writer.write_cmd_vel(stamp, 0.2, 0.0)
    (episode,) = read_episodes(tmp_path)
    assert episode.frames[:, 0, 0, 0].tolist() == [0, 10, 10, 30]


def test_window_indices_with_a_history_stride():
    frame_index, action_index, mask = window_indices(6, window=3, chunk=2, stride=2)
    assert frame_index.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 3], [0, 2, 4], [1, 3, 5]]
    # position p of window t stands for tick t - (2 - p) * 2: supervised only when that tick exists
    assert mask[3, :, 0].tolist() == [False, True, True] and mask[5, :, 0].tolist() == [True] * 3
    assert action_index[5, 0].tolist() == [1, 2] and mask[5, 2].tolist() == [True, False]
    with pytest.raises(ValueError, match='stride'):
        window_indices(6, window=3, chunk=2, stride=0)


def test_memory_slots_are_read_but_never_supervised():
    """window 4 = 2 memory slots 3 apart + 2 dense positions: slots stand for ticks t-4 and t-7."""
    frame_index, action_index, mask = window_indices(10, window=4, chunk=2, memory_slots=2, memory_stride=3)
    assert frame_index[9].tolist() == [2, 5, 8, 9] and frame_index[3].tolist() == [0, 0, 2, 3]
    assert not mask[:, :2].any()
    plain_frames, plain_actions, plain_mask = window_indices(10, window=2, chunk=2)
    np.testing.assert_array_equal(frame_index[:, 2:], plain_frames)     # the dense part is unchanged
    np.testing.assert_array_equal(action_index[:, 2:], plain_actions)
    np.testing.assert_array_equal(mask[:, 2:], plain_mask)
