"""Fixed-memory history of per-frame vectors (features or robot states), oldest first.

The policy head looks at a window of the last `window` frames, but each camera step encodes only
the newest frame: the ring caches the older features so nothing is ever re-encoded.

Until the ring is full the window repeats the OLDEST entry at the front (a fresh goal with two
frames gives [f0, f0, f0, f0, f0, f0, f0, f1]): the head always sees a full-length window of real
observations, which is how the dataset pads the first steps of an episode, so chunks are usable from
the first frame instead of being flagged invalid.

stride > 1 spaces the window's entries `stride` pushes apart (newest last): the ring keeps the last
(window - 1) * stride + 1 pushes and the window reads every stride-th of them back from the newest,
so the same head sees a longer stretch of time. Padding works the same way: positions older than
the first push repeat the first push.

memory_slots > 0 makes the oldest `memory_slots` positions of the window a slow memory: they sit
`memory_stride` pushes apart before the dense part (`history_back`), e.g. window 14 with 6 slots 12
apart is the last 8 frames (0.7 s) plus six frames 1.9 .. 7.9 s old, so a search can still see
the doorway it passed during its turn. The ring then keeps history_back(...)[0] + 1 pushes.
"""
from __future__ import annotations

import numpy as np


def history_back(window: int, stride: int = 1, memory_slots: int = 0, memory_stride: int = 1) -> np.ndarray:
    """Pushes (ticks) before the newest that each of the `window` positions reads, oldest first:
    the newest window - memory_slots positions `stride` apart, then the memory slots `memory_stride`
    apart before them. The one definition of the history layout: the runtime ring reads it and
    the training windows (data.dataset.window_indices) are built from it."""
    window, stride, slots, slot_stride = int(window), int(stride), int(memory_slots), int(memory_stride)
    if window < 1 or stride < 1 or slot_stride < 1 or not 0 <= slots < window:
        raise ValueError(f'history needs window, stride, memory_stride >= 1 and 0 <= memory_slots < '
                         f'window; got {window}, {stride}, {slot_stride}, {slots}')
    dense = window - slots
    back = (dense - 1 - np.arange(dense)) * stride
    memory = back[0] + (slots - np.arange(slots)) * slot_stride
    return np.concatenate([memory, back]).astype(np.int64)


class FeatureRing:
    """Preallocated ring of float32 vectors of length `dim`; windows of `window` of them laid out
    by `history_back` (`stride` pushes apart, the oldest `memory_slots` `memory_stride` apart)."""

    def __init__(self, window: int, dim: int, stride: int = 1, memory_slots: int = 0,
                 memory_stride: int = 1) -> None:
        if int(window) < 1 or int(dim) < 1 or int(stride) < 1:
            raise ValueError(f'FeatureRing needs window, dim and stride >= 1, got {window}, {dim}, {stride}')
        self._window = int(window)
        # window position p reads the entry back[p] pushes before the newest
        self._back = history_back(window, stride, memory_slots, memory_stride)
        self._size = int(self._back[0]) + 1   # pushes kept
        self._dim = int(dim)
        self._buffer = np.zeros((self._size, self._dim), dtype=np.float32)
        self._next = 0      # slot the next push writes
        self._fill = 0

    @property
    def size(self) -> int:
        """Pushes kept: (window - 1) * stride + 1 without memory slots."""
        return self._size

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fill(self) -> int:
        """Number of real entries (0..size)."""
        return self._fill

    @property
    def full(self) -> bool:
        return self._fill == self._size

    def reset(self) -> None:
        """Forget the history (a new goal); memory stays allocated."""
        self._next = 0
        self._fill = 0

    def push(self, vector: np.ndarray) -> None:
        """Append the newest entry, overwriting the oldest when full."""
        vector = np.asarray(vector)
        if vector.shape != (self._dim,):
            raise ValueError(f'FeatureRing expects shape ({self._dim},), got {vector.shape}')
        self._buffer[self._next] = vector
        self._next = (self._next + 1) % self._size
        self._fill = min(self._fill + 1, self._size)

    def window(self, out: np.ndarray | None = None) -> np.ndarray:
        """(window, dim) float32, oldest first; the oldest entry repeats until the ring is full.

        Pass `out` (a preallocated (window, dim) float32 array) to avoid allocating.
        """
        if self._fill == 0:
            raise ValueError('FeatureRing is empty: push at least one entry before reading a window')
        if out is None:
            out = np.empty((self._window, self._dim), dtype=np.float32)
        back = self._back if self._fill == self._size else np.minimum(self._back, self._fill - 1)
        index = self._next - 1 - back          # (older than the first push: the first push)
        index %= self._size
        return np.take(self._buffer, index, axis=0, out=out)
