"""Closed-loop evaluation: outcome bookkeeping, and two real test-split episodes driven through
PolicyLoop + ChunkExecutor by a fake policy whose outcomes are known."""
import json
import math

import numpy as np
import pytest

from vla_nav.core.engine import EngineSpec, PolicyEngine
from vla_nav.tools.eval_sim import ClosedLoopSettings, summarise


class RamEngine(PolicyEngine):
    """Full speed ahead, whatever it sees: it can never stop at a goal."""

    backend = 'test'

    def __init__(self, **_):
        self.spec = EngineSpec(image_height=32, image_width=32, feature_dim=2)

    def set_instruction(self, text):
        pass

    def encode_frame(self, rgb):
        return np.zeros(2, np.float32)

    def act(self, features, states=None):
        return np.tile(np.float32([0.5, 0.0]), (10, 1))


def make_engine(**kwargs):
    return RamEngine(**kwargs)


def _record(outcome, kind='goto', time_to_goal=None, efficiency=None):
    return {'episode': 0, 'instruction': 'x', 'kind': kind, 'outcome': outcome, 'time': 1.0,
            'time_to_goal': time_to_goal, 'path_length': 1.0, 'path_efficiency': efficiency,
            'collided_with': None, 'chunks': 3, 'inference_ms_p50': 1.0}


def test_summary_counts_outcomes_per_kind():
    records = [_record('success', time_to_goal=4.0, efficiency=0.9), _record('collision'),
               _record('success', 'stop', time_to_goal=3.0), _record('timeout', 'turn')]
    summary = summarise(records)
    assert summary['episodes'] == 4
    assert summary['success_rate'] == 0.5 and summary['collision_rate'] == 0.25
    assert summary['timeout_rate'] == 0.25 and summary['failure_rate'] == 0.0
    assert summary['mean_time_to_goal'] == 3.5 and summary['path_efficiency'] == 0.9
    assert summary['per_kind']['goto']['collision_rate'] == 0.5
    assert summary['per_kind']['stop']['success_rate'] == 1.0
    assert len(summary['records']) == 4


def test_settings_are_validated():
    with pytest.raises(ValueError):
        ClosedLoopSettings(control_rate=10.0, camera_rate=20.0, latency=None, image_size=(64, 64))
    assert ClosedLoopSettings.from_config().ticks_per_frame >= 1


def test_eval_sim_verb_with_a_fake_policy(tmp_path, capsys):
    """Test episode 1 is "stand still" (a stop word: no chunks, the robot stays: success);
    episode 2 is "advance 1 meter": driving on at full speed cannot succeed."""
    from vla_nav.cli import main
    plot = tmp_path / 'trajectories.png'
    code = main(['eval-sim', '--model', str(tmp_path), '--backend', 'test_eval_sim:make_engine',
                 '--episodes', '2', '--first-episode', '1', '--seed', '0', '--latency', '0.02',
                 '--json', '--plot', str(plot)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ('success_rate', 'collision_rate', 'timeout_rate', 'failure_rate', 'mean_time_to_goal',
                'path_efficiency', 'per_kind', 'records'):
        assert key in summary
    stop, forward = summary['records']
    assert stop['kind'] == 'stop' and stop['outcome'] == 'success' and stop['chunks'] == 0
    assert forward['kind'] == 'forward' and forward['outcome'] in ('failure', 'collision')
    assert forward['chunks'] > 0 and forward['path_length'] > 1.0
    travelled = math.dist(forward['start_pose'][:2], forward['end_pose'][:2])
    assert stop['start_pose'] == stop['end_pose'] and travelled > 1.0
    assert summary['success_rate'] == 0.5
    assert plot.is_file() and plot.stat().st_size > 1000
