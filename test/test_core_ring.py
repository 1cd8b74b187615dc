"""FeatureRing: fixed memory, oldest first, oldest repeated until full."""
import numpy as np
import pytest

from vla_nav.core.feature_ring import FeatureRing


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
