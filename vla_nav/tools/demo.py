"""`python -m vla_nav demo` (what `make demo` runs): the real nodes drive the built-in robot.

sim_node (the simulated robot, in the world the model learned: its eval.json's "world", see
sim_node_params; --world forces one), vla_node (the default model unless --model) and chunk_executor
start as separate processes with the launch file's parameters (config/vla_nav.yaml), DDS on
loopback and a private ROS_DOMAIN_ID (vla_nav.tools.procs). Once every node is up — the first run
exports the model to ONNX, which the start-up line says — the demo reads the room from /sim/scene
and sends instructions that fit it (vla_nav.sim.goals): go to an object in view, turn, go
forward, search (an object out of view), a two-step goal ("turn left, then go forward 1 meter"),
go to another object, stop. sim_node judges each goal; the demo shows one live line per
instruction (elapsed time, what is left to do, the robot's own goal status) and its outcome:
reached, collided, timed out — beside what the ROBOT thinks (vla_node's goal status, its
robot-side done rule: vla_nav.core.goal), e.g. `sim: reached in 4.1 s | robot: done 2/2`. The v1
sim judges a two-step goal by its final forward distance only (vla_nav.sim.goals), the v2 sim
each step (multi_step); what the sim's verdict covers is the kind its status names. Search and
two-step goals go beyond what a v1 model was trained on and may well fail: that is reported, not
an error.

Outputs in --out (demo_out/): trajectory.png (top-down room, paths, targets), camera.gif (the
camera with each predicted chunk drawn on it), summary.json (per instruction: text, outcome, time,
path length, the robot's last goal status; totals; model, backend, chunk rate, latency), logs/
(each node's log, command line and parameter file).

Exit status 0 when the run itself worked: every node came up and stayed up, chunks flowed, the
outputs were written. A goal the robot does not reach is reported, not an error. Ctrl-C (or
SIGTERM) stops every node in order — vla_node, chunk_executor (its last /cmd_vel is zero),
sim_node — and exits 130.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vla_nav.cli import add_model_arguments

DEFAULT_OUT = 'demo_out'
STARTUP_TIMEOUT_S = 900.0        # the first run exports ONNX graphs before vla_node is up
GOAL_TIME_MARGIN_S = 15.0        # wall seconds beyond the sim's own time limit before giving up
DEFAULT_TIME_LIMIT_S = 60.0      # when sim_node does not say
GIF_PERIOD_S = 0.2               # robot-time seconds between GIF frames
GIF_MAX_FRAMES = 300             # longer runs are thinned evenly
FRAMES_KEPT_MAX = 3000
ACK_TIME_S = 0.25               # episode clock of the status sim_node publishes on a new goal
SETTLE_S = 0.5                   # between goals: let the executor brake before the next one
ROBOT_SETTLE_S = 1.5             # robot s to wait for the robot's own verdict after the sim's
OUTCOME_WORDS = {'success': 'reached', 'collision': 'collided', 'timeout': 'timed out',
                 'failure': 'failed', 'not_understood': 'not understood by the sim',
                 'no_result': 'no result from the sim'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument('--seed', type=int, default=0, help='room seed of the simulated robot')
    parser.add_argument('--split', default='test', choices=('train', 'test'),
                        help='scene split (default test: rooms the model never saw)')
    parser.add_argument('--goals', type=int, default=7,
                        help='instructions to send (default 7: one of each kind, see vla_nav.sim.goals)')
    parser.add_argument('--out', default=DEFAULT_OUT, help=f'output folder (default {DEFAULT_OUT})')
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='simulate X times faster than real time (nodes use /clock)')
    parser.add_argument('--no-video', action='store_true', help='skip the camera GIF')
    parser.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID (default: private)')
    parser.add_argument('--startup-timeout', type=float, default=STARTUP_TIMEOUT_S)
    parser.add_argument('--world', choices=('model', 'v1', 'v2'), default='model',
                        help="the simulated world (default: the one the model learned, its eval.json's "
                             '"world"; vla_nav.config.model_world)')


def sim_node_params(args) -> dict:
    """sim_node's parameters for this demo: the room, the pace, and the world the model learned
    (--world model: vla_nav.config.resolve_sim_world of --model), so a v2 model drives in v2."""
    from vla_nav.config import resolve_sim_world
    rtf = float(args.real_time_factor)
    return {'seed': args.seed, 'split': args.split, 'real_time_factor': rtf,
            'publish_clock': rtf != 1.0, 'world': resolve_sim_world(args.world, args.model)}


@dataclass
class GoalResult:
    text: str
    kind: str
    outcome: str                     # success | collision | timeout | failure | not_understood | ...
    time_s: float | None             # robot time from the goal to its outcome (sim's clock)
    path_length_m: float | None
    wall_s: float
    target: dict | None = None
    metrics: dict = field(default_factory=dict)
    robot: dict | None = None        # vla_node's last goal status record for it (vla_nav.core.goal)
    judged_as: str = ''              # what the sim's verdict covers (vla_nav.sim.goals)


# --- live progress -------------------------------------------------------------------------------
class ProgressLine:
    """One rewritable line on a terminal; plain lines (final results only) otherwise."""

    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._width = 0

    def update(self, text: str) -> None:
        if self.live:
            self.stream.write('\r' + text.ljust(self._width))
            self.stream.flush()
            self._width = len(text)

    def done(self, text: str) -> None:
        if self.live:
            self.stream.write('\r' + text.ljust(self._width) + '\n')
        else:
            self.stream.write(text + '\n')
        self.stream.flush()
        self._width = 0


def remaining_text(goal, start_pose, pose) -> str:
    """What is left of a goal, in the units an operator thinks in."""
    if pose is None:
        return ''
    if goal.target:   # goto, search, a two-step goal that ends at an object
        position = goal.target['position']
        gap = math.hypot(position[0] - pose[0], position[1] - pose[1]) - goal.target['radius']
        return f'{max(gap, 0.0):4.2f} m to the {goal.target["name"]}'
    if goal.kind in ('forward', 'two_step') and start_pose is not None:
        travelled = math.hypot(pose[0] - start_pose[0], pose[1] - start_pose[1])
        return f'{travelled:4.2f} of {goal.parameters["distance"]:g} m'
    if goal.kind == 'turn' and start_pose is not None:
        turned = math.degrees(abs((pose[2] - start_pose[2] + math.pi) % (2 * math.pi) - math.pi))
        return f'turned {turned:3.0f} of 90 deg'
    return ''


# --- what the robot thinks ------------------------------------------------------------------------
class RobotGoals:
    """vla_node's goal-status records (vla/goal_status, transient local), newest per text."""

    def __init__(self, node, topic: str) -> None:
        from std_msgs.msg import String

        from vla_nav.ros.goal_views import status_qos
        self.records: list[dict] = []   # every transition: a new goal sends two records at once
        node.create_subscription(String, topic, self._on_status, status_qos())

    def _on_status(self, msg) -> None:
        try:
            self.records.append(json.loads(msg.data))
        except ValueError:
            pass

    def newest(self, text: str, since: int) -> dict | None:
        return next((record for record in reversed(self.records[since:])
                     if record.get('text') == text), None)


def robot_text(record: dict | None) -> str:
    """'robot: active 1/2 (0.40)' / 'robot: refused: why' / '' before any status."""
    if record is None:
        return 'robot: (no status yet)'
    steps = f" {record['step']}/{record['steps']}" if record.get('steps') else ''
    estimate = f" ({record['done_estimate']:.2f})" if record['state'] == 'active' else ''
    reason = f": {record['reason']}" if record['state'] in ('refused', 'failed') else ''
    return f"robot: {record['state']}{steps}{estimate}{reason}"


# --- the camera GIF ------------------------------------------------------------------------------
class ChunkFilm:
    """Keeps (frame, chunk, caption) every GIF_PERIOD_S of robot time; draws them at the end."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.caption = ''
        self.shots: list[tuple[float, np.ndarray, np.ndarray, str]] = []
        self._last = -math.inf
        self.dt = 0.1

    def on_chunk(self, stamp: float, actions: np.ndarray, frame: np.ndarray | None) -> None:
        if not self.enabled or frame is None or stamp - self._last < GIF_PERIOD_S \
                or len(self.shots) >= FRAMES_KEPT_MAX:
            return
        self._last = stamp
        self.shots.append((stamp, frame, actions, self.caption))

    def write(self, path: Path) -> Path | None:
        import imageio.v2 as imageio

        from vla_nav.tools.overlay import camera_model, draw_chunk
        if not self.shots:
            return None
        step = max(1, math.ceil(len(self.shots) / GIF_MAX_FRAMES))
        camera = camera_model()
        frames = [draw_chunk(frame, actions, self.dt, caption, camera=camera)
                  for _, frame, actions, caption in self.shots[::step]]
        imageio.mimsave(path, frames, duration=GIF_PERIOD_S * step, loop=0)
        return path


# --- the run -------------------------------------------------------------------------------------
def _status_matches(status: dict | None, text: str) -> bool:
    return status is not None and str(status.get('instruction', '')).strip().lower() \
        == text.strip().lower()


class _GoalStatus:
    """sim_node's word on ONE goal: statuses from its acknowledgement on (the status sim_node
    publishes on receipt, episode clock at 0), so a late status of an earlier goal with the same
    words is never taken for this one."""

    def __init__(self, observer, text: str) -> None:
        self.observer, self.text = observer, text
        self.first = len(observer.statuses)
        self.acknowledged: int | None = None

    def _is_acknowledgement(self, status: dict) -> bool:
        return (_status_matches(status, self.text) and float(status.get('time') or 0.0) <= ACK_TIME_S
                and (status.get('outcome') == 'running' or not status.get('kind')))

    def newest(self) -> dict | None:
        statuses = self.observer.statuses
        if self.acknowledged is None:
            self.acknowledged = next((index for index in range(self.first, len(statuses))
                                      if self._is_acknowledgement(statuses[index])), None)
            if self.acknowledged is None:
                return None
        return next((status for status in reversed(statuses[self.acknowledged:])
                     if _status_matches(status, self.text)), None)

    def finished(self) -> bool:
        status = self.newest()
        return status is not None and status.get('outcome') not in (None, 'running')


def outcome_of(status: dict | None) -> str:
    """The demo's word for a goal's last status (no_result, not_understood, timeout, ...)."""
    if status is None:
        return 'no_result'
    if status.get('kind') in (None, '') and status.get('outcome') in (None, 'failure'):
        return 'not_understood'
    outcome = status.get('outcome') or 'no_result'
    return 'timeout' if outcome == 'running' else outcome


def drive_goal(observer, suite, goal, index: int, count: int, real_time_factor: float,
               line: ProgressLine, robot: RobotGoals | None = None) -> GoalResult:
    """Send one instruction and follow it until sim_node reports an outcome."""
    from vla_nav.tools.observer import raise_if_dead

    started = time.monotonic()
    start_pose = observer.pose
    tracker = _GoalStatus(observer, goal.text)
    robot_mark = len(robot.records) if robot else 0
    observer.send_instruction(goal.text)
    label = f'[{index}/{count}] {goal.text}'

    def robot_now() -> dict | None:
        return robot.newest(goal.text, robot_mark) if robot else None

    def show() -> None:
        raise_if_dead(suite)
        elapsed = time.monotonic() - started
        thinks = f'  | {robot_text(robot_now())}' if robot else ''
        line.update(f'{label:<42} {elapsed * real_time_factor:5.1f} s  '
                    f'{remaining_text(goal, start_pose, observer.pose)}{thinks}')

    limit = DEFAULT_TIME_LIMIT_S
    observer.wait_for(lambda: tracker.newest() is not None, 5.0, show)
    status = tracker.newest()
    if status is not None and status.get('time_limit'):
        limit = float(status['time_limit'])
    observer.wait_for(tracker.finished, limit / real_time_factor + GOAL_TIME_MARGIN_S, show)
    if robot is not None:   # the robot's done rule needs a few still chunks after the sim's verdict
        observer.wait_for(lambda: (robot_now() or {}).get('state') not in (None, 'active'),
                          ROBOT_SETTLE_S / real_time_factor, show)
    status = tracker.newest()
    wall = time.monotonic() - started
    outcome = outcome_of(status)
    metrics = dict((status or {}).get('metrics') or {})
    time_s = metrics.get('time_to_goal')
    if time_s is None:   # not reached: how long it tried
        time_s = metrics.get('time', (status or {}).get('time'))
    path = metrics.get('path_length')
    result = GoalResult(goal.text, goal.kind, outcome, _round(time_s), _round(path), round(wall, 2),
                        goal.target, metrics, robot_now(),
                        (status or {}).get('kind') or getattr(goal, 'sim_kind', goal.kind))
    word = OUTCOME_WORDS.get(outcome, outcome)
    timing = '' if result.time_s is None else \
        f' {"in" if outcome == "success" else "after"} {result.time_s:.1f} s'
    distance = f' (path {result.path_length_m:.2f} m)' if result.path_length_m is not None else ''
    covers = f' [sim judges it as {result.judged_as}]' if result.judged_as != goal.kind else ''
    thinks = f' | {robot_text(result.robot)}' if robot else ''
    line.done(f'{label:<42} sim: {word}{timing}{distance}{covers}{thinks}')
    return result


def _round(value, digits: int = 3):
    return round(float(value), digits) if isinstance(value, (int, float)) and math.isfinite(value) \
        else None


def _check_model(args) -> str | None:
    from vla_nav.config import resolve_model_dir
    if args.backend not in ('onnx', 'torch'):
        return None   # a custom engine factory decides for itself
    model_dir = resolve_model_dir(args.model)
    if not (model_dir / 'config.json').is_file():
        return (f'no model at {model_dir} (config.json missing): pass --model DIR, or restore '
                'models/default (see models/default/RECIPE.md)')
    return None


class _Terminate(KeyboardInterrupt):
    """SIGTERM takes the same clean way out as Ctrl-C."""


def _raise_terminate(signum, frame):
    raise _Terminate()


def demo(args, line: ProgressLine) -> dict:
    from vla_nav.config import resolve_model_dir, use_loopback_ros
    from vla_nav.sim.goals import layout_from_scene
    from vla_nav.tools.observer import (
        SuiteError,
        SuiteObserver,
        exporting_onnx,
        stop_suite,
        wait_for_suite,
    )
    from vla_nav.tools.procs import NodeSuite, private_domain_id

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rtf = float(args.real_time_factor)
    sim_time = rtf != 1.0
    domain_id = private_domain_id() if args.domain_id is None else args.domain_id
    use_loopback_ros(domain_id)
    os.environ['ROS_LOG_DIR'] = str(out / 'logs' / 'ros')
    model = str(resolve_model_dir(args.model)) if args.backend in ('onnx', 'torch') \
        else args.model or 'none (engine factory)'
    sim_params = sim_node_params(args)
    summary: dict = {'model': model, 'backend': args.backend, 'device': args.device,
                     'world': sim_params['world'],
                     'seed': args.seed, 'split': args.split, 'real_time_factor': rtf,
                     'domain_id': domain_id, 'instructions': [], 'problems': []}
    film = ChunkFilm(enabled=not args.no_video)
    suite = NodeSuite(out, domain_id=domain_id)
    observer = None
    line.done(f'vla_nav demo: model {model} (backend {args.backend}, device {args.device}), '
              f'{sim_params["world"]} world, room seed {args.seed} ({args.split} split), '
              f'ROS_DOMAIN_ID {domain_id} on loopback, '
              f'x{rtf:g} real time')
    try:
        suite.start('sim_node', sim_params)
        node_params = {'use_sim_time': sim_time}
        suite.start('vla_node', {**node_params, 'model': args.model, 'backend': args.backend,
                                 'device': args.device})
        suite.start('chunk_executor', node_params)
        observer = SuiteObserver('vla_nav_demo', use_sim_time=sim_time, keep_frames=film.enabled,
                                 on_chunk=film.on_chunk)
        from vla_nav.config import load_config
        robot = RobotGoals(observer.node, load_config().vla_node.goal_status_topic)

        def startup_progress(elapsed: float, ready: dict[str, bool]) -> None:
            parts = []
            for name, ok in ready.items():
                state = 'ready' if ok else 'starting'
                if name == 'vla_node' and not ok:
                    state = ('exporting the model to ONNX (first run only)' if exporting_onnx(suite)
                             else 'loading the model')
                parts.append(f'{name} {state}')
            line.update(f'starting {elapsed:5.1f} s: ' + ', '.join(parts))

        try:
            startup = wait_for_suite(observer, suite, args.startup_timeout, startup_progress)
        except SuiteError as error:
            line.done('')
            summary['problems'].append(f'start-up failed: {error}')
            return summary
        summary['startup_s'] = round(startup, 1)
        line.done(f'nodes up in {startup:.1f} s; logs in {suite.log_dir}')
        layout = layout_from_scene(observer.scene)
        summary['scene'] = {key: observer.scene.get(key) for key in ('split', 'seed', 'episode',
                                                                     'room', 'fingerprint')}
        trajectories = _drive_goals(args, observer, suite, layout, film, line, robot, summary)
        summary['figures'] = _figures(observer)
        _write_outputs(out, layout, trajectories, film, summary)
    finally:
        summary.update(stop_suite(suite, observer))
    return summary


def _drive_goals(args, observer, suite, layout, film, line, robot, summary) -> list[dict]:
    """Plan and drive --goals goals in turn; each result goes into summary['instructions']."""
    from vla_nav.sim.goals import goal_sequence, plan_with_fallback
    trajectories = []
    visited: tuple[str, ...] = ()
    kinds = goal_sequence(args.goals)
    rtf = float(args.real_time_factor)
    for index, kind in enumerate(kinds, start=1):
        pose = observer.pose or layout.start_pose
        goal = plan_with_fallback(kind, layout, pose, visited)
        if goal.kind in ('goto', 'search'):
            visited += (goal.target['name'],)
        film.caption = goal.text
        first_sample = len(observer.trajectory)
        result = drive_goal(observer, suite, goal, index, len(kinds), rtf, line, robot)
        summary['instructions'].append(asdict(result))
        poses = [sample[1:] for sample in observer.trajectory[first_sample:]]
        if poses:
            target = next((obj for obj in layout.objects
                           if goal.target and obj.name == goal.target['name']), None)
            trajectories.append({'poses': poses, 'outcome': result.outcome, 'target': target,
                                 'label': f'{index}. {goal.text}'})
        observer.spin_for(SETTLE_S / rtf)
    return trajectories


def _figures(observer) -> dict:
    vla = observer.diagnostics.get('vla_node', {})
    return {
        'chunks': observer.chunk_count,
        'chunk_rate_hz': _round(observer.chunk_rate(), 2),
        'latency_ms': {'p50': _round(observer.latency.percentile_ms(50), 1),
                       'p99': _round(observer.latency.percentile_ms(99), 1),
                       'what': 'camera stamp of the newest frame a chunk saw -> first /cmd_vel after it'},
        'inference_ms': {'p50': _round(vla.get('inference_p50_ms'), 2),
                         'p99': _round(vla.get('inference_p99_ms'), 2)},
        'cmd_vel_messages': observer.cmd_count,
        'camera_frames_seen': observer.frame_count,
    }


def _write_outputs(out: Path, layout, trajectories, film: ChunkFilm, summary: dict) -> None:
    from vla_nav.sim import plot_topdown
    results = summary['instructions']
    reached = sum(result['outcome'] == 'success' for result in results)
    summary['totals'] = {
        'instructions': len(results), 'reached': reached,
        'collided': sum(result['outcome'] == 'collision' for result in results),
        'timed_out': sum(result['outcome'] == 'timeout' for result in results),
        'other': sum(result['outcome'] not in ('success', 'collision', 'timeout')
                     for result in results),
        'success_rate': round(reached / len(results), 3) if results else None,
        'robot_time_s': _round(sum(result['time_s'] or 0.0 for result in results), 2),
        'path_length_m': _round(sum(result['path_length_m'] or 0.0 for result in results), 2),
    }
    outputs = {'summary_json': str(out / 'summary.json'), 'logs': str(out / 'logs')}
    outputs['trajectory_png'] = str(plot_topdown(layout, trajectories, out / 'trajectory.png'))
    if film.enabled:
        gif = film.write(out / 'camera.gif')
        outputs['camera_gif'] = str(gif) if gif else None
    summary['outputs'] = outputs


def problems_of(summary: dict) -> list[str]:
    """Why the run itself did not work (unreached goals are results, not problems)."""
    problems = list(summary.get('problems', []))
    if problems:
        return problems
    if not summary.get('figures', {}).get('chunks'):
        problems.append('no action chunks flowed from vla_node')
    outputs = summary.get('outputs', {})
    for key in ('trajectory_png', 'camera_gif'):
        if key in outputs and not (outputs[key] and Path(outputs[key]).is_file()):
            problems.append(f'{key} was not written')
    deaths = {name: code for name, code in summary.get('exit_codes', {}).items() if code not in (0,)}
    if deaths:
        problems.append(f'nodes did not exit cleanly: {deaths}')
    return problems


def run(args) -> int:
    line = ProgressLine()
    problem = _check_model(args)
    if problem:
        print(f'demo: {problem}', file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _raise_terminate)
    try:
        summary = demo(args, line)
    except KeyboardInterrupt:
        line.done('interrupted: every node stopped (vla_node, chunk_executor with a zero '
                  '/cmd_vel, sim_node)')
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    problems = problems_of(summary)
    summary['ok'], summary['problems'] = not problems, problems
    out = Path(args.out)
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    totals, figures = summary.get('totals'), summary.get('figures')
    if totals:
        print(f"reached {totals['reached']} of {totals['instructions']} "
              f"(collided {totals['collided']}, timed out {totals['timed_out']}); "
              f"path {totals['path_length_m']} m in {totals['robot_time_s']} s of robot time")
    if figures:
        print(f"chunks: {figures['chunks']} at {figures['chunk_rate_hz']} Hz; camera stamp -> "
              f"/cmd_vel p50 {figures['latency_ms']['p50']} ms; inference p50 "
              f"{figures['inference_ms']['p50']} ms")
    for key, path in summary.get('outputs', {}).items():
        print(f'  {key:<15} {path}')
    if problems:
        print('demo FAILED: ' + '; '.join(problems), file=sys.stderr)
        return 1
    return 0
