"""`python -m vla_nav replay BAG`: a bag through the policy + executor, compared against a reference.

Offline (default): the bag's camera, instruction (and odom, for models with state) messages are
fed in receive-time order, in recorded timing or as fast as possible (--fast), through the same
code as vla_node and chunk_executor: `vla_nav.core.image_decode` (via the data layer), the history
+ runtime `PolicyLoop` over `load_engine`, and `ChunkExecutor` ticked at control_rate on the bag's
clock. Bag time is the only clock, inference takes no bag time, so the output is deterministic:
for a frame received at r with header stamp s, its chunk is stamped s and reaches the executor at
r. A goal or stop instruction publishes an empty chunk (the preempt), as vla_node does.

--live: the same bag drives running vla_node + chunk_executor processes over DDS (loopback only;
`--spawn-nodes` starts them with --model/--backend): camera + instruction are published with
fresh stamps and /vla/action_chunk + /cmd_vel are recorded and mapped back onto the bag's clock.

Output: a bag (--out, default runs/replay/<bag name>) with the chunks (MultiDOFJointTrajectory,
header.stamp = frame stamp, points[i].velocities[0] = Twist, time_from_start = i*dt), cmd_vel and
the instructions.

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
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_nav.config import node_defaults, resolve_model_dir

LOG = logging.getLogger('vla_nav.replay')

GOLDEN_TOLERANCE = 1e-3      # max abs diff against a golden output (same model: ~bit identical)
LIVE_GOLDEN_TOLERANCE = 0.05  # --live: DDS timing shifts cmd_vel ticks (judged by mean abs diff)
LIVE_MISSING_FRACTION = 0.1  # --live: chunks of frames vla_node skipped while busy
RECORDED_TOLERANCE = 0.25    # MAE (m/s, rad/s) against recorded commands (the paper's bound)
DEFAULT_OUT_DIR = Path('runs') / 'replay'
REPLAY_MARKER = 'vla_nav_replay'   # custom_data key: a bag this tool wrote (safe to overwrite)
NS = 1_000_000_000


class ReplayError(RuntimeError):
    """The replay could not run (no nodes answered, output folder taken): exit 2, not 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    node = node_defaults('vla_node')
    parser.add_argument('bag', help='rosbag2 folder (mcap or sqlite3) with camera + instruction')
    parser.add_argument('--model', default=node['model'], help='checkpoint dir (default: models/default)')
    parser.add_argument('--backend', default=node['backend'],
                        help="onnx | torch | 'module:factory' (default from config)")
    parser.add_argument('--device', default=node['device'])
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


# --------------------------------------------------------------------------------------------
# What a replay produces


@dataclass
class ReplayOutput:
    """Produced messages on the bag's clock (integer ns)."""

    chunks: list = field(default_factory=list)        # (stamp_ns, receive_ns, actions (N,2), dt)
    commands: list = field(default_factory=list)      # (tick_ns, linear, angular)
    instructions: list = field(default_factory=list)  # (receive_ns, text)
    frames: int = 0
    frames_refused: int = 0
    errors: int = 0
    last_error: str = ''


def _frame_stamp_ns(msg, receive_ns: int) -> int:
    from vla_nav.ros.convert import stamp_to_ns
    stamp = stamp_to_ns(msg.header.stamp)
    return stamp if stamp > 0 else receive_ns


def replay_offline(bag: Path, engine, topics, fast: bool = True) -> ReplayOutput:
    """Feed the bag through PolicyLoop + ChunkExecutor on the bag's clock (see module doc)."""
    from vla_nav.core.executor import ChunkExecutor, ExecutorConfig
    from vla_nav.core.instruction import GOAL, STOP
    from vla_nav.data.bags import camera_to_rgb, in_stamp_order, iter_bag_messages, odom_of
    from vla_nav.runtime.loop import PolicyLoop

    loop = PolicyLoop(engine)
    executor = ChunkExecutor(ExecutorConfig.from_params(node_defaults('chunk_executor')))
    period_ns = int(round(NS / executor.config.control_rate))
    output = ReplayOutput()
    next_tick: int | None = None
    wall_start = time.monotonic()
    first_ns: int | None = None

    def tick_until(limit_ns: int, inclusive: bool) -> None:
        nonlocal next_tick
        while next_tick < limit_ns or (inclusive and next_tick == limit_ns):
            linear, angular = executor.tick(next_tick / NS)
            output.commands.append((next_tick, linear, angular))
            next_tick += period_ns

    last_ns = None
    largest_lag = 0.0
    kinds = ('camera', 'instruction', 'odom')
    for message in in_stamp_order(iter_bag_messages(bag, topics, kinds=kinds, clock='receive')):
        now_ns = message.receive_ns
        if first_ns is None:
            first_ns = next_tick = now_ns
        if not fast:
            delay = (now_ns - first_ns) / NS - (time.monotonic() - wall_start)
            if delay > 0:
                time.sleep(delay)
        tick_until(now_ns, inclusive=False)   # ticks strictly before this message see the past
        last_ns = now_ns
        now = now_ns / NS
        if message.kind == 'instruction':
            text = str(message.msg.data)
            output.instructions.append((now_ns, text))
            result = loop.set_instruction(text)
            if result.kind in (GOAL, STOP):
                stamp = loop.goal_start_stamp
                executor.preempt(stamp)
                output.chunks.append((int(round(stamp * NS)), now_ns, np.zeros((0, 2), np.float32),
                                      float(engine.spec.dt)))
        elif message.kind == 'odom':
            loop.update_odometry(*odom_of(message.msg))
        else:
            output.frames += 1
            stamp_ns = _frame_stamp_ns(message.msg, now_ns)
            largest_lag = max(largest_lag, abs(now_ns - stamp_ns) / NS)
            try:
                rgb = camera_to_rgb(message.msg)
            except Exception as error:   # a bad frame is refused, as in vla_node
                output.frames_refused += 1
                output.last_error = f'{type(error).__name__}: {error}'
                continue
            chunk = loop.step(rgb, stamp_ns / NS, now)
            if chunk is not None:
                executor.add_chunk(chunk.stamp, chunk.actions, chunk.dt, now)
                output.chunks.append((stamp_ns, now_ns, chunk.actions.copy(), chunk.dt))
    if last_ns is not None:
        tick_until(last_ns, inclusive=True)
    output.frames_refused += loop.stale_count
    output.errors = loop.error_count
    output.last_error = loop.last_error or output.last_error
    if output.frames and largest_lag > loop.max_image_age:
        output.last_error = (f'camera header stamps and bag receive times differ by up to '
                             f'{largest_lag:.3f} s (> max_image_age {loop.max_image_age} s): frames '
                             'were refused as stale; was the bag recorded with use_sim_time?')
    return output


# --------------------------------------------------------------------------------------------
# Live: the real nodes over DDS (loopback only)

LIVE_READY_TIMEOUT_S = 60.0   # model load (+ a first ONNX export) in a spawned vla_node
LIVE_LEAD_S = 0.2             # the first message is published this long after the start
STAMP_MATCH_NS = 1_000_000    # vla_node carries stamps as float seconds: match within 1 ms


def _spawn_nodes(args, topics, transport: str, domain_id: int, log_dir: Path):
    """vla_node + chunk_executor as processes (vla_nav.tools.procs), on our topics and model."""
    from vla_nav.tools.procs import NodeSuite
    suite = NodeSuite(log_dir, domain_id=domain_id)
    suite.start('vla_node', {
        'model': str(args.model or ''), 'backend': args.backend, 'device': args.device,
        'image_topic': topics.image, 'compressed_image_topic': topics.compressed_image,
        'image_transport': transport, 'instruction_topic': topics.instruction,
        'state_topic': topics.odom, 'chunk_topic': topics.chunk})
    suite.start('chunk_executor', {'chunk_topic': topics.chunk, 'cmd_vel_topic': topics.cmd_vel})
    return suite


def _to_rclpy(msg, msgtype: str, rclpy_type):
    """A rosbags message -> the rclpy message, through CDR (fields, not bytes, are what match)."""
    from rclpy.serialization import deserialize_message

    from vla_nav.data.bags import humble_typestore
    return deserialize_message(bytes(humble_typestore().serialize_cdr(msg, msgtype)), rclpy_type)


def replay_live(bag: Path, topics, args) -> ReplayOutput:
    """Publish the bag's camera + instruction to vla_node and record chunks + cmd_vel."""
    import os
    import tempfile
    import threading

    from vla_nav.config import use_loopback_ros
    from vla_nav.data.bags import COMPRESSED_IMAGE, bag_topics, in_stamp_order, iter_bag_messages

    if args.fast:
        LOG.warning('--live plays in recorded timing: vla_node keeps only the newest frame, so '
                    'a flood of frames would only be dropped')
    domain_id = args.domain_id if args.domain_id is not None else int(
        os.environ.get('ROS_DOMAIN_ID', '0'))
    use_loopback_ros()   # DDS discovery on loopback; the domain goes to our own context only
    compressed = topics.image not in bag_topics(bag) and topics.compressed_image in bag_topics(bag)
    suite = None
    if args.spawn_nodes:   # node logs go to a temp folder, named in any start-up error
        suite = _spawn_nodes(args, topics, 'compressed' if compressed else 'raw', domain_id,
                             Path(tempfile.mkdtemp(prefix='vla_nav_replay_')))

    import rclpy
    from geometry_msgs.msg import Twist, TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from vla_nav.ros import qos
    from vla_nav.ros.convert import MalformedChunkError, msg_to_chunk, stamp_to_ns
    from vla_nav.ros.runner import init_ros

    stamped = bool(node_defaults('chunk_executor')['stamped'])
    output = ReplayOutput()
    published: dict[int, int] = {}            # published frame stamp ns -> bag stamp ns
    received_chunks: list = []
    received_commands: list = []
    lock = threading.Lock()
    context = rclpy.Context()
    init_ros(context=context, domain_id=domain_id)
    node = rclpy.create_node('vla_nav_replay', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:   # callbacks run here; the main thread paces and publishes
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)

    def on_chunk(msg) -> None:
        try:   # a malformed chunk is rejected whole, as chunk_executor rejects it
            _, actions, dt = msg_to_chunk(msg)
        except MalformedChunkError as error:
            with lock:
                output.errors += 1
                output.last_error = f'malformed chunk skipped: {error}'
            return
        with lock:
            received_chunks.append((stamp_to_ns(msg.header.stamp), time.time_ns(),
                                    actions.astype(np.float32), dt))

    def on_cmd_vel(msg) -> None:
        twist = msg.twist if stamped else msg
        with lock:
            received_commands.append((time.time_ns(), twist.linear.x, twist.angular.z))

    try:
        camera_type = CompressedImage if compressed else Image
        camera_pub = node.create_publisher(
            camera_type, topics.compressed_image if compressed else topics.image,
            qos.sensor_qos())
        instruction_pub = node.create_publisher(String, topics.instruction, qos.latched_qos())
        reliable = qos.reliable_qos(depth=100)
        node.create_subscription(MultiDOFJointTrajectory, topics.chunk, on_chunk, reliable)
        node.create_subscription(TwistStamped if stamped else Twist, topics.cmd_vel, on_cmd_vel,
                                 reliable)
        spinner.start()
        deadline = time.monotonic() + LIVE_READY_TIMEOUT_S
        while not (camera_pub.get_subscription_count() and instruction_pub.get_subscription_count()
                   and received_commands):
            for name, code in (suite.dead() if suite else {}).items():
                raise ReplayError(f'{name} exited with {code}:\n'
                                 f'{suite.processes[name].log_tail()}')
            if time.monotonic() > deadline:
                raise ReplayError(f'no vla_node/chunk_executor answered on '
                                 f'{topics.image} / {topics.cmd_vel} within {LIVE_READY_TIMEOUT_S:.0f}'
                                 f' s (ROS_DOMAIN_ID={domain_id}, loopback only); start them or '
                                 'pass --spawn-nodes')
            time.sleep(0.05)

        offset_ns = None
        first_ns = last_ns = None
        for message in in_stamp_order(iter_bag_messages(bag, topics,
                                                        kinds=('camera', 'instruction'))):
            if offset_ns is None:
                first_ns = message.receive_ns
                offset_ns = time.time_ns() + int(LIVE_LEAD_S * NS) - first_ns
            delay = (message.receive_ns + offset_ns - time.time_ns()) / NS
            if delay > 0:
                time.sleep(delay)
            last_ns = message.receive_ns
            if message.kind == 'instruction':
                output.instructions.append((message.receive_ns, str(message.msg.data)))
                instruction_pub.publish(String(data=str(message.msg.data)))
                continue
            msgtype = COMPRESSED_IMAGE if compressed else message.msgtype
            frame = _to_rclpy(message.msg, msgtype, camera_type)
            bag_stamp = _frame_stamp_ns(message.msg, message.receive_ns)
            wire_stamp = bag_stamp + offset_ns
            frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(wire_stamp, NS)
            published[wire_stamp] = bag_stamp
            camera_pub.publish(frame)
            output.frames += 1
        if offset_ns is not None:   # let the last chunks and the executor's braking arrive
            tail = float(node_defaults('chunk_executor')['watchdog_timeout']) + 0.5
            time.sleep(tail)
    finally:
        spinning.clear()
        if spinner.is_alive():
            spinner.join(timeout=2)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        if suite is not None:
            suite.stop()
    if offset_ns is None:
        return output

    wire = np.array(sorted(published), np.int64)

    def to_bag_stamp(stamp: int) -> int:
        """A stamp vla_node sent back -> the bag stamp of the frame it names (0 stays 0)."""
        if stamp <= 0:
            return 0
        index = int(np.searchsorted(wire, stamp))
        candidates = wire[max(index - 1, 0):index + 1]
        if len(candidates):
            nearest = int(candidates[np.argmin(np.abs(candidates - stamp))])
            if abs(nearest - stamp) <= STAMP_MATCH_NS:
                return published[nearest]
        return stamp - offset_ns

    for stamp, receive, actions, dt in received_chunks:
        if receive - offset_ns >= first_ns:
            output.chunks.append((to_bag_stamp(stamp), receive - offset_ns, actions, dt))
    output.commands = [(receive - offset_ns, linear, angular)
                       for receive, linear, angular in received_commands
                       if first_ns <= receive - offset_ns <= last_ns]
    return output


# --------------------------------------------------------------------------------------------
# Output bag


def write_output(path: Path, output: ReplayOutput, topics, storage: str, source: Path) -> None:
    from vla_nav.data.bags import EpisodeBagWriter, bag_custom_data
    if path.exists():
        ours = (path / 'metadata.yaml').is_file() and REPLAY_MARKER in bag_custom_data(path)
        if not ours:
            raise ReplayError(f'{path} exists and is not a replay output; not overwriting')
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = bool(node_defaults('chunk_executor')['stamped'])
    records = ([(ns, 0, 'instruction', text) for ns, text in output.instructions]
               + [(receive, 1, 'chunk', (stamp, actions, dt))
                  for stamp, receive, actions, dt in output.chunks]
               + [(ns, 2, 'cmd_vel', (linear, angular)) for ns, linear, angular in output.commands])
    records.sort(key=lambda record: record[:2])
    with EpisodeBagWriter(path, topics=topics, storage=storage,
                          metadata={REPLAY_MARKER: '1', 'source': str(source)}) as writer:
        for ns, _, kind, value in records:
            if kind == 'instruction':
                writer.write_instruction(ns, value)
            elif kind == 'chunk':
                stamp, actions, dt = value
                writer.write_chunk(stamp, actions, dt, receive_ns=ns)
            else:
                writer.write_cmd_vel(ns, *value, stamped=stamped)


def read_output(path: Path, topics) -> tuple[list, np.ndarray]:
    """(chunks [(stamp_ns, actions)], cmd_vel (n, 3) [receive_ns, linear, angular]) of a bag."""
    from vla_nav.data.bags import chunk_of, iter_bag_messages, twist_of
    chunks, commands = [], []
    for message in iter_bag_messages(path, topics, kinds=('chunk', 'cmd_vel')):
        if message.kind == 'chunk':
            try:
                stamp, actions, _ = chunk_of(message.msg)
            except ValueError:   # malformed: rejected whole (vla_nav.ros.convert)
                continue
            chunks.append((stamp, actions))
        else:
            commands.append((message.receive_ns, *twist_of(message.msg)))
    return chunks, np.array(commands, np.float64).reshape(-1, 3)


# --------------------------------------------------------------------------------------------
# Comparisons


def _in_force(times_ns: np.ndarray, values: np.ndarray, query_ns: np.ndarray,
              timeout_ns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Newest value at or before each query time: (values (q, 2), known (q,) bool)."""
    index = np.searchsorted(times_ns, query_ns, side='right') - 1
    known = index >= 0
    if timeout_ns is not None:
        known &= query_ns - times_ns[np.maximum(index, 0)] <= timeout_ns
    picked = np.where(known[:, None], values[np.maximum(index, 0)], 0.0) if len(values) else \
        np.zeros((len(query_ns), 2))
    return picked, known


def compare_golden(ours_path: Path, golden_path: Path, topics, tolerance: float,
                   exact_timing: bool = True) -> dict:
    """Per-topic report of our output bag against a golden one.

    exact_timing (offline): every chunk and every cmd_vel tick must be there and differ by at
    most `tolerance`. Live runs depend on scheduling: up to LIVE_MISSING_FRACTION of the chunks
    may be missing (frames vla_node skipped), cmd_vel is judged by its mean abs diff.
    """
    ours_chunks, ours_cmd = read_output(ours_path, topics)
    gold_chunks, gold_cmd = read_output(golden_path, topics)

    def keyed(chunks):
        keys, seen = {}, {}
        for stamp, actions in chunks:
            occurrence = seen[stamp] = seen.get(stamp, -1) + 1
            keys[(stamp, occurrence)] = actions
        return keys

    ours, gold = keyed(ours_chunks), keyed(gold_chunks)
    diffs, mismatched = [], 0
    for key in ours.keys() & gold.keys():
        if ours[key].shape != gold[key].shape:
            mismatched += 1
        elif ours[key].size:
            diffs.append(np.abs(ours[key] - gold[key]).ravel())
    chunk_diff = np.concatenate(diffs) if diffs else np.zeros(0)
    chunk_report = {
        'count': len(ours), 'golden_count': len(gold), 'missing': len(gold.keys() - ours.keys()),
        'extra': len(ours.keys() - gold.keys()), 'shape_mismatch': mismatched,
        'max_abs_diff': float(chunk_diff.max(initial=0.0)),
        'mean_abs_diff': float(chunk_diff.mean()) if chunk_diff.size else 0.0}
    allowed_missing = 0 if exact_timing else int(LIVE_MISSING_FRACTION * len(gold))
    chunk_report['ok'] = (chunk_report['missing'] <= allowed_missing
                          and chunk_report['extra'] == mismatched == 0
                          and chunk_report['max_abs_diff'] <= tolerance)

    gold_times = gold_cmd[:, 0].astype(np.int64)
    values, known = _in_force(ours_cmd[:, 0].astype(np.int64), ours_cmd[:, 1:], gold_times)
    cmd_diff = np.abs(values - gold_cmd[:, 1:])[known]
    cmd_report = {
        'count': len(ours_cmd), 'golden_count': len(gold_cmd),
        'missing': int((~known).sum()),
        'max_abs_diff': float(cmd_diff.max(initial=0.0)),
        'mean_abs_diff': float(cmd_diff.mean()) if cmd_diff.size else 0.0}
    if exact_timing:
        cmd_report['ok'] = (len(ours_cmd) == len(gold_cmd) and cmd_report['missing'] == 0
                            and cmd_report['max_abs_diff'] <= tolerance)
    else:
        cmd_report['ok'] = bool(cmd_diff.size) and cmd_report['mean_abs_diff'] <= tolerance
    return {topics.chunk: chunk_report, topics.cmd_vel: cmd_report}


def compare_recorded(output: ReplayOutput, bag: Path, topics, tolerance: float) -> dict:
    """MAE (m/s, rad/s) of our chunks and cmd_vel against the bag's recorded cmd_vel."""
    from vla_nav.data.bags import iter_bag_messages, twist_of
    recorded = [(m.receive_ns, *twist_of(m.msg))
                for m in iter_bag_messages(bag, topics, kinds=('cmd_vel',))]
    if not recorded:
        return {topics.cmd_vel: {'ok': False, 'error': f'{bag} has no recorded {topics.cmd_vel}'}}
    recorded = np.array(recorded, np.float64)
    times = recorded[:, 0].astype(np.int64)
    end_ns = int(times[-1])
    timeout_ns = int(round(float(node_defaults('sim_node')['cmd_vel_timeout']) * NS))
    goal_starts = np.array(sorted(ns for ns, _ in output.instructions), np.int64)

    def reference(query: np.ndarray, since_ns) -> np.ndarray:
        """Recorded command in force at each query time; 0 when stale or from an older goal."""
        target, known = _in_force(times, recorded[:, 1:], query, timeout_ns)
        index = np.maximum(np.searchsorted(times, query, side='right') - 1, 0)
        return np.where((known & (times[index] >= since_ns))[:, None], target, 0.0)

    errors, steps = [], []
    for stamp, _, actions, dt in output.chunks:
        if not len(actions):
            continue
        query = stamp + np.round(np.arange(len(actions)) * dt * NS).astype(np.int64)
        earlier = goal_starts[goal_starts <= stamp]
        later = goal_starts[goal_starts > stamp]
        segment_start = int(earlier[-1]) if len(earlier) else int(times[0])
        segment_end = int(later[0]) if len(later) else end_ns + 1
        # steps are judged within the chunk's instruction segment and the recording
        valid = (query < segment_end) & (query <= end_ns)
        errors.append(np.abs(actions - reference(query, segment_start))[valid])
        steps.append(np.arange(len(actions))[valid])
    chunk_err = np.concatenate(errors) if errors else np.zeros((0, 2))
    chunk_steps = np.concatenate(steps) if steps else np.zeros(0, np.int64)
    per_step = [[float(v) for v in chunk_err[chunk_steps == i].mean(axis=0)]
                for i in range(int(chunk_steps.max(initial=-1)) + 1)]
    chunk_mae = chunk_err.mean(axis=0) if len(chunk_err) else np.full(2, np.nan)
    chunk_report = {'count': len(output.chunks), 'steps_compared': int(len(chunk_err)),
                    'mae_linear': float(chunk_mae[0]), 'mae_angular': float(chunk_mae[1]),
                    'mae_per_step': per_step}
    chunk_report['ok'] = bool(len(chunk_err)) and bool(np.all(chunk_mae <= tolerance))

    ours = np.array(output.commands, np.float64).reshape(-1, 3)
    started = ours[:, 0] >= (goal_starts[0] if len(goal_starts) else np.inf)
    ours = ours[started & (ours[:, 0] <= end_ns)]
    tick_times = ours[:, 0].astype(np.int64)
    segment_index = np.maximum(np.searchsorted(goal_starts, tick_times, side='right') - 1, 0)
    since = goal_starts[segment_index] if len(goal_starts) else np.zeros(len(ours), np.int64)
    target = reference(tick_times, since)
    cmd_err = np.abs(ours[:, 1:] - target)
    cmd_mae = cmd_err.mean(axis=0) if len(cmd_err) else np.full(2, np.nan)
    cmd_report = {'count': len(output.commands), 'ticks_compared': int(len(cmd_err)),
                  'mae_linear': float(cmd_mae[0]), 'mae_angular': float(cmd_mae[1])}
    cmd_report['ok'] = bool(len(cmd_err)) and bool(np.all(cmd_mae <= tolerance))
    return {topics.chunk: chunk_report, topics.cmd_vel: cmd_report}


# --------------------------------------------------------------------------------------------
# CLI


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
            output = replay_live(bag, topics, args)
            backend = args.backend
        else:
            from vla_nav.runtime import ModelLoadError, load_engine
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
