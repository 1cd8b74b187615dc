"""FeatureRing: fixed memory, oldest first, oldest repeated until full."""
import numpy as np
import pytest

from vla_nav.core.feature_ring import FeatureRing, history_back


def vec(value, dim=3):
    return np.full(dim, value, dtype=np.float32)


def test_repeats_oldest_until_full():
    ring = FeatureRing(4, 3)
    ring.push(vec(1))
    ring.push(vec(2))
    assert ring.fill == 2 and not ring.full
    np.testing.assert_array_equal(ring.window()[:, 0], [1, 1, 1, 2])


def test_wraps_oldest_first_and_keeps_memory():
    ring = FeatureRing(3, 2)
    buffer_id = id(ring._buffer)
    for value in range(1, 6):
        ring.push(vec(value, 2))
    assert ring.full and ring.fill == 3
    window = ring.window()
    assert window.dtype == np.float32 and window.shape == (3, 2)
    np.testing.assert_array_equal(window[:, 1], [3, 4, 5])
    assert id(ring._buffer) == buffer_id


def test_window_into_preallocated_output_and_copy_semantics():
    ring = FeatureRing(2, 2)
    ring.push(vec(7, 2))
    out = np.empty((2, 2), np.float32)
    assert ring.window(out) is out
    out[:] = 0
    np.testing.assert_array_equal(ring.window()[:, 0], [7, 7])   # caller edits never leak back


def test_reset_and_errors():
    ring = FeatureRing(2, 2)
    ring.push(vec(1, 2))
    ring.reset()
    assert ring.fill == 0
    with pytest.raises(ValueError, match='empty'):
        ring.window()
    with pytest.raises(ValueError, match='shape'):
        ring.push(np.zeros(3))
    with pytest.raises(ValueError):
        FeatureRing(0, 2)


def test_stride_spaces_the_window_and_pads_with_the_first_push():
    ring = FeatureRing(3, 1, stride=2)
    assert ring.size == 5
    ring.push(vec(0, 1))
    assert ring.window().shape == (3, 1)
    np.testing.assert_array_equal(ring.window()[:, 0], [0, 0, 0])
    for value in range(1, 4):
        ring.push(vec(value, 1))
    np.testing.assert_array_equal(ring.window()[:, 0], [0, 1, 3])   # 3 - 4 is before the first
    for value in range(4, 9):
        ring.push(vec(value, 1))
    assert ring.full
    np.testing.assert_array_equal(ring.window()[:, 0], [4, 6, 8])
    with pytest.raises(ValueError, match='stride'):
        FeatureRing(3, 1, stride=0)


def test_memory_slots_reach_back_before_the_dense_window():
    """window 5 with 2 memory slots 4 apart: 3 dense positions (ticks t-2..t), slots at t-6, t-10."""
    assert history_back(5, 1, 2, 4).tolist() == [10, 6, 2, 1, 0]
    assert history_back(4, 2).tolist() == [6, 4, 2, 0]          # no slots: the stride alone
    ring = FeatureRing(5, 1, memory_slots=2, memory_stride=4)
    assert ring.size == 11
    for value in range(4):
        ring.push(vec(value, 1))
    np.testing.assert_array_equal(ring.window()[:, 0], [0, 0, 1, 2, 3])   # slots pad with the first
    for value in range(4, 20):
        ring.push(vec(value, 1))
    np.testing.assert_array_equal(ring.window()[:, 0], [9, 13, 17, 18, 19])
    for bad in ((5, 1, 5, 4), (5, 1, -1, 4), (5, 1, 2, 0)):
        with pytest.raises(ValueError, match='memory'):
            history_back(*bad)


@pytest.mark.parametrize('window,stride,slots,slot_stride', [(8, 1, 0, 1), (8, 3, 0, 1), (4, 2, 0, 1),
                                                            (1, 5, 0, 1), (14, 1, 6, 12), (6, 2, 3, 5)])
def test_the_ring_reads_the_frames_training_windows_are_built_from(window, stride, slots, slot_stride):
    """The runtime's window at tick t holds exactly the frames `window_indices` trains on."""
    from vla_nav.data.dataset import window_indices
    length = 90
    frame_index, _, _ = window_indices(length, window, chunk=2, stride=stride, memory_slots=slots,
                                       memory_stride=slot_stride)
    ring = FeatureRing(window, 1, stride, slots, slot_stride)
    for tick in range(length):
        ring.push(vec(tick, 1))
        np.testing.assert_array_equal(ring.window()[:, 0], frame_index[tick])
