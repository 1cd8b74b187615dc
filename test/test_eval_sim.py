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


class StallThenTurnEngine(PolicyEngine):
    """A goto step: creeps forward for 12 chunks, then stops short (a stall: the robot's done rule
    ends the step, the judge's does not); a turn step: turns left. Keeps every state it is given."""

    backend = 'test'

    def __init__(self):
        self.spec = EngineSpec(image_height=32, image_width=32, feature_dim=2, state_dim=4)
        self.text, self.acts, self.states = '', 0, []

    def set_instruction(self, text):
        self.text = text

    def reset(self):
        self.acts = 0

    def encode_frame(self, rgb):
        return np.zeros(2, np.float32)

    def act(self, features, states=None):
        self.acts += 1
        self.states.append((self.text, states[-1].copy()))
        if 'turn' in self.text:
            return np.tile(np.float32([0.0, 0.6]), (10, 1))
        return np.tile(np.float32([0.3 if self.acts <= 12 else 0.0, 0.0]), (10, 1))


def test_the_policy_measures_each_step_from_the_robots_own_step_start():
    """eval-sim feeds the simulator's pose and twist as odometry, as vla_node feeds /odom: when the
    robot's done rule ends a goto step the judge still runs (a stall short of the target), the turn
    step's state starts from zero at the robot's boundary, not from the judge's start."""
    from vla_nav.config import load_config
    from vla_nav.sim import NavSim
    from vla_nav.sim.robot import RobotLimits
    from vla_nav.tools.eval_sim import drive

    config = load_config()
    settings = ClosedLoopSettings.from_config(latency=0.0)
    sim = NavSim(split='test', seed=0, image_size=settings.image_size,
                 control_dt=1.0 / settings.control_rate, world='v2',
                 limits=RobotLimits.from_executor(config.executor), stop_words=config.stop_words)
    for episode in range(20):   # a room whose goto target is over 1.5 m ahead of the start
        observation = sim.reset(episode, kind='goto')
        target, (x, y, _) = sim.scenario.target.position, observation.pose
        if math.dist(target, (x, y)) > 1.5:
            break
    text = f'{sim.scenario.instruction}, then turn left'
    assert sim.set_instruction(text) is not None and len(sim.scenario.steps) == 2
    engine = StallThenTurnEngine()
    drive(engine, sim, sim.observation, text, settings, config.executor)
    goto = [state for step, state in engine.states if 'turn' not in step]
    turn = [state for step, state in engine.states if 'turn' in step]
    assert goto and turn, 'the robot never started the turn step'
    assert goto[-1][2] > 0.2                     # the goto step moved the robot before it stalled
    assert sim.step_index == 0                   # ... and the judge still runs the goto step
    assert turn[0][2] < 0.02 and abs(turn[0][3]) < 0.05   # the turn starts from the robot's boundary
    assert turn[-1][3] > 0.5                     # and its yaw change is the turn's own
