"""`python -m vla_nav publish --model CKPT --test-data DIR`: evaluate a checkpoint, publish it.

    python -m vla_nav publish --model runs/default --test-data data/test --episodes 100 \\
        --publish models/default                                    # a v1-world model
    python -m vla_nav publish --model runs/v2 --test-data data/v2test --world v2 \\
        --episodes-per-tier 200 --publish models/default            # a v2-world model

The world (--world, default: the one the checkpoint learned, vla_nav.config.model_world: its
training folders' record_sim.json, v1 when they say nothing) decides the closed-loop part:

1. offline MAE on every recorded test episode (the `eval` path: ONNX engine + PolicyLoop); the
   test bags must be of the same world,
2. closed loop: v1: `--episodes` held-out scenes (the `eval-sim` path; trajectories.png);
   v2: the test-split suite, i.e. `eval-sim --suite --split test --episodes-per-tier N` itself,
   into <publish>/suite/ (table.md, summary.json with rates and controls, one PNG per tier;
   the per-episode records in records.json.gz),
3. the small FIXED block that test/test_default_model.py re-runs in the same world: offline MAE
   on FIXED_OFFLINE_EPISODES test episodes recorded on the fly (record-sim, split test, seed
   FIXED_OFFLINE_SEED) and a closed loop with a fixed latency: v1: FIXED_SIM_EPISODES test
   scenes; v2: FIXED_SUITE_EPISODES scenes of every suite tier (run_suite, the suite's own code),
then copies config.json + model.safetensors + metrics.csv (+ the ONNX graphs when the checkpoint
has them) into `--publish` (default: evaluate in place) and writes eval.json (all figures, the
commands, seeds and "world": what sim_node, the demo and the fixed-block test read) beside them.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

FIXED_OFFLINE_EPISODES = 4
FIXED_OFFLINE_SEED = 7
FIXED_SIM_EPISODES = 10         # v1: test scenes
FIXED_SUITE_EPISODES = 2        # v2: scenes of every suite tier (no language-blind control)
FIXED_SIM_SEED = 0              # v1 scene seed; v2 uses the suite's TEST_SEED (also 0)
FIXED_SIM_LATENCY = 0.02        # s; fixed so the closed-loop block is deterministic
PUBLISHED_FILES = ('config.json', 'model.safetensors', 'metrics.csv')
# The packages whose versions shape a closed-loop run beyond float rounding (the physics and the
# renderer, the inference kernels, the array maths): recorded with the fixed block, so a re-run
# knows whether it runs the stack that published it (the robot's Python 3.10 stack does not).
STACK_PACKAGES = ('mujoco', 'onnxruntime', 'numpy')
ONNX_DIR = 'onnx'               # the engine checks these graphs against config.json (re-exports)
SUITE_DIR = 'suite'             # v2: the test-split suite's table, summary and PNGs
STALE_OUTPUTS = {'v1': (SUITE_DIR,), 'v2': ('trajectories.png',)}   # another world's figures
TARGETS = {'v1': {'offline_mae': 0.05, 'success_rate': 0.90, 'collision_rate': 0.05},
           'v2': {'offline_mae': 0.05, 'tier_success': 0.90,
                  'tier_success_exceptions': {'search': 0.85, 'detour': 0.85, 'multi_step': 0.85},
                  'collision_rate': 0.03, 'language_blind_goto': 0.30}}   # issue 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vla_nav.config import WORLDS
    from vla_nav.tools.suite import DEFAULT_EPISODES
    parser.add_argument('--model', required=True, help='trained checkpoint directory')
    parser.add_argument('--test-data', required=True, help='recorded test-split bags (same world)')
    parser.add_argument('--world', choices=('auto', *WORLDS), default='auto',
                        help='the simulator world of the closed-loop figures (default: the one the '
                             "checkpoint's training data was recorded in; v1 when unknown)")
    parser.add_argument('--episodes', type=int, default=100, help='v1: closed-loop test episodes')
    parser.add_argument('--episodes-per-tier', type=int, default=DEFAULT_EPISODES,
                        help=f'v2: test-split suite scenes per tier (default {DEFAULT_EPISODES})')
    parser.add_argument('--seed', type=int, default=0, help='v1: closed-loop seed')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--backend', default='onnx',
                        help="onnx (default; what the robot runs) | torch | 'module:factory'")
    parser.add_argument('--publish', default='', help='copy the model + figures here')
    parser.add_argument('--recipe', default='', help='the command that trained the model (eval.json)')


def record_fixed_offline_data(out: str | Path, world: str = 'v1') -> Path:
    """The fixed offline set: a few test-split expert episodes (record-sim, deterministic)."""
    from vla_nav.cli import main
    code = main(['record-sim', '--episodes', str(FIXED_OFFLINE_EPISODES), '--out', str(out),
                 '--split', 'test', '--seed', str(FIXED_OFFLINE_SEED), '--workers', '1', '--quiet',
                 '--world', world])
    if code != 0:
        raise RuntimeError(f'record-sim of the fixed offline set failed (exit {code})')
    return Path(out)


def offline_mae(model_dir, data, backend: str = 'onnx', progress: bool = False) -> dict:
    from vla_nav.data.dataset import read_episodes
    from vla_nav.runtime import load_engine
    from vla_nav.tools.evaluate import evaluate_offline

    engine = load_engine(model_dir, backend=backend)
    spec = engine.spec
    episodes = read_episodes(data, dt=spec.dt, image_size=spec.view)
    return evaluate_offline(engine, episodes, progress=progress)


def runtime_stack() -> dict[str, str]:
    """{package: installed version} of STACK_PACKAGES ('' when one is not installed)."""
    from vla_nav.model.config import installed_versions

    return installed_versions(STACK_PACKAGES)


def fixed_block(model_dir, backend: str = 'onnx', world: str = 'v1') -> dict:
    """Re-runnable in about a minute: the figures test/test_default_model.py checks, in `world`,
    with the package versions they were measured with (`stack`)."""
    with tempfile.TemporaryDirectory(prefix='vla_nav_fixed_') as folder:
        data = record_fixed_offline_data(Path(folder) / 'test', world)
        offline = offline_mae(model_dir, data, backend)
    closed = _fixed_closed_loop_v2(model_dir, backend) if world == 'v2' else \
        _fixed_closed_loop_v1(model_dir, backend)
    return {
        'world': world,
        'stack': runtime_stack(),
        'offline': {'record': f'record-sim --world {world} --split test --seed {FIXED_OFFLINE_SEED} '
                              f'--episodes {FIXED_OFFLINE_EPISODES}',
                    'overall': offline['overall'], 'per_dim': offline['per_dim'],
                    'episodes': offline['episodes'], 'count': offline['count']},
        'closed_loop': {'split': 'test', 'latency': FIXED_SIM_LATENCY, **closed},
    }


def _fixed_closed_loop_v1(model_dir, backend: str) -> dict:
    from vla_nav.tools.eval_sim import ClosedLoopSettings, evaluate_closed_loop
    closed, _ = evaluate_closed_loop(model_dir, FIXED_SIM_EPISODES, seed=FIXED_SIM_SEED, split='test',
                                     backend=backend,
                                     settings=ClosedLoopSettings.from_config(FIXED_SIM_LATENCY),
                                     plot_episodes=0, progress=False)
    return {'seed': FIXED_SIM_SEED, 'episodes': FIXED_SIM_EPISODES, 'success_rate': closed['success_rate'],
            'collision_rate': closed['collision_rate'],
            'outcomes': [r['outcome'] for r in closed['records']]}


def _fixed_closed_loop_v2(model_dir, backend: str) -> dict:
    """FIXED_SUITE_EPISODES scenes of every suite tier, one worker, the fixed latency: the same
    scenes (and, the run being deterministic, the same outcomes) as the first episodes of the
    published test-split suite."""
    from vla_nav.tools.eval_sim import ClosedLoopSettings
    from vla_nav.tools.suite import TEST_SEED, run_suite
    from vla_nav.tools.suite.runner import load_model_engine
    from vla_nav.tools.suite.tiers import SUITE_TIERS

    _, records, _ = run_suite(
        load_model_engine, (str(model_dir), backend, 'cpu'), split='test', seed=TEST_SEED,
        tiers=list(SUITE_TIERS), blind_tiers=[], episodes=FIXED_SUITE_EPISODES,
        settings=ClosedLoopSettings.from_config(FIXED_SIM_LATENCY), workers=1, plot_episodes=0,
        progress=False)
    driven = [r['outcome'] for r in records if r['outcome'] != 'skipped']
    share = {name: round(driven.count(name) / max(len(driven), 1), 4) for name in ('success', 'collision')}
    return {'seed': TEST_SEED, 'episodes_per_tier': FIXED_SUITE_EPISODES, 'tiers': list(SUITE_TIERS),
            'success_rate': share['success'], 'collision_rate': share['collision'],
            'labels': [f'{r["label"]}:{r["episode"]}' for r in records],
            'outcomes': [r['outcome'] for r in records]}


def copy_model(model_dir: Path, target: Path, world: str) -> None:
    """The files a published model consists of (the frozen parts are referenced, not copied), its
    ONNX graphs when it has them, and no figures of another world's earlier model."""
    target.mkdir(parents=True, exist_ok=True)
    if target.resolve() == model_dir.resolve():
        return
    for name in PUBLISHED_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, target / name)
        else:   # e.g. a checkpoint without metrics.csv: never leave an earlier model's file behind
            (target / name).unlink(missing_ok=True)
    if (model_dir / ONNX_DIR).is_dir():
        shutil.rmtree(target / ONNX_DIR, ignore_errors=True)
        shutil.copytree(model_dir / ONNX_DIR, target / ONNX_DIR)
    for name in STALE_OUTPUTS[world]:
        path = target / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()


def suite_on_test_split(target: Path, args: argparse.Namespace) -> dict:
    """`eval-sim --suite` on the test split (the CLI itself) into target/suite; summary.json keeps
    the rates and controls (what the README shows), the per-episode records go to
    records.json.gz. Returns the summary without records, with the command."""
    from vla_nav.cli import main

    out = target / SUITE_DIR
    shutil.rmtree(out, ignore_errors=True)
    argv = ['eval-sim', '--suite', '--model', str(target), '--backend', args.backend,
            '--split', 'test', '--episodes-per-tier', str(args.episodes_per_tier),
            '--workers', str(args.workers), '--out', str(out)]
    code = main(argv)
    if code != 0:
        raise RuntimeError(f'eval-sim --suite failed (exit {code}): python -m vla_nav {" ".join(argv)}')
    summary = json.loads((out / 'summary.json').read_text(encoding='utf-8'))
    records = summary.pop('records')
    with gzip.GzipFile(out / 'records.json.gz', 'wb', mtime=0) as stream:
        stream.write(json.dumps(records).encode('utf-8'))
    summary['meta'].update(command='python -m vla_nav ' + ' '.join(argv),
                           records='records.json.gz (every episode)')
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n', encoding='utf-8')
    return summary


def evaluate(target: Path, args: argparse.Namespace, world: str) -> dict:
    """Every figure of eval.json; the PNGs are written into `target`."""
    from vla_nav.training.metrics import plot_mae_by_step

    print(f'offline MAE on the recorded {world} test episodes ...', file=sys.stderr)
    offline = offline_mae(target, args.test_data, backend=args.backend, progress=True)
    plot_mae_by_step(offline, target / 'offline_mae.png')
    report = {
        'model': str(target), 'recipe': args.recipe, 'world': world,
        'offline': dict(offline, data=str(args.test_data),
                        command=f'python -m vla_nav eval --model {target} --data {args.test_data} --json'),
    }
    if world == 'v2':
        print(f'test-split suite, {args.episodes_per_tier} episodes per tier ...', file=sys.stderr)
        report['suite'] = dict(suite_on_test_split(target, args), folder=SUITE_DIR)
    else:
        from vla_nav.tools.eval_sim import evaluate_closed_loop, plot_trajectories
        print('closed loop ...', file=sys.stderr)
        closed, plotted = evaluate_closed_loop(target, args.episodes, seed=args.seed, split='test',
                                               backend=args.backend, workers=args.workers)
        plot_trajectories(plotted, str(target / 'trajectories.png'))
        closed = {k: v for k, v in closed.items() if k != 'model'}
        report['closed_loop'] = dict(closed, command=f'python -m vla_nav eval-sim --model {target} '
                                                     f'--episodes {args.episodes} --seed {args.seed} '
                                                     '--split test --json')
    print(f'fixed block ({world}) ...', file=sys.stderr)
    report['fixed'] = fixed_block(target, args.backend, world)
    report['targets'] = dict(TARGETS[world])
    return report


def choose_world(args: argparse.Namespace, model_dir: Path) -> str:
    """--world, or the checkpoint's (config.model_world); ValueError when the test bags were
    recorded in another world."""
    from vla_nav.config import model_world, recorded_world
    world = model_world(model_dir) if args.world == 'auto' else args.world
    recorded = recorded_world(args.test_data)
    if recorded is not None and recorded != world:
        raise ValueError(f'--test-data {args.test_data} was recorded in the {recorded} world, the '
                         f'model is published for {world} (--world)')
    return world


def headline(report: dict) -> dict:
    """The one JSON line `publish` prints."""
    fixed = report['fixed']
    line = {'world': report['world'], 'offline_mae': report['offline']['overall']}
    if 'suite' in report:
        line['tier_success'] = {tier: values['success']['rate']
                                for tier, values in report['suite']['tiers'].items()}
    else:
        line.update(success_rate=report['closed_loop']['success_rate'],
                    collision_rate=report['closed_loop']['collision_rate'])
    line['fixed'] = {'offline': fixed['offline']['overall'],
                     'success_rate': fixed['closed_loop']['success_rate']}
    return line


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    model_dir = Path(args.model)
    if not (model_dir / 'config.json').is_file():
        print(f'publish: {model_dir} is not a checkpoint (no config.json)', file=sys.stderr)
        return 2
    try:
        world = choose_world(args, model_dir)
    except ValueError as error:
        print(f'publish: {error}', file=sys.stderr)
        return 2
    target = Path(args.publish) if args.publish else model_dir
    if args.publish:
        copy_model(model_dir, target, world)
    print(f'publish: {model_dir} as a {world}-world model into {target}', file=sys.stderr)
    report = evaluate(target, args, world)
    (target / 'eval.json').write_text(json.dumps(report, indent=1) + '\n', encoding='utf-8')
    print(json.dumps(headline(report)))
    return 0
