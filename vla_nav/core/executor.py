"""Chunk executor math: a step-indexed plan of (linear.x, angular.z) turned into a safe command
for every control tick. No ROS here: the chunk_executor node only converts messages and the clock.

Timing. A chunk is stamped with the observation time of its newest frame; action i is meant for
the slot [stamp + i*dt, stamp + (i+1)*dt). On arrival the actions whose slot has ended are dropped
(inference latency eats into the chunk), the rest replace the plan. The first `blend_steps` kept
actions are blended with the old plan's action for the same time, `blend_old_weight` old, except
where old and new disagree in sign on either axis (a left turn averaged with a right turn is the
"straight ahead" that hits the obstacle): then the new action is taken as is and the acceleration
limiter smooths the change.

Preemption. vla_node is the one authority on goals: on a new goal or a stop it publishes an empty
chunk stamped with the newest frame it has seen, which arrives here as `preempt(stamp)`: the plan is
discarded, the base brakes, and any later-arriving chunk stamped <= stamp (in flight for the old
goal) is refused.

Safety, in the order applied every tick: NaN/inf -> 0 (at arrival and again per tick); velocity
limits; deadband; acceleration limits, with the larger `max_*_decel` whenever the magnitude shrinks
or the sign flips (a sign flip first brakes to zero); velocity limits again (limits changed at run
time apply on the next tick). Watchdog: when the plan runs dry the command decays toward zero with
`decay_time_constant`; when no fresh chunk arrived for `watchdog_timeout` the plan is dropped and
the base brakes to exactly 0.0 and stays there until a new chunk is accepted. E-stop: zero at once,
plan dropped, chunks refused, latched until released (a new goal does not release it).

States: idle (no plan yet), tracking, braking (decay, watchdog, preempt), stopped (exactly zero
after braking), estop. All times are float seconds of the caller's clock.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

IDLE, TRACKING, BRAKING, STOPPED, ESTOP = 'idle', 'tracking', 'braking', 'stopped', 'estop'
_SLOT_EPSILON = 1e-9     # float slack when mapping a time onto an action slot
_MAX_TICK_GAP = 1.0      # s; a longer gap (clock jump, paused sim) counts as one nominal period


class ChunkVerdict(enum.Enum):
    """What `ChunkExecutor.add_chunk` did with a chunk; truthy only when it was ACCEPTED.

    OLD_GOAL is the expected refusal of a chunk still in flight when a new goal preempted it
    (harmless, not an error); the others mean a bad chunk, a clock problem, or the e-stop."""

    ACCEPTED = 'accepted'
    ESTOP = 'e-stop is active'
    BAD_TIMING = 'bad chunk timing'
    BAD_SHAPE = 'bad chunk shape'
    OLD_GOAL = 'stamped at or before the last preempt (old goal)'
    NOT_NEWER = 'not newer than the plan'
    TOO_OLD = 'older than max_chunk_age'
    IN_FUTURE = 'stamped in the future'
    ALL_PAST = 'every action already in the past'

    def __bool__(self) -> bool:
        return self is ChunkVerdict.ACCEPTED


@dataclass(frozen=True)
class ExecutorConfig:
    """The chunk_executor limits (config/vla_nav.yaml, section chunk_executor), validated."""

    control_rate: float            # Hz
    watchdog_timeout: float        # s without a fresh chunk -> brake to zero
    decay_time_constant: float     # s; decay toward zero when the plan runs dry
    max_chunk_age: float           # s; older (or that far in the future) chunks are refused
    blend_steps: int               # overlap steps blended with the old plan
    blend_old_weight: float        # weight of the old plan in the overlap, 0..1
    max_linear_vel: float          # m/s
    min_linear_vel: float          # m/s, <= 0 (reverse)
    max_angular_vel: float         # rad/s, symmetric
    max_linear_accel: float        # m/s^2
    max_angular_accel: float       # rad/s^2
    max_linear_decel: float        # m/s^2, used when slowing down
    max_angular_decel: float       # rad/s^2
    deadband_linear: float         # m/s; smaller targets become 0
    deadband_angular: float        # rad/s

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f'{field.name} must be a finite number, got {value!r}')
            if field.name == 'blend_steps':
                if float(value) != int(value):
                    raise ValueError(f'blend_steps must be an integer, got {value!r}')
                object.__setattr__(self, field.name, int(value))
            else:
                object.__setattr__(self, field.name, float(value))
        positive = ('control_rate', 'watchdog_timeout', 'decay_time_constant', 'max_chunk_age',
                    'max_linear_accel', 'max_angular_accel', 'max_linear_decel', 'max_angular_decel')
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('max_linear_vel', 'max_angular_vel', 'deadband_linear', 'deadband_angular',
                     'blend_steps'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.min_linear_vel > 0:
            raise ValueError(f'min_linear_vel must be <= 0 (it bounds reverse), got {self.min_linear_vel}')
        if not 0.0 <= self.blend_old_weight <= 1.0:
            raise ValueError(f'blend_old_weight must be within [0, 1], got {self.blend_old_weight}')

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ExecutorConfig:
        """Build from a flat parameter dict (the chunk_executor section); other keys ignored."""
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in params]
        if missing:
            raise ValueError(f'executor parameters missing: {", ".join(missing)}')
        return cls(**{name: params[name] for name in names})

    def replace(self, **changes: Any) -> ExecutorConfig:
        return dataclasses.replace(self, **changes)

    @property
    def period(self) -> float:
        return 1.0 / self.control_rate


def _rate_limit(current: float, target: float, dt: float, accel: float, decel: float) -> float:
    """Move `current` toward `target` by at most accel*dt (decel*dt when slowing); reaches target
    exactly when within reach, so braking ends at exactly 0.0."""
    if current * target < 0.0:   # sign flip: brake to zero first
        return current - math.copysign(min(abs(current), decel * dt), current)
    limit = (decel if abs(target) < abs(current) else accel) * dt
    delta = target - current
    if abs(delta) <= limit:
        return target
    return current + math.copysign(limit, delta)


class ChunkExecutor:
    """Plan + limits + watchdog + e-stop; call `tick(now)` at the control rate."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.set_config(config)
        self._estop = False
        self.reset()

    # --- configuration -------------------------------------------------------------------
    @property
    def config(self) -> ExecutorConfig:
        return self._config

    def set_config(self, config: ExecutorConfig) -> None:
        """New limits (run-time parameter change); they apply from the next tick."""
        if not isinstance(config, ExecutorConfig):
            raise TypeError(f'expected ExecutorConfig, got {type(config).__name__}')
        self._config = config

    def reset(self) -> None:
        """Back to idle with a zero command; the e-stop latch is kept (safety outlives resets)."""
        self._plan: np.ndarray | None = None      # (N, 2) actions still ahead
        self._plan_start = 0.0                    # time of self._plan[0]'s slot start
        self._plan_dt = 0.1
        self._plan_stamp = -math.inf              # stamp of the newest accepted chunk
        self._preempt_stamp = -math.inf
        self._last_arrival: float | None = None
        self._last_tick: float | None = None
        self._command = (0.0, 0.0)
        self._state = ESTOP if self._estop else IDLE
        self.watchdog_trips = 0
        self.accepted_chunks = 0
        self.rejected_chunks = 0
        self.last_reject_reason = ''
        self.last_refusal: ChunkVerdict | None = None   # the verdict of the last refused chunk

    # --- inputs --------------------------------------------------------------------------
    def preempt(self, stamp: float, now: float | None = None) -> None:
        """New goal or stop: discard the plan, brake, refuse chunks stamped <= stamp.

        With `now`, a stamp beyond now + max_chunk_age (a bogus or badly skewed clock) still brakes
        but refuses chunks only up to that horizon: one bad preempt must not block every later chunk.
        """
        if math.isfinite(stamp):
            if now is not None and math.isfinite(now):
                stamp = min(stamp, now + self._config.max_chunk_age)
            self._preempt_stamp = max(self._preempt_stamp, float(stamp))
        self._plan = None
        if self._state != ESTOP:
            self._state = BRAKING if self._command != (0.0, 0.0) else STOPPED

    def set_estop(self, active: bool) -> None:
        """True: zero at once and stay zero (plan dropped, chunks refused) until called with False."""
        self._estop = bool(active)
        if self._estop:
            self._plan = None
            self._command = (0.0, 0.0)
            self._state = ESTOP
        elif self._state == ESTOP:
            self._state = STOPPED

    def add_chunk(self, stamp: float, actions: np.ndarray, dt: float, now: float) -> ChunkVerdict:
        """Schedule action i at stamp + i*dt; returns the verdict (truthy only when ACCEPTED)."""
        verdict, reason = self._refusal(stamp, actions, dt, now)
        if verdict is not None:
            return self._refuse(verdict, reason)
        actions = np.nan_to_num(np.asarray(actions, dtype=np.float64), nan=0.0, posinf=0.0,
                                neginf=0.0)
        passed = int(math.floor((now - stamp) / dt + _SLOT_EPSILON)) if now > stamp else 0
        if passed >= len(actions):
            return self._refuse(ChunkVerdict.ALL_PAST,
                                'every action of the chunk is already in the past')
        ahead = actions[passed:].copy()
        start = stamp + passed * dt
        self._blend_into(ahead, start, dt, now)
        self._plan, self._plan_start, self._plan_dt = ahead, start, float(dt)
        self._plan_stamp = float(stamp)
        self._last_arrival = float(now)
        self._state = TRACKING
        self.accepted_chunks += 1
        return ChunkVerdict.ACCEPTED

    def _refuse(self, verdict: ChunkVerdict, reason: str) -> ChunkVerdict:
        self.rejected_chunks += 1
        self.last_refusal, self.last_reject_reason = verdict, reason
        return verdict

    def _refusal(self, stamp: float, actions, dt: float, now: float
                 ) -> tuple[ChunkVerdict | None, str]:
        """(verdict, message) of a refusal, (None, '') for a chunk that may be scheduled."""
        if self._estop:
            return ChunkVerdict.ESTOP, 'e-stop is active'
        if not (math.isfinite(stamp) and math.isfinite(dt) and dt > 0):
            return ChunkVerdict.BAD_TIMING, f'bad chunk timing (stamp {stamp}, dt {dt})'
        shape = np.shape(actions)
        if len(shape) != 2 or shape[0] < 1 or shape[1] != 2:
            return ChunkVerdict.BAD_SHAPE, f'chunk actions must have shape (N>=1, 2), got {shape}'
        if stamp <= self._preempt_stamp:
            return ChunkVerdict.OLD_GOAL, (f'chunk stamped {stamp:.3f} is not newer than the last '
                                           f'preempt {self._preempt_stamp:.3f} (old goal)')
        if stamp <= self._plan_stamp:
            return ChunkVerdict.NOT_NEWER, (f'chunk stamped {stamp:.3f} is not newer than the plan '
                                            f'({self._plan_stamp:.3f})')
        age = now - stamp
        if age > self._config.max_chunk_age:
            return ChunkVerdict.TOO_OLD, (f'chunk is {age:.3f} s old (max_chunk_age '
                                          f'{self._config.max_chunk_age} s)')
        if age < -self._config.max_chunk_age:
            return ChunkVerdict.IN_FUTURE, (f'chunk is stamped {-age:.3f} s in the future (clock '
                                            'mismatch?)')
        return None, ''

    def _blend_into(self, ahead: np.ndarray, start: float, dt: float, now: float) -> None:
        old = self._plan
        weight = self._config.blend_old_weight
        if old is None or weight <= 0.0:
            return
        for step in range(min(self._config.blend_steps, len(ahead))):
            when = max(start + step * dt, now)
            index = int(math.floor((when - self._plan_start) / self._plan_dt + _SLOT_EPSILON))
            if not 0 <= index < len(old):
                continue
            if np.any(old[index] * ahead[step] < 0.0):   # signs disagree: take the new action
                continue
            ahead[step] = weight * old[index] + (1.0 - weight) * ahead[step]

    # --- output --------------------------------------------------------------------------
    def tick(self, now: float) -> tuple[float, float]:
        """The (linear.x, angular.z) to publish now."""
        cfg = self._config
        elapsed = None if self._last_tick is None else now - self._last_tick
        dt = elapsed if elapsed is not None and 0.0 < elapsed <= _MAX_TICK_GAP else cfg.period
        self._last_tick = now
        if self._estop:
            self._command, self._state = (0.0, 0.0), ESTOP
            return self._command
        target, tracking = self._target(now, dt)
        command = []
        for axis, value in enumerate(target):
            low, high = ((cfg.min_linear_vel, cfg.max_linear_vel) if axis == 0
                         else (-cfg.max_angular_vel, cfg.max_angular_vel))
            deadband = cfg.deadband_linear if axis == 0 else cfg.deadband_angular
            accel = cfg.max_linear_accel if axis == 0 else cfg.max_angular_accel
            decel = cfg.max_linear_decel if axis == 0 else cfg.max_angular_decel
            value = min(max(value if math.isfinite(value) else 0.0, low), high)
            if abs(value) < deadband:
                value = 0.0
            limited = min(max(_rate_limit(self._command[axis], value, dt, accel, decel), low), high)
            if value == 0.0 and abs(limited) < deadband:
                limited = 0.0
            command.append(float(limited))
        self._command = (command[0], command[1])
        if tracking:
            self._state = TRACKING
        elif self._state != IDLE or self._command != (0.0, 0.0):
            self._state = STOPPED if self._command == (0.0, 0.0) else BRAKING
        return self._command

    def _target(self, now: float, dt: float) -> tuple[tuple[float, float], bool]:
        """(target command, whether it comes from the plan)."""
        if self._plan is None:
            return (0.0, 0.0), False
        if now - self._last_arrival > self._config.watchdog_timeout:
            self.watchdog_trips += 1
            self._plan = None
            return (0.0, 0.0), False
        index = max(0, int(math.floor((now - self._plan_start) / self._plan_dt + _SLOT_EPSILON)))
        if index < len(self._plan):
            return (float(self._plan[index, 0]), float(self._plan[index, 1])), True
        decay = math.exp(-dt / self._config.decay_time_constant)   # plan ran dry
        return (self._command[0] * decay, self._command[1] * decay), False

    # --- read-outs -----------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def command(self) -> tuple[float, float]:
        """The last command returned by tick."""
        return self._command

    @property
    def estop(self) -> bool:
        return self._estop

    @property
    def preempt_stamp(self) -> float:
        return self._preempt_stamp

    @property
    def plan_stamp(self) -> float | None:
        """Stamp of the newest accepted chunk (None before the first)."""
        return None if math.isinf(self._plan_stamp) else self._plan_stamp

    def chunk_age(self, now: float) -> float | None:
        """Seconds since the stamp of the newest accepted chunk."""
        return None if math.isinf(self._plan_stamp) else now - self._plan_stamp

    def plan_remaining(self, now: float) -> int:
        """Actions of the plan whose slot has not ended yet."""
        if self._plan is None:
            return 0
        passed = int(math.floor((now - self._plan_start) / self._plan_dt + _SLOT_EPSILON))
        return int(np.clip(len(self._plan) - max(passed, 0), 0, len(self._plan)))

    def plan_actions(self) -> np.ndarray | None:
        """A copy of the scheduled actions (tests, diagnostics)."""
        return None if self._plan is None else self._plan.copy()
