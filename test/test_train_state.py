"""training_state/ survives a kill at any moment; the distributed context of one process; the
validation sums that ranks combine. Fast: no training run, no launcher."""
import json

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from policies import TINY_POLICY  # noqa: E402

from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.policy import VLAPolicy  # noqa: E402
from vla_nav.training import state  # noqa: E402
from vla_nav.training.distributed import Distributed, distributed  # noqa: E402
from vla_nav.training.metrics import ChunkMAE  # noqa: E402


def _save(directory, policy, optimizer, epoch):
    state.save_state(directory, policy, optimizer, {'epoch': epoch, 'policy': policy.config.to_dict()})


def test_a_kill_while_saving_leaves_the_previous_epoch_whole(tmp_path, monkeypatch):
    torch.manual_seed(0)
    policy = VLAPolicy(PolicyConfig(**TINY_POLICY), load_pretrained=False)
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3)
    directory = tmp_path / state.STATE_DIR
    _save(directory, policy, optimizer, 1)
    saved = {k: v.clone() for k, v in policy.trainable_state_dict().items()}
    for parameter in policy.trainable_parameters():      # the next epoch changes every weight
        parameter.data.add_(1.0)

    def killed(path, text):
        raise KeyboardInterrupt('killed before state.json was replaced')

    monkeypatch.setattr(state, '_atomic_write_text', killed)
    with pytest.raises(KeyboardInterrupt):
        _save(directory, policy, optimizer, 2)
    monkeypatch.undo()
    assert sorted(p.name for p in directory.glob('*e0002*'))       # epoch 2's tensors were written
    restored = VLAPolicy(PolicyConfig(**TINY_POLICY), load_pretrained=False)
    document = state.load_state(directory, restored, torch.optim.AdamW(restored.trainable_parameters()))
    assert document['epoch'] == 1
    assert all(torch.equal(restored.trainable_state_dict()[k], v) for k, v in saved.items())

    _save(directory, policy, optimizer, 2)                         # a save that completes
    assert json.loads((directory / state.STATE_FILE).read_text())['epoch'] == 2
    assert sorted(p.name for p in directory.glob('*.safetensors')) == [
        'model-e0002.safetensors', 'optimizer-e0002.safetensors']  # epoch 1's files are gone


def test_one_process_needs_no_process_group(monkeypatch):
    for name in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    with distributed('cpu') as ranks:
        assert ranks == Distributed() and ranks.is_main and not ranks.active
        assert not torch.distributed.is_initialized()
        assert ranks.main_first(lambda: 7) == 7 and ranks.gather('x') == ['x']
        np.testing.assert_array_equal(ranks.all_sum(np.array([1.5, 2.0])), [1.5, 2.0])
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '2')
    with pytest.raises(ValueError, match='RANK=2 outside WORLD_SIZE=2'):
        with distributed('cpu'):
            pass
    if not torch.cuda.is_available():
        monkeypatch.setenv('RANK', '0')
        monkeypatch.setenv('WORLD_SIZE', '1')
        with pytest.raises(ValueError, match='CUDA is not available'):
            with distributed('cuda'):
                pass


def test_chunk_mae_totals_sum_like_merge():
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(2):
        errors = ChunkMAE(chunk=3)
        errors.add(rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3, 2)), rng.random((4, 3)) > 0.3)
        parts.append(errors)
    merged = ChunkMAE(chunk=3)
    for errors in parts:
        merged.merge(errors)
    summed = ChunkMAE(chunk=3)
    summed.set_totals(parts[0].totals() + parts[1].totals())
    assert summed.summary() == merged.summary()
    with pytest.raises(ValueError, match='totals'):
        summed.set_totals(np.zeros(3))
