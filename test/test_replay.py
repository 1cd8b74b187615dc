"""`python -m vla_nav replay`: a bag through the test policy + executor, golden and recorded checks."""
import json
import zlib

import numpy as np
import pytest
from policies import LINEAR_GAIN, TURN_BIAS

from vla_nav.cli import main
from vla_nav.data.bags import EpisodeBagWriter, chunk_of, iter_bag_messages, twist_of

MS = 1_000_000
BACKEND = 'policies:make_engine'
GOALS = ((1000, 'go left', 12), (2500, 'turn right', 6), (3200, 'stop', 4))   # start ms, text, frames


def _brightness(frame_number):
    return 10 * frame_number + 5


def _write_input(path, storage, commands=None):
    """Grey frames (bgr8, padded rows) at 10 Hz per goal, with recorded cmd_vel (default: close
    to what the test policy does, turning like the goal says)."""
    with EpisodeBagWriter(path, storage=storage) as writer:
        frame_number = 0
        for start, text, frames in GOALS:
            writer.write_instruction(start * MS, text)
            for k in range(frames):
                stamp = (start + 100 * k) * MS
                grey = np.full((24, 40, 3), _brightness(frame_number), np.uint8)
                writer.write_image(stamp, grey, encoding='bgr8', row_padding=8)
                turn = 0.0 if text == 'stop' else TURN_BIAS if 'left' in text else -TURN_BIAS
                linear, angular = commands or (0.1 * (text != 'stop'), turn)
                writer.write_cmd_vel(stamp, linear, angular)
                frame_number += 1


def _replay(capsys, *args):
    code = main(['replay', *map(str, args), '--backend', BACKEND, '--fast', '--json'])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _expected_chunks():
    """(stamp ns, linear, angular) per frame: mean brightness of the 8-frame window (the oldest
    frame of a goal repeats until the ring is full), turn bias from the goal; stop: no chunks."""
    expected, frame_number = [], 0
    for start, text, frames in GOALS:
        window = []
        for k in range(frames):
            window.append(_brightness(frame_number) / 255.0)
            frame_number += 1
            if text == 'stop':
                continue
            padded = [window[0]] * (8 - len(window[-8:])) + window[-8:]
            turn = TURN_BIAS if 'left' in text else -TURN_BIAS
            expected.append(((start + 100 * k) * MS, LINEAR_GAIN * np.mean(padded), turn))
    return expected


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_replay_produces_the_policy_chunks_and_executor_commands(tmp_path, capsys, storage):
    _write_input(tmp_path / 'in', storage)
    code, summary = _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'out')
    assert code == 0 and summary['ok'] and summary['mode'] == 'recorded'
    assert summary['frames'] == 22 and summary['errors'] == 0

    chunks, commands = [], []
    for message in iter_bag_messages(tmp_path / 'out'):
        if message.kind == 'chunk':
            chunks.append(chunk_of(message.msg))
        elif message.kind == 'cmd_vel':
            commands.append((message.stamp_ns, *twist_of(message.msg)))
    produced = [(stamp, actions) for stamp, actions, _ in chunks if len(actions)]
    expected = _expected_chunks()
    assert [stamp for stamp, _ in produced] == [stamp for stamp, _, _ in expected]
    for (_, actions), (_, linear, angular) in zip(produced, expected, strict=True):
        assert actions.shape == (10, 2)
        np.testing.assert_allclose(actions, np.tile([linear, angular], (10, 1)), atol=1e-5)
    assert all(dt == pytest.approx(0.1) for _, actions, dt in chunks if len(actions))
    # one preempt (empty chunk) per goal, stamped with the newest frame seen before it
    preempts = [stamp for stamp, actions, _ in chunks if not len(actions)]
    assert preempts == [0, 2100 * MS, 3000 * MS]

    # cmd_vel every control tick on the bag clock: turns left, then right, then brakes to 0.0
    stamps = [stamp for stamp, _, _ in commands]
    assert np.all(np.diff(stamps) == 50 * MS) and stamps[0] == 1000 * MS
    by_time = {stamp: (linear, angular) for stamp, linear, angular in commands}
    assert by_time[2400 * MS][1] > 0.3 and by_time[3100 * MS][1] < -0.3
    assert by_time[3500 * MS] == (0.0, 0.0)


def test_golden_passes_against_itself_and_fails_when_perturbed(tmp_path, capsys):
    _write_input(tmp_path / 'in', 'mcap')
    assert _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'golden')[0] == 0
    code, summary = _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'out', '--golden',
                            tmp_path / 'golden')
    assert code == 0 and summary['mode'] == 'golden'
    assert all(report['max_abs_diff'] == 0.0 for report in summary['topics'].values())

    # a golden whose 5th chunk differs by 0.01 and whose cmd_vel misses a tick
    with EpisodeBagWriter(tmp_path / 'perturbed') as writer:
        chunk_number = tick_number = 0
        for message in iter_bag_messages(tmp_path / 'golden'):
            if message.kind == 'chunk':
                stamp, actions, dt = chunk_of(message.msg)
                chunk_number += 1
                if chunk_number == 5:
                    actions = actions + 0.01
                writer.write_chunk(stamp, actions, dt, receive_ns=message.receive_ns)
            elif message.kind == 'cmd_vel':
                tick_number += 1
                if tick_number != 3:
                    writer.write_cmd_vel(message.receive_ns, *twist_of(message.msg))
    code, summary = _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'out', '--golden',
                            tmp_path / 'perturbed')
    assert code == 1 and not summary['ok']
    chunk_report, cmd_report = summary['topics']['/vla/action_chunk'], summary['topics']['/cmd_vel']
    assert not chunk_report['ok'] and chunk_report['max_abs_diff'] == pytest.approx(0.01, abs=1e-6)
    assert not cmd_report['ok'] and cmd_report['golden_count'] == cmd_report['count'] - 1
    # a looser tolerance accepts the value change but never a count mismatch
    code, summary = _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'out', '--golden',
                            tmp_path / 'perturbed', '--tolerance', 0.05)
    assert code == 1 and summary['topics']['/vla/action_chunk']['ok']


def test_recorded_commands_far_from_the_policy_are_a_regression(tmp_path, capsys):
    _write_input(tmp_path / 'in', 'sqlite3', commands=(-0.2, 1.5))
    code, summary = _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'out')
    assert code == 1
    report = summary['topics']['/vla/action_chunk']
    assert not report['ok'] and report['mae_angular'] > 0.5
    assert len(report['mae_per_step']) == 10
    code, summary = _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'out', '--tolerance', 5)
    assert code == 0


def test_missing_bag_and_bad_model_exit_2(tmp_path, capsys):
    assert main(['replay', str(tmp_path / 'nope'), '--backend', BACKEND]) == 2
    assert 'nope' in capsys.readouterr().err
    _write_input(tmp_path / 'in', 'mcap')
    assert main(['replay', str(tmp_path / 'in'), '--model', str(tmp_path / 'no_model'),
                 '--backend', 'no_such_module:factory']) == 2


@pytest.mark.ros
@pytest.mark.slow
def test_live_replay_through_the_real_nodes_matches_offline(tmp_path, capsys, monkeypatch):
    """vla_node + chunk_executor as subprocesses over loopback DDS give the chunks and commands of
    the offline replay, which is vla_nav.core.closed_loop.ClosedLoop on the bag's clock: the nodes
    follow the ClosedLoop's rules (preempt stamp, refusals, executor timing)."""
    from pathlib import Path
    monkeypatch.setenv('PYTHONPATH', str(Path(__file__).parent))   # the spawned nodes find policies
    _write_input(tmp_path / 'in', 'mcap')
    assert _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'offline')[0] == 0
    domain_id = 100 + zlib.crc32(b'test_replay_live') % 90
    code, summary = _replay(capsys, tmp_path / 'in', '--out', tmp_path / 'live', '--live',
                            '--spawn-nodes', '--domain-id', domain_id, '--golden',
                            tmp_path / 'offline', '--tolerance', 0.15)   # cmd_vel: loaded CI
    assert summary['live'] and summary['frames'] == 22
    chunk_report = summary['topics']['/vla/action_chunk']
    assert chunk_report['extra'] == 0
    if chunk_report['missing'] == 0:   # every frame reached the policy: same history, same chunks
        assert chunk_report['max_abs_diff'] < 1e-6, chunk_report
    else:   # a loaded machine may drop a frame (vla_node keeps only the newest): the history shifts
        assert chunk_report['missing'] <= 2 and chunk_report['max_abs_diff'] < 0.15, chunk_report
    assert code == 0, summary
