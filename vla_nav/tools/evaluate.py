"""`python -m vla_nav eval --model CKPT --data DIR`: offline action MAE on recorded episodes.

Runs the SAME inference path as deployment: `load_engine(model, backend)` (ONNX Runtime by
default, graphs exported on first use) driven by `PolicyLoop` exactly as vla_node drives it: the
episode's instruction is set once, then every tick's frame goes in at its stamp (with the robot
state when the model takes one), only the newest frame is encoded into the 8-frame ring (the
oldest repeats until full), and the chunk of that step is compared with the recorded commands of
the next `chunk` ticks (steps past the episode end are masked). Episodes whose instruction is a
stop word produce no chunk in deployment: the executor then commands zero, so they are scored
with a zero prediction.

Reports MAE in physical units (m/s, rad/s) overall, per dimension, per chunk step and per
episode kind (from record-sim's bag metadata); `--json` prints one JSON object, `--plot` writes a
PNG of MAE by chunk step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np

from vla_nav.cli import add_model_arguments
from vla_nav.training.metrics import ChunkMAE, plot_mae_by_step


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument('--data', nargs='+', required=True, help='bag folders (or folders of bags)')
    parser.add_argument('--episodes', type=int, default=0,
                        help='evaluate only the first N episodes in path order (0: all)')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--plot', default='', help='PNG of MAE by chunk step')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def chunk_targets(actions: np.ndarray, tick: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(target (chunk, 2), mask (chunk,)): the recorded commands of ticks tick..tick+chunk-1."""
    target = np.zeros((chunk, actions.shape[1]), np.float32)
    valid = actions[tick:tick + chunk]
    target[:len(valid)] = valid
    mask = np.arange(chunk) < len(valid)
    return target, mask


def evaluate_offline(engine, episodes, progress: bool = False) -> dict:
    """MAE of `engine` through PolicyLoop over `episodes` (iterable of vla_nav.data Episode whose
    frames are the engine's input images: read_episodes(image_size=engine.spec.view))."""
    from tqdm import tqdm

    from vla_nav.config import load_config
    from vla_nav.core.instruction import STOP
    from vla_nav.core.loop import PolicyLoop

    spec = engine.spec
    overall = ChunkMAE(spec.chunk, spec.action_dim)
    by_kind: dict[str, ChunkMAE] = defaultdict(lambda: ChunkMAE(spec.chunk, spec.action_dim))
    refused = 0
    episode_count = 0
    step_seconds: list[float] = []
    bar = tqdm(episodes, desc='eval', unit='episode', disable=not progress, dynamic_ncols=True)
    for episode in bar:
        loop = PolicyLoop.from_config(engine, load_config().vla_node)
        result = loop.set_instruction(episode.instruction)
        kind = episode.metadata.get('kind', 'unknown')
        errors = by_kind[kind]
        episode_count += 1
        for tick in range(len(episode)):
            target, mask = chunk_targets(episode.actions, tick, spec.chunk)
            stamp = float(episode.stamps[tick])
            state = episode.states[tick] if spec.state_dim else None
            if result.kind == STOP:
                predicted = np.zeros_like(target)
            else:
                started = time.perf_counter()
                chunk = loop.step(episode.frames[tick], stamp, now=stamp, state=state, is_view=True)
                step_seconds.append(time.perf_counter() - started)
                if chunk is None:
                    refused += 1
                    continue
                predicted = chunk.actions[:, :spec.action_dim]
            overall.add(predicted[None], target[None], mask[None])
            errors.add(predicted[None], target[None], mask[None])
        bar.set_postfix(mae=f'{overall.overall:.4f}')
    summary = overall.summary()
    summary.update({
        'episodes': episode_count,
        'refused_steps': refused,
        'per_kind': {kind: {'overall': round(e.overall, 6), 'linear': round(float(e.per_dim()[0]), 6),
                            'angular': round(float(e.per_dim()[1]), 6), 'count': e.count}
                     for kind, e in sorted(by_kind.items())},
        'step_ms_p50': round(1000.0 * float(np.median(step_seconds)), 3) if step_seconds else None,
    })
    return summary


def run(args: argparse.Namespace) -> int:
    from itertools import islice

    from vla_nav.config import resolve_model_dir
    from vla_nav.data.dataset import read_episodes
    from vla_nav.runtime import ModelLoadError, load_engine

    model_dir = resolve_model_dir(args.model)
    try:
        engine = load_engine(model_dir, backend=args.backend, device=args.device)
    except ModelLoadError as error:
        print(f'eval: cannot load the model: {error}', file=sys.stderr)
        return 2
    spec = engine.spec
    episodes = read_episodes(args.data, dt=spec.dt, image_size=spec.view)
    if args.episodes:
        episodes = islice(episodes, args.episodes)
    summary = evaluate_offline(engine, episodes, progress=not args.quiet and not args.json)
    if not summary['episodes']:
        print(f'eval: no usable episodes under {args.data}', file=sys.stderr)
        return 1
    summary.update({'model': str(model_dir), 'backend': args.backend, 'data': list(args.data)})
    if args.plot:
        plot_mae_by_step(summary, args.plot)
        summary['plot'] = args.plot
    if args.json:
        print(json.dumps(summary))
    else:
        dims = ', '.join(f'{name} {value:.4f} {summary["units"][name]}'
                         for name, value in summary['per_dim'].items())
        print(f'offline MAE over {summary["episodes"]} episodes / {summary["chunks"]} chunks: '
              f'{summary["overall"]:.4f} ({dims})')
        print('per chunk step: ' + ' '.join(f'{v:.4f}' for v in summary['per_step']))
        for kind, values in summary['per_kind'].items():
            print(f'  {kind:>10}: {values["overall"]:.4f} (linear {values["linear"]:.4f}, '
                  f'angular {values["angular"]:.4f})')
    return 0
