"""`python -m vla_nav record-sim`: expert episodes as bags, resumable, failures dropped."""
import json

import numpy as np
import pytest

from vla_nav.cli import main
from vla_nav.config import load_config
from vla_nav.core.engine import EngineSpec, PolicyEngine
from vla_nav.data import find_bags, read_episodes
from vla_nav.data.bags import BagTopics, bag_custom_data, iter_bag_messages, twist_of
from vla_nav.sim import NavSim
from vla_nav.sim.navsim import StepResult
from vla_nav.sim.robot import RobotLimits
from vla_nav.tools import record_sim
from vla_nav.tools.record_sim.driver import STALL_S

SIZE = 32
ROBOT = {'limits': RobotLimits.from_executor(load_config().executor),
         'stop_words': load_config().stop_words}


def _record(tmp_path, *extra):
    return main(['record-sim', '--out', str(tmp_path), '--image-size', str(SIZE), '--quiet',
                 *map(str, extra)])


@pytest.mark.slow
def test_record_resume_and_read_back(tmp_path, capsys):
    stale = tmp_path / '.partial-12345' / 'train_s3_e000001'   # an interrupted earlier run
    stale.mkdir(parents=True)
    (stale / 'metadata.yaml').write_text('half')
    assert _record(tmp_path, '--episodes', 2, '--seed', 3, '--workers', 2) == 0
    first = capsys.readouterr().out
    assert '2 bags written' in first and '0 already done' in first
    assert not stale.parent.exists() and not list(tmp_path.glob('.partial-*'))
    bags = find_bags(tmp_path)
    assert [bag.name for bag in bags] == ['train_s3_e000000', 'train_s3_e000001']

    # resume: the two finished episodes are skipped, only the third is recorded
    mtimes = [(bag / 'metadata.yaml').stat().st_mtime_ns for bag in bags]
    assert _record(tmp_path, '--episodes', 3, '--seed', 3, '--workers', 1) == 0
    assert '1 episodes recorded' in capsys.readouterr().out
    assert [(bag / 'metadata.yaml').stat().st_mtime_ns for bag in bags] == mtimes

    # what the bags hold matches a fresh run of the same episode of the simulator
    with NavSim(split='train', seed=3, image_size=(SIZE, SIZE), **ROBOT) as sim:
        observation = sim.reset(0)
        expected_first_action = sim.expert_action()
        instruction = sim.scenario.instruction
    episodes = list(read_episodes(tmp_path, dt=0.1))
    assert len(episodes) == 3 and all(e.has_odom for e in episodes)
    first_episode = episodes[0]
    assert first_episode.instruction == instruction
    assert first_episode.frames.shape[1:] == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(first_episode.frames[0], observation.rgb)
    np.testing.assert_allclose(first_episode.actions[0], expected_first_action, atol=1e-6)
    assert first_episode.actions[-1].tolist() == [0.0, 0.0]      # the last frame: stopped
    np.testing.assert_allclose(np.diff(first_episode.stamps), 0.1, atol=1e-9)
    metadata = bag_custom_data(bags[0])
    assert metadata['outcome'] == 'success' and metadata['episode'] == '0'
    assert int(metadata['frames']) == len(first_episode)

    # other settings in the same folder are refused
    with pytest.raises(SystemExit, match='differ'):
        main(['record-sim', '--out', str(tmp_path), '--image-size', '64', '--episodes', '1'])


class _CrashingSim:
    """The real sim, but every episode ends in a collision after its first step."""

    def __init__(self, sim):
        self.sim = sim

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def step(self, linear, angular):
        result = self.sim.step(linear, angular)
        return StepResult(result.observation, True, 'collision')


def test_failed_episodes_are_dropped_unless_kept(tmp_path, capsys, monkeypatch):
    real_sim_for = record_sim._sim_for
    monkeypatch.setattr(record_sim, '_sim_for', lambda settings: _CrashingSim(real_sim_for(settings)))
    assert _record(tmp_path, '--episodes', 1, '--workers', 1, '--format', 'sqlite3') == 0
    assert '1 collision' in capsys.readouterr().out
    assert find_bags(tmp_path) == []
    marker = json.loads((tmp_path / '.failed' / 'train_s0_e000000.json').read_text())
    assert marker['outcome'] == 'collision' and marker['frames'] == 2

    assert _record(tmp_path, '--episodes', 1, '--workers', 1, '--format', 'sqlite3') == 0
    assert '0 episodes recorded' in capsys.readouterr().out      # not redone on resume

    assert _record(tmp_path, '--episodes', 1, '--workers', 1, '--format', 'sqlite3',
                   '--keep-failures') == 0
    (bag,) = find_bags(tmp_path)
    assert bag_custom_data(bag)['outcome'] == 'collision'
    assert (bag / f'{bag.name}.db3').is_file()   # named after its final folder
    assert not (tmp_path / '.failed' / 'train_s0_e000000.json').exists()


def _executed_commands(bag):
    topics = BagTopics.from_config(cmd_vel=record_sim.EXECUTED_TOPIC)
    return [twist_of(m.msg) for m in iter_bag_messages(bag, topics, kinds=('cmd_vel',))]


def test_noise_labels_are_the_clean_expert_of_the_reached_state(tmp_path, capsys):
    """--noise: the base is driven off the expert's path, /cmd_vel keeps the expert's label."""
    args = ('--episodes', 1, '--seed', 2, '--workers', 1, '--noise', 0.5, '--keep-failures')
    assert _record(tmp_path, *args) == 0
    (bag,) = find_bags(tmp_path)
    (episode,) = read_episodes(bag, dt=0.1)
    executed = np.asarray(_executed_commands(bag))
    labels = episode.actions[:-1]                   # the final frame's zero has no executed twin
    assert executed.shape == labels.shape
    assert np.abs(executed - labels).max() > 0.05   # the motion really was perturbed
    assert bag_custom_data(bag)['noise'] == '0.5'

    # replaying the executed commands reaches the recorded states, where the clean expert's
    # action is exactly the recorded label
    with NavSim(split='train', seed=2, image_size=(SIZE, SIZE), **ROBOT) as sim:
        observation = sim.reset(0)
        for tick, (label, command) in enumerate(zip(labels, executed, strict=True)):
            np.testing.assert_allclose(episode.states[tick], observation.state, atol=1e-5)
            np.testing.assert_allclose(label, sim.expert_action(), atol=1e-6)
            observation = sim.step(*command).observation

    # deterministic: the same episode recorded again is the same bag content; resuming with
    # another noise scale is refused
    again = tmp_path / 'again'
    assert main(['record-sim', '--out', str(again), '--image-size', str(SIZE), '--quiet',
                 *map(str, args)]) == 0
    (copy,) = read_episodes(again, dt=0.1)
    np.testing.assert_array_equal(copy.actions, episode.actions)
    np.testing.assert_array_equal(np.asarray(_executed_commands(find_bags(again)[0])), executed)
    with pytest.raises(SystemExit, match='differ'):
        _record(tmp_path, '--episodes', 1, '--seed', 2, '--noise', 0.2)


def test_command_noise_pauses_and_clamps():
    limits = RobotLimits.from_executor(load_config().executor)
    config = record_sim.NoiseConfig(0.3, pause_rate=10.0, max_pauses=1)
    noise = record_sim.CommandNoise(config, (0.4, 0.8), limits, seed=0, episode=0)
    commands = [noise.perturb((0.4, 0.0), (0.4, 0.0), 0.1) for _ in range(100)]
    assert (0.0, 0.0) in commands                           # a pause happened
    assert all(limits.min_linear_vel <= v <= limits.max_linear_vel
               and abs(w) <= limits.max_angular_vel for v, w in commands)
    assert noise.perturb((0.0, 0.0), (0.1, 0.0), 0.1) == (0.0, 0.0)   # done: never pushed
    clean = record_sim.CommandNoise(record_sim.NoiseConfig(0.0), (0.4, 0.8), limits, 0, 0)
    assert clean.perturb((0.3, -0.2), (0.0, 0.0), 0.1) == (0.3, -0.2)
    with pytest.raises(ValueError, match='noise scale'):
        record_sim.NoiseConfig(1.5)


class _ConstantPolicy(PolicyEngine):
    """Drives with one fixed command whatever it sees (a policy that cannot stop, or never moves)."""

    backend = 'test'

    def __init__(self, action):
        self.spec = EngineSpec(image_height=SIZE, image_width=SIZE, feature_dim=1)
        self.action = np.float32(action)

    def set_instruction(self, text):
        pass

    def encode_frame(self, rgb):
        return np.zeros(1, np.float32)

    def act(self, features, states=None):
        return np.tile(self.action, (self.spec.chunk, 1))


def make_ram_policy(**_):
    return _ConstantPolicy([0.5, 0.3])


def make_still_policy(**_):
    return _ConstantPolicy([0.0, 0.0])


def _driven(tmp_path, factory, episodes=3, seed=2, extra=()):
    out = tmp_path / (factory + ''.join(extra))
    assert main(['record-sim', '--out', str(out), '--image-size', str(SIZE), '--quiet',
                 '--episodes', str(episodes), '--seed', str(seed), '--workers', '1',
                 '--driver', str(tmp_path), '--driver-backend',
                 f'test_data_record_sim:{factory}', *extra]) == 0
    bags = find_bags(out)
    assert len(bags) == episodes            # every outcome is kept
    return [(bag_custom_data(bag), next(iter(read_episodes(bag, dt=0.1))),
             np.asarray(_executed_commands(bag))) for bag in bags]


def _replay_labels(seed, episode_index, executed, episode):
    """Driving a fresh sim with the executed commands reaches the recorded states, where the
    expert's action is the recorded label (the final frame's too, unless it ended at the goal)."""
    with NavSim(split='train', seed=seed, image_size=(SIZE, SIZE), **ROBOT) as sim:
        observation = sim.reset(episode_index)
        for tick, label in enumerate(episode.actions):
            np.testing.assert_allclose(episode.states[tick], observation.state, atol=1e-5)
            if tick == len(executed):
                return label, sim.expert_action(), sim.metrics()['outcome']
            np.testing.assert_allclose(label, sim.expert_action(), atol=1e-6)
            observation = sim.step(*executed[tick]).observation
    raise AssertionError('the episode ended early')


@pytest.mark.slow
def test_a_driving_policy_is_labelled_by_the_expert_and_failures_are_kept(tmp_path, capsys):
    """--driver (DAgger): a policy that cannot stop drives; the labels are the expert's action in
    every state it reached, and its failed episodes are written, not dropped."""
    outcomes = []
    for metadata, episode, executed in _driven(tmp_path, 'make_ram_policy'):
        index = int(metadata['episode'])
        assert metadata['driver'] == str(tmp_path)
        assert executed.shape == (len(episode) - 1, 2)
        if metadata['kind'] != 'stop':                   # a stop task is the expert's, as with noise
            assert np.abs(executed[3:] - episode.actions[3:-1]).max() > 0.1   # the policy drove
        final, expert, outcome = _replay_labels(2, index, executed, episode)
        assert outcome == metadata['outcome']
        np.testing.assert_allclose(final, (0.0, 0.0) if outcome == 'success' else expert, atol=1e-6)
        outcomes.append(outcome)
    assert any(outcome != 'success' for outcome in outcomes)


@pytest.mark.slow
def test_rescued_episodes_go_on_past_the_near_misses_with_the_experts_labels(tmp_path, capsys):
    """record-sim --driver --rescue in the simulator: a policy that cannot stop collides in some
    episodes; rescued, it collides in fewer, the near misses are counted in the metadata and
    printed, and every label is still the expert's action in the state reached."""
    plain = [m['outcome'] for m, _, _ in _driven(tmp_path, 'make_ram_policy', episodes=4)]
    rescued = _driven(tmp_path, 'make_ram_policy', episodes=4, extra=('--rescue',))
    outcomes = [m['outcome'] for m, _, _ in rescued]
    assert outcomes.count('collision') < plain.count('collision')
    assert sum(int(m['rescues']) for m, _, _ in rescued) > 0
    for metadata, episode, executed in rescued:
        *_, outcome = _replay_labels(2, int(metadata['episode']), executed, episode)
        assert outcome == metadata['outcome']
    assert 'near misses' in capsys.readouterr().out


def test_a_stalled_policy_hands_over_to_the_expert(tmp_path, capsys):
    """A policy that never moves: after STALL_S at rest while the expert wants to move, the expert
    drives to the goal; the handover time is in the bag's metadata."""
    (metadata, episode, executed), = _driven(tmp_path, 'make_still_policy', episodes=1, seed=4)
    assert metadata['kind'] != 'stop' and metadata['outcome'] == 'success'
    stalled = int(round(STALL_S / 0.1))
    assert float(metadata['takeover_s']) == pytest.approx(STALL_S, abs=0.11)
    assert not executed[:stalled - 1].any()                                   # the policy's zeros
    np.testing.assert_allclose(executed[stalled:], episode.actions[stalled:-1], atol=1e-6)
    assert 'the expert took over in 1 episodes' in capsys.readouterr().out


def test_driver_settings_are_checked(tmp_path, capsys):
    assert _record(tmp_path, '--episodes', 1, '--driver', tmp_path / 'missing') == 2
    assert '--driver' in capsys.readouterr().err
    assert _record(tmp_path / 'n', '--episodes', 1, '--noise', 0.2, '--driver', tmp_path) == 2
    assert 'exclude each other' in capsys.readouterr().err


def test_augment_changes_the_images_only_with_one_look_per_episode(tmp_path, capsys):
    """--augment: the same episode as a clean recording (labels, odometry, stamps), its frames
    through one seeded look plus fresh noise per frame; the same seed gives the same bag."""
    args = ('--episodes', 1, '--seed', 4, '--workers', 1)
    runs = {}
    for name, extra in (('clean', ()), ('augmented', ('--augment',)), ('again', ('--augment',))):
        assert _record(tmp_path / name, *args, *extra) == 0
        (runs[name],) = read_episodes(tmp_path / name, dt=0.1)
    clean, augmented = runs['clean'], runs['augmented']
    assert len(augmented) == len(clean) > 3
    np.testing.assert_array_equal(augmented.actions, clean.actions)
    np.testing.assert_array_equal(augmented.states, clean.states)
    np.testing.assert_array_equal(augmented.stamps, clean.stamps)
    np.testing.assert_array_equal(runs['again'].frames, augmented.frames)     # seeded
    change = augmented.frames.astype(float) - clean.frames.astype(float)
    assert np.abs(change).mean() > 1.0
    # one look for the episode: the mean shift of every frame is about the same; the noise is new
    shifts = change.mean(axis=(1, 2))
    assert np.abs(shifts - shifts.mean(axis=0)).max() < 3.0       # a new look per frame: ~19
    assert not np.array_equal(change[1], change[2])
    (bag,) = find_bags(tmp_path / 'augmented')
    assert bag_custom_data(bag)['augment'] == 'True' and 'augment' not in bag_custom_data(
        find_bags(tmp_path / 'clean')[0])
    with pytest.raises(SystemExit, match='differ'):                         # pinned per folder
        _record(tmp_path / 'clean', *args, '--augment')


def test_the_driving_policy_gets_odometry_progress_not_the_simulators_state():
    """record-sim --driver: the policy measures its progress from the pose and twist (as vla_node
    from /odom); the simulator's goal-relative state (the judge's) is only the expert's."""
    from types import SimpleNamespace

    from vla_nav.tools.record_sim.driver import PolicyDriver

    class Spy(PolicyEngine):
        backend = 'test'

        def __init__(self):
            self.spec = EngineSpec(image_height=8, image_width=8, feature_dim=2, state_dim=4)
            self.states = []

        def set_instruction(self, text):
            pass

        def encode_frame(self, rgb):
            return np.zeros(2, np.float32)

        def act(self, features, states=None):
            self.states.append(states[-1].copy())
            return np.tile(np.float32([0.2, 0.0]), (10, 1))

    engine = Spy()
    driver = PolicyDriver(engine, load_config().executor, control_dt=0.1)
    driver.start('go to the red cone', now=0.0)
    rgb = np.zeros((8, 8, 3), np.uint8)
    junk = np.float32([9.0, 9.0, 99.0, 9.0])       # not what the robot could measure
    for tick in range(3):
        observation = SimpleNamespace(rgb=rgb, pose=(0.5 * tick, 0.0, 0.0), twist=(0.2, 0.0), state=junk)
        driver.command(observation, (0.2, 0.0), now=0.1 * (tick + 1))
    assert [round(float(s[2]), 6) for s in engine.states] == [0.0, 0.5, 1.0]
    assert all(float(s[0]) == pytest.approx(0.2) for s in engine.states)


def test_rescue_hands_a_near_miss_to_the_expert_for_rescue_s_then_back():
    """--rescue: when the look-ahead says the policy's command would touch something, the expert's
    label drives for RESCUE_S (the policy still sees every frame), then the policy drives again;
    without --rescue the look-ahead is never asked."""
    from types import SimpleNamespace

    from vla_nav.tools.record_sim.driver import RESCUE_LOOKAHEAD_S, RESCUE_S, PolicyDriver

    engine = _ConstantPolicy([0.3, 0.0])
    frames = []
    engine.encode_frame = lambda rgb: frames.append(rgb) or np.zeros(1, np.float32)
    asked = []

    def would_collide(linear, angular, horizon):
        asked.append((round(linear, 3), horizon))
        return len(asked) == 4            # the 4th command the policy wants is a near miss

    label = (0.1, -0.4)
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    executed = []
    for rescue in (True, False):
        driver = PolicyDriver(engine, load_config().executor, control_dt=0.1, rescue=rescue)
        driver.start('go to the red cone', now=0.0)
        asked.clear()
        frames.clear()
        executed = [driver.command(SimpleNamespace(rgb=rgb, pose=(0.0, 0.0, 0.0), twist=(0.0, 0.0)),
                                   label, now=0.1 * (tick + 1), would_collide=would_collide)
                    for tick in range(40)]
        if rescue:
            held = int(round(RESCUE_S / 0.1))
            assert driver.rescues == 1 and driver.takeover_at is None
            assert executed[3:3 + held] == [label] * held
            assert label not in executed[:3] + executed[3 + held:]     # the policy, before and after
            assert all(h == RESCUE_LOOKAHEAD_S for _, h in asked) and len(asked) == 40 - held + 1
        else:
            assert not asked and driver.rescues == 0 and label not in executed
        assert len(frames) == 40                                       # every frame was seen


def test_rescue_needs_a_driver(tmp_path, capsys):
    assert _record(tmp_path, '--episodes', 1, '--rescue') == 2
    assert '--rescue needs --driver' in capsys.readouterr().err
