"""The robot-side goal sequencer: one operator goal -> steps, each step's done rule, the status.

Why a rule-based splitter + a per-step policy (issue 11, "multi-step"): the policy is trained on
one clause at a time ("turn left", "go to the red cone"); `vla_nav.core.language` splits a
sentence into at most three such steps (or refuses it, with the reason: never a guess), and this
module feeds the policy the CURRENT step and advances when the robot itself judges the step done.
Nothing here looks at a simulator: the done signal comes from the policy's chunks and odometry.

States (`GoalState`):
  active     the goal runs; `step_index` is the running step (0-based)
  done       the last step's done rule fired. Done is a report: the policy keeps following the
             last step (a trained policy holds still at its goal) until the next goal or stop, so a
             single-step goal drives exactly as it did before this module existed
  preempted  a newer goal replaced it before it was done
  stopped    a stop phrase (or a stop after this goal)
  refused    the sentence cannot be acted on (`reason` says why); the robot stays stopped
  failed     a step ran longer than `step_timeout` s, or the policy produced no valid chunk for
             `invalid_timeout` s while it kept failing (NaN output, engine errors); the robot stops

The done rule (`RuleDoneEstimator`, the default `DoneEstimator`), per step kind:
  turn     the odometry heading change since the step started reaches the asked angle within
           `turn_tolerance_deg`; estimate = signed progress / angle, clipped to [0, 1]
  forward  the odometry distance since the step started reaches the asked distance minus
           `forward_tolerance_m`; estimate = distance / asked distance
  goto and sentences the policy alone judges (search, or any goal with `refuse_unparsed` off):
           the policy's chunks say stop (mean |v| < `still_linear` m/s and mean |w| <
           `still_angular` rad/s) for `still_chunks` consecutive chunks, after the robot has moved
           (odometry: `min_motion_m` travelled or `min_turn_deg` turned; without odometry: some
           chunk asked for motion); estimate = still chunks / still_chunks once it has moved
A later learned done/progress head (issue 12) replaces the rule by passing another
`DoneEstimator` (anything with `reset()` and `update(step, chunk, motion) -> float in [0, 1]`,
done at >= 1.0) to `GoalSequencer`; PolicyLoop.from_config takes it from the engine
(`engine.done_estimator`), so vla_node, eval-sim and record-sim pick it up with the model.

`goal_status_record(status)` is the status as plain data (JSON-ready), what vla_node publishes
on the goal-status topic and the demo prints. numpy/stdlib + vla_nav.core only.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from vla_nav.core import language


class GoalState:
    ACTIVE = 'active'
    DONE = 'done'
    PREEMPTED = 'preempted'
    STOPPED = 'stopped'
    REFUSED = 'refused'
    FAILED = 'failed'
    ALL = (ACTIVE, DONE, PREEMPTED, STOPPED, REFUSED, FAILED)
    FINAL = (DONE, PREEMPTED, STOPPED, REFUSED, FAILED)


@dataclass(frozen=True)
class GoalRules:
    """The done/fail rule's thresholds (config/vla_nav.yaml vla_node `goal_*` / `done_*`)."""

    refuse_unparsed: bool = True      # False: a sentence the parser cannot read goes to the policy whole
    turn_tolerance_deg: float = 10.0
    forward_tolerance_m: float = 0.1
    still_linear: float = 0.05        # m/s, mean |v| of a chunk that "says stop"
    still_angular: float = 0.1        # rad/s, mean |w|
    still_chunks: int = 3             # consecutive still chunks that end a policy-judged step
    min_motion_m: float = 0.2         # "has moved" for a policy-judged step
    min_turn_deg: float = 20.0
    step_timeout: float = 120.0       # s a step may run before the goal fails
    invalid_timeout: float = 5.0      # s of failing policy output (no valid chunk) before it fails

    def __post_init__(self) -> None:
        for name in ('turn_tolerance_deg', 'forward_tolerance_m', 'still_linear', 'still_angular',
                     'step_timeout', 'invalid_timeout'):
            if not getattr(self, name) > 0:
                raise ValueError(f'goal rule {name} must be > 0, got {getattr(self, name)}')
        if self.still_chunks < 1 or self.min_motion_m < 0 or self.min_turn_deg < 0:
            raise ValueError('goal rules: still_chunks must be >= 1, min_motion_m and '
                             'min_turn_deg >= 0')


@dataclass(frozen=True)
class Motion:
    """Odometry since the current step started (None: no odometry seen in this step)."""

    distance_m: float = 0.0
    yaw_change_rad: float = 0.0
    seen: bool = False


@dataclass(frozen=True)
class GoalStatus:
    goal_id: int
    text: str                  # the operator's sentence
    state: str                 # a GoalState value
    step_index: int = 0        # 0-based running (or last) step
    step_count: int = 0
    step_text: str = ''        # what the policy is given now
    step_kind: str = ''        # goto | turn | forward | stop | policy ('' when refused)
    done_estimate: float = 0.0
    reason: str = ''           # why refused / failed / preempted
    stamp: float = 0.0         # s, when this state or step began


def goal_status_record(status: GoalStatus) -> dict:
    """The status as plain data (JSON-ready): what the goal-status topic carries."""
    return {'goal_id': status.goal_id, 'text': status.text, 'state': status.state,
            'step': status.step_index + 1 if status.step_count else 0,
            'steps': status.step_count, 'step_text': status.step_text,
            'step_kind': status.step_kind, 'done_estimate': round(float(status.done_estimate), 3),
            'reason': status.reason, 'stamp': round(float(status.stamp), 6)}


class DoneEstimator(Protocol):
    def reset(self) -> None: ...

    def update(self, step: language.Step, chunk: np.ndarray | None, motion: Motion) -> float: ...


class RuleDoneEstimator:
    """The documented rule on chunks and odometry (module docstring)."""

    def __init__(self, rules: GoalRules) -> None:
        self.rules = rules
        self.reset()

    def reset(self) -> None:
        self._still = 0
        self._chunk_moved = False

    def update(self, step: language.Step, chunk: np.ndarray | None, motion: Motion) -> float:
        rules = self.rules
        if step.kind == 'turn':
            angle = math.radians(step.angle_deg)
            turned = motion.yaw_change_rad * math.copysign(1.0, angle)
            if turned >= abs(angle) - math.radians(rules.turn_tolerance_deg):
                return 1.0
            return float(np.clip(turned / abs(angle), 0.0, 0.99))
        if step.kind == 'forward':
            if motion.distance_m >= step.distance_m - rules.forward_tolerance_m:
                return 1.0
            return float(np.clip(motion.distance_m / step.distance_m, 0.0, 0.99))
        if chunk is not None:   # goto / policy-judged: the chunks say stop after moving
            speeds = np.abs(np.asarray(chunk, dtype=np.float64)[:, :2]).mean(axis=0)
            still = speeds[0] < rules.still_linear and speeds[1] < rules.still_angular
            self._chunk_moved = self._chunk_moved or not still
            self._still = self._still + 1 if still else 0
        moved = (motion.distance_m >= rules.min_motion_m
                 or abs(motion.yaw_change_rad) >= math.radians(rules.min_turn_deg)
                 ) if motion.seen else self._chunk_moved
        return min(1.0, self._still / rules.still_chunks) if moved else 0.0


@dataclass
class _Step:
    step: language.Step
    started: float
    motion_base: tuple[float, float] = (0.0, 0.0)   # an external goal-relative state at the start
    last_valid: float = 0.0
    failing_since: float | None = None
    motion: Motion = field(default_factory=Motion)


class GoalSequencer:
    """Goal -> steps -> done, as the module docstring says. Not thread-safe: PolicyLoop calls it
    under its lock. Every method that changes the status returns True when it changed."""

    def __init__(self, stop_phrases: Iterable[str], rules: GoalRules | None = None,
                 estimator: DoneEstimator | None = None) -> None:
        """stop_phrases: the one stop list (config `stop_words`), as core.language reads it."""
        self.rules = rules or GoalRules()
        self.stop_phrases = tuple(stop_phrases)
        self.estimator = estimator or RuleDoneEstimator(self.rules)
        self.status = GoalStatus(0, '', GoalState.STOPPED)
        self._steps: tuple[language.Step, ...] = ()
        self._current: _Step | None = None
        self.previous: GoalStatus | None = None   # the goal the last start/stop ended, if any
        self._last_external = (0.0, 0.0)

    # --- operator side -----------------------------------------------------------------
    def start(self, goal_id: int, text: str, now: float) -> GoalStatus:
        """A new goal sentence: parse it; an active older goal becomes `preempted` (returned as
        the previous status by `previous`). Returns the new status (active or refused)."""
        parse = language.parse_instruction(text, self.stop_phrases)
        if not parse.refused and [step.kind for step in parse.steps] == ['stop']:
            return self.stop(goal_id, text, now)
        self.previous = self._end_previous(GoalState.PREEMPTED, f'replaced by goal {goal_id}', now)
        if parse.refused and self.rules.refuse_unparsed:
            self._steps, self._current = (), None
            self.status = GoalStatus(goal_id, text, GoalState.REFUSED, reason=parse.refused,
                                     stamp=now)
            return self.status
        if parse.refused:   # the policy alone reads it and judges it done
            steps = (language.Step('policy', text),)
        elif len(parse.steps) == 1:   # the policy gets the sentence as typed, as before this module
            steps = (replace(parse.steps[0], text=text),)
        else:
            steps = parse.steps
        self._steps = steps
        self.status = GoalStatus(goal_id, text, GoalState.ACTIVE, step_count=len(steps), stamp=now)
        self._begin_step(0, now)
        return self.status

    def stop(self, goal_id: int, text: str, now: float) -> GoalStatus:
        """A stop phrase: the running goal (if any) ends `stopped`; the stop itself is a goal id
        in state stopped."""
        self.previous = self._end_previous(GoalState.STOPPED, f'stopped by {text!r}', now)
        self._steps, self._current = (), None
        self.status = GoalStatus(goal_id, text, GoalState.STOPPED, stamp=now)
        return self.status

    def _end_previous(self, state: str, reason: str, now: float) -> GoalStatus | None:
        if self.status.state != GoalState.ACTIVE or self.status.goal_id == 0:
            return None
        return _replace(self.status, state=state, reason=reason, stamp=now)

    # --- robot side --------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.status.state == GoalState.ACTIVE

    @property
    def policy_text(self) -> str:
        """What the policy is conditioned on now ('' when no step runs)."""
        return self._current.step.text if self._current is not None else ''

    @property
    def current_step(self) -> tuple[language.Step, Motion] | None:
        """The running step and the odometry since it started (None: no step runs)."""
        current = self._current
        return None if current is None else (current.step, current.motion)

    def observe_motion(self, distance_m: float, yaw_change_rad: float, relative: bool) -> None:
        """Odometry: relative=True when already measured since the step started (PolicyLoop's own
        per-step GoalProgress); False for an external goal-relative state (the simulator's), whose
        value at the step's start is subtracted."""
        current = self._current
        if current is None or not (math.isfinite(distance_m) and math.isfinite(yaw_change_rad)):
            return
        if not relative:
            self._last_external = (distance_m, yaw_change_rad)
            distance_m = abs(distance_m - current.motion_base[0])
            yaw_change_rad -= current.motion_base[1]
        current.motion = Motion(distance_m, yaw_change_rad, True)

    def on_chunk(self, actions: np.ndarray | None, now: float) -> bool:
        """A valid chunk of the current step (None: only re-evaluate odometry); may advance."""
        current = self._current
        if current is None or self.status.state not in (GoalState.ACTIVE, GoalState.DONE):
            return False
        if actions is not None:
            current.last_valid, current.failing_since = now, None
        if self.status.state == GoalState.DONE:
            return False
        estimate = float(np.clip(self.estimator.update(current.step, actions, current.motion), 0, 1))
        if estimate < 1.0:
            if abs(estimate - self.status.done_estimate) >= 1e-9:
                self.status = _replace(self.status, done_estimate=estimate)
            return False
        if self.status.step_index + 1 < len(self._steps):
            self._begin_step(self.status.step_index + 1, now)
        else:
            self.status = _replace(self.status, state=GoalState.DONE, done_estimate=1.0, stamp=now)
        return True

    def on_invalid(self, now: float, reason: str) -> bool:
        """The policy failed to give a chunk (engine error, NaN output)."""
        current = self._current
        if current is None or not self.active:
            return False
        if current.failing_since is None:
            current.failing_since = now
        if now - current.failing_since >= self.rules.invalid_timeout:
            return self._fail(now, f'no valid policy output for {now - current.failing_since:.1f} s '
                              f'({reason})')
        return False

    def check_time(self, now: float) -> bool:
        """The step time budget; True when the goal just failed."""
        current = self._current
        if current is None or not self.active:
            return False
        if now - current.started > self.rules.step_timeout:
            return self._fail(now, f'step {self.status.step_index + 1} ({current.step.text!r}) '
                              f'not done within {self.rules.step_timeout:.0f} s')
        return False

    def _fail(self, now: float, reason: str) -> bool:
        self.status = _replace(self.status, state=GoalState.FAILED, reason=reason, stamp=now)
        self._current = None
        return True

    def _begin_step(self, index: int, now: float) -> None:
        step = self._steps[index]
        base = self._last_external if index > 0 else (0.0, 0.0)
        self._current = _Step(step, now, motion_base=base, last_valid=now)
        self.estimator.reset()
        self.status = _replace(self.status, step_index=index, step_text=step.text,
                               step_kind=step.kind, done_estimate=0.0, stamp=now)


def _replace(status: GoalStatus, **changes) -> GoalStatus:
    return replace(status, **changes)
