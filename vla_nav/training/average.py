"""Weight averaging of fine-tunes that share one init (a "model soup", Wortsman et al. 2022).

Fine-tunes started from the same checkpoint stay in one basin of the loss, so the mean of their
weights is a model too, often better in closed loop than each of them (models/default/RECIPE.md).
Averaging a model with its own fine-tune is WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of
zero-shot models"): the weight on the fine-tune trades what it added against what the init did well.

`average_checkpoints` checks that every checkpoint has the same policy config, up to the fields a
fine-tune may change with the same tensors (model.config.FINE_TUNABLE_FIELDS, e.g. the memory slots
`train --init MODEL --set memory_slots=6` adds), and that every tensor has the same shape. The
result keeps the FIRST model's config, averages the trainable weights in float64 with the given
weights, and is a normal checkpoint whose metadata names its sources (path, weight, sha256 of
their weights) and the union of their training data folders (so `config.model_world` still finds
the world it was trained in).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vla_nav.config import training_data_folders
from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint
from vla_nav.model.config import FINE_TUNABLE_FIELDS, read_checkpoint_config


def average_checkpoints(models: list[str | os.PathLike], out: str | os.PathLike,
                        weights: list[float] | None = None) -> Path:
    """Save the weighted mean of `models` (checkpoint dirs of one architecture) to `out`, under
    the first model's policy config.

    weights: one non-negative number per model (normalised to sum 1; default: equal).
    Raises ValueError for fewer than two models, bad weights, policy configs that differ outside
    FINE_TUNABLE_FIELDS or tensors of other shapes, and ModelLoadError (naming the file) for a
    missing or corrupt checkpoint."""
    if len(models) < 2:
        raise ValueError(f'average needs at least two checkpoints, got {len(models)}')
    weights = [1.0] * len(models) if weights is None else [float(w) for w in weights]
    if len(weights) != len(models):
        raise ValueError(f'{len(weights)} weights for {len(models)} checkpoints')
    if any(not (w >= 0.0) for w in weights) or sum(weights) <= 0.0:
        raise ValueError(f'weights must be non-negative with a positive sum, got {weights}')
    total = sum(weights)
    sources, folders, mean, first, reference = [], [], {}, None, {}
    for model, weight in zip(models, weights, strict=True):
        policy = load_checkpoint(model)
        if first is None:   # the first model's config is the reference (and the result's)
            first, reference = policy, policy.config.to_dict()
        differ = sorted(key for key, value in policy.config.to_dict().items() if reference.get(key) != value)
        if set(differ) - set(FINE_TUNABLE_FIELDS):
            raise ValueError(f'{model} has another policy config than {models[0]} (differs in '
                             f'{differ}): only fine-tunes of one architecture can be averaged')
        state = policy.trainable_state_dict()
        other = sorted(name for name, tensor in state.items()   # mean holds the first model's shapes
                       if name in mean and mean[name].shape != tensor.shape)
        if mean and (other or mean.keys() != state.keys()):
            raise ValueError(f'{model} has other tensors than {models[0]} ({other[:3]} differ; its '
                             f'config differs in {differ}): they cannot be averaged')
        for name, tensor in state.items():   # all float (weights, biases)
            mean[name] = mean.get(name, 0.0) + tensor.detach().to(torch.float64) * (weight / total)
        _, document = read_checkpoint_config(model)
        train = (document.get('metadata') or {}).get('train') or {}
        folders += [folder for folder in training_data_folders(document) if folder not in folders]
        sources.append({'model': str(model), 'weight': weight / total,
                        'sha256': (document.get('weights') or {}).get('sha256'),
                        'init': train.get('init'), 'seed': train.get('seed')})
    first.load_state_dict({name: tensor.to(torch.float32) for name, tensor in mean.items()}, strict=False)
    return save_checkpoint(first, out, extra_metadata={'averaged': sources, 'train': {'data': folders}})
