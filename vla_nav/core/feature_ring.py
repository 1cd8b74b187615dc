"""Fixed-memory history of per-frame vectors (features or robot states), oldest first.

The policy head looks at a window of the last `window` frames, but each camera step encodes only
the newest frame: the ring caches the older features so nothing is ever re-encoded.

Until the ring is full the window repeats the OLDEST entry at the front (a fresh goal with two
frames gives [f0, f0, f0, f0, f0, f0, f0, f1]): the head always sees a full-length window of real
observations, which is how the dataset pads the first steps of an episode, so chunks are usable from
the first frame instead of being flagged invalid.
"""
from __future__ import annotations

import numpy as np


class FeatureRing:
    """Preallocated ring of `window` float32 vectors of length `dim`."""

    def __init__(self, window: int, dim: int) -> None:
        if int(window) < 1 or int(dim) < 1:
            raise ValueError(f'FeatureRing needs window >= 1 and dim >= 1, got {window}, {dim}')
        self._size = int(window)
        self._dim = int(dim)
        self._buffer = np.zeros((self._size, self._dim), dtype=np.float32)
        self._next = 0      # slot the next push writes
        self._fill = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fill(self) -> int:
        """Number of real entries (0..window)."""
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
            out = np.empty((self._size, self._dim), dtype=np.float32)
        oldest = (self._next - self._fill) % self._size
        order = (oldest + np.arange(self._fill)) % self._size
        pad = self._size - self._fill
        out[:pad] = self._buffer[oldest]
        out[pad:] = self._buffer[order]
        return out
