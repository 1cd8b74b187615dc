"""`python -m vla_nav publish --model CKPT --test-data DIR`: evaluate a checkpoint, publish it.

    python -m vla_nav publish --model runs/default --test-data data/test --episodes 100 \\
        --publish models/default

1. offline MAE on every recorded test episode (the `eval` path: ONNX engine + PolicyLoop),
2. closed loop on `--episodes` held-out scenes (the `eval-sim` path),
3. the small FIXED block that test/test_default_model.py re-runs: offline MAE on
   FIXED_OFFLINE_EPISODES test episodes recorded on the fly (record-sim, split test, seed
   FIXED_OFFLINE_SEED) and closed loop on FIXED_SIM_EPISODES test scenes with a fixed latency,
then copies config.json + model.safetensors + metrics.csv into `--publish` (default: evaluate in
place) and writes eval.json (all figures, the commands and seeds) and the two PNGs beside them.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

FIXED_OFFLINE_EPISODES = 4
FIXED_OFFLINE_SEED = 7
FIXED_SIM_EPISODES = 10
FIXED_SIM_SEED = 0
FIXED_SIM_LATENCY = 0.02        # s; fixed so the closed-loop block is deterministic
PUBLISHED_FILES = ('config.json', 'model.safetensors', 'metrics.csv')
TARGETS = {'offline_mae': 0.05, 'success_rate': 0.90, 'collision_rate': 0.05}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', required=True, help='trained checkpoint directory')
    parser.add_argument('--test-data', required=True, help='recorded test-split bags')
    parser.add_argument('--episodes', type=int, default=100, help='closed-loop test episodes')
    parser.add_argument('--seed', type=int, default=0, help='closed-loop seed')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--publish', default='', help='copy the model + figures here')
    parser.add_argument('--recipe', default='', help='the command that trained the model (eval.json)')


def record_fixed_offline_data(out: str | Path) -> Path:
    """The fixed offline set: a few test-split expert episodes (record-sim, deterministic)."""
    from vla_nav.cli import main
    code = main(['record-sim', '--episodes', str(FIXED_OFFLINE_EPISODES), '--out', str(out),
                 '--split', 'test', '--seed', str(FIXED_OFFLINE_SEED), '--workers', '1', '--quiet'])
    if code != 0:
        raise RuntimeError(f'record-sim of the fixed offline set failed (exit {code})')
    return Path(out)


def offline_mae(model_dir, data, backend: str = 'onnx', progress: bool = False) -> dict:
    from vla_nav.data.dataset import read_episodes
    from vla_nav.runtime import load_engine
    from vla_nav.tools.evaluate import evaluate_offline

    engine = load_engine(model_dir, backend=backend)
    spec = engine.spec
    episodes = read_episodes(data, dt=spec.dt, image_size=(spec.image_height, spec.image_width))
    return evaluate_offline(engine, episodes, progress=progress)


def fixed_block(model_dir, backend: str = 'onnx') -> dict:
    """Re-runnable in < ~60 s: the figures test/test_default_model.py checks."""
    from vla_nav.tools.eval_sim import ClosedLoopSettings, evaluate_closed_loop

    with tempfile.TemporaryDirectory(prefix='vla_nav_fixed_') as folder:
        data = record_fixed_offline_data(Path(folder) / 'test')
        offline = offline_mae(model_dir, data, backend)
    closed, _ = evaluate_closed_loop(model_dir, FIXED_SIM_EPISODES, seed=FIXED_SIM_SEED, split='test',
                                     backend=backend,
                                     settings=ClosedLoopSettings.from_config(FIXED_SIM_LATENCY),
                                     plot_episodes=0, progress=False)
    return {
        'offline': {'record': f'record-sim --split test --seed {FIXED_OFFLINE_SEED} --episodes '
                              f'{FIXED_OFFLINE_EPISODES}',
                    'overall': offline['overall'], 'per_dim': offline['per_dim'],
                    'episodes': offline['episodes'], 'count': offline['count']},
        'closed_loop': {'split': 'test', 'seed': FIXED_SIM_SEED, 'episodes': FIXED_SIM_EPISODES,
                        'latency': FIXED_SIM_LATENCY,
                        'success_rate': closed['success_rate'],
                        'collision_rate': closed['collision_rate'],
                        'outcomes': [r['outcome'] for r in closed['records']]},
    }


def copy_model(model_dir: Path, target: Path) -> None:
    """The files a published model consists of (the frozen parts are referenced, not copied)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, target / name)


def evaluate(target: Path, args: argparse.Namespace) -> dict:
    """Every figure of eval.json; the two PNGs are written into `target`."""
    from vla_nav.tools.eval_sim import evaluate_closed_loop, plot_trajectories
    from vla_nav.training.metrics import plot_mae_by_step

    print('offline MAE on the recorded test episodes ...', file=sys.stderr)
    offline = offline_mae(target, args.test_data, progress=True)
    plot_mae_by_step(offline, target / 'offline_mae.png')
    print('closed loop ...', file=sys.stderr)
    closed, plotted = evaluate_closed_loop(target, args.episodes, seed=args.seed, split='test',
                                           workers=args.workers)
    plot_trajectories(plotted, str(target / 'trajectories.png'))
    print('fixed block ...', file=sys.stderr)
    fixed = fixed_block(target)
    closed = {k: v for k, v in closed.items() if k != 'model'}
    return {
        'model': str(target),
        'recipe': args.recipe,
        'offline': dict(offline, data=str(args.test_data),
                        command=f'python -m vla_nav eval --model {target} --data {args.test_data} --json'),
        'closed_loop': dict(closed, command=f'python -m vla_nav eval-sim --model {target} --episodes '
                                            f'{args.episodes} --seed {args.seed} --split test --json'),
        'fixed': fixed,
        'targets': dict(TARGETS),
    }


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    model_dir = Path(args.model)
    if not (model_dir / 'config.json').is_file():
        print(f'publish: {model_dir} is not a checkpoint (no config.json)', file=sys.stderr)
        return 2
    target = Path(args.publish) if args.publish else model_dir
    if args.publish:
        copy_model(model_dir, target)
    report = evaluate(target, args)
    (target / 'eval.json').write_text(json.dumps(report, indent=1) + '\n', encoding='utf-8')
    offline, closed, fixed = report['offline'], report['closed_loop'], report['fixed']
    print(json.dumps({'offline_mae': offline['overall'], 'success_rate': closed['success_rate'],
                      'collision_rate': closed['collision_rate'],
                      'fixed': {'offline': fixed['offline']['overall'],
                                'success_rate': fixed['closed_loop']['success_rate']}}))
    return 0
