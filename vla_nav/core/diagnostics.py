"""What vla_node and chunk_executor report on /diagnostics, gathered without ROS.

A monitor counts the node's own events (frames, chunks, refusals) and, once per report period,
turns them and the core object's state into (level, message, values): the level rule comes from
vla_nav.core.health, the values are the keys README "Diagnostics" lists. The nodes only publish.
"""
from __future__ import annotations

import math
from typing import Any

from vla_nav.core.health import ExecutorPeriod, PolicyPeriod, executor_health, policy_health
from vla_nav.core.stats import LatencyStats, PeriodCounter, RateMeter

Report = tuple[int, str, dict[str, Any]]


class ExecutorMonitor:
    """chunk_executor's counts: chunk messages (preempts included) and refusals other than a
    preempt or the e-stop, with the last reason."""

    def __init__(self) -> None:
        self.counts = PeriodCounter('refused')
        self.chunk_rate = RateMeter()           # chunk messages (preempts included) per second
        self.last_error = ''                    # why the last chunk was refused or malformed

    def chunk_received(self, monotonic_now: float) -> None:
        self.chunk_rate.tick(monotonic_now)

    def refused(self, reason: str) -> None:
        self.counts.add('refused')
        self.last_error = reason

    def report(self, core, now: float, monotonic_now: float) -> Report:
        """One report of the ChunkExecutor `core` at node-clock `now`; starts the next period."""
        period = self.counts.take(accepted=core.accepted_chunks, trips=core.watchdog_trips)
        level, message = executor_health(ExecutorPeriod(
            state=core.state, accepted=period['accepted'], refused=period['refused'],
            watchdog_trips=period['trips'], estop=core.estop, last_error=self.last_error))
        age = core.chunk_age(now)
        return level, message, {
            'state': core.state, 'chunk_rate_hz': self.chunk_rate.rate(monotonic_now),
            'linear_x': core.command[0], 'angular_z': core.command[1],
            'chunk_age_s': math.nan if age is None else age,
            'plan_remaining': core.plan_remaining(now), 'chunks_accepted': core.accepted_chunks,
            'chunks_refused': core.rejected_chunks, 'last_refusal': core.last_reject_reason,
            'watchdog_trips': core.watchdog_trips, 'estop': core.estop, 'last_error': self.last_error}


class PolicyMonitor:
    """vla_node's counts: frames received, chunks published (with their inference latency) and
    frames that could not be decoded. Frames are counted on the executor thread, chunks on the
    inference thread: every counter here is safe across threads."""

    def __init__(self) -> None:
        self.frame_rate, self.chunk_rate, self.latency = RateMeter(), RateMeter(), LatencyStats()
        self.counts = PeriodCounter('frames', 'chunks', 'decode_errors')

    def frame_received(self, monotonic_now: float) -> None:
        self.frame_rate.tick(monotonic_now)
        self.counts.add('frames')

    def decode_failed(self) -> None:
        self.counts.add('decode_errors')

    def chunk_published(self, started: float, monotonic_now: float) -> None:
        """A chunk went out; its inference began at `started` (same monotonic clock)."""
        self.latency.add(monotonic_now - started)
        self.chunk_rate.tick(monotonic_now)
        self.counts.add('chunks')

    def report(self, loop, monotonic_now: float, frames_overwritten: int,
               extra: dict[str, Any]) -> Report:
        """One report of the PolicyLoop `loop`; `extra` (the goal views' values) goes last."""
        period = self.counts.take(policy_errors=loop.error_count, stale=loop.stale_count)
        p50, p99 = self.latency.percentile_ms(50), self.latency.percentile_ms(99)
        level, message = policy_health(PolicyPeriod(
            active=loop.active, frames=period['frames'], chunks=period['chunks'],
            policy_errors=period['policy_errors'], decode_errors=period['decode_errors'],
            stale=period['stale'], p99_ms=p99, chunk_dt=loop.spec.dt, last_error=loop.last_error))
        return level, message, {
            'frame_rate_hz': self.frame_rate.rate(monotonic_now),
            'chunk_rate_hz': self.chunk_rate.rate(monotonic_now),
            'inference_p50_ms': p50, 'inference_p99_ms': p99, 'history_fill': loop.history_fill,
            'goal': loop.instruction or '(none)', 'goal_id': loop.goal_id, 'frames_stale': loop.stale_count,
            'frames_undecodable': self.counts.total('decode_errors'),
            'frames_overwritten': frames_overwritten, 'chunks': loop.chunk_count,
            'policy_errors': loop.error_count, 'last_error': loop.last_error,
            'backend': loop.engine.backend, **extra}
