"""PolicyLoop: frames + instruction in, validated 10-step chunks out, with no ROS in sight.

vla_node, replay, eval-sim and the demo all drive the policy through this one class, so the rules
below hold everywhere:

- `set_instruction(text)`: a goal clears the feature history and the goal progress (odometry since
  the goal started) and bumps `goal_id`; a stop word ends chunk production until the next goal;
  junk is rejected and changes nothing. The goal's start stamp becomes `preempt_stamp` (the newest
  frame stamp seen): frames stamped at or before it belong to the old goal and are refused, and
  vla_node publishes it as the preempt so the executor drops the old goal's in-flight chunks.
- `step(rgb, stamp, now)`: refuses frames older than `max_image_age` (or that far in the future)
  and frames not newer than the previous one; resizes to the engine's input size; encodes ONLY the
  newest frame into the 8-frame ring (the oldest repeats until full) and runs the head on the
  window. A chunk with NaN/inf is refused (error, no chunk); values beyond the physical
  `action_limits` are clamped.

Goals run through `vla_nav.core.goal.GoalSequencer` (the robot-side sequencer): a sentence is
split into steps by `vla_nav.core.language`; a sentence it cannot read is REFUSED (the result's
kind is `REFUSED`, the robot stops, nothing is guessed) unless `goal_rules.refuse_unparsed` is off;
the engine is conditioned on the CURRENT step only (a single-step goal: the sentence as typed, as
before); when the step's done rule fires on a chunk, the next step starts like a new goal for the
policy (history, odometry progress and the pending instruction reset; `goal_start_stamp` moves on)
while the operator-visible `goal_id` stays. `status` is the goal's GoalStatus; `status_listener`
(a callable, any thread may set it) receives every status change, outside the lock: callers
publish it and preempt the executor on a step change (`preempt_on` says when).

Threads: one thread calls `step` (it alone touches the engine: a new instruction reaches the engine
at the start of the next step); any other thread may call `set_instruction` and `update_odometry`
at any time without waiting for inference. A step that started under an older goal returns None.
Imports numpy and vla_nav.core only; its limits come in as arguments (`from_config` takes the
vla_node config, `vla_nav.config.load_config().vla_node`).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vla_nav.core.engine import PolicyEngine
from vla_nav.core.goal import DoneEstimator, GoalRules, GoalSequencer, GoalState, GoalStatus
from vla_nav.core.instruction import GOAL, REFUSED, STOP, InstructionResult, classify_instruction
from vla_nav.core.node_config import VlaNodeConfig
from vla_nav.core.robot_state import STATE_DIM, GoalProgress, goal_features


@dataclass(frozen=True)
class Chunk:
    stamp: float          # observation time of the newest frame used (s)
    goal_id: int          # which goal produced it
    actions: np.ndarray   # float32 (chunk, 2): linear.x m/s, angular.z rad/s
    dt: float             # s between actions
    clamped: bool = False  # some action was outside the physical limits and was clamped


def preempt_on(status: GoalStatus, previous: GoalStatus | None) -> bool:
    """Whether a status change the loop made by itself (not an instruction: that preempts
    anyway) must preempt the executor: a step change or a failure. `done` does not (the policy
    keeps holding the last step)."""
    if previous is None or previous.goal_id != status.goal_id:
        return False
    return status.state == GoalState.FAILED or (
        status.state == GoalState.ACTIVE and status.step_index != previous.step_index)


class PolicyLoop:
    def __init__(self, engine: PolicyEngine, stop_words: Iterable[str], max_instruction_chars: int,
                 max_image_age: float, action_limits: tuple[float, float],
                 goal_rules: GoalRules | None = None, estimator: DoneEstimator | None = None) -> None:
        """action_limits: (|linear.x| m/s, |angular.z| rad/s) physical bounds of any chunk;
        goal_rules / estimator: the sequencer's done rule (None: GoalRules() / the rule)."""
        if max_image_age <= 0 or max_instruction_chars <= 0 or min(action_limits) <= 0:
            raise ValueError('max_image_age, max_instruction_chars and action_limits must be > 0')
        self.engine = engine
        self.spec = engine.spec
        self.stop_words = tuple(stop_words)
        self.max_instruction_chars = int(max_instruction_chars)
        self.max_image_age = float(max_image_age)
        self._limits = np.array(action_limits, dtype=np.float32)
        self._features = self.spec.ring(self.spec.feature_dim)
        self._states = self.spec.ring(self.spec.state_dim) if self.spec.state_dim else None
        self._progress = GoalProgress()
        self._lock = threading.Lock()
        self._goal_id = 0
        self._epoch = 0            # bumps on every goal AND step change: in-flight work is dropped
        self._sequencer = GoalSequencer(self.stop_words, goal_rules, estimator)
        self.status_listener = None   # callable(GoalStatus): every status change
        self._active = False
        self._instruction = ''
        self._pending_instruction: str | None = None
        self._goal_start_stamp = -math.inf
        self._newest_stamp = -math.inf
        self._last_frame_stamp = -math.inf
        self._odometry_state: np.ndarray | None = None
        self.last_error = ''
        self.error_count = 0       # frames that produced no chunk because of an engine/output error
        self.stale_count = 0       # frames refused as too old / not newer / of the old goal
        self.chunk_count = 0
        self.clamp_count = 0

    @classmethod
    def from_config(cls, engine: PolicyEngine, config: VlaNodeConfig) -> PolicyLoop:
        """The loop vla_node runs, with its stop words, limits and done rule; an engine with a
        learned done/progress head exposes it as `engine.done_estimator` (a DoneEstimator)."""
        return cls(engine, config.stop_words, config.max_instruction_chars, config.max_image_age,
                   config.action_limits, goal_rules=config.goal_rules,
                   estimator=getattr(engine, 'done_estimator', None))

    # --- goal ----------------------------------------------------------------------------
    def set_instruction(self, text: str, now: float | None = None) -> InstructionResult:
        """A goal, a stop, junk (rejected: nothing changes) or a sentence the sequencer refuses
        (kind REFUSED: a new goal id in state refused; the robot stops as for a stop). now: the
        status stamp (default: the newest frame stamp)."""
        result = classify_instruction(text, self.stop_words, self.max_instruction_chars)
        if result.kind not in (GOAL, STOP):
            return result
        with self._lock:
            self._goal_id += 1
            stamp = max(self._newest_stamp, 0.0) if now is None else now
            if result.kind == GOAL:
                status = self._sequencer.start(self._goal_id, result.text, stamp)
            else:
                status = self._sequencer.stop(self._goal_id, result.text, stamp)
            self._begin(self._sequencer.policy_text if status.state == GoalState.ACTIVE else '')
            self._instruction = result.text if self._active else ''
            changes = [item for item in (self._sequencer.previous, status) if item is not None]
        self._emit(changes)
        if status.state == GoalState.REFUSED:
            return InstructionResult(REFUSED, result.text, status.reason)
        return InstructionResult(STOP, result.text) if status.state == GoalState.STOPPED else result

    def _begin(self, policy_text: str) -> None:
        """(under the lock) A goal or a step starts: the policy forgets, frames until now are old."""
        self._epoch += 1
        self._goal_start_stamp = self._newest_stamp
        self._features.reset()
        if self._states is not None:
            self._states.reset()
        self._progress.reset()
        self._odometry_state = None
        self._active = bool(policy_text)
        self._pending_instruction = policy_text or None

    def _emit(self, changes: list[GoalStatus]) -> None:
        listener = self.status_listener
        if listener is not None:
            for status in changes:
                listener(status)

    def reset(self) -> None:
        """Forget goal, history and every stamp seen: a new episode whose clock may restart
        (replay, eval); counters are kept."""
        with self._lock:
            self._goal_id += 1
            self._epoch += 1
            self._sequencer.stop(self._goal_id, '', 0.0)
            self._active = False
            self._instruction = ''
            self._pending_instruction = None
            self._features.reset()
            if self._states is not None:
                self._states.reset()
            self._progress.reset()
            self._odometry_state = None
            self._goal_start_stamp = self._newest_stamp = self._last_frame_stamp = -math.inf

    def update_odometry(self, x: float, y: float, yaw: float, linear: float, angular: float) -> None:
        """Feed odometry (any thread); it becomes the state of the following frames."""
        with self._lock:
            self._odometry_state = self._progress.update(x, y, yaw, linear, angular)
            self._sequencer.observe_motion(float(self._odometry_state[2]),
                                           float(self._odometry_state[3]), relative=True)

    # --- frames --------------------------------------------------------------------------
    def step(self, rgb: np.ndarray, stamp: float, now: float,
             state: np.ndarray | None = None, is_view: bool = False) -> Chunk | None:
        """One camera frame -> a chunk, or None (no goal, stale frame, or an error: see last_error).
        is_view: `rgb` is already the model's input image (`spec.view` of the camera frame, as
        read_episodes(image_size=spec.view) yields it), so it is not cut again."""
        with self._lock:
            if not self._frame_is_fresh(stamp, now):
                return None
            self._newest_stamp = max(self._newest_stamp, stamp)
            failed = self._active and self._sequencer.check_time(now)
            self._active = self._active and not failed
        if failed:
            self._emit([self._sequencer.status])
        with self._lock:
            if not self._active:
                return None
            goal_id = self._epoch
            instruction, self._pending_instruction = self._pending_instruction, None
            state = self._state_for_step(state)
        try:
            if instruction is not None:
                self.engine.reset()
                self.engine.set_instruction(instruction)
            frame = np.asarray(rgb, dtype=np.uint8)
            frame = frame if is_view else self.spec.view(frame)
            feature = np.asarray(self.engine.encode_frame(frame), dtype=np.float32)
            if feature.shape != (self.spec.feature_dim,) or not np.all(np.isfinite(feature)):
                return self._fail(goal_id, f'encode_frame returned {feature.shape} with '
                                  f'{int(np.sum(~np.isfinite(feature)))} non-finite values; '
                                  f'expected ({self.spec.feature_dim},) finite')
            state_vector = self._state_vector(state)
            with self._lock:
                if goal_id != self._epoch:
                    return None
                self._features.push(feature)
                features = self._features.window()
                states = None
                if self._states is not None:
                    self._states.push(state_vector)
                    states = self._states.window()
            actions = np.asarray(self.engine.act(features, states), dtype=np.float32)
        except Exception as error:  # a bad frame or a failing engine must not kill the caller
            if instruction is not None:
                with self._lock:   # the engine never got the goal: try again on the next frame
                    if goal_id == self._epoch and self._pending_instruction is None:
                        self._pending_instruction = instruction
            return self._fail(goal_id, f'{type(error).__name__}: {error}', now)
        return self._finish(goal_id, stamp, actions, now)

    def _frame_is_fresh(self, stamp: float, now: float) -> bool:
        age = now - stamp
        if not math.isfinite(stamp) or abs(age) > self.max_image_age:
            self.stale_count += 1
            if math.isfinite(stamp) and age < 0:
                self.last_error = (f'frame stamped {-age:.3f} s in the future: camera and node '
                                   'clocks disagree (use_sim_time?)')
            return False
        if stamp <= self._last_frame_stamp or stamp <= self._goal_start_stamp:
            self.stale_count += 1
            return False
        self._last_frame_stamp = stamp
        return True

    def _state_for_step(self, state: np.ndarray | None) -> np.ndarray | None:
        """(under the lock) The caller's state (an external, goal-relative one also feeds the
        done rule's odometry), else the odometry's."""
        if state is None:
            return self._odometry_state
        flat = np.asarray(state, dtype=np.float64).reshape(-1)
        if flat.size >= 4:   # (linear, angular, distance, yaw change), as GoalProgress builds it
            self._sequencer.observe_motion(float(flat[2]), float(flat[3]), relative=False)
        return state

    def _state_vector(self, state: np.ndarray | None) -> np.ndarray | None:
        """The model's state: the robot state, then (state_dim 8) the step's goal features."""
        if self._states is None:
            return None
        odometry_dim = min(self.spec.state_dim, STATE_DIM)
        if state is None:
            robot = np.zeros(odometry_dim, dtype=np.float32)
        else:
            robot = np.asarray(state, dtype=np.float32).reshape(-1)
            if robot.size < odometry_dim:
                raise ValueError(f'state has {robot.size} values, the model needs {odometry_dim}')
            robot = robot[:odometry_dim]
        if self.spec.state_dim > STATE_DIM:
            with self._lock:
                current = self._sequencer.current_step
            step, motion = current if current is not None else (None, None)
            goal = goal_features(step, motion.distance_m if motion else 0.0,
                                 motion.yaw_change_rad if motion else 0.0)
            robot = np.concatenate([robot, goal])
        return np.nan_to_num(robot, nan=0.0, posinf=0.0, neginf=0.0)

    def _finish(self, goal_id: int, stamp: float, actions: np.ndarray, now: float) -> Chunk | None:
        expected = (self.spec.chunk, self.spec.action_dim)
        if actions.shape != expected:
            return self._fail(goal_id, f'act returned shape {actions.shape}, expected {expected}', now)
        if not np.all(np.isfinite(actions)):
            return self._fail(goal_id, f'act returned {int(np.sum(~np.isfinite(actions)))} '
                              'non-finite values: chunk refused', now)
        clipped = np.clip(actions[:, :2], -self._limits, self._limits)
        clamped = bool(np.any(clipped != actions[:, :2]))
        actions = actions.copy()
        actions[:, :2] = clipped
        with self._lock:
            if goal_id != self._epoch:
                return None
            self.chunk_count += 1
            self.clamp_count += int(clamped)
            chunk = Chunk(stamp=float(stamp), goal_id=self._goal_id, actions=actions,
                          dt=float(self.spec.dt), clamped=clamped)
            before = self._sequencer.status
            changed = self._sequencer.on_chunk(actions, now)
            if changed and self._sequencer.status.step_index != before.step_index:
                self._begin(self._sequencer.policy_text)
        if changed:
            self._emit([self._sequencer.status])
        return chunk

    def _fail(self, goal_id: int, message: str, now: float) -> None:
        failed = False
        with self._lock:
            if goal_id == self._epoch:
                self.error_count += 1
                self.last_error = message
                failed = self._sequencer.on_invalid(now, message)
                if failed:
                    self._active = False
        if failed:
            self._emit([self._sequencer.status])
        return None

    # --- read-outs -----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """A goal is set (chunks are produced)."""
        return self._active

    @property
    def goal_id(self) -> int:
        return self._goal_id

    @property
    def status(self) -> GoalStatus:
        """The current goal's status (vla_nav.core.goal)."""
        return self._sequencer.status

    @property
    def step_instruction(self) -> str:
        """What the engine is conditioned on now ('' when no goal runs)."""
        return self._sequencer.policy_text if self._active else ''

    @property
    def instruction(self) -> str:
        """The current goal ('' when stopped)."""
        return self._instruction

    @property
    def history_fill(self) -> int:
        return self._features.fill

    @property
    def goal_start_stamp(self) -> float:
        """preempt_stamp as it was when the last goal/stop was accepted (0.0 before any frame):
        what a preempt for that goal must carry, even if newer frames have arrived since."""
        return max(self._goal_start_stamp, 0.0)

    @property
    def preempt_stamp(self) -> float:
        """The newest frame stamp seen so far (0.0 before any): the stamp a preempt must carry."""
        return max(self._newest_stamp, 0.0)
