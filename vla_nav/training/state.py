"""What a training run leaves in its output folder for `--resume`, and its metrics.csv. No pickle.

    OUT/training_state/state.json                    epoch, numpy RNG, best score, history, the
                                                     policy and train settings, optimizer scalars,
                                                     and the names of the two tensor files:
    OUT/training_state/model-eNNNN.safetensors       latest trainable weights (+ the task probe)
    OUT/training_state/optimizer-eNNNN.safetensors   optimizer tensors and every rank's torch RNG

The tensor files of an epoch are written first; state.json is replaced last and is the commit
point, then older tensor files are removed: a run killed at any moment resumes from the last
epoch whose state.json was written. Only rank 0 of a distributed run calls `save_state`.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import torch

from vla_nav.model.config import PolicyConfig

STATE_DIR = 'training_state'
STATE_FILE = 'state.json'
METRICS_FILE = 'metrics.csv'
METRICS_COLUMNS = ('epoch', 'train_loss', 'val_loss', 'val_mae', 'val_mae_linear',
                   'val_mae_angular', 'lr', 'epoch_s', 'elapsed_s')
TASK_PROBE_PREFIX = 'training.task_probe.'   # the instruction_loss probe inside training_state


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch RNG state (CPU, and CUDA when training there): dropout draws."""
    state = {'torch_rng': torch.get_rng_state()}
    if device.type == 'cuda':
        state['cuda_rng'] = torch.cuda.get_rng_state(device)
    return state


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text(text, encoding='utf-8')
    os.replace(temporary, path)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict, list]:
    optimizer_state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, values in optimizer_state['state'].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f'state.{index}.{name}'] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, scalars, optimizer_state['param_groups']


def save_state(directory: Path, policy, optimizer: torch.optim.Optimizer, document: dict,
               probe: torch.nn.Module | None = None,
               rng_states: list[dict[str, torch.Tensor]] | None = None) -> None:
    """`document` (JSON) + weights + optimizer; `rng_states`: every rank's `rng_state()` in rank
    order (default: this process's CPU generator)."""
    from safetensors.torch import save_file
    directory.mkdir(parents=True, exist_ok=True)
    weights = dict(policy.trainable_state_dict())
    if probe is not None:
        weights.update({TASK_PROBE_PREFIX + k: v for k, v in probe.state_dict().items()})
    epoch = int(document['epoch'])
    files = {'model': f'model-e{epoch:04d}.safetensors', 'optimizer': f'optimizer-e{epoch:04d}.safetensors'}
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(directory / files['model']))
    tensors, scalars, groups = _optimizer_tensors(optimizer)
    for rank, states in enumerate(rng_states or [rng_state(torch.device('cpu'))]):
        for name, value in states.items():
            tensors[name if rank == 0 else f'{name}.{rank}'] = value.cpu().contiguous()
    save_file(tensors, str(directory / files['optimizer']))
    document = dict(document, files=files, ranks=len(rng_states or [None]), param_groups=groups,
                    optimizer_scalars=scalars)
    _atomic_write_text(directory / STATE_FILE, json.dumps(document, indent=1))
    for stale in directory.iterdir():
        if stale.suffix == '.safetensors' and stale.name not in files.values():
            stale.unlink()


def state_files(directory: Path) -> dict[str, Path]:
    """{'model', 'optimizer'}: the tensor files the committed state.json names."""
    document = json.loads((directory / STATE_FILE).read_text(encoding='utf-8'))
    names = document.get('files', {'model': 'model.safetensors', 'optimizer': 'optimizer.safetensors'})
    return {key: directory / name for key, name in names.items()}


def load_state(directory: Path, policy, optimizer: torch.optim.Optimizer,
               probe: torch.nn.Module | None = None, rank: int = 0,
               device: torch.device | None = None) -> dict:
    """Restore weights, optimizer and this rank's RNG (rank 0's if the interrupted run had
    fewer processes); returns the JSON document."""
    from safetensors.torch import load_file
    document = json.loads((directory / STATE_FILE).read_text(encoding='utf-8'))
    files = state_files(directory)
    weights = load_file(str(files['model']))
    if probe is not None:
        probe.load_state_dict({k[len(TASK_PROBE_PREFIX):]: v for k, v in weights.items()
                               if k.startswith(TASK_PROBE_PREFIX)})
    policy.load_state_dict({k: v for k, v in weights.items() if not k.startswith(TASK_PROBE_PREFIX)},
                           strict=False)
    tensors = load_file(str(files['optimizer']))
    suffix = f'.{rank}' if rank and f'torch_rng.{rank}' in tensors else ''
    torch.set_rng_state(tensors[f'torch_rng{suffix}'])
    if device is not None and device.type == 'cuda' and f'cuda_rng{suffix}' in tensors:
        torch.cuda.set_rng_state(tensors[f'cuda_rng{suffix}'], device)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith('state.'):
            _, index, name = key.split('.', 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in document.get('optimizer_scalars', {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({'state': state, 'param_groups': document['param_groups']})
    return document


def read_resume_config(out: str | os.PathLike) -> PolicyConfig:
    """The PolicyConfig an interrupted run in `out` was training."""
    path = Path(out) / STATE_DIR / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f'{path}: nothing to resume (no training state in {out})')
    return PolicyConfig.from_dict(json.loads(path.read_text(encoding='utf-8'))['policy'])


def write_metrics(path: Path, rows: list[dict]) -> None:
    """metrics.csv, one row per epoch (rewritten whole, atomically)."""
    temporary = path.with_name(path.name + '.tmp')
    with open(temporary, 'w', newline='', encoding='utf-8') as stream:
        writer = csv.DictWriter(stream, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
