"""NavSim: the built-in robot world behind record-sim, eval-sim, the demo and sim_node.

One object owns a MuJoCo room (World), the robot base (DiffDriveBase), the current task
(Scenario + EpisodeJudge), the GoalProgress state and the expert. Everything is deterministic given
(split, seed, episode) and the commands sent.

`world` picks the generator: 'v1' (the default: today's world, unchanged, that models/default was
trained on) or 'v2' (tasks.py / rooms.py / world2.py: ten object categories, textured rooms of
three shapes, camera jitter, search / detour / relational / multi-step tasks, held-out splits).
In v2, `reset(kind=...)` names a tier (tasks.TIERS), `scenario` is a tasks.Task (instruction,
kind, target, time_limit, steps) judged one step at a time: GoalProgress restarts at every step,
`Observation.step` and `step_index` say which step is running, `step_text` its clause (what a
sequencer-driven policy is given), `judge.step_times` when each finished (the per-step done
labels), and `refusal` why set_instruction refused a sentence (core.language). `camera_mount`
(v2) replaces every episode's drawn mount: the same rooms and tasks seen from another camera.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from vla_nav.core.node_config import SIM_WORLDS
from vla_nav.core.robot_state import GoalProgress
from vla_nav.sim.episode import EpisodeJudge, EpisodeMetrics, TaskJudge
from vla_nav.sim.expert import Expert, ExpertConfig, PlanningExpert
from vla_nav.sim.layout import Layout, SceneObject
from vla_nav.sim.robot import DiffDriveBase, RobotLimits
from vla_nav.sim.rooms import CameraMount
from vla_nav.sim.scenarios import Scenario, generate_episode, parse_instruction
from vla_nav.sim.world import World

MAX_ATTEMPTS = 20
WORLDS = SIM_WORLDS
IN_VIEW_TIERS = ('goto', 'distractor', 'relational', 'held_out_pair', 'held_out_words', 'far')


@dataclass(frozen=True)
class Observation:
    rgb: np.ndarray                        # uint8 (H, W, 3), the forward camera
    pose: tuple[float, float, float]       # x, y, yaw in the room frame
    twist: tuple[float, float]             # linear.x (m/s), angular.z (rad/s) of the base
    time: float                            # s since the current instruction started
    state: np.ndarray                      # float32 (4,), GoalProgress: v, w, distance, yaw change
    step: int = 0                          # v2: index of the task step running (0 in v1)


@dataclass(frozen=True)
class StepResult:
    observation: Observation
    done: bool
    outcome: str | None                    # None | success | collision | timeout | failure


class NavSim:
    """A seeded stream of rooms and tasks for a differential-drive robot with a forward camera.

    image_size is (height, width). control_dt is the time one `step` advances; the base is
    integrated in sub-steps of at most physics_dt, each checked for contacts. limits: the base's
    (= the executor's) limits, `RobotLimits.from_executor(config.executor)`; stop_words: the one
    stop-phrase list (`config.stop_words`), so the judge reads a stop where vla_node does.
    """

    def __init__(self, split: str = 'train', seed: int = 0, image_size: tuple[int, int] = (128, 128),
                 control_dt: float = 0.1, physics_dt: float = 0.02, *,
                 limits: RobotLimits, stop_words: Iterable[str],
                 expert_config: ExpertConfig | None = None, min_target_pixels: int = 12,
                 world: str = 'v1', camera_mount: CameraMount | None = None):
        if world not in WORLDS:
            raise ValueError(f'world must be one of {WORLDS}, got {world!r}')
        if camera_mount is not None and world != 'v2':
            raise ValueError('a forced camera mount needs the v2 world (v1 has one fixed mount)')
        self.camera_mount = camera_mount   # v2: replaces every episode's drawn mount
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if control_dt <= 0 or physics_dt <= 0:
            raise ValueError('control_dt and physics_dt must be > 0')
        self.split, self.seed = split, int(seed)
        self.control_dt = float(control_dt)
        self.substeps = max(1, math.ceil(self.control_dt / physics_dt - 1e-9))
        self.min_target_pixels = int(min_target_pixels)
        self.limits = limits
        self.stop_words = tuple(stop_words)
        self.base = DiffDriveBase(self.limits)
        self.world_name = world
        self.refusal = ''
        if world == 'v2':
            from vla_nav.sim.world2 import World2
            self.expert = PlanningExpert(expert_config, self.limits)
            self.world = World2(image_size)
        else:
            self.expert = Expert(expert_config, self.limits)
            self.world = World(image_size)
        self.progress = GoalProgress()
        self._next_episode = 0
        self.episode = -1
        self._layout: Layout | None = None
        self._scenario: Scenario | None = None
        self._observation: Observation | None = None
        self._rgb = np.zeros((*self.world_size, 3), np.uint8)

    @property
    def world_size(self) -> tuple[int, int]:
        return self.world.height, self.world.width

    # -- episodes -----------------------------------------------------------------------------
    def reset(self, episode: int | None = None, kind: str | None = None) -> Observation:
        """Build the room and task of `episode` (default: the one after the last) and return the
        first observation. `kind` forces the task kind (goto | turn | forward | stop)."""
        episode = self._next_episode if episode is None else int(episode)
        if self.world_name == 'v2':
            return self._reset_v2(episode, kind)
        for attempt in range(MAX_ATTEMPTS):
            layout, scenario = generate_episode(self.split, self.seed, episode, attempt, kind)
            self.world.apply_layout(layout)
            if self.world.set_robot_pose(*layout.start_pose) is not None:
                continue
            if scenario.kind != 'goto' or self._target_pixels(layout) >= self.min_target_pixels:
                break
        self.episode, self._next_episode = episode, episode + 1
        self._layout = layout
        self.base.reset(layout.start_pose)
        self._start_task(scenario)
        return self._observation

    def _reset_v2(self, episode: int, tier: str | None) -> Observation:
        from vla_nav.sim.tasks import generate_task
        for attempt in range(MAX_ATTEMPTS):
            layout, task = generate_task(self.split, self.seed, episode, attempt, tier)
            if self.camera_mount is not None:   # the same rooms and tasks, seen from this mount
                layout = replace(layout, camera=self.camera_mount)
            tier = task.tier   # a re-drawn attempt keeps the episode's tier
            self.world.apply_layout(layout)
            if self.world.set_robot_pose(*layout.start_pose) is not None:
                continue
            # the render agrees with the tier: in-view targets are seen, search targets are not
            if task.tier in IN_VIEW_TIERS and self._target_pixels(layout) < self.min_target_pixels:
                continue
            if task.tier == 'search' and self._target_pixels(layout) > 0:
                continue
            break
        self.episode, self._next_episode = episode, episode + 1
        self._layout = layout
        self.base.reset(layout.start_pose)
        self._start_task(task)
        return self._observation

    def _target_pixels(self, layout: Layout) -> int:
        index = next(i for i, obj in enumerate(layout.objects) if obj.role == 'target')
        return self.world.pixel_counts().get(index, 0)

    def _start_task(self, scenario: Scenario | None) -> None:
        self._scenario = scenario
        self.judge = TaskJudge(scenario) if self.world_name == 'v2' else EpisodeJudge(scenario)
        self.metrics_tracker = EpisodeMetrics(self.base.pose)
        self.progress.reset()
        self.expert.reset()
        self._time = 0.0
        state = self.progress.update(*self.base.pose, *self.base.twist)
        self._rgb = self.world.render()
        self._observation = Observation(self._rgb, self.base.pose, self.base.twist, 0.0, state)

    def set_instruction(self, text: str) -> Scenario | None:
        """A new goal in the same room, from free text; the episode clock, GoalProgress and the
        judge restart. Returns the parsed Scenario, or None when the text is not understood (then
        nothing ends the episode but a collision)."""
        self._require_reset()
        if self.world_name == 'v2':
            from vla_nav.sim.tasks import task_from_text
            scenario, self.refusal = task_from_text(text, self._layout, self.base.pose, self.stop_words)
        else:
            scenario = parse_instruction(text, self._layout, self.base.pose, stop_words=self.stop_words)
        self._start_task(scenario)
        return scenario

    # -- stepping -----------------------------------------------------------------------------
    def step(self, linear: float, angular: float, render: bool = True) -> StepResult:
        """Command the base for control_dt. render=False keeps the previous image (sim_node
        renders at the camera rate only); call `render()` for a fresh one.

        Stepping after the episode ended is allowed (the robot keeps moving, the outcome stays).
        """
        self._require_reset()
        self.base.command(linear, angular)
        dt = self.control_dt / self.substeps
        collided = None
        for _ in range(self.substeps):
            before = self.base.pose
            pose = self.base.advance(dt)
            hit = self.world.set_robot_pose(*pose)
            if hit is not None:  # a bumper: the base stops where it touched
                collided = hit
                self.base.reset(before)
                self.world.set_robot_pose(*before)
                break
        self._time += self.control_dt
        pose, twist = self.base.pose, self.base.twist
        state = self.progress.update(*pose, *twist)
        if render:
            self._rgb = self.world.render()
        if self.judge.outcome is None:
            self.metrics_tracker.add(pose, self._time)
            if collided is not None:
                self.metrics_tracker.collided_with = collided
        step = getattr(self.judge, 'step', 0)
        outcome = self.judge.update(self._time, pose, twist, state, collided is not None)
        if getattr(self.judge, 'step', 0) != step:  # v2: the next step starts from here
            self.progress.reset()
            state = self.progress.update(*pose, *twist)
            self.expert.reset()
        self._observation = Observation(self._rgb, pose, twist, round(self._time, 9), state,
                                        getattr(self.judge, 'step', 0))
        return StepResult(self._observation, outcome is not None, outcome)

    def would_collide(self, linear: float, angular: float, horizon: float) -> bool:
        """Would this command, held for `horizon` s from the present pose and twist (through the
        base's limits, as `step` moves it), touch an object or a wall? The world is left as found."""
        self._require_reset()
        probe = DiffDriveBase(self.limits)
        probe.reset(self.base.pose)
        probe.linear, probe.angular = self.base.twist
        probe.command(linear, angular)
        dt = self.control_dt / self.substeps
        try:
            for _ in range(max(1, math.ceil(horizon / dt - 1e-9))):
                if self.world.set_robot_pose(*probe.advance(dt)) is not None:
                    return True
            return False
        finally:
            self.world.set_robot_pose(*self.base.pose)

    def render(self, camera: str = 'front') -> np.ndarray:
        """A fresh image at the current pose ('front' updates the observation; 'chase' is a
        third-person view for videos)."""
        self._require_reset()
        rgb = self.world.render(camera)
        if camera == 'front':
            self._rgb = rgb
            obs = self._observation
            self._observation = Observation(rgb, obs.pose, obs.twist, obs.time, obs.state, obs.step)
        return rgb

    def expert_action(self) -> tuple[float, float]:
        """The expert's (linear, angular) for the current state (valid from any state)."""
        self._require_reset()
        obs = self._observation
        scenario = self.judge.scenario if self.world_name == 'v2' else self._scenario
        return self.expert.action(scenario, self._layout, obs.pose, obs.twist, obs.state,
                                  self.control_dt)

    # -- views --------------------------------------------------------------------------------
    @property
    def observation(self) -> Observation:
        self._require_reset()
        return self._observation

    @property
    def scenario(self) -> Scenario | None:
        return self._scenario

    @property
    def step_index(self) -> int:
        """v2: the running step of a multi-step task (0 in v1)."""
        return getattr(self.judge, 'step', 0)

    @property
    def step_text(self) -> str | None:
        """v2: the clause of the running step (the whole instruction in v1)."""
        step = self.judge.scenario if self.world_name == 'v2' else self._scenario
        return None if step is None else step.instruction

    @property
    def layout(self) -> Layout:
        self._require_reset()
        return self._layout

    @property
    def outcome(self) -> str | None:
        return None if self._observation is None else self.judge.outcome

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def visible_objects(self, min_pixels: int = 8) -> list[SceneObject]:
        """Objects the camera sees now (at least min_pixels), most visible first."""
        self._require_reset()
        counts = self.world.pixel_counts()
        visible = sorted(((n, i) for i, n in counts.items() if n >= min_pixels), reverse=True)
        return [self._layout.objects[i] for _, i in visible]

    def metrics(self) -> dict:
        """The current (or finished) task: outcome, time to goal, path length, straight-line
        distance and path efficiency (straight / path length), plus episode identity."""
        self._require_reset()
        summary = self.metrics_tracker.summary(self._scenario, self.judge.outcome)
        collided = summary['collided_with']
        if isinstance(collided, int):
            summary['collided_with'] = self._layout.objects[collided].name
        summary.update(split=self.split, seed=self.seed, episode=self.episode)
        if self.world_name == 'v2':
            task = self._scenario
            summary.update(world='v2', tier=None if task is None else task.tier,
                           steps=0 if task is None else len(task.steps),
                           steps_done=len(self.judge.step_times))
        return summary

    def close(self) -> None:
        self.world.close()

    def __enter__(self) -> NavSim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_reset(self) -> None:
        if self._observation is None:
            raise RuntimeError('call NavSim.reset() first')
