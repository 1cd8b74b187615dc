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
"""
from __future__ import annotations

import numpy as np


class FeatureRing:
    """Preallocated ring of float32 vectors of length `dim`; windows of `window` of them, `stride`
    pushes apart."""

    def __init__(self, window: int, dim: int, stride: int = 1) -> None:
        if int(window) < 1 or int(dim) < 1 or int(stride) < 1:
            raise ValueError(f'FeatureRing needs window, dim and stride >= 1, got {window}, {dim}, {stride}')
        self._window = int(window)
        self._size = (self._window - 1) * int(stride) + 1   # pushes kept
        self._dim = int(dim)
        self._buffer = np.zeros((self._size, self._dim), dtype=np.float32)
        # window position p reads the entry (window - 1 - p) * stride pushes before the newest
        self._back = (self._window - 1 - np.arange(self._window)) * int(stride)
        self._next = 0      # slot the next push writes
        self._fill = 0

    @property
    def size(self) -> int:
        """Pushes kept: (window - 1) * stride + 1."""
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
