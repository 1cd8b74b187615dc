"""`python -m vla_nav replay BAG`: a bag through the policy + executor, compared against a reference.

Offline (default): the bag's camera, instruction (and odom, for models with state) messages are
fed in receive-time order, in recorded timing or as fast as possible (--fast), through the same
code as vla_node and chunk_executor: `vla_nav.core.image_decode` (via the data layer) and the
`vla_nav.core.closed_loop.ClosedLoop` (PolicyLoop over `load_engine` + ChunkExecutor ticked at
control_rate on the bag's clock). Bag time is the only clock, inference takes no bag time, so
the output is deterministic: for a frame received at r with header stamp s, its chunk is stamped s
and reaches the executor at r. A goal or stop instruction publishes an empty chunk (the preempt),
as vla_node does.

--live: the same bag drives running vla_node + chunk_executor processes over DDS (loopback only;
`--spawn-nodes` starts them with --model/--backend): camera + instruction are published with
fresh stamps and /vla/action_chunk + /cmd_vel are recorded and mapped back onto the bag's clock.

Output: a bag (--out, default runs/replay/<bag name>) with the chunks (MultiDOFJointTrajectory,
header.stamp = frame stamp, points[i].velocities[0] = Twist, time_from_start = i*dt), cmd_vel and
the instructions.

Modules: offline.py (ClosedLoop on the bag clock), live.py (the real nodes over DDS), compare.py
(golden and recorded checks), common.py (ReplayOutput and the output bag).

Checks (exit 1 on regression, with a per-topic report; --json prints one JSON object):
- --golden BAG: per topic, chunks matched by header stamp and cmd_vel by time against the golden
  output bag: counts must match and the max abs diff must stay <= --tolerance (default 1e-3).
  --live: a few chunks may be missing and cmd_vel is judged by its mean abs diff (default 0.05),
  as DDS scheduling shifts the control ticks.
- otherwise against the bag's recorded cmd_vel: MAE in m/s and rad/s per dimension (chunks: step i
  of a chunk stamped s vs the command in force at s + i*dt within the same instruction segment;
  cmd_vel: our command vs the recorded one at every tick), each <= --tolerance (default 0.25).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from vla_nav.cli import add_model_arguments
from vla_nav.config import resolve_model_dir
from vla_nav.tools.replay.common import ReplayError, write_output
from vla_nav.tools.replay.compare import (
    GOLDEN_TOLERANCE,
    LIVE_GOLDEN_TOLERANCE,
    RECORDED_TOLERANCE,
    compare_golden,
    compare_recorded,
)

DEFAULT_OUT_DIR = Path('runs') / 'replay'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 folder (mcap or sqlite3) with camera + instruction')
    add_model_arguments(parser)
    parser.add_argument('--golden', help='golden output bag to compare against')
    parser.add_argument('--out', help=f'output bag folder (default: {DEFAULT_OUT_DIR}/<bag name>)')
    parser.add_argument('--format', dest='storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--fast', action='store_true', help='as fast as possible (no pacing)')
    parser.add_argument('--tolerance', type=float,
                        help=f'golden: max abs diff (default {GOLDEN_TOLERANCE}); recorded: MAE '
                             f'per dimension (default {RECORDED_TOLERANCE})')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--live', action='store_true',
                        help='drive running vla_node + chunk_executor over DDS instead')
    parser.add_argument('--spawn-nodes', action='store_true',
                        help='--live: start vla_node + chunk_executor with --model/--backend')
    parser.add_argument('--domain-id', type=int, help='--live: ROS_DOMAIN_ID (loopback only)')
    for name in ('image', 'compressed_image', 'instruction', 'cmd_vel', 'odom', 'chunk'):
        parser.add_argument(f'--{name.replace("_", "-")}-topic', dest=f'{name}_topic',
                            help=f'{name} topic (default from config/vla_nav.yaml)')


def _topics(args):
    from vla_nav.data.bags import BagTopics
    return BagTopics.from_config(**{name: getattr(args, f'{name}_topic') for name in (
        'image', 'compressed_image', 'instruction', 'cmd_vel', 'odom', 'chunk')})


def _print_report(summary: dict) -> None:
    verdict = 'OK' if summary['ok'] else 'REGRESSION'
    print(f"replay {summary['bag']} ({summary['mode']}, tolerance {summary['tolerance']}): "
          f"{verdict}")
    print(f"  frames {summary['frames']} (refused {summary['frames_refused']}), chunks "
          f"{summary['chunks']} (+{summary['preempts']} preempts), cmd_vel {summary['commands']}, "
          f"errors {summary['errors']}"
          + (f" (last: {summary['last_error']})" if summary['last_error'] else ''))
    for topic, report in summary['topics'].items():
        figures = ', '.join(f'{key} {value:.4g}' if isinstance(value, float) else f'{key} {value}'
                            for key, value in report.items() if key not in ('ok', 'mae_per_step'))
        print(f"  {'ok  ' if report['ok'] else 'FAIL'} {topic}: {figures}")
    print(f"  output: {summary['out']}")


def run(args: argparse.Namespace) -> int:
    from vla_nav.data.bags import BagError, find_bags

    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    bag = Path(args.bag)
    try:
        if find_bags(bag) != [bag]:
            raise BagError(f'{bag}: not a rosbag2 folder (expected metadata.yaml inside)')
        if args.golden and find_bags(args.golden) != [Path(args.golden)]:
            raise BagError(f'{args.golden}: not a rosbag2 folder')
        topics = _topics(args)
    except (FileNotFoundError, BagError, ValueError) as error:
        print(f'replay: {error}', file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else DEFAULT_OUT_DIR / bag.resolve().name
    started = time.monotonic()
    try:
        if args.live:
            from vla_nav.tools.replay.live import replay_live
            output = replay_live(bag, topics, args)
            backend = args.backend
        else:
            from vla_nav.runtime import ModelLoadError, load_engine
            from vla_nav.tools.replay.offline import replay_offline
            try:
                engine = load_engine(resolve_model_dir(args.model), backend=args.backend,
                                     device=args.device)
            except (ModelLoadError, ValueError) as error:
                raise ReplayError(f'cannot load the model: {error}') from error
            backend = getattr(engine, 'backend', args.backend)
            output = replay_offline(bag, engine, topics, fast=args.fast)
        elapsed = time.monotonic() - started
        write_output(out, output, topics, args.storage, bag)
    except ReplayError as error:
        print(f'replay{" --live" if args.live else ""}: {error}', file=sys.stderr)
        return 2
    if args.golden:
        default = LIVE_GOLDEN_TOLERANCE if args.live else GOLDEN_TOLERANCE
        tolerance = default if args.tolerance is None else args.tolerance
        reports = compare_golden(out, Path(args.golden), topics, tolerance,
                                 exact_timing=not args.live)
    else:
        tolerance = RECORDED_TOLERANCE if args.tolerance is None else args.tolerance
        reports = compare_recorded(output, bag, topics, tolerance)
    summary = {
        'bag': str(bag), 'mode': 'golden' if args.golden else 'recorded',
        'golden': args.golden, 'live': bool(args.live), 'backend': backend,
        'tolerance': tolerance, 'ok': all(report['ok'] for report in reports.values()),
        'frames': output.frames, 'frames_refused': output.frames_refused,
        'chunks': sum(len(actions) > 0 for _, _, actions, _ in output.chunks),
        'preempts': sum(len(actions) == 0 for _, _, actions, _ in output.chunks),
        'commands': len(output.commands), 'errors': output.errors,
        'last_error': output.last_error, 'wall_s': round(elapsed, 3), 'out': str(out),
        'topics': reports}
    if args.json:
        print(json.dumps(summary))
    else:
        _print_report(summary)
    return 0 if summary['ok'] else 1
