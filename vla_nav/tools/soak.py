"""`python -m vla_nav soak --minutes M`: the whole suite under load, reported as figures.

sim_node (camera at --camera-rate, 30 Hz by default), vla_node and chunk_executor run as separate
processes on DDS loopback (vla_nav.tools.procs), exactly as in `make demo`; a new instruction that
fits the scene goes out every --instruction-period seconds (vla_nav.sim.goals). After a warm-up
(model load, first allocations) the soak measures until the end:

  rss_mb            per node from /proc: at start, after warm-up, at the end, growth in %
  chunk_rate_hz     chunks heard per second
  latency_ms        p50/p99 from the camera stamp a chunk carries to the first /cmd_vel heard after
                    that chunk (inference + DDS + the wait for the executor's next tick)
  inference_ms      vla_node's own p50/p99 (its diagnostics)
  dropped_frames    frames vla_node did not turn into a chunk: stale, undecodable, or overwritten
                    by a newer one before inference (its diagnostics, counted after warm-up)
  watchdog_trips    chunk_executor's watchdog trips after warm-up (its diagnostics)
  node_deaths       nodes that exited during the run, with their exit codes

Exit 1 when any node died or any node's RSS grew more than RSS_GROWTH_LIMIT_PCT after warm-up
(or the suite did not come up); 0 otherwise. Figures, not timed asserts: speed depends on the
machine. `--json` prints one JSON object on stdout (progress goes to stderr).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from vla_nav.cli import add_model_arguments

RSS_GROWTH_LIMIT_PCT = 5.0
RSS_SAMPLE_PERIOD_S = 2.0
DEFAULT_OUT = 'runs/soak'
STARTUP_TIMEOUT_S = 900.0     # a first run exports the model to ONNX before vla_node is up


def add_arguments(parser: argparse.ArgumentParser) -> None:
    duration = parser.add_mutually_exclusive_group()
    duration.add_argument('--minutes', type=float, default=10.0, help='soak duration (default 10)')
    duration.add_argument('--seconds', type=float, help='soak duration in seconds (short checks)')
    parser.add_argument('--camera-rate', type=float, default=30.0, help='sim camera Hz (default 30)')
    parser.add_argument('--instruction-period', type=float, default=4.0,
                        help='seconds between instructions (default 4)')
    parser.add_argument('--warmup', type=float, default=None,
                        help='seconds before measuring (default: 20%% of the run, 5..60 s)')
    add_model_arguments(parser)
    parser.add_argument('--seed', type=int, default=0, help='scene seed of sim_node')
    parser.add_argument('--out', default=DEFAULT_OUT, help=f'logs folder (default {DEFAULT_OUT})')
    parser.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID (default: private)')
    parser.add_argument('--startup-timeout', type=float, default=STARTUP_TIMEOUT_S)
    parser.add_argument('--json', action='store_true', help='print one JSON object')


def default_warmup(duration_s: float) -> float:
    return min(60.0, max(5.0, 0.2 * duration_s))


def rss_growth_pct(after_warmup: float | None, end: float | None) -> float | None:
    if not after_warmup or end is None:
        return None
    return 100.0 * (end - after_warmup) / after_warmup


def verdict(report: dict) -> list[str]:
    """The reasons the soak failed (empty: it passed)."""
    problems = [f'{name} died (exit code {code})' for name, code in report['node_deaths'].items()]
    for name, rss in report['rss_mb'].items():
        growth = rss.get('growth_pct')
        if growth is not None and growth > RSS_GROWTH_LIMIT_PCT:
            problems.append(f'{name} RSS grew {growth:.1f}% after warm-up '
                            f'(limit {RSS_GROWTH_LIMIT_PCT:g}%)')
    if report.get('startup_error'):
        problems.append(report['startup_error'])
    elif report['chunks'] == 0:
        problems.append('no chunks flowed')
    return problems


def _counter(observer, node: str, key: str) -> float:
    value = observer.diagnostics.get(node, {}).get(key, 0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _finite(value) -> float | None:
    return round(float(value), 3) if isinstance(value, (int, float)) and math.isfinite(value) else None


DROP_KEYS = ('frames_stale', 'frames_undecodable', 'frames_overwritten')


def soak(args) -> dict:
    from vla_nav.config import resolve_sim_world, use_loopback_ros
    from vla_nav.tools.observer import (
        SuiteError,
        SuiteObserver,
        stop_suite,
        wait_for_suite,
    )
    from vla_nav.tools.procs import NodeSuite, private_domain_id

    duration = float(args.seconds if args.seconds is not None else args.minutes * 60.0)
    warmup = default_warmup(duration) if args.warmup is None else float(args.warmup)
    out = Path(args.out)
    domain_id = private_domain_id() if args.domain_id is None else args.domain_id
    use_loopback_ros(domain_id)
    os.environ['ROS_LOG_DIR'] = str(out / 'logs' / 'ros')
    report: dict = {'duration_s': duration, 'warmup_s': warmup, 'camera_rate_hz': args.camera_rate,
                    'instruction_period_s': args.instruction_period, 'model': args.model or 'default',
                    'backend': args.backend, 'device': args.device, 'domain_id': domain_id,
                    'logs': str(out / 'logs'), 'instructions_sent': 0, 'chunks': 0,
                    'node_deaths': {}, 'rss_mb': {}, 'startup_error': None}
    suite = NodeSuite(out, domain_id=domain_id)
    observer = None
    rss_series: dict[str, list[tuple[float, float]]] = {}
    try:
        suite.start('sim_node', {'camera_rate': float(args.camera_rate), 'seed': args.seed,
                                 'world': resolve_sim_world('model', args.model)})  # the model's
        suite.start('vla_node', {'model': args.model, 'backend': args.backend,
                                 'device': args.device})
        suite.start('chunk_executor', {})
        start_rss = {}
        observer = SuiteObserver('vla_nav_soak')
        try:
            report['startup_s'] = round(wait_for_suite(observer, suite, args.startup_timeout), 2)
        except SuiteError as error:
            report['startup_error'] = str(error)
            report['node_deaths'] = suite.dead()
            return report
        start_rss = suite.rss()
        started = time.monotonic()
        baseline = _drive(args, observer, suite, report, duration, warmup, rss_series)
        observer.spin_for(1.5)   # the last diagnostics report
        report['measured_s'] = round(time.monotonic() - started - warmup, 1)
        _final_figures(report, observer, suite, start_rss, baseline, rss_series)
    finally:
        report.update(stop_suite(suite, observer))
    return report


def _drive(args, observer, suite, report: dict, duration: float, warmup: float,
           rss_series: dict) -> dict:
    """Send goals every instruction period and sample RSS until `duration` has passed or a node
    died; returns the baseline taken at the end of the warm-up."""
    from tqdm import tqdm

    from vla_nav.sim.goals import goal_sequence, layout_from_scene, plan_with_fallback
    from vla_nav.tools.observer import SuiteError, raise_if_dead

    layout = layout_from_scene(observer.scene)
    kinds = goal_sequence(10 ** 6)
    started = time.monotonic()
    next_instruction, next_sample = started, started
    baseline: dict = {}
    visited: tuple[str, ...] = ()
    bar = tqdm(total=int(duration), unit='s', desc='soak', file=sys.stderr,
               disable=None, leave=False)
    try:
        while (elapsed := time.monotonic() - started) < duration:
            observer.spin_once(0.05)
            now = time.monotonic()
            if now >= next_instruction:
                kind = kinds[report['instructions_sent']]
                goal = plan_with_fallback(kind, layout, observer.pose or layout.start_pose,
                                          visited[-1:])
                if goal.kind == 'goto':
                    visited += (goal.target['name'],)
                observer.send_instruction(goal.text)
                report['instructions_sent'] += 1
                next_instruction += args.instruction_period
            if now >= next_sample:
                for name, value in suite.rss().items():
                    if value is not None:
                        rss_series.setdefault(name, []).append((elapsed, value))
                next_sample += RSS_SAMPLE_PERIOD_S
            if not baseline and elapsed >= warmup:
                observer.reset_figures()
                baseline = {'rss': suite.rss(),
                            'drops': {key: _counter(observer, 'vla_node', key) for key in DROP_KEYS},
                            'trips': _counter(observer, 'chunk_executor', 'watchdog_trips')}
            try:
                raise_if_dead(suite)
            except SuiteError as error:
                report['death_detail'] = str(error)
                break
            bar.update(int(elapsed) - bar.n)
            bar.set_postfix(chunks_per_s=f'{observer.chunk_rate():.1f}', refresh=False)
    finally:
        bar.close()
    return baseline


def _final_figures(report: dict, observer, suite, start_rss: dict, baseline: dict,
                   rss_series: dict) -> None:
    """The measured figures, after the warm-up baseline, into `report`."""
    end_rss = suite.rss()
    report['node_deaths'] = suite.dead()
    for name in suite.processes:
        after = (baseline.get('rss') or {}).get(name)
        report['rss_mb'][name] = {
            'start': _finite(start_rss.get(name)), 'after_warmup': _finite(after),
            'end': _finite(end_rss.get(name)),
            'growth_pct': _finite(rss_growth_pct(after, end_rss.get(name)))}
    report['chunks'] = observer.chunk_count
    report['chunk_rate_hz'] = _finite(observer.chunk_rate())
    report['chunk_stamp_regressions'] = observer.chunk_stamp_regressions
    report['latency_ms'] = {'p50': _finite(observer.latency.percentile_ms(50)),
                            'p99': _finite(observer.latency.percentile_ms(99)),
                            'samples': observer.latency.count}
    vla = observer.diagnostics.get('vla_node', {})
    report['inference_ms'] = {'p50': _finite(vla.get('inference_p50_ms')),
                              'p99': _finite(vla.get('inference_p99_ms'))}
    report['frames_received_hz'] = _finite(vla.get('frame_rate_hz'))   # at vla_node, at the end
    drops = {key: int(_counter(observer, 'vla_node', key)
                      - baseline.get('drops', {}).get(key, 0.0)) for key in DROP_KEYS}
    report['dropped_frames'] = {'total': sum(drops.values()), **drops}
    report['watchdog_trips'] = int(_counter(observer, 'chunk_executor', 'watchdog_trips')
                                   - baseline.get('trips', 0.0))
    report['cmd_vel_messages'] = observer.cmd_count
    report['rss_samples'] = {name: [(round(t, 1), round(v, 1)) for t, v in series]
                             for name, series in rss_series.items()}


def format_report(report: dict) -> str:
    lines = [f"soak: {report['duration_s']:.0f} s ({report['warmup_s']:.0f} s warm-up), camera "
             f"{report['camera_rate_hz']:g} Hz, a new instruction every "
             f"{report['instruction_period_s']:g} s ({report['instructions_sent']} sent), "
             f"model {report['model']} ({report['backend']}/{report['device']})"]
    if report.get('startup_error'):
        lines.append(f"start-up failed: {report['startup_error']}")
        return '\n'.join(lines)
    lines.append(f"{'node':<16}{'RSS start':>11}{'warm':>9}{'end':>9}{'growth':>9}")
    for name, rss in report['rss_mb'].items():
        growth = rss['growth_pct']
        lines.append(f"{name:<16}{_mb(rss['start']):>11}{_mb(rss['after_warmup']):>9}"
                     f"{_mb(rss['end']):>9}{'-' if growth is None else f'{growth:+.1f}%':>9}")
    latency, inference = report['latency_ms'], report['inference_ms']
    lines += [
        f"chunks: {report['chunks']} at {report['chunk_rate_hz']} Hz (camera frames reaching "
        f"vla_node: {report['frames_received_hz']} Hz); stamp regressions "
        f"{report['chunk_stamp_regressions']}",
        f"camera stamp -> /cmd_vel latency: p50 {latency['p50']} ms, p99 {latency['p99']} ms "
        f"({latency['samples']} chunks); inference p50 {inference['p50']} ms, p99 {inference['p99']} ms",
        f"dropped frames: {report['dropped_frames']['total']} "
        f"(stale {report['dropped_frames']['frames_stale']}, undecodable "
        f"{report['dropped_frames']['frames_undecodable']}, overwritten "
        f"{report['dropped_frames']['frames_overwritten']}); watchdog trips "
        f"{report['watchdog_trips']}",
        f"node deaths: {report['node_deaths'] or 'none'}; exit codes on stop: {report['exit_codes']}",
    ]
    return '\n'.join(lines)


def _mb(value) -> str:
    return '-' if value is None else f'{value:.0f} MB'


def run(args) -> int:
    try:
        report = soak(args)
    except KeyboardInterrupt:
        print('soak interrupted; every node was stopped', file=sys.stderr)
        return 130
    problems = verdict(report)
    report['ok'], report['problems'] = not problems, problems
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
        print('PASS' if not problems else 'FAIL: ' + '; '.join(problems))
    return 0 if not problems else 1
