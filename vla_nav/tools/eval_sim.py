"""`python -m vla_nav eval-sim --model CKPT --episodes N --seed S`: closed-loop evaluation.

Held-out scenes (`--split test` by default) are driven through the real runtime and the real
executor logic (vla_nav.core.closed_loop.ClosedLoop), on the simulator's clock:

- the simulator advances one control tick (1 / chunk_executor.control_rate) per step;
- every camera period (1 / sim_node.camera_rate) a frame is rendered and goes through
  `PolicyLoop.step` (the vla_node path: `load_engine`, newest frame encoded into the 8-frame ring,
  the robot state when the model takes one), the chunk stamped with the frame time;
- the chunk reaches the `ChunkExecutor` after the inference latency (`--latency S`, default: the
  measured wall time of that step), i.e. on the first control tick at or after its arrival, so
  the executor drops the actions whose time has passed exactly as on the robot;
- every tick the executor's command (limits, blending, watchdog) drives the simulated base.
The goal is sent as vla_node does: `ClosedLoop.instruct` (PolicyLoop.set_instruction + an
executor preempt at the goal's start stamp; stamps are sim time + CLOCK_OFFSET so never 0).

Reported: success / collision / timeout / failure rates, mean time to goal (successes), mean path
efficiency (straight-line distance / path length, successful goto + forward episodes), a per-kind
breakdown and every episode's record; `--plot` draws top-down trajectories
(`vla_nav.sim.plot.plot_topdown`). `--workers K` runs episodes in K processes.

`--suite` runs the v2 world's named tiers and the two controls instead (vla_nav/tools/suite:
`eval-sim --suite [--tiers ...] [--episodes-per-tier N] [--validation] [--out DIR]`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from vla_nav.cli import add_model_arguments
from vla_nav.tools import suite

CLOCK_OFFSET = 1.0          # s added to sim time for stamps (a preempt at stamp 0 is ambiguous)
OUTCOMES = ('success', 'collision', 'timeout', 'failure')
PLOT_EPISODES = 12          # trajectories drawn in the PNG


@dataclass(frozen=True)
class ClosedLoopSettings:
    control_rate: float            # Hz: executor ticks = simulator steps
    camera_rate: float             # Hz: frames through the policy
    latency: float | None          # s from frame to chunk arrival; None: measured per step
    image_size: tuple[int, int]    # simulator camera (height, width)
    time_margin: float = 5.0       # s past the scenario's time limit before giving up

    def __post_init__(self) -> None:
        if self.control_rate <= 0 or self.camera_rate <= 0:
            raise ValueError('control_rate and camera_rate must be > 0')
        if self.camera_rate > self.control_rate:
            raise ValueError(f'camera_rate {self.camera_rate} Hz exceeds control_rate '
                             f'{self.control_rate} Hz: frames are taken on control ticks')
        if self.latency is not None and self.latency < 0:
            raise ValueError(f'latency must be >= 0, got {self.latency}')

    @property
    def ticks_per_frame(self) -> int:
        return max(1, round(self.control_rate / self.camera_rate))

    @classmethod
    def from_config(cls, latency: float | None = None) -> ClosedLoopSettings:
        from vla_nav.config import load_config
        config = load_config()
        executor, sim = config.executor, config.sim_node
        return cls(control_rate=executor.control_rate, camera_rate=sim.camera_rate,
                   latency=latency, image_size=(sim.image_height, sim.image_width))


def run_episode(engine, sim, episode: int, settings: ClosedLoopSettings, executor_config,
                keep_trajectory: bool = False) -> dict:
    """One closed-loop episode (vla_nav.core.closed_loop: chunks reach the executor after the
    measured or the fixed latency); returns the simulator's metrics plus timing figures."""
    observation = sim.reset(episode)
    record = drive(engine, sim, observation, sim.scenario.instruction, settings, executor_config,
                   keep_trajectory)
    record['episode'] = episode
    return record


def drive(engine, sim, observation, text: str, settings: ClosedLoopSettings, executor_config,
          keep_trajectory: bool = False) -> dict:
    """Drive the simulator's current task (already reset) with the policy told `text` (the task's
    own instruction, or another sentence for a control) until the judge ends it or its time limit
    + margin passes; the simulator's metrics plus timing figures.

    The policy gets the simulator's pose and twist as odometry, every control tick, and measures
    its own progress from them as vla_node does from /odom: its steps start where ITS done rule
    says, not where the judge's does (the simulator's goal-relative state is the judge's)."""
    from vla_nav.config import load_config
    from vla_nav.core.closed_loop import ClosedLoop

    closed = ClosedLoop.build(engine, load_config().vla_node, executor_config,
                              latency=settings.latency)
    period = 1.0 / settings.control_rate
    closed.instruct(text, CLOCK_OFFSET + observation.time)
    poses = [observation.pose]
    limit = int(math.ceil((sim.scenario.time_limit + settings.time_margin) / period))
    outcome = None
    for tick in range(limit):
        now = CLOCK_OFFSET + observation.time
        closed.update_odometry(*observation.pose, *observation.twist)
        if tick % settings.ticks_per_frame == 0:
            closed.frame(observation.rgb, now, now)
        linear, angular = closed.tick(now)
        render = (tick + 1) % settings.ticks_per_frame == 0
        result = sim.step(linear, angular, render=render)
        observation = result.observation
        poses.append(observation.pose)
        if result.done:
            outcome = result.outcome
            break
    record = sim.metrics()
    if outcome is None:
        record['outcome'] = record['outcome'] or 'timeout'
    record.update({
        'inference_ms_p50': closed.inference_ms_p50(),
        'chunks': closed.loop.chunk_count,
        'watchdog_trips': closed.executor.watchdog_trips,
    })
    if keep_trajectory:
        record['trajectory'] = [[round(float(v), 4) for v in pose] for pose in poses]
    return record


# --- worker processes --------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(model_dir: str, backend: str, device: str, split: str, seed: int,
                 settings: ClosedLoopSettings) -> None:
    from vla_nav.config import load_config
    from vla_nav.runtime import load_engine
    from vla_nav.sim import NavSim
    from vla_nav.sim.robot import RobotLimits

    config = load_config()
    _WORKER['engine'] = load_engine(model_dir, backend=backend, device=device)
    _WORKER['sim'] = NavSim(split=split, seed=seed, image_size=settings.image_size,
                            control_dt=1.0 / settings.control_rate,
                            limits=RobotLimits.from_executor(config.executor),
                            stop_words=config.stop_words)
    _WORKER['settings'] = settings
    _WORKER['executor'] = config.executor


def _run_in_worker(episode: int, keep_trajectory: bool) -> tuple[dict, object]:
    sim = _WORKER['sim']
    record = run_episode(_WORKER['engine'], sim, episode, _WORKER['settings'], _WORKER['executor'],
                         keep_trajectory)
    return record, (sim.layout if keep_trajectory else None)


def evaluate_closed_loop(model_dir, episodes: int, seed: int = 0, split: str = 'test',
                         backend: str = 'onnx', device: str = 'cpu', workers: int = 1,
                         settings: ClosedLoopSettings | None = None, first_episode: int = 0,
                         plot_episodes: int = PLOT_EPISODES, progress: bool = True
                         ) -> tuple[dict, list]:
    """(summary, [(layout, record with trajectory)] of the first `plot_episodes` episodes)."""
    from tqdm import tqdm

    settings = settings or ClosedLoopSettings.from_config()
    indices = list(range(first_episode, first_episode + episodes))
    records: dict[int, dict] = {}
    layouts: dict[int, object] = {}
    init_args = (str(model_dir), backend, device, split, seed, settings)
    bar = tqdm(total=len(indices), desc='eval-sim', unit='episode', disable=not progress,
               dynamic_ncols=True)

    def collect(record: dict, layout) -> None:
        records[record['episode']] = record
        if layout is not None:
            layouts[record['episode']] = layout
        bar.update(1)
        done = Counter(r['outcome'] for r in records.values())
        bar.set_postfix(success=f'{done["success"] / len(records):.2f}', collision=done['collision'])

    if workers <= 1:
        _init_worker(*init_args)
        try:
            for index in indices:
                collect(*_run_in_worker(index, index - first_episode < plot_episodes))
        finally:
            _WORKER['sim'].close()
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context('spawn'),
                                 initializer=_init_worker, initargs=init_args) as pool:
            futures = [pool.submit(_run_in_worker, index, index - first_episode < plot_episodes)
                       for index in indices]
            for future in futures:
                collect(*future.result())
    bar.close()
    ordered = [records[index] for index in indices]
    summary = summarise(ordered)
    summary.update({'split': split, 'seed': seed, 'first_episode': first_episode,
                    'backend': backend, 'model': str(model_dir),
                    'control_rate': settings.control_rate, 'camera_rate': settings.camera_rate,
                    'latency': 'measured' if settings.latency is None else settings.latency})
    plotted = [(layouts[r['episode']], r) for r in ordered if r['episode'] in layouts]
    return summary, plotted


def _rates(records: list[dict]) -> dict:
    count = max(len(records), 1)
    outcomes = Counter(r['outcome'] for r in records)
    rates = {f'{name}_rate': round(outcomes[name] / count, 4) for name in OUTCOMES}
    times = [r['time_to_goal'] for r in records if r.get('time_to_goal') is not None]
    efficiencies = [r['path_efficiency'] for r in records
                    if r['outcome'] == 'success' and r['kind'] in ('goto', 'forward')
                    and r.get('path_efficiency') is not None]
    rates.update({
        'episodes': len(records),
        'mean_time_to_goal': round(float(np.mean(times)), 3) if times else None,
        'path_efficiency': round(float(np.mean(efficiencies)), 4) if efficiencies else None,
    })
    return rates


def summarise(records: list[dict]) -> dict:
    """Rates, mean time to goal, path efficiency, per-kind breakdown, episode records."""
    summary = _rates(records)
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_kind[record['kind'] or 'none'].append(record)
    summary['per_kind'] = {kind: _rates(items) for kind, items in sorted(by_kind.items())}
    latencies = [r['inference_ms_p50'] for r in records if r.get('inference_ms_p50') is not None]
    summary['inference_ms_p50'] = round(float(np.median(latencies)), 3) if latencies else None
    summary['records'] = [
        {key: record.get(key) for key in ('episode', 'instruction', 'kind', 'outcome', 'time',
                                          'time_to_goal', 'path_length', 'path_efficiency',
                                          'start_pose', 'end_pose', 'collided_with', 'chunks')}
        for record in records]
    return summary


def plot_trajectories(plotted: list, path: str, dpi: int = 90, title: str | None = None) -> None:
    """One PNG: a grid of top-down views, one room per episode (vla_nav.sim.plot.plot_topdown);
    the ringed target is the record's `target_index` when it has one (a retargeted goal)."""
    import tempfile

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    from vla_nav.sim.plot import plot_topdown

    if not plotted:
        return
    columns = min(4, len(plotted))
    rows = int(math.ceil(len(plotted) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), dpi=dpi,
                                squeeze=False)
    with tempfile.TemporaryDirectory() as folder:
        for axis, (layout, record) in zip(axes.flat, plotted, strict=False):
            single = os.path.join(folder, f'{record["episode"]}.png')
            plot_topdown(layout, [{'poses': record.get('trajectory', []), 'outcome': record['outcome'],
                                   'target': _plot_target(layout, record),
                                   'label': record['instruction']}], single)
            axis.imshow(mpimg.imread(single))
            axis.set_title(_episode_title(record), fontsize=7)
        for axis in axes.flat:
            axis.axis('off')
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _episode_title(record: dict) -> str:
    """'#episode outcome [step k of n]' over the instruction (and what the policy was told when
    that differs), wrapped to the panel."""
    import textwrap

    told = record.get('policy_text')
    text = record['instruction'] if told in (None, record['instruction']) else \
        f'{record["instruction"]} (model told "{told}")'
    steps = record.get('steps') or 0
    progress = f' ({record.get("steps_done", 0)} of {steps} steps done)' if steps > 1 else ''
    return '\n'.join([f'#{record["episode"]} {record["outcome"]}{progress}',
                      *textwrap.wrap(text, 48)[:3]])


def _plot_target(layout, record: dict):
    index = record.get('target_index')
    if index is not None:
        return layout.objects[index]
    if record['kind'] != 'goto':
        return None
    return next((obj for obj in layout.objects if getattr(obj, 'role', '') == 'target'), None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--seed', type=int, default=None,
                        help='scene seed (default 0; --suite --validation: 100)')
    parser.add_argument('--first-episode', type=int, default=0, help='episode indices start here')
    parser.add_argument('--split', choices=('train', 'test'), default=None,
                        help='scene split (default test)')
    parser.add_argument('--latency', type=float, default=None,
                        help='s from frame to chunk arrival (default: measured per inference)')
    parser.add_argument('--workers', type=int, default=1, help='episode processes')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--plot', default='', help='PNG of top-down trajectories')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    suite.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from vla_nav.config import resolve_model_dir
    from vla_nav.runtime import ModelLoadError

    args.split_given = args.split is not None
    args.split = args.split or 'test'
    if args.suite:
        return suite.run(args)
    if args.validation or args.camera_mount:
        print('eval-sim: --validation and --camera-mount need --suite (the v2 world)', file=sys.stderr)
        return 2
    args.seed = 0 if args.seed is None else args.seed
    model_dir = resolve_model_dir(args.model)
    try:
        settings = ClosedLoopSettings.from_config(latency=args.latency)
        summary, plotted = evaluate_closed_loop(
            model_dir, args.episodes, seed=args.seed, split=args.split, backend=args.backend,
            device=args.device, workers=args.workers, settings=settings,
            first_episode=args.first_episode, plot_episodes=PLOT_EPISODES if args.plot else 0,
            progress=not args.quiet and not args.json)
    except (ModelLoadError, ValueError) as error:
        print(f'eval-sim: {error}', file=sys.stderr)
        return 2
    if args.plot:
        plot_trajectories(plotted, args.plot)
        summary['plot'] = args.plot
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f'{summary["episodes"]} {args.split} episodes (seed {args.seed}): success '
          f'{summary["success_rate"]:.2f}, collision {summary["collision_rate"]:.2f}, timeout '
          f'{summary["timeout_rate"]:.2f}, failure {summary["failure_rate"]:.2f}; mean time to goal '
          f'{summary["mean_time_to_goal"]} s, path efficiency {summary["path_efficiency"]}')
    for kind, values in summary['per_kind'].items():
        print(f'  {kind:>8}: {values["episodes"]:3d} episodes, success {values["success_rate"]:.2f}, '
              f'collision {values["collision_rate"]:.2f}, timeout {values["timeout_rate"]:.2f}')
    return 0
