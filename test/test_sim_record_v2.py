"""record-sim --world v2: a multi-step episode becomes one dataset segment per step."""
import json

import pytest

from vla_nav.data import read_episodes
from vla_nav.data.bags import bag_custom_data
from vla_nav.sim.tasks import generate_task
from vla_nav.tools import record_sim

SIZE = 32


def test_a_multi_step_episode_is_recorded_as_one_segment_per_step(tmp_path):
    episode = next(e for e in range(200) if len(generate_task('train', 0, e)[1].steps) >= 2)
    task = generate_task('train', 0, episode)[1]
    settings = record_sim.RecordSettings(split='train', seed=0, image_size=SIZE, control_dt=0.1,
                                         storage='mcap', compress=True, world='v2')
    summary = record_sim.record_episode(settings, episode, str(tmp_path), keep_failures=False)
    assert summary['outcome'] == 'success' and summary['written']
    segments = list(read_episodes(tmp_path, dt=0.1))
    assert [s.instruction for s in segments] == [s.instruction for s in task.steps]
    for segment in segments:   # each step ends stopped and starts its own progress state
        assert segment.actions[-1].tolist() == [0.0, 0.0] or segment is not segments[-1]
        assert abs(float(segment.states[0][2])) < 0.05
    metadata = bag_custom_data(tmp_path / record_sim.episode_name(settings, episode))
    assert metadata['world'] == 'v2' and metadata['tier'] == task.tier
    assert json.loads(metadata['steps']) == [s.instruction for s in task.steps]
    assert len(json.loads(metadata['step_times'])) == len(task.steps)
    assert metadata['instruction'] == task.instruction


def test_tiers_forces_each_episode_to_its_tier_in_turn(tmp_path):
    settings = record_sim.RecordSettings(split='train', seed=0, image_size=SIZE, control_dt=0.1,
                                         storage='mcap', compress=True, world='v2',
                                         tiers='stop,turn')
    drawn = [generate_task('train', 0, e)[1].tier for e in (0, 1)]
    assert drawn != ['stop', 'turn']   # the split alone would record something else
    for episode, tier in ((0, 'stop'), (1, 'turn')):
        record_sim.record_episode(settings, episode, str(tmp_path), keep_failures=True)
        metadata = bag_custom_data(tmp_path / record_sim.episode_name(settings, episode))
        assert metadata['tier'] == tier
        assert metadata['instruction'] == generate_task('train', 0, episode, tier=tier)[1].instruction


def test_tiers_refuses_unknown_tiers_and_the_v1_world():
    common = dict(split='train', seed=0, image_size=SIZE, control_dt=0.1, storage='mcap',
                  compress=True)
    with pytest.raises(ValueError, match='--tiers'):
        record_sim.RecordSettings(**common, world='v2', tiers='detour,held_out_words')
    with pytest.raises(ValueError, match='--tiers'):
        record_sim.RecordSettings(**common, world='v1', tiers='goto')
    assert record_sim.RecordSettings(**common, world='v2', tiers='').tier_of(3) is None


def test_hidden_targets_records_only_the_search_scenes_a_turn_cannot_solve(tmp_path, capsys):
    """--hidden-targets: a bag for each search scene where no turn in place shows the target, a
    'skipped' marker for the rest (a resumed run counts them as done)."""
    from vla_nav.cli import main
    from vla_nav.sim.rooms import visible_by_turning
    args = ['record-sim', '--world', 'v2', '--tiers', 'search', '--hidden-targets', '--episodes', '12',
            '--seed', '20', '--image-size', str(SIZE), '--workers', '1', '--quiet', '--out', str(tmp_path)]
    assert main(args) == 0
    assert 'scenes skipped (--hidden-targets)' in capsys.readouterr().out
    settings = record_sim.RecordSettings(split='train', seed=20, image_size=SIZE, control_dt=0.1,
                                         storage='mcap', compress=True, world='v2', tiers='search')
    sim = record_sim._sim_for(settings)
    hidden = []
    for episode in range(12):
        observation = sim.reset(episode, kind='search')
        if not visible_by_turning(sim.layout, observation.pose, sim.scenario.target):
            hidden.append(episode)
    written = sorted(int(p.name[-6:]) for p in tmp_path.glob('train_s20_e*'))
    assert hidden and written == hidden          # (a hidden scene the expert failed would be dropped)
    skipped = list((tmp_path / record_sim.FAILED_DIR).glob('*.json'))
    assert len(skipped) == 12 - len(hidden)
    assert {json.loads(p.read_text())['outcome'] for p in skipped} == {'skipped'}
    assert main(args) == 0
    assert '12 already done' in capsys.readouterr().out
    with pytest.raises(ValueError, match='--hidden-targets'):
        record_sim.RecordSettings(split='train', seed=0, image_size=SIZE, control_dt=0.1, storage='mcap',
                                  compress=True, world='v2', tiers='search,detour', hidden_targets=True)
