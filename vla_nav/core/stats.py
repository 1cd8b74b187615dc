"""Small, allocation-free statistics for diagnostics: event rates and latency percentiles."""
from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over the last `horizon` seconds of the caller's clock."""

    def __init__(self, horizon: float = 2.0, capacity: int = 1024) -> None:
        if horizon <= 0:
            raise ValueError(f'horizon must be > 0, got {horizon}')
        self.horizon = float(horizon)
        self._times: deque[float] = deque(maxlen=capacity)
        self.count = 0           # events since construction

    def tick(self, now: float) -> None:
        self._times.append(float(now))
        self.count += 1

    def rate(self, now: float) -> float:
        while self._times and now - self._times[0] > self.horizon:
            self._times.popleft()
        if not self._times:
            return 0.0
        return len(self._times) / self.horizon


class LatencyStats:
    """The last `capacity` durations (seconds); percentiles reported in milliseconds.
    Thread-safe (one thread adds, another reports)."""

    def __init__(self, capacity: int = 256) -> None:
        self._lock = threading.Lock()
        self._values = np.full(int(capacity), np.nan, dtype=np.float64)
        self._next = 0
        self.count = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values[self._next] = seconds
            self._next = (self._next + 1) % len(self._values)
            self.count += 1

    def percentile_ms(self, percent: float) -> float:
        """NaN until the first sample."""
        with self._lock:
            filled = self._values[: min(self.count, len(self._values))].copy()
        if filled.size == 0:
            return math.nan
        return float(np.percentile(filled, percent)) * 1000.0

    def reset(self) -> None:
        self._values.fill(np.nan)
        self._next = 0
        self.count = 0


class PeriodCounter:
    """Event counts per report period (and since start), safe across threads.

    `add(name)` counts an event; `take(**cumulative)` returns this period's counts and starts the
    next period. Counters kept elsewhere as running totals (e.g. PolicyLoop.error_count) are
    passed to `take` by keyword: their increase since the previous `take` comes back under that
    name.
    """

    def __init__(self, *names: str) -> None:
        self._lock = threading.Lock()
        self._period = dict.fromkeys(names, 0)
        self._totals = dict.fromkeys(names, 0)
        self._marks: dict[str, int] = {}

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._period[name] += count
            self._totals[name] += count

    def total(self, name: str) -> int:
        with self._lock:
            return self._totals[name]

    def take(self, **cumulative: int) -> dict[str, int]:
        with self._lock:
            counts = dict(self._period)
            self._period = dict.fromkeys(self._period, 0)
            for name, value in cumulative.items():
                counts[name] = value - self._marks.get(name, 0)
                self._marks[name] = value
        return counts
