"""Weight averaging of fine-tunes that share one init (a "model soup", Wortsman et al. 2022).

Fine-tunes started from the same checkpoint stay in one basin of the loss, so the mean of their
weights is a model too, often better in closed loop than each of them: the published v2 model
is round 6 averaged with three targeted fine-tunes of it (models/default/RECIPE.md).

`average_checkpoints` checks that every checkpoint has the same policy config (same tensors),
averages the trainable weights in float64 with the given weights, and saves a normal checkpoint
whose metadata names its sources (path, weight, sha256 of their weights) and the union of their
training data folders (so `config.model_world` still finds the world it was trained in).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vla_nav.config import training_data_folders
from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint
from vla_nav.model.config import read_checkpoint_config


def average_checkpoints(models: list[str | os.PathLike], out: str | os.PathLike,
                        weights: list[float] | None = None) -> Path:
    """Save the weighted mean of `models` (checkpoint dirs of one policy config) to `out`.

    weights: one non-negative number per model (normalised to sum 1; default: equal).
    Raises ValueError for fewer than two models, bad weights or different policy configs, and
    ModelLoadError (naming the file) for a missing or corrupt checkpoint."""
    if len(models) < 2:
        raise ValueError(f'average needs at least two checkpoints, got {len(models)}')
    weights = [1.0] * len(models) if weights is None else [float(w) for w in weights]
    if len(weights) != len(models):
        raise ValueError(f'{len(weights)} weights for {len(models)} checkpoints')
    if any(not (w >= 0.0) for w in weights) or sum(weights) <= 0.0:
        raise ValueError(f'weights must be non-negative with a positive sum, got {weights}')
    total = sum(weights)
    sources, folders, mean, first = [], [], {}, None
    for model, weight in zip(models, weights, strict=True):
        policy = load_checkpoint(model)
        first = policy if first is None else first
        if policy.config != first.config:
            differ = sorted(key for key, value in policy.config.to_dict().items()
                            if first.config.to_dict().get(key) != value)
            raise ValueError(f'{model} has another policy config than {models[0]} (differs in '
                             f'{differ}): only fine-tunes of one architecture can be averaged')
        for name, tensor in policy.trainable_state_dict().items():   # all float (weights, biases)
            mean[name] = mean.get(name, 0.0) + tensor.detach().to(torch.float64) * (weight / total)
        _, document = read_checkpoint_config(model)
        train = (document.get('metadata') or {}).get('train') or {}
        folders += [folder for folder in training_data_folders(document) if folder not in folders]
        sources.append({'model': str(model), 'weight': weight / total,
                        'sha256': (document.get('weights') or {}).get('sha256'),
                        'init': train.get('init'), 'seed': train.get('seed')})
    first.load_state_dict({name: tensor.to(torch.float32) for name, tensor in mean.items()}, strict=False)
    return save_checkpoint(first, out, extra_metadata={'averaged': sources, 'train': {'data': folders}})
