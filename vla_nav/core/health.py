"""The OK / WARN / ERROR rules of the nodes' /diagnostics reports, as plain functions.

Each rule reads what happened in ONE report period (counts since the previous report) and the
current state, and returns (level, message). The nodes only gather the counts and publish;
these functions are the documented behaviour and are unit-tested without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2          # diagnostic_msgs/DiagnosticStatus levels


@dataclass(frozen=True)
class PolicyPeriod:
    """vla_node over one report period."""

    active: bool              # a goal is set
    frames: int               # camera frames received
    chunks: int               # chunks published
    policy_errors: int        # steps that failed in the policy (NaN output, engine exception)
    decode_errors: int        # frames that could not be decoded
    stale: int                # frames refused as stale (too old, not newer, from the future)
    p99_ms: float             # inference p99 (ms)
    chunk_dt: float           # s between chunk steps
    last_error: str = ''


def policy_health(period: PolicyPeriod) -> tuple[int, str]:
    """vla_node: ERROR when a goal is active, frames arrived and none produced a chunk because of
    policy errors; WARN when a goal is active but no frame arrived, when frames could not be
    decoded, when every frame was refused as stale, or when inference p99 exceeds 2 x the chunk
    dt; OK ('running' / 'idle: no goal') otherwise."""
    starved = period.active and period.frames and not period.chunks
    if starved and period.policy_errors:
        return ERROR, f'policy failing: {period.last_error}'
    if period.active and not period.frames:
        return WARN, 'no camera frames'
    if period.decode_errors:
        return WARN, f'{period.decode_errors} frames could not be decoded'
    if starved and period.stale:
        return WARN, (f'{period.stale} frames refused as stale (too old, not newer, or stamped in '
                      'the future)')
    if period.p99_ms > 2000.0 * period.chunk_dt:
        return WARN, f'inference p99 {period.p99_ms:.0f} ms exceeds 2 x chunk dt'
    return OK, 'running' if period.active else 'idle: no goal'


@dataclass(frozen=True)
class ExecutorPeriod:
    """chunk_executor over one report period."""

    state: str                # idle | tracking | braking | stopped | estop
    accepted: int             # chunks accepted
    refused: int              # chunks refused for a reason other than a preempt or the e-stop
    watchdog_trips: int       # times the watchdog braked
    estop: bool               # e-stop latched now
    last_error: str = ''


def executor_health(period: ExecutorPeriod) -> tuple[int, str]:
    """chunk_executor: ERROR when chunks arrived but every one was refused (clock mismatch, too
    old, malformed: the robot cannot move); WARN while the e-stop is latched or after a watchdog
    trip; OK (the state) otherwise. Preempts and the old goal's chunks they refuse never count."""
    if period.refused and not period.accepted and not period.estop:
        return ERROR, f'every chunk refused: {period.last_error}'
    if period.estop:
        return WARN, 'e-stop latched'
    if period.watchdog_trips:
        return WARN, 'watchdog: no fresh chunk, braked to zero'
    return OK, period.state
