"""`average`: the weighted mean of fine-tunes of one init is a loadable checkpoint (model soup)."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip('torch')

from vla_nav.cli import main  # noqa: E402
from vla_nav.config import model_world  # noqa: E402
from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.policy import VLAPolicy  # noqa: E402
from vla_nav.training.average import average_checkpoints  # noqa: E402


def _fine_tune(directory, seed: int, data: list[str], config: PolicyConfig | None = None):
    torch.manual_seed(seed)
    policy = VLAPolicy(config or PolicyConfig(head='fc', state_dim=4))
    return save_checkpoint(policy, directory, {'train': {'data': data, 'seed': seed, 'init': 'base'}})


@pytest.fixture(scope='module')
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp('soup')
    return [_fine_tune(root / f'm{seed}', seed, [f'/data/{name}' for name in names])
            for seed, names in ((0, ['expert']), (1, ['expert', 'dagger']), (2, ['dagger']))]


def test_the_weighted_mean_of_every_trainable_tensor(three, tmp_path):
    out = average_checkpoints(three, tmp_path / 'soup', weights=[2, 1, 1])
    states = [load_checkpoint(model).trainable_state_dict() for model in three]
    soup = load_checkpoint(out).trainable_state_dict()
    assert set(soup) == set(states[0])
    for name, tensor in soup.items():
        expected = 0.5 * states[0][name] + 0.25 * states[1][name] + 0.25 * states[2][name]
        assert torch.allclose(tensor, expected, atol=1e-6), name
    assert not all(torch.equal(soup[name], states[0][name]) for name in soup)
    meta = json.loads((out / 'config.json').read_text())['metadata']
    assert [source['weight'] for source in meta['averaged']] == [0.5, 0.25, 0.25]
    assert [source['seed'] for source in meta['averaged']] == [0, 1, 2]
    assert all(len(source['sha256']) == 64 for source in meta['averaged'])
    assert meta['train']['data'] == ['/data/expert', '/data/dagger']   # the union, in order


def test_equal_weights_by_default_and_the_world_is_still_known(tmp_path):
    a = _fine_tune(tmp_path / 'a', 0, [])
    b = _fine_tune(tmp_path / 'b', 1, [])
    out = average_checkpoints([a, b], tmp_path / 'soup')
    first, second = (load_checkpoint(m).trainable_state_dict() for m in (a, b))
    name = next(iter(first))
    assert torch.allclose(load_checkpoint(out).trainable_state_dict()[name],
                          (first[name] + second[name]) / 2, atol=1e-6)
    assert model_world(out) == model_world(a)


def test_a_model_and_its_fine_tune_with_memory_slots_wise_ft(three, tmp_path):
    """WiSE-FT: a fine-tune that added memory slots (same tensors) averages with its init; the
    result has the first model's config, so the order says which layout the average reads."""
    slots = PolicyConfig(head='fc', state_dim=4, window=14, memory_slots=6, memory_stride=12)
    tuned = _fine_tune(tmp_path / 'slots', 5, ['/data/hidden'], slots)
    out = average_checkpoints([tuned, three[0]], tmp_path / 'wise', weights=[0.3, 0.7])
    soup, a, b = (load_checkpoint(m) for m in (out, tuned, three[0]))
    assert soup.config == slots and soup.config != b.config
    for name, tensor in soup.trainable_state_dict().items():
        expected = 0.3 * a.trainable_state_dict()[name] + 0.7 * b.trainable_state_dict()[name]
        assert torch.allclose(tensor, expected, atol=1e-6), name
    back = average_checkpoints([three[0], tuned], tmp_path / 'back')
    assert load_checkpoint(back).config == b.config
    fovea = _fine_tune(tmp_path / 'fovea', 6, [], PolicyConfig(head='fc', state_dim=4, fovea_rows=40))
    with pytest.raises(ValueError, match=r'other tensors.*fovea_rows'):   # a widened projection
        average_checkpoints([three[0], fovea], tmp_path / 'x')
    assert not (tmp_path / 'x').exists()


def test_refuses_what_cannot_be_averaged(three, tmp_path):
    other = _fine_tune(tmp_path / 'gpt', 0, [], PolicyConfig(head='gpt', state_dim=4))
    with pytest.raises(ValueError, match=r'another policy config.*head'):
        average_checkpoints([three[0], other], tmp_path / 'x')
    with pytest.raises(ValueError, match='at least two'):
        average_checkpoints([three[0]], tmp_path / 'x')
    with pytest.raises(ValueError, match='2 weights for 3'):
        average_checkpoints(three, tmp_path / 'x', weights=[1, 1])
    with pytest.raises(ValueError, match='non-negative'):
        average_checkpoints(three[:2], tmp_path / 'x', weights=[1, -1])
    assert not (tmp_path / 'x').exists()


def test_the_verb_reports_a_missing_checkpoint_and_writes_a_good_one(three, tmp_path, capsys):
    missing = str(tmp_path / 'nope')
    assert main(['average', '--models', str(three[0]), missing, '--out', str(tmp_path / 'o')]) == 1
    assert 'average failed' in capsys.readouterr().out and not (tmp_path / 'o').exists()
    assert main(['average', '--models', *map(str, three), '--out', str(tmp_path / 'o')]) == 0
    assert load_checkpoint(tmp_path / 'o').config == load_checkpoint(three[0]).config
