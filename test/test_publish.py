"""`python -m vla_nav publish`: the verb refuses a folder that is no checkpoint, the world a model
is published for (vla_nav.config.model_world), and the v2 path end to end with the test suite's
brightness policy (test/policies.py): offline MAE on v2 test bags, the test-split suite into
<publish>/suite, the v2 fixed block in eval.json (the v1 fixed block: test_default_model.py)."""
import gzip
import json

import numpy as np
import pytest

from vla_nav.cli import VERBS, main
from vla_nav.config import model_world, resolve_sim_world
from vla_nav.tools import publish
from vla_nav.tools.suite.tiers import SUITE_TIERS

TINY_POLICY = 'policies:make_engine'   # test/policies.py: no weights, deterministic


def test_publish_is_a_verb_and_checks_the_model(tmp_path, capsys):
    assert VERBS['publish'][0] == 'publish'
    assert main(['publish', '--model', str(tmp_path), '--test-data', str(tmp_path)]) == 2
    assert 'no config.json' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['publish', '--model', str(tmp_path)])        # --test-data is required


def _checkpoint(folder, data_folders=(), eval_world=None):
    """A model folder as far as publish and model_world read it (the tiny policy ignores it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'config.json').write_text(json.dumps(
        {'format': 'vla_nav.policy', 'metadata': {'train': {'data': [str(f) for f in data_folders]}}}))
    if eval_world is not None:
        (folder / 'eval.json').write_text(json.dumps({'world': eval_world}))
    return folder


def _recording(folder, world=None):
    folder.mkdir(parents=True, exist_ok=True)
    settings = {'split': 'train'} if world is None else {'split': 'train', 'world': world}
    (folder / 'record_sim.json').write_text(json.dumps(settings))
    return folder


def test_model_world_comes_from_eval_json_then_the_training_recordings_then_v1(tmp_path):
    v2_data, v1_data = _recording(tmp_path / 'v2', 'v2'), _recording(tmp_path / 'old')  # no key: v1
    robot_bags = tmp_path / 'robot'                      # not record-sim's: says nothing
    robot_bags.mkdir()
    assert model_world(_checkpoint(tmp_path / 'a', [v2_data, robot_bags])) == 'v2'
    assert model_world(_checkpoint(tmp_path / 'b', [v1_data])) == 'v1'
    assert model_world(_checkpoint(tmp_path / 'c', [robot_bags, tmp_path / 'gone'])) == 'v1'
    assert model_world(_checkpoint(tmp_path / 'd', [v1_data], eval_world='v2')) == 'v2'  # published
    with pytest.raises(ValueError, match='several worlds'):
        model_world(_checkpoint(tmp_path / 'e', [v1_data, v2_data]))
    with pytest.raises(ValueError, match='world must be one of'):
        model_world(_checkpoint(tmp_path / 'f', eval_world='v9'))


def test_sim_world_follows_the_model_unless_named(tmp_path):
    v2_model = _checkpoint(tmp_path / 'v2model', eval_world='v2')
    assert resolve_sim_world('model', str(v2_model)) == 'v2'
    assert resolve_sim_world('v1', str(v2_model)) == 'v1'
    assert resolve_sim_world('model', str(_checkpoint(tmp_path / 'plain'))) == 'v1'


def test_publish_refuses_test_bags_of_another_world(tmp_path, capsys):
    model = _checkpoint(tmp_path / 'model', [_recording(tmp_path / 'train', 'v2')])
    bags = _recording(tmp_path / 'test', 'v1')
    assert main(['publish', '--model', str(model), '--test-data', str(bags)]) == 2
    assert 'recorded in the v1 world' in capsys.readouterr().err


@pytest.fixture(scope='module')
def v2_test_bags(tmp_path_factory):
    out = tmp_path_factory.mktemp('v2test') / 'bags'
    assert main(['record-sim', '--world', 'v2', '--split', 'test', '--seed', '3', '--episodes', '1',
                 '--out', str(out), '--workers', '1', '--quiet']) == 0
    return out


@pytest.mark.slow   # ~35 one-episode closed loops of the tiny policy, ~1 min on 2 loaded cores
def test_publish_v2_writes_the_suite_and_a_reproducible_fixed_block(tmp_path, v2_test_bags,
                                                                    monkeypatch, capsys):
    monkeypatch.setattr(publish, 'FIXED_OFFLINE_EPISODES', 1)   # the block's shape, smaller
    monkeypatch.setattr(publish, 'FIXED_SUITE_EPISODES', 1)
    model = _checkpoint(tmp_path / 'run', [_recording(tmp_path / 'train', 'v2')])
    target = tmp_path / 'published'
    target.mkdir()
    (target / 'trajectories.png').write_bytes(b'a v1 model\'s figure')    # stale: removed
    code = main(['publish', '--model', str(model), '--test-data', str(v2_test_bags),
                 '--backend', TINY_POLICY, '--episodes-per-tier', '1', '--workers', '1',
                 '--publish', str(target)])                              # --world from the data
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((target / 'eval.json').read_text())
    assert report['world'] == 'v2' == model_world(target) == json.loads(out.splitlines()[-1])['world']
    assert not (target / 'trajectories.png').exists() and 'closed_loop' not in report
    assert report['offline']['episodes'] >= 1 and report['offline']['overall'] > 0
    # the test-split suite, through eval-sim --suite itself
    suite = target / publish.SUITE_DIR
    summary = json.loads((suite / 'summary.json').read_text())
    assert summary['meta']['split'] == 'test' and summary['meta']['episodes_per_tier'] == 1
    assert 'eval-sim --suite' in summary['meta']['command'] and 'records' not in summary
    assert list(report['suite']['tiers']) == list(summary['tiers'])
    assert set(SUITE_TIERS) <= set(summary['tiers'])
    assert 'goto' in summary['controls']['language_blind']
    assert '| goto | 1 |' in (suite / 'table.md').read_text()
    for tier in SUITE_TIERS:
        assert (suite / f'{tier}.png').read_bytes()[:4] == b'\x89PNG'
    with gzip.open(suite / 'records.json.gz') as stream:
        records = json.loads(stream.read())
    assert len(records) == len(SUITE_TIERS) + 1                         # + the blind goto
    # the fixed block: the suite's first scenes, so the same outcomes; and it reproduces
    fixed = report['fixed']
    assert fixed['world'] == 'v2' and '--world v2' in fixed['offline']['record']
    assert fixed['stack'] == publish.runtime_stack()                   # the versions it ran with
    assert set(fixed['stack']) == {'mujoco', 'onnxruntime', 'numpy'}
    assert fixed['stack']['numpy'] == np.__version__
    assert fixed['closed_loop']['labels'] == [f'{tier}:0' for tier in SUITE_TIERS]
    by_label = {f'{r["label"]}:{r["episode"]}': r['outcome'] for r in records}
    assert fixed['closed_loop']['outcomes'] == [by_label[label] for label in fixed['closed_loop']['labels']]
    again = publish.fixed_block(target, TINY_POLICY, world=report['world'])
    assert again == fixed


@pytest.mark.slow
def test_publish_v1_keeps_the_v1_closed_loop(tmp_path, monkeypatch, capsys):
    """A checkpoint whose training data names no world is published as v1: the v1 closed loop and
    trajectories.png, a v1 fixed block, no suite (a v2 model's earlier suite/ is removed)."""
    monkeypatch.setattr(publish, 'FIXED_OFFLINE_EPISODES', 1)
    monkeypatch.setattr(publish, 'FIXED_SIM_EPISODES', 1)
    bags = tmp_path / 'v1test'
    assert main(['record-sim', '--split', 'test', '--seed', '3', '--episodes', '1', '--out', str(bags),
                 '--workers', '1', '--quiet']) == 0
    target = tmp_path / 'published'
    (target / publish.SUITE_DIR).mkdir(parents=True)
    code = main(['publish', '--model', str(_checkpoint(tmp_path / 'run')), '--test-data', str(bags),
                 '--backend', TINY_POLICY, '--episodes', '1', '--workers', '1', '--publish', str(target)])
    assert code == 0, capsys.readouterr()
    report = json.loads((target / 'eval.json').read_text())
    assert report['world'] == report['fixed']['world'] == 'v1' and 'suite' not in report
    assert report['closed_loop']['episodes'] == 1 and len(report['fixed']['closed_loop']['outcomes']) == 1
    assert (target / 'trajectories.png').is_file() and not (target / publish.SUITE_DIR).exists()


def test_copy_model_leaves_no_file_of_the_earlier_model(tmp_path):
    """A checkpoint without metrics.csv published over an older model: the older metrics.csv and
    the other world's figures go, the checkpoint's files arrive."""
    from vla_nav.tools.publish import copy_model
    source, target = tmp_path / 'ckpt', tmp_path / 'published'
    source.mkdir()
    target.mkdir()
    for name in ('config.json', 'model.safetensors'):
        (source / name).write_text(f'new {name}')
    for name in ('config.json', 'metrics.csv', 'trajectories.png'):
        (target / name).write_text(f'old {name}')
    copy_model(source, target, 'v2')
    assert (target / 'config.json').read_text() == 'new config.json'
    assert (target / 'model.safetensors').read_text() == 'new model.safetensors'
    assert not (target / 'metrics.csv').exists() and not (target / 'trajectories.png').exists()
