"""Train the trainable part of a VLAPolicy (neck + head) on cached trunk outputs.

    result = train(TrainConfig(data=['data/train'], out='runs/default'), PolicyConfig(...))

- Data: every bag under `data` is read at the policy's dt (vla_nav.data.dataset), its frames go
  through the frozen trunk once (feature_cache). Each tick t of each episode is one sample: the
  window of 8 ticks ending at t, every window position supervised with its own 10-step chunk,
  masked past the episode end (vla_nav.data.dataset.window_indices). With `hold_ticks`, episodes
  that end with a zero command get that many extra ticks of their last frame and zero commands
  (training only; validation scores the recordings as they are). With `text_noise`, the unit
  instruction embedding gets Gaussian noise (then re-normalised) in training: a recording holds
  only a few dozen phrasings, and the noise keeps the policy's response smooth around them, so an
  unseen paraphrase acts like its nearest trained phrasings instead of an arbitrary point. With
  `paraphrases` ('sim', or 'module:function' mapping an instruction to its equivalent sentences),
  each training window draws its instruction uniformly from the recording's equivalent sentences
  (e.g. all train-split wordings of "go forward 2 meters"), so every recording teaches every
  wording; validation keeps the recorded text. `instruction_loss` (needs `paraphrases`) adds an
  auxiliary cross-entropy: a linear probe on the head's projected instruction must name the task
  (the set of equivalent sentences), so that projection clusters by meaning, not by wording, and
  an unseen wording lands in its task's cluster. The probe is dropped after training.
- Validation: `val_data` when given, else a seeded `val_fraction` of the bags (split by
  recording, so no segment of a validation bag is trained on). Validation MAE is the deployed
  prediction: the chunk of the NEWEST window position, in physical units (m/s, rad/s), masked.
- Optimiser: AdamW, linear warm-up then cosine decay of the learning rate (a pure function of the
  step, so resuming needs no scheduler state), gradient-norm clipping.
- Outputs in `out`: the best checkpoint by validation MAE (config.json + model.safetensors,
  vla_nav.model.checkpoint), `metrics.csv` (one row per epoch), and `training_state/` (latest
  weights, optimizer tensors and torch RNG as safetensors; epoch, numpy RNG, best score and the
  settings as JSON: no pickle) for `resume`.
- Seeded: the same seed, data and machine give the same weights; a resumed run continues the RNG
  streams where the interrupted one left them at the end of its last finished epoch.
- Resume with the same arguments as the interrupted run (the learning-rate schedule is a function
  of `epochs` and the data size).
- `max_minutes` bounds the whole run (cache build included): no epoch is started that would not
  finish in time (estimated from the previous epoch).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vla_nav.data.dataset import window_indices
from vla_nav.model.checkpoint import save_checkpoint
from vla_nav.model.config import PolicyConfig
from vla_nav.model.policy import VLAPolicy
from vla_nav.training.feature_cache import FeatureCache, load_or_build_cache
from vla_nav.training.metrics import ChunkMAE

LOG = logging.getLogger('vla_nav.training')

STATE_DIR = 'training_state'
METRICS_FILE = 'metrics.csv'
METRICS_COLUMNS = ('epoch', 'train_loss', 'val_loss', 'val_mae', 'val_mae_linear',
                   'val_mae_angular', 'lr', 'epoch_s', 'elapsed_s')


def _path_list(paths) -> list[str]:
    return [str(paths)] if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    val_data: list[str] = field(default_factory=list)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.05
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    seed: int = 0
    max_minutes: float = 0.0          # 0: no limit
    stop_after: int = 0               # end this run after that many epochs as if interrupted
                                      # (staged runs, resume tests); 0: run to `epochs`
    resume: bool = False
    cache_dir: str = ''
    threads: int = 0                  # torch intra-op threads; 0: torch's default
    hold_ticks: int = 0               # extend episodes that end stopped by this many still ticks
    text_noise: float = 0.0           # std of Gaussian noise added per component to the (unit)
                                      # instruction embedding in training, then re-normalised
    paraphrases: str = ''             # '' off; 'sim' or 'module:function': instruction ->
                                      # equivalent sentences, one drawn per training window
    instruction_loss: float = 0.0     # weight of the task-probe loss on the projected instruction
    progress: bool = True

    def __post_init__(self) -> None:
        self.data = _path_list(self.data)
        self.val_data = _path_list(self.val_data)
        problems = []
        if not self.data:
            problems.append('data: at least one bag folder')
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f'epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}')
        if not self.lr > 0 or self.weight_decay < 0:
            problems.append(f'lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}')
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f'val_fraction must be in [0, 1), got {self.val_fraction}')
        if not 0.0 <= self.warmup_fraction < 1.0 or not 0.0 <= self.min_lr_fraction <= 1.0:
            problems.append('warmup_fraction in [0, 1) and min_lr_fraction in [0, 1] required')
        if self.text_noise < 0:
            problems.append(f'text_noise must be >= 0, got {self.text_noise}')
        if self.paraphrases and self.paraphrases != 'sim' and ':' not in self.paraphrases:
            problems.append(f"paraphrases must be '', 'sim' or 'module:function', got {self.paraphrases!r}")
        if self.instruction_loss < 0 or (self.instruction_loss > 0 and not self.paraphrases):
            problems.append('instruction_loss must be >= 0 and needs paraphrases (the task labels), '
                            f'got {self.instruction_loss} with paraphrases={self.paraphrases!r}')
        if self.hold_ticks < 0:
            problems.append(f'hold_ticks must be >= 0, got {self.hold_ticks}')
        if self.max_minutes < 0:
            problems.append(f'max_minutes must be >= 0, got {self.max_minutes}')
        if problems:
            raise ValueError('invalid TrainConfig: ' + '; '.join(problems))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    out: Path
    best_epoch: int
    best_val_mae: float
    epochs_run: int
    stopped_early: bool            # max_minutes reached before `epochs`
    history: list[dict]


# --------------------------------------------------------------------------------------------
# Samples


@dataclass
class WindowSet:
    """Every tick of some cached episodes as a training window (indices into the cache)."""

    frame_index: np.ndarray     # (N, W) int64 rows of the cache
    text_index: np.ndarray      # (N,) int64 rows of cache.texts
    target: np.ndarray          # (N, W, C, 2) float32 physical units, 0 where masked
    mask: np.ndarray            # (N, W, C) bool

    def __len__(self) -> int:
        return len(self.text_index)


def ends_stopped(actions: np.ndarray, tolerance: float = 1e-3) -> bool:
    """The recording ends with a zero command: the robot is meant to stay where it stopped."""
    return bool(len(actions)) and bool(np.all(np.abs(actions[-1]) <= tolerance))


def build_windows(cache: FeatureCache, episode_ids: list[int], window: int, chunk: int,
                  hold_ticks: int = 0) -> WindowSet:
    """Every tick of the episodes as a window. hold_ticks > 0: an episode that ends with a zero
    command is extended by that many ticks of its last frame with zero commands, so the policy
    also learns to STAY stopped at the goal (expert recordings end the moment the robot stops,
    so without this a closed-loop policy never saw "arrived" and drifts off)."""
    frames, texts, targets, masks = [], [], [], []
    for episode_id in episode_ids:
        episode = cache.episodes[episode_id]
        actions = cache.actions[episode.start:episode.start + episode.length]
        extra = hold_ticks if hold_ticks > 0 and ends_stopped(actions) else 0
        length = episode.length + extra
        if extra:
            actions = np.concatenate([actions, np.zeros((extra, actions.shape[1]), actions.dtype)])
        frame_index, action_index, mask = window_indices(length, window, chunk)
        frames.append(np.minimum(frame_index, episode.length - 1) + episode.start)
        texts.append(np.full(length, episode.text_index, np.int64))
        targets.append(actions[action_index] * mask[..., None])
        masks.append(mask)
    if not frames:
        shape = (0, window)
        return WindowSet(np.zeros(shape, np.int64), np.zeros(0, np.int64),
                         np.zeros((*shape, chunk, 2), np.float32), np.zeros((*shape, chunk), bool))
    return WindowSet(np.concatenate(frames), np.concatenate(texts),
                     np.concatenate(targets).astype(np.float32), np.concatenate(masks))


def split_episodes(cache: FeatureCache, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train ids, validation ids): a seeded `fraction` of the recordings (bags) for validation."""
    bags = sorted({episode.source.split('#')[0] for episode in cache.episodes})
    count = int(round(fraction * len(bags))) if len(bags) > 1 else 0
    count = min(max(count, 1 if fraction > 0 and len(bags) > 1 else 0), len(bags) - 1)
    chosen = set(np.random.default_rng([seed, 7]).permutation(len(bags))[:count].tolist())
    val_bags = {bag for index, bag in enumerate(bags) if index in chosen}
    train_ids = [i for i, e in enumerate(cache.episodes) if e.source.split('#')[0] not in val_bags]
    val_ids = [i for i, e in enumerate(cache.episodes) if e.source.split('#')[0] in val_bags]
    return train_ids, val_ids


def resolve_paraphraser(spec: str):
    """'sim' -> vla_nav.sim.scenarios.paraphrases (train split); 'module:function' -> that callable."""
    import importlib

    module, _, name = ('vla_nav.sim.scenarios:paraphrases' if spec == 'sim' else spec).partition(':')
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f'paraphrases {spec!r}: {error}') from error
    if not callable(function):
        raise ValueError(f'paraphrases {spec!r} is not callable')
    return function


@dataclass
class ParaphraseTable:
    """Instruction embeddings with, for each cached instruction, the rows of its equivalents."""

    texts: np.ndarray           # (U + extra, text_dim) float32: the cache's texts, then new ones
    choices: np.ndarray         # (U, K) int64 rows of `texts`, padded by repeating
    counts: np.ndarray          # (U,) int64 valid entries per row of `choices`
    task: np.ndarray            # (U,) int64 task id: equal for instructions with the same equivalents

    def draw(self, text_index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        picks = (rng.random(len(text_index)) * self.counts[text_index]).astype(np.int64)
        return self.choices[text_index, picks]


def build_paraphrase_table(cache: FeatureCache, paraphraser, embed) -> ParaphraseTable:
    """Embed (with `embed`: list[str] -> (B, text_dim) array) every equivalent sentence the
    cache's instructions have; an instruction the paraphraser does not know keeps only itself."""
    instructions = [''] * len(cache.texts)
    for episode in cache.episodes:
        instructions[episode.text_index] = episode.instruction
    row_of = {text: row for row, text in enumerate(instructions)}
    extra: list[str] = []
    groups = []
    for text in instructions:
        group = [text] + [s for s in paraphraser(text) if s != text]
        for sentence in group:
            if sentence not in row_of:
                row_of[sentence] = len(instructions) + len(extra)
                extra.append(sentence)
        groups.append([row_of[sentence] for sentence in group])
    texts = cache.texts
    if extra:
        texts = np.concatenate([texts, np.asarray(embed(extra), np.float32).reshape(len(extra), -1)])
    width = max(len(group) for group in groups)
    choices = np.array([group + [group[0]] * (width - len(group)) for group in groups], np.int64)
    counts = np.array([len(group) for group in groups], np.int64)
    task_of: dict[frozenset, int] = {}
    task = np.array([task_of.setdefault(frozenset(group), len(task_of)) for group in groups], np.int64)
    LOG.info('paraphrases: %d instructions -> %d sentences (%d new), %d tasks', len(groups), len(texts),
             len(extra), len(task_of))
    return ParaphraseTable(texts.astype(np.float32), choices, counts, task)


class Batches:
    """Tensors for a batch of windows from the cache (instructions optionally re-worded)."""

    def __init__(self, cache: FeatureCache, windows: WindowSet, use_states: bool,
                 paraphrase: ParaphraseTable | None = None) -> None:
        self.cache = cache
        self.windows = windows
        self.use_states = use_states
        self.paraphrase = paraphrase
        self.texts = torch.from_numpy(paraphrase.texts if paraphrase else cache.texts)

    def get(self, rows: np.ndarray, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """rng given (training) and a paraphrase table: each window draws one equivalent wording."""
        w = self.windows
        frame_index = w.frame_index[rows]
        trunk = torch.from_numpy(self.cache.trunk[frame_index.reshape(-1)]).float()
        trunk = trunk.reshape(*frame_index.shape, *trunk.shape[1:])
        states = (torch.from_numpy(self.cache.states[frame_index]) if self.use_states else None)
        text_index = w.text_index[rows]
        if self.paraphrase is not None and rng is not None:
            text_index = self.paraphrase.draw(text_index, rng)
        return (trunk, self.texts[torch.from_numpy(text_index)], states,
                torch.from_numpy(w.target[rows]), torch.from_numpy(w.mask[rows]))


# --------------------------------------------------------------------------------------------
# Training state (no pickle)


TASK_PROBE_PREFIX = 'training.task_probe.'   # the instruction_loss probe inside training_state


def _save_state(directory: Path, policy: VLAPolicy, optimizer: torch.optim.Optimizer, document: dict,
                probe: torch.nn.Module | None = None) -> None:
    from safetensors.torch import save_file
    directory.mkdir(parents=True, exist_ok=True)
    weights = dict(policy.trainable_state_dict())
    if probe is not None:
        weights.update({TASK_PROBE_PREFIX + k: v for k, v in probe.state_dict().items()})
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()},
              str(directory / 'model.safetensors.tmp'))
    tensors: dict[str, torch.Tensor] = {'torch_rng': torch.get_rng_state()}
    optimizer_state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, values in optimizer_state['state'].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f'state.{index}.{name}'] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    save_file(tensors, str(directory / 'optimizer.safetensors.tmp'))
    document = dict(document, param_groups=optimizer_state['param_groups'], optimizer_scalars=scalars)
    (directory / 'state.json.tmp').write_text(json.dumps(document, indent=1), encoding='utf-8')
    for name in ('model.safetensors', 'optimizer.safetensors', 'state.json'):
        os.replace(directory / f'{name}.tmp', directory / name)


def _load_state(directory: Path, policy: VLAPolicy, optimizer: torch.optim.Optimizer,
                probe: torch.nn.Module | None = None) -> dict:
    from safetensors.torch import load_file
    document = json.loads((directory / 'state.json').read_text(encoding='utf-8'))
    weights = load_file(str(directory / 'model.safetensors'))
    if probe is not None:
        probe.load_state_dict({k[len(TASK_PROBE_PREFIX):]: v for k, v in weights.items()
                               if k.startswith(TASK_PROBE_PREFIX)})
    policy.load_state_dict({k: v for k, v in weights.items() if not k.startswith(TASK_PROBE_PREFIX)},
                           strict=False)
    tensors = load_file(str(directory / 'optimizer.safetensors'))
    torch.set_rng_state(tensors.pop('torch_rng'))
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, index, name = key.split('.', 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in document.get('optimizer_scalars', {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({'state': state, 'param_groups': document['param_groups']})
    return document


def read_resume_config(out: str | os.PathLike) -> PolicyConfig:
    """The PolicyConfig an interrupted run in `out` was training."""
    path = Path(out) / STATE_DIR / 'state.json'
    if not path.is_file():
        raise FileNotFoundError(f'{path}: nothing to resume (no training state in {out})')
    return PolicyConfig.from_dict(json.loads(path.read_text(encoding='utf-8'))['policy'])


# --------------------------------------------------------------------------------------------


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    warmup = max(int(config.warmup_fraction * total), 1)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    floor = config.min_lr_fraction
    return config.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def evaluate_windows(policy: VLAPolicy, batches: Batches, batch_size: int = 512) -> tuple[float, ChunkMAE]:
    """(mean loss, MAE of the newest position's chunk) over every window of `batches`."""
    cfg = policy.config
    errors = ChunkMAE(cfg.chunk, cfg.action_dim)
    total_loss, total_weight = 0.0, 0
    policy.eval()
    with torch.no_grad():
        for start in range(0, len(batches.windows), batch_size):
            rows = np.arange(start, min(start + batch_size, len(batches.windows)))
            trunk, text, states, target, mask = batches.get(rows)
            features = policy.encode_window_from_trunk(trunk, text)
            loss, _ = policy.compute_loss(features, text, states, target, mask)
            newest = policy.predict_chunk(features, text, states)
            errors.add(newest.numpy(), target[:, -1].numpy(), mask[:, -1].numpy())
            weight = int(mask.sum())
            total_loss += float(loss) * weight
            total_weight += weight
    return total_loss / max(total_weight, 1), errors


def _write_metrics(path: Path, rows: list[dict]) -> None:
    with open(path, 'w', newline='', encoding='utf-8') as stream:
        writer = csv.DictWriter(stream, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def train(config: TrainConfig, policy_config: PolicyConfig,
          extra_metadata: dict | None = None) -> TrainResult:
    """Run (or resume) training; see the module docstring."""
    from tqdm import tqdm

    started = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    state_dir = out / STATE_DIR
    if config.resume:
        policy_config = read_resume_config(out)
    torch.manual_seed(config.seed)
    policy = VLAPolicy(policy_config)
    cache = load_or_build_cache(config.data, policy, config.cache_dir or None, progress=config.progress)
    window, chunk = policy_config.window, policy_config.chunk
    if config.val_data:
        train_ids = list(range(len(cache.episodes)))
        val_cache = load_or_build_cache(config.val_data, policy, config.cache_dir or None,
                                        progress=config.progress)
        val_ids = list(range(len(val_cache.episodes)))
    else:
        train_ids, val_ids = split_episodes(cache, config.val_fraction, config.seed)
        val_cache = cache
    use_states = bool(policy_config.state_dim)
    paraphrase = None
    if config.paraphrases:
        paraphrase = build_paraphrase_table(
            cache, resolve_paraphraser(config.paraphrases),
            lambda texts: policy.embed_instructions(texts).float().cpu().numpy())
    train_set = Batches(cache, build_windows(cache, train_ids, window, chunk, config.hold_ticks),
                        use_states, paraphrase)
    val_set = Batches(val_cache, build_windows(val_cache, val_ids, window, chunk), use_states)
    if not len(train_set.windows):
        raise ValueError('no training windows: the data has no usable episodes')
    LOG.info('train: %d episodes / %d windows; validation: %d episodes / %d windows', len(train_ids),
             len(train_set.windows), len(val_ids), len(val_set.windows))

    parameters = policy.trainable_parameters()
    probe = None
    if config.instruction_loss > 0:
        projection = getattr(policy.head_input, 'text_projection', None)
        if projection is None:
            raise ValueError('instruction_loss needs a policy whose head projects the instruction '
                             '(edge backbone, text_head_dim > 0)')
        probe = torch.nn.Linear(projection.out_features, int(paraphrase.task.max()) + 1)
        parameters = list(parameters) + list(probe.parameters())
        window_tasks = torch.from_numpy(paraphrase.task[train_set.windows.text_index])
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set.windows) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    rng = np.random.default_rng(config.seed)
    first_epoch, best_mae, best_epoch, history = 1, math.inf, 0, []
    if config.resume:
        document = _load_state(state_dir, policy, optimizer, probe)
        rng.bit_generator.state = document['numpy_rng']
        first_epoch = int(document['epoch']) + 1
        best_mae, best_epoch = float(document['best_val_mae']), int(document['best_epoch'])
        history = list(document['history'])
        LOG.info('resuming %s after epoch %d (best val MAE %.4f at epoch %d)', out, first_epoch - 1,
                 best_mae, best_epoch)
    out.mkdir(parents=True, exist_ok=True)
    metadata = dict(extra_metadata or {})
    metadata.update({'train': config.to_dict(), 'data_cache_key': cache.key,
                     'train_windows': len(train_set.windows), 'val_windows': len(val_set.windows)})

    stopped_early = False
    last_epoch_s = 0.0
    epoch = first_epoch - 1
    last = config.epochs if not config.stop_after else min(config.epochs, first_epoch - 1 + config.stop_after)
    for epoch in range(first_epoch, last + 1):
        elapsed_min = (time.monotonic() - started) / 60.0
        if config.max_minutes and elapsed_min + last_epoch_s / 60.0 > config.max_minutes:
            stopped_early = True
            LOG.warning('stopping before epoch %d: the %.1f min budget would be exceeded', epoch,
                        config.max_minutes)
            epoch -= 1
            break
        epoch_start = time.monotonic()
        policy.train()
        order = rng.permutation(len(train_set.windows))
        loss_sum, loss_count = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f'epoch {epoch}/{config.epochs}', unit='batch',
                   disable=not config.progress, dynamic_ncols=True, leave=False)
        for index in bar:
            step = (epoch - 1) * steps_per_epoch + index
            lr = learning_rate(step, total_steps, config)
            for group in optimizer.param_groups:
                group['lr'] = lr
            rows = order[index * config.batch_size:(index + 1) * config.batch_size]
            trunk, text, states, target, mask = train_set.get(rows, rng)
            if config.text_noise > 0:
                noisy = text + config.text_noise * torch.randn_like(text)
                text = torch.nn.functional.normalize(noisy, dim=-1)
            features = policy.encode_window_from_trunk(trunk, text)
            loss, _ = policy.compute_loss(features, text, states, target, mask)
            if probe is not None:
                logits = probe(policy.head_input.text_projection(text))
                loss = loss + config.instruction_loss * torch.nn.functional.cross_entropy(
                    logits, window_tasks[torch.from_numpy(rows)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            loss_sum += float(loss.detach())
            loss_count += 1
            if index % 20 == 0:
                bar.set_postfix(loss=f'{loss_sum / loss_count:.4f}', lr=f'{lr:.2e}')
        bar.close()
        val_loss, errors = (evaluate_windows(policy, val_set) if len(val_set.windows)
                            else (math.nan, None))
        per_dim = errors.per_dim() if errors else [math.nan, math.nan]
        val_mae = errors.overall if errors else loss_sum / max(loss_count, 1)
        last_epoch_s = time.monotonic() - epoch_start
        row = {'epoch': epoch, 'train_loss': round(loss_sum / max(loss_count, 1), 6),
               'val_loss': round(val_loss, 6), 'val_mae': round(val_mae, 6),
               'val_mae_linear': round(float(per_dim[0]), 6), 'val_mae_angular': round(float(per_dim[1]), 6),
               'lr': f'{lr:.3e}', 'epoch_s': round(last_epoch_s, 2),
               'elapsed_s': round(time.monotonic() - started, 1)}
        history.append(row)
        improved = val_mae < best_mae
        if improved:
            best_mae, best_epoch = val_mae, epoch
            save_checkpoint(policy, out, extra_metadata=dict(
                metadata, epoch=epoch, val_mae=row['val_mae'], val_mae_linear=row['val_mae_linear'],
                val_mae_angular=row['val_mae_angular']))
        _write_metrics(out / METRICS_FILE, history)
        _save_state(state_dir, policy, optimizer, {
            'epoch': epoch, 'numpy_rng': rng.bit_generator.state, 'best_val_mae': best_mae,
            'best_epoch': best_epoch, 'history': history, 'policy': policy_config.to_dict(),
            'train': config.to_dict()}, probe)
        message = (f'epoch {epoch}: train loss {row["train_loss"]:.4f}, val loss {val_loss:.4f}, '
                   f'val MAE {val_mae:.4f} (linear {per_dim[0]:.4f} m/s, angular {per_dim[1]:.4f} '
                   f'rad/s){" *best*" if improved else ""} [{last_epoch_s:.0f} s]')
        LOG.info(message)
        if config.progress:
            tqdm.write(message)
    stopped_early = stopped_early or epoch < config.epochs
    return TrainResult(out=out, best_epoch=best_epoch, best_val_mae=best_mae, epochs_run=epoch,
                       stopped_early=stopped_early, history=history)
