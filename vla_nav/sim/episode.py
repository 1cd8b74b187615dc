"""When an episode ends and how well it went: the judge and the metrics, free of MuJoCo.

Outcomes: 'success', 'collision' (the base touched a wall or an object), 'timeout'
(`Scenario.time_limit` passed), 'failure' (the task can no longer succeed: a stop episode that
moved, a turn overshot by more than 60 degrees, a forward drive 0.75 m too far).
`EpisodeJudge` judges one Scenario (v1, and each step of a v2 task); `TaskJudge` sequences the
steps of a v2 multi-step task (per-step success times: the done labels).
"""
from __future__ import annotations

import math

from vla_nav.sim.scenarios import Scenario

SUCCESS, COLLISION, TIMEOUT, FAILURE = 'success', 'collision', 'timeout', 'failure'
OUTCOMES = (SUCCESS, COLLISION, TIMEOUT, FAILURE)
STOPPED_LINEAR = 0.05      # m/s: below this (and STOPPED_ANGULAR) the robot counts as stopped
STOPPED_ANGULAR = 0.15     # rad/s
TURN_OVERSHOOT = math.radians(60.0)
FORWARD_OVERSHOOT = 0.75   # m
STOP_MOTION = (0.1, math.radians(10.0))  # m, rad a stop episode may drift


class EpisodeJudge:
    """`update(...)` after every control step; the first non-None outcome ends the episode."""

    def __init__(self, scenario: Scenario | None):
        self.scenario = scenario
        self.outcome: str | None = None

    def update(self, time: float, pose, twist, state, collided: bool) -> str | None:
        if self.outcome is None:
            self.outcome = self._judge(time, pose, twist, state, collided)
        return self.outcome

    def _judge(self, time, pose, twist, state, collided) -> str | None:
        if collided:
            return COLLISION
        scenario = self.scenario
        if scenario is None:  # free driving (an instruction the parser did not understand)
            return None
        stopped = abs(twist[0]) <= STOPPED_LINEAR and abs(twist[1]) <= STOPPED_ANGULAR
        distance, yaw_change = float(state[2]), float(state[3])
        params = scenario.parameters
        if scenario.kind == 'goto':
            tx, ty = scenario.target.position
            if stopped and math.hypot(pose[0] - tx, pose[1] - ty) <= params['success_radius']:
                return SUCCESS
        elif scenario.kind == 'turn':
            if stopped and abs(yaw_change - params['angle']) <= params['tolerance']:
                return SUCCESS
            if abs(yaw_change) > abs(params['angle']) + TURN_OVERSHOOT:
                return FAILURE
        elif scenario.kind == 'forward':
            if stopped and abs(distance - params['distance']) <= params['tolerance']:
                return SUCCESS
            if distance > params['distance'] + FORWARD_OVERSHOOT:
                return FAILURE
        elif scenario.kind == 'stop':
            if distance > STOP_MOTION[0] or abs(yaw_change) > STOP_MOTION[1]:
                return FAILURE
            if time >= params['duration'] - 1e-9:
                return SUCCESS
        if time >= scenario.time_limit - 1e-9:
            return TIMEOUT
        return None


class EpisodeMetrics:
    """Path length and timing of one episode (from the start of the current instruction)."""

    def __init__(self, start_pose):
        self.start_pose = tuple(start_pose)
        self.end_pose = tuple(start_pose)
        self.path_length = 0.0
        self.turned = 0.0   # rad, the unwrapped yaw change (+ left)
        self.duration = 0.0
        self.collided_with: int | str | None = None

    def add(self, pose, time: float) -> None:
        self.path_length += math.hypot(pose[0] - self.end_pose[0], pose[1] - self.end_pose[1])
        self.turned += math.remainder(pose[2] - self.end_pose[2], math.tau)
        self.end_pose = tuple(pose)
        self.duration = time

    def summary(self, scenario: Scenario | None, outcome: str | None) -> dict:
        straight = math.hypot(self.end_pose[0] - self.start_pose[0],
                              self.end_pose[1] - self.start_pose[1])
        efficiency = min(1.0, straight / self.path_length) if self.path_length >= 0.05 else None
        return {
            'instruction': None if scenario is None else scenario.instruction,
            'kind': None if scenario is None else scenario.kind,
            'outcome': outcome,
            'success': outcome == SUCCESS,
            'time': round(self.duration, 3),
            'time_to_goal': round(self.duration, 3) if outcome == SUCCESS else None,
            'path_length': round(self.path_length, 4),
            'straight_line_distance': round(straight, 4),
            'path_efficiency': None if efficiency is None else round(efficiency, 4),
            'turned_rad': round(self.turned, 3),
            'start_pose': [round(v, 4) for v in self.start_pose],
            'end_pose': [round(v, 4) for v in self.end_pose],
            'collided_with': self.collided_with,
        }


class TaskJudge:
    """Judges a v2 Task (1-3 steps) one step at a time with v1's per-kind rules.

    `update(time, pose, twist, state, collided)` takes the episode clock and the GoalProgress
    state of the CURRENT step (the caller restarts GoalProgress when `step` advances). A step's
    success advances to the next (`step`, `step_times`); the last step's success is the episode's;
    a collision, failure or a step's own time limit ends the episode. A 180-degree turn may go
    either way (`either_way`).
    """

    def __init__(self, task):
        self.task = task
        self.step = 0
        self.step_start = 0.0
        self.step_times: list[float] = []    # episode time at which each finished step succeeded
        self.outcome: str | None = None
        self._judge = EpisodeJudge(task.steps[0] if task is not None else None)

    @property
    def scenario(self) -> Scenario | None:
        """The current step (a v1 Scenario), None for free driving."""
        return None if self.task is None else self.task.steps[self.step]

    def update(self, time: float, pose, twist, state, collided: bool) -> str | None:
        if self.outcome is not None:
            return self.outcome
        step = self.scenario
        if step is not None and step.kind == 'turn' and step.parameters.get('either_way'):
            state = list(state)
            state[3] = math.copysign(abs(float(state[3])), step.parameters['angle'])
        result = self._judge.update(time - self.step_start, pose, twist, state, collided)
        if result == SUCCESS and self.task is not None and self.step + 1 < len(self.task.steps):
            self.step_times.append(time)
            self.step += 1
            self.step_start = time
            self._judge = EpisodeJudge(self.task.steps[self.step])
            return None
        if result == SUCCESS:
            self.step_times.append(time)
        self.outcome = result
        return result
