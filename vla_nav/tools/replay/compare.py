"""Checks of a replay: against a golden output bag, or against the bag's recorded commands."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_nav.data.dataset import DEFAULT_COMMAND_TIMEOUT
from vla_nav.tools.replay.common import NS, ReplayOutput, read_output

GOLDEN_TOLERANCE = 1e-3      # max abs diff against a golden output (same model: ~bit identical)
LIVE_GOLDEN_TOLERANCE = 0.05  # --live: DDS timing shifts cmd_vel ticks (judged by mean abs diff)
LIVE_MISSING_FRACTION = 0.1  # --live: chunks of frames vla_node skipped while busy
RECORDED_TOLERANCE = 0.25    # MAE (m/s, rad/s) against recorded commands (the paper's bound)


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
    timeout_ns = int(round(DEFAULT_COMMAND_TIMEOUT * NS))
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
