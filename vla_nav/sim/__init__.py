"""The built-in robot world: a differential-drive robot with a forward camera in seeded MuJoCo rooms,
tasks given in language, an expert driver and episode judging. No rclpy here (sim_node wraps it).

Public API
----------
NavSim(split='train'|'test', seed=0, image_size=(128, 128), control_dt=0.1, physics_dt=0.02,
       *, limits: RobotLimits, stop_words, expert_config=None, min_target_pixels=12)
    limits = RobotLimits.from_executor(load_config().executor), stop_words = load_config().stop_words
    (vla_nav.config; the simulator never reads the YAML itself)
    reset(episode: int | None = None, kind: str | None = None) -> Observation
        episode index -> deterministic room + task (same (split, seed, episode) -> same episode);
        None = the next index; `kind` forces goto|turn|forward|stop.
    step(linear, angular, render=True) -> StepResult(observation, done, outcome)
        advances control_dt; the base follows the command within RobotLimits (the chunk_executor
        limits of config/vla_nav.yaml); collisions come from MuJoCo contacts.
    expert_action() -> (linear, angular)          smooth expert label for the current state
    would_collide(linear, angular, horizon) -> bool   would the command, held horizon s, touch
        something (record-sim --rescue's look-ahead; the world is left as found)
    set_instruction(text) -> Scenario | None      new goal in the same room (clock restarts)
    render(camera='front'|'chase') -> rgb         fresh frame (step(render=False) skips it)
    observation -> Observation(rgb uint8 (H,W,3), pose (x, y, yaw), twist (v, w), time, state (4,))
    scenario -> Scenario(instruction, kind, target, parameters, time_limit) | None
    layout -> Layout(width, depth, objects, start_pose, appearance, split, seed, episode)
              (.walls segments, .target, .named_objects, .fingerprint(), .to_dict())
    visible_objects(min_pixels=8) -> list[SceneObject]   what the camera sees now
    metrics() -> dict   outcome, time_to_goal, path_length, straight_line_distance, path_efficiency,
                        turned_rad (the unwrapped yaw change, + left)
    outcome, done, episode, close(); usable as a context manager.
Outcomes: None (running) | 'success' | 'collision' | 'timeout' | 'failure' (see episode.py).

generate_episode(split, seed, episode, attempt=0, kind=None) -> (Layout, Scenario)   (numpy only)
parse_instruction(text, layout, start_pose=None, *, stop_words) -> Scenario | None  (any phrasing)
plot_topdown(layout, trajectories: list[dict], path) -> Path          (matplotlib PNG)
    trajectory dict: {'poses': [(x, y, yaw) | (x, y)], 'outcome': str|None, 'target': SceneObject|
    None, 'label': str}
Expert(config, limits).action(scenario, layout, pose, twist, state, dt); ExpertConfig;
RobotLimits.from_executor(config.executor); SceneObject, Layout, Scenario, Observation, StepResult.

Worlds: NavSim(..., world='v1') (the default: today's world, exactly as models/default saw it)
or world='v2' (tasks.py, rooms.py, catalog.py, world2.py): ten categories, L-shaped and two-room
layouts, textures, lights, camera-mount jitter; reset(kind=TIER) forces a tier (tasks.TIERS);
scenario is a tasks.Task (.steps, .tier); step_index / step_text / judge.step_times give the
per-step labels; set_instruction parses with vla_nav.core.language (refusal reason in
`refusal`). generate_task(split, seed, episode, attempt=0, tier=None) -> (RoomLayout, Task) is
numpy only; augment.augment_image(rgb, rng) is the training-time image augmentation (record-sim
--augment: augment.draw_look once per episode, augment.apply_look per frame).

Splits (v1): train and test use disjoint phrasing templates, split-salted RNG streams and rooms whose
decimetre sides sum to an even (train) or odd (test) number, so no test layout or phrasing is ever
generated for training, whatever the seed (details in scenarios.py).

Figures and a look at the rooms: `python -m vla_nav.sim bench|preview` (see __main__.py).

Rendering needs MUJOCO_GL=egl (or osmesa); importing vla_nav.sim sets it when unset, so import
vla_nav.sim before anything imports mujoco.
"""
from __future__ import annotations

import ctypes.util
import os

if 'MUJOCO_GL' not in os.environ:  # must happen before mujoco is imported anywhere
    if ctypes.util.find_library('EGL') is None and ctypes.util.find_library('OSMesa') is not None:
        os.environ['MUJOCO_GL'] = 'osmesa'
        os.environ.setdefault('PYOPENGL_PLATFORM', 'osmesa')
    else:
        os.environ['MUJOCO_GL'] = 'egl'

from vla_nav.sim.layout import Layout, SceneObject  # noqa: E402
from vla_nav.sim.scenarios import Scenario, generate_episode, parse_instruction  # noqa: E402

_LAZY = {
    'NavSim': 'vla_nav.sim.navsim', 'Observation': 'vla_nav.sim.navsim',
    'StepResult': 'vla_nav.sim.navsim', 'Expert': 'vla_nav.sim.expert',
    'ExpertConfig': 'vla_nav.sim.expert', 'RobotLimits': 'vla_nav.sim.robot',
    'plot_topdown': 'vla_nav.sim.plot',
}

__all__ = ['Layout', 'SceneObject', 'Scenario', 'generate_episode', 'parse_instruction', *_LAZY]


def __getattr__(name: str):
    """NavSim and friends import mujoco (and plot_topdown matplotlib) only when first used."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
