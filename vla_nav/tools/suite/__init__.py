"""`python -m vla_nav eval-sim --suite`: the named tiers of the v2 world, two controls, intervals.

Each tier drives `--episodes-per-tier` scenes of the v2 world (NavSim(world='v2'), tasks.py)
through the same closed loop as eval-sim (ClosedLoop: PolicyLoop + ChunkExecutor, sim clock):

  goto            target in view, named by colour + category (or one of them when unique)
  distractor      a same-colour or same-category distractor nearer or more central than the target
  retarget        the distractor tier's rooms, another visible object named (not the generator's
                  target; the judge follows the new sentence)
  search          the target starts out of view: turn and explore, then go
  detour          an obstacle between the robot and the target
  held_out_pair   a colour x category pair never in training (test split only)
  held_out_words  test-only colour and category synonyms (test split only)
  numbers         angles and distances never in training (test split only)
  multi_step      2-3 steps ("go to the red cone, then turn left")
  stop            stop and its variants: stay still
  relational      "the nearest chair", "the cone on your left", "the ball next to the box"
(turn and forward may be named with --tiers too.)

Controls, in the same run:
  language-blind  the same scenes as a tier (--blind-tiers, default goto), the policy told
                  tiers.BLIND_TEXT ("go") while the judge keeps the scene's goal: success must fall.
  retarget-swap   per room driven both to the generator's target (distractor tier) and to another
                  object (retarget): the fraction where both succeed AND end at different objects
                  (the object nearest the final pose, within tiers.END_OBJECT_RANGE).

Rates carry 95% Wilson score intervals (stats.wilson_interval). Outputs in --out: summary.json
(rates, controls, every episode's record), table.md (the README table), <tier>.png (top-down
trajectories of the first --plot-episodes episodes of each tier).

Seeds (what serves what; record-sim's default is --seed 0; the default recipe records the train
split with seed 0, offline validation with 1, the DAgger rounds with 3, 4, 8, 9 and 10; seed 2
was the v1 recipe's; see models/default/RECIPE.md):
  test split, seed TEST_SEED (0)              published figures, run once per published model
  train split, seed VALIDATION_SEED (100)     `--validation`: choosing epochs and variants; the
                                              held-out tiers do not exist on the train split
Episodes are first_episode .. first_episode + N - 1 of each tier; everything is seeded, and the
records do not depend on --workers or the machine's load: the chunk latency is fixed
(SUITE_LATENCY, 20 ms: the chunk reaches the executor on the next 20 Hz tick, as a live node's
few-ms inference does) unless --latency is given.

Modules: tiers.py (jobs and scene setup), runner.py (worker processes), stats.py (Wilson
interval), report.py (tables, PNGs, JSON).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vla_nav.tools.suite.tiers import EXTRA_TIERS, SCENE_TIER, SUITE_TIERS

TEST_SEED = 0
VALIDATION_SEED = 100
TRAINING_SEEDS = (0, 1, 2, 3, 4, 8, 9, 10)   # record-sim seeds of the recipes (train split)
TEST_ONLY_TIERS = ('held_out_pair', 'held_out_words', 'numbers')
DEFAULT_EPISODES = 200
SUITE_LATENCY = 0.02   # s, frame -> chunk at the executor: fixed (not measured) so runs repeat


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The --suite options (eval-sim's other options --model, --backend, --device, --latency,
    --workers, --first-episode, --json, --quiet apply too)."""
    group = parser.add_argument_group('suite (--suite)')
    group.add_argument('--suite', action='store_true', help='run the named tiers of the v2 world')
    group.add_argument('--tiers', default='',
                       help=f'comma-separated subset (default: all of {",".join(SUITE_TIERS)}; also '
                            f'{",".join(EXTRA_TIERS)})')
    group.add_argument('--blind-tiers', default='goto',
                       help='tiers re-run language-blind (comma-separated; "" for none)')
    group.add_argument('--episodes-per-tier', type=int, default=DEFAULT_EPISODES,
                       help=f'scenes per tier (default {DEFAULT_EPISODES}, the headline size)')
    group.add_argument('--validation', action='store_true',
                       help=f'the train split with seed {VALIDATION_SEED} (model selection); '
                            'never record-sim\'s training seeds')
    group.add_argument('--out', default='eval_suite', help='folder for summary.json, table.md, PNGs')
    group.add_argument('--plot-episodes', type=int, default=8, help='trajectories per tier PNG')
    group.add_argument('--camera-mount', default='', metavar='low|high|HEIGHT,PITCH,FOV',
                       help="every scene seen from this camera mount (as record-sim's; default: "
                            'the drawn one)')


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(',') if item.strip()]


def resolve_args(args: argparse.Namespace) -> tuple[str, int, list[str], list[str]]:
    """(split, seed, tiers, blind tiers) from the options; ValueError on a bad combination."""
    if args.validation and args.split_given and args.split != 'train':
        raise ValueError('--validation runs the train split; drop --split test')
    split = 'train' if args.validation else args.split
    seed = args.seed if args.seed is not None else VALIDATION_SEED if args.validation else TEST_SEED
    tiers = _split_list(args.tiers) or [t for t in SUITE_TIERS
                                        if split == 'test' or t not in TEST_ONLY_TIERS]
    blind = _split_list(args.blind_tiers)
    unknown = [t for t in [*tiers, *blind] if t not in SCENE_TIER]
    if unknown:
        raise ValueError(f'unknown tier(s) {", ".join(unknown)}; known: {", ".join(SCENE_TIER)}')
    if split == 'train':
        held = [t for t in [*tiers, *blind] if t in TEST_ONLY_TIERS]
        if held:
            raise ValueError(f'{", ".join(held)}: test split only (held-out material)')
    if args.episodes_per_tier < 1:
        raise ValueError(f'--episodes-per-tier must be >= 1, got {args.episodes_per_tier}')
    if args.workers < 1:
        raise ValueError(f'--workers must be >= 1, got {args.workers}')
    if split == 'train' and seed in TRAINING_SEEDS:
        print(f'eval-sim: warning: train split seed {seed} is record-sim training data in the '
              f'default recipe; use --validation (seed {VALIDATION_SEED})', file=sys.stderr)
    return split, seed, tiers, blind


def run_suite(engine_factory, factory_args: tuple, *, split: str, seed: int, tiers: list[str],
              blind_tiers: list[str], episodes: int, settings, first_episode: int = 0,
              workers: int = 1, plot_episodes: int = 8, progress: bool = True,
              meta: dict | None = None, camera_mount: str = '') -> tuple[dict, list[dict], dict]:
    """Run the suite; (summary, records with trajectories, {job index: layout})."""
    from vla_nav.tools.suite.report import summarise_suite
    from vla_nav.tools.suite.runner import SuiteSettings, run_jobs
    from vla_nav.tools.suite.tiers import build_jobs

    jobs = build_jobs(tiers, blind_tiers, episodes, first_episode)
    suite = SuiteSettings(split=split, seed=seed, plot_episodes=plot_episodes,
                          camera_mount=camera_mount)
    records, layouts = run_jobs(jobs, engine_factory, factory_args, suite, settings, workers,
                                progress)
    meta = {'split': split, 'seed': seed, 'episodes_per_tier': episodes,
            'first_episode': first_episode, 'world': 'v2', 'model': '-',
            'camera_mount': camera_mount or 'drawn',
            'control_rate': settings.control_rate, 'camera_rate': settings.camera_rate,
            'latency': 'measured' if settings.latency is None else settings.latency,
            **(meta or {})}
    return summarise_suite(records, meta), records, layouts


def run(args: argparse.Namespace) -> int:
    """The CLI: resolve the options, run, print the table, write the outputs."""
    import json

    from vla_nav.config import resolve_model_dir
    from vla_nav.runtime import ModelLoadError
    from vla_nav.tools.eval_sim import ClosedLoopSettings
    from vla_nav.tools.suite.report import format_text, write_outputs
    from vla_nav.tools.suite.runner import load_model_engine

    try:
        split, seed, tiers, blind = resolve_args(args)
        if args.camera_mount:
            from vla_nav.sim.rooms import parse_camera_mount
            parse_camera_mount(args.camera_mount)   # a clear error now, not one per worker
        model_dir = str(resolve_model_dir(args.model))
        latency = SUITE_LATENCY if args.latency is None else args.latency
        settings = ClosedLoopSettings.from_config(latency=latency)
        summary, records, layouts = run_suite(
            load_model_engine, (model_dir, args.backend, args.device), split=split, seed=seed,
            tiers=tiers, blind_tiers=blind, episodes=args.episodes_per_tier, settings=settings,
            first_episode=args.first_episode, workers=args.workers,
            plot_episodes=args.plot_episodes, progress=not args.quiet and not args.json,
            meta={'model': model_dir, 'backend': args.backend}, camera_mount=args.camera_mount)
    except (ModelLoadError, ValueError) as error:
        print(f'eval-sim: {error}', file=sys.stderr)
        return 2
    written = write_outputs(summary, records, layouts, Path(args.out))
    if args.json:
        print(json.dumps({key: summary[key] for key in ('meta', 'tiers', 'controls')}))
    else:
        print(format_text(summary))
        print(f'wrote {", ".join(sorted(set(written.values())))}')
    return 0
