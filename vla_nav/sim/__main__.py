"""`python -m vla_nav.sim bench|preview`: simulator figures and a look at its rooms.

bench    resets/s, frames/s of the renderer alone, steps/s with rendering (and without), and the
         expert's outcomes per task kind (v1) or tier (v2)
preview  first camera frames (a PNG grid) and top-down expert runs of a few episodes
--world v1|v2 picks the world (v1: the default, today's; v2: tasks.py).
Example: `python -m vla_nav.sim bench --world v2 --episodes 300` (prints JSON).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np


def _expert_episode(sim, episode: int, render: bool) -> tuple[str, int, list]:
    observation = sim.reset(episode)
    poses, steps = [observation.pose], 0
    while True:
        result = sim.step(*sim.expert_action(), render=render)
        poses.append(result.observation.pose)
        steps += 1
        if result.done:
            return result.outcome, steps, poses


def _robot() -> dict:
    """The robot's limits and the stop phrases from config/vla_nav.yaml (this CLI is an entry
    point: the simulator package itself never reads the YAML)."""
    from vla_nav.config import load_config
    from vla_nav.sim.robot import RobotLimits
    config = load_config()
    return {'limits': RobotLimits.from_executor(config.executor), 'stop_words': config.stop_words}


def bench(args) -> dict:
    from vla_nav.sim import NavSim

    with NavSim(args.split, args.seed, (args.size, args.size), world=args.world, **_robot()) as sim:
        started = time.perf_counter()
        for episode in range(args.resets):
            sim.reset(episode)
        resets_per_s = args.resets / (time.perf_counter() - started)
        figures = {'world': args.world, 'image_size': args.size,
                   'resets_per_s': round(resets_per_s, 1)}
        started = time.perf_counter()
        for _ in range(args.steps):
            sim.render()
        figures['render_fps'] = round(args.steps / (time.perf_counter() - started), 1)
        for render in (True, False):
            sim.reset(0)
            started, steps = time.perf_counter(), 0
            while steps < args.steps:
                result = sim.step(*sim.expert_action(), render=render)
                steps += 1
                if result.done:
                    sim.reset()
            key = 'steps_per_s_rendering' if render else 'steps_per_s_no_render'
            figures[key] = round(steps / (time.perf_counter() - started), 1)
        outcomes = collections.defaultdict(collections.Counter)
        total_steps = 0
        for episode in range(args.episodes):
            outcome, steps, _ = _expert_episode(sim, episode, render=False)
            total_steps += steps
            scenario = sim.scenario
            outcomes[getattr(scenario, 'tier', scenario.kind)][outcome] += 1
        figures['expert_outcomes'] = {kind: dict(counts) for kind, counts in sorted(outcomes.items())}
        total = sum(sum(c.values()) for c in outcomes.values())
        figures['mean_episode_steps'] = round(total_steps / max(args.episodes, 1), 1)
        figures['expert_success_rate'] = round(
            sum(c['success'] for c in outcomes.values()) / max(total, 1), 4)
    return figures


def preview(args) -> dict:
    from PIL import Image

    from vla_nav.sim import NavSim, plot_topdown

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames, episodes = [], []
    with NavSim(args.split, args.seed, (args.size, args.size), world=args.world, **_robot()) as sim:
        for episode in range(args.episodes):
            first = sim.reset(episode).rgb
            frames.append(first)
            outcome, steps, poses = _expert_episode(sim, episode, render=False)
            plot_topdown(sim.layout, [{'poses': poses, 'outcome': outcome,
                                       'target': sim.scenario.target,
                                       'label': sim.scenario.instruction}],
                         out / f'topdown_{episode:03d}.png')
            episodes.append({'episode': episode, 'instruction': sim.scenario.instruction,
                             'outcome': outcome, 'steps': steps})
    columns = min(len(frames), 8)
    rows = [np.concatenate(frames[i:i + columns] + [np.zeros_like(frames[0])] *
                           (columns - len(frames[i:i + columns])), axis=1)
            for i in range(0, len(frames), columns)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(out / 'first_frames.png')
    (out / 'episodes.json').write_text(json.dumps(episodes, indent=1))
    return {'out': str(out), 'episodes': episodes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m vla_nav.sim', description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=('bench', 'preview'))
    parser.add_argument('--split', default='train', choices=('train', 'test'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=128, help='square image side (px)')
    parser.add_argument('--episodes', type=int, default=40, help='expert episodes (bench, preview)')
    parser.add_argument('--resets', type=int, default=100, help='resets timed (bench)')
    parser.add_argument('--steps', type=int, default=1000, help='steps timed (bench)')
    parser.add_argument('--out', default='sim_preview', help='output folder (preview)')
    parser.add_argument('--world', default='v1', choices=('v1', 'v2'))
    args = parser.parse_args(argv)
    result = bench(args) if args.command == 'bench' else preview(args)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
