"""Train the trainable part of a VLAPolicy (neck + head) on cached trunk outputs.

    result = train(TrainConfig(data=['data/train'], out='runs/default'), PolicyConfig(...))

- Data (vla_nav.training.samples): every bag under `data` is read at the policy's dt, its frames
  go through the frozen trunk once (feature_cache). Each tick t of each episode is one sample:
  the window of 8 ticks ending at t, every window position supervised with its own 10-step
  chunk, masked past the episode end. With `hold_ticks`, episodes that end with a zero command
  get that many extra ticks of their last frame and zero commands (training only; validation
  scores the recordings as they are). With `text_noise`, the unit instruction embedding gets
  Gaussian noise (then re-normalised) in training: a recording holds only a few dozen
  phrasings, and the noise keeps the policy's response smooth around them, so an unseen
  paraphrase acts like its nearest trained phrasings instead of an arbitrary point. With
  `paraphrases` (vla_nav.training.paraphrases), each training window draws its instruction from
  the recording's equivalent sentences. `instruction_loss` (needs `paraphrases`) adds an
  auxiliary cross-entropy: a linear probe on the head's projected instruction must name the task
  (the set of equivalent sentences), so that projection clusters by meaning, not by wording, and
  an unseen wording lands in its task's cluster. The probe is dropped after training.
- Validation: `val_data` when given, else a seeded `val_fraction` of the bags (split by
  recording, so no segment of a validation bag is trained on). Validation MAE is the deployed
  prediction: the chunk of the NEWEST window position, in physical units (m/s, rad/s), masked.
- Optimiser: AdamW, linear warm-up then cosine decay of the learning rate (a pure function of the
  step, so resuming needs no scheduler state), gradient-norm clipping. One optimisation step is
  `train_step(TrainingStep(policy), ...)` (vla_nav.training.step), usable on its own (e.g. one
  step of a large backbone).
- Outputs in `out`: the best checkpoint by validation MAE (`keep='last'`: the last epoch's;
  config.json + model.safetensors,
  vla_nav.model.checkpoint), `metrics.csv` (one row per epoch), and `training_state/` for
  `resume` (vla_nav.training.state: safetensors + JSON, no pickle, safe against a kill at any
  moment).
- Seeded: the same seed, data and machine give the same weights; a resumed run continues the RNG
  streams where the interrupted one left them at the end of its last finished epoch.
- Resume with the same arguments as the interrupted run (the learning-rate schedule is a function
  of `epochs` and the data size).
- Fine-tuning (`init`: a checkpoint directory, e.g. models/default): the run starts from that
  checkpoint's trainable weights (vla_nav.model.checkpoint.load_checkpoint) and must train its
  PolicyConfig (a ValueError otherwise); the optimiser, its warm-up and the schedule start afresh.
  Epoch 0 (a row in metrics.csv, train_loss nan) scores the init model on the validation windows
  before any step and competes for "best" like any epoch, so `out` always holds a checkpoint
  that is at least as good there as the start. The instruction-loss probe is never part of a
  checkpoint: a fine-tune trains a fresh one over the new data's tasks. The trunk cache is keyed
  by the frozen trunk, which a fine-tune shares, so bags already encoded are reused.
- `max_minutes` bounds the whole run (cache build included): no epoch is started that would not
  finish in time (estimated from the previous epoch).
- Several processes (torchrun / accelerate launch / srun torchrun set WORLD_SIZE, RANK,
  LOCAL_RANK; vla_nav.training.distributed): DistributedDataParallel over the trainable part.
  Every rank draws the same epoch order (same seed) and takes its share (rows rank, rank + N,
  ...) of each GLOBAL batch of `batch_size` windows, weighting its loss by its share of the valid
  targets, so the averaged gradient is the gradient of the same global batch one process would
  see. Identical to one process: the global batches, their order, the paraphrase draws, the
  instruction noise, the learning-rate schedule, the number of steps and the validation windows
  (each rank scores a part; sums are all-reduced). Different: dropout masks (each rank draws its
  own) and float summation order, so weights and losses agree within a tolerance, not bit for
  bit (with dropout 0, to about 1e-5 relative). Only rank 0 builds the trunk cache (the others
  wait at a barrier, then read it), shows progress and logs, and writes files; every rank's RNG
  state goes into training_state/, so a resumed run with the same number of processes continues
  exactly where it was interrupted.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint
from vla_nav.model.config import FINE_TUNABLE_FIELDS, PolicyConfig
from vla_nav.model.policy import VLAPolicy
from vla_nav.training import KEEP_CHOICES
from vla_nav.training.distributed import Distributed, distributed
from vla_nav.training.feature_cache import load_or_build_cache, merge_caches
from vla_nav.training.metrics import ChunkMAE
from vla_nav.training.paraphrases import build_paraphrase_table, resolve_paraphraser
from vla_nav.training.samples import Batches, build_windows, model_states, replay_sample, split_episodes
from vla_nav.training.state import (
    METRICS_FILE,
    STATE_DIR,
    load_state,
    read_resume_config,
    rng_state,
    save_state,
    write_metrics,
)
from vla_nav.training.step import TrainingStep, evaluate_windows, train_step

LOG = logging.getLogger('vla_nav.training')


def _path_list(paths) -> list[str]:
    return [str(paths)] if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    val_data: list[str] = field(default_factory=list)
    epochs: int = 20
    batch_size: int = 64              # the global batch: all processes of a distributed run together
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
    stop_phrases: tuple = ()          # the one stop list (config stop_words): how goal features
                                      # (state_dim 8) read each segment's instruction
    init: str = ''                    # checkpoint dir to fine-tune ('' = random weights)
    replay_fraction: float = 1.0      # share of the episodes of every `data` folder but the LAST
                                      # that training keeps (a seeded sample; 1: all): a DAgger
                                      # round fine-tunes on its new recording in full plus a
                                      # rehearsal sample of the older ones, so rounds stop growing
    keep: str = 'best'                # the checkpoint in `out`: 'best' validation MAE, or 'last'
                                      # epoch (DAgger rounds: their states are the policy's own,
                                      # which the expert-driven validation bags do not measure)
    device: str = 'cpu'               # 'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available);
                                      # distributed: each process takes the GPU of its LOCAL_RANK
    progress: bool = True

    def __post_init__(self) -> None:
        self.data = _path_list(self.data)
        self.val_data = _path_list(self.val_data)
        problems = self._number_problems() + self._option_problems()
        if problems:
            raise ValueError('invalid TrainConfig: ' + '; '.join(problems))

    def _number_problems(self) -> list[str]:
        problems = []
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
        if self.hold_ticks < 0:
            problems.append(f'hold_ticks must be >= 0, got {self.hold_ticks}')
        if self.max_minutes < 0:
            problems.append(f'max_minutes must be >= 0, got {self.max_minutes}')
        if not 0.0 < self.replay_fraction <= 1.0:
            problems.append(f'replay_fraction must be in (0, 1], got {self.replay_fraction}')
        return problems

    def _option_problems(self) -> list[str]:
        problems = []
        if not self.data:
            problems.append('data: at least one bag folder')
        if self.paraphrases and self.paraphrases != 'sim' and ':' not in self.paraphrases:
            problems.append(f"paraphrases must be '', 'sim' or 'module:function', got {self.paraphrases!r}")
        if self.instruction_loss < 0 or (self.instruction_loss > 0 and not self.paraphrases):
            problems.append('instruction_loss must be >= 0 and needs paraphrases (the task labels), '
                            f'got {self.instruction_loss} with paraphrases={self.paraphrases!r}')
        if self.keep not in KEEP_CHOICES:
            problems.append(f'keep must be one of {KEEP_CHOICES}, got {self.keep!r}')
        if not (self.device in ('auto', 'cpu', 'cuda') or self.device.startswith('cuda:')):
            problems.append(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        return problems

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


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    warmup = max(int(config.warmup_fraction * total), 1)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    floor = config.min_lr_fraction
    return config.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


# --------------------------------------------------------------------------------------------
# The run


def train(config: TrainConfig, policy_config: PolicyConfig,
          extra_metadata: dict | None = None) -> TrainResult:
    """Run (or resume) training, in one process or as one rank of several; see the module
    docstring."""
    started = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    with distributed(config.device) as ranks:
        run = _Run(config, ranks, started)
        run.prepare(policy_config, extra_metadata or {})
        result = run.loop()
        ranks.barrier()   # every file rank 0 writes is complete when train() returns on any rank
        return result


class _Run:
    """The state of one training run, set up by `prepare`, advanced one epoch at a time."""

    def __init__(self, config: TrainConfig, ranks: Distributed, started: float) -> None:
        self.config = config
        self.ranks = ranks
        self.started = started
        self.out = Path(config.out)
        self.progress = config.progress and ranks.is_main
        self.first_epoch, self.best_mae, self.best_epoch = 1, math.inf, 0
        self.history: list[dict] = []
        self.window_tasks: torch.Tensor | None = None

    # --- set-up ------------------------------------------------------------------------------
    def prepare(self, policy_config: PolicyConfig, extra_metadata: dict) -> None:
        config = self.config
        if config.resume:
            policy_config = read_resume_config(self.out)
        self.policy_config = policy_config
        torch.manual_seed(config.seed)
        self.policy = self._initial_policy(policy_config).to(self.ranks.device)
        self._prepare_data()
        self._prepare_model()
        self.rng = np.random.default_rng(config.seed)
        if config.resume:
            self._resume()
        self._wrap()
        if self.ranks.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.metadata = dict(extra_metadata)
        self.metadata.update({'train': config.to_dict(), 'data_cache_key': self.cache_key,
                              'train_windows': len(self.train_set), 'val_windows': len(self.val_set)})
        if self.ranks.active:
            self.metadata['world_size'] = self.ranks.world_size

    def _initial_policy(self, policy_config: PolicyConfig) -> VLAPolicy:
        """Random weights, or the init checkpoint's (a resumed run loads its own state later)."""
        if not self.config.init or self.config.resume:
            return VLAPolicy(policy_config)
        policy = load_checkpoint(self.config.init)
        changed = sorted(key for key, value in policy_config.to_dict().items()
                         if policy.config.to_dict().get(key) != value)
        if set(changed) - set(FINE_TUNABLE_FIELDS):
            raise ValueError(f'init {self.config.init}: its policy config differs from the one to '
                             f'train in {changed}; a fine-tune trains the init model\'s own config '
                             f'(only {", ".join(FINE_TUNABLE_FIELDS)} may change)')
        if changed:   # same tensors, another reading of them: the init weights in the new config
            retimed = VLAPolicy(policy_config)
            retimed.load_trained(policy)
            return retimed
        return policy

    def _load_caches(self):
        config, policy = self.config, self.policy
        caches = [load_or_build_cache(path, policy, config.cache_dir or None, progress=self.progress)
                  for path in config.data]
        val_cache = (load_or_build_cache(config.val_data, policy, config.cache_dir or None,
                                         progress=self.progress) if config.val_data else None)
        # the last folder's episode count: replay_sample never samples those down
        cache = caches[0] if len(caches) == 1 else merge_caches(caches)
        return cache, val_cache, len(caches[-1].episodes)

    def _prepare_data(self) -> None:
        config, policy_config = self.config, self.policy_config
        cache, val_cache, newest = self.ranks.main_first(self._load_caches)   # rank 0 builds first
        if val_cache is not None:
            train_ids, val_ids = list(range(len(cache.episodes))), list(range(len(val_cache.episodes)))
        else:
            train_ids, val_ids = split_episodes(cache, config.val_fraction, config.seed)
            val_cache = cache
        train_ids = replay_sample(train_ids, len(cache.episodes) - newest,
                                  config.replay_fraction, config.seed)
        self.cache_key = cache.key
        self.paraphrase = None
        if config.paraphrases:
            self.paraphrase = build_paraphrase_table(
                cache, resolve_paraphraser(config.paraphrases),
                lambda texts: self.policy.embed_instructions(texts).float().cpu().numpy())
        window, chunk = policy_config.window, policy_config.chunk
        history = {'stride': policy_config.history_stride, 'memory_slots': policy_config.memory_slots,
                   'memory_stride': policy_config.memory_stride}
        state_dim, stop = policy_config.state_dim, config.stop_phrases
        self.train_set = Batches(cache, build_windows(cache, train_ids, window, chunk, config.hold_ticks,
                                                      **history),
                                 model_states(cache, state_dim, stop), self.paraphrase)
        self.val_set = Batches(val_cache, build_windows(val_cache, val_ids, window, chunk, **history),
                               model_states(val_cache, state_dim, stop))
        if not len(self.train_set):
            raise ValueError('no training windows: the data has no usable episodes')
        if self.ranks.is_main:
            LOG.info('train: %d episodes / %d windows; validation: %d episodes / %d windows',
                     len(train_ids), len(self.train_set), len(val_ids), len(self.val_set))

    def _prepare_model(self) -> None:
        config, policy = self.config, self.policy
        self.parameters = policy.trainable_parameters()
        self.probe = None
        if config.instruction_loss > 0:
            projection = getattr(policy.head_input, 'text_projection', None)
            if projection is None:
                raise ValueError('instruction_loss needs a policy whose head projects the instruction '
                                 '(edge backbone, text_head_dim > 0)')
            tasks = int(self.paraphrase.task.max()) + 1
            self.probe = torch.nn.Linear(projection.out_features, tasks).to(self.ranks.device)
            self.parameters = list(self.parameters) + list(self.probe.parameters())
            self.window_tasks = torch.from_numpy(self.paraphrase.task[self.train_set.windows.text_index])
        self.optimizer = torch.optim.AdamW(self.parameters, lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_set) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs

    def _wrap(self) -> None:
        """The step module; under several processes wrapped in DDP (gradients averaged over ranks
        during backward; parameters outside the optimiser are left out of the reduction)."""
        self.step = TrainingStep(self.policy, self.probe, self.config.instruction_loss)
        self.model: torch.nn.Module = self.step
        if not self.ranks.active:
            return
        from torch.nn.parallel import DistributedDataParallel
        trained = {id(p) for p in self.parameters}
        ignored = [name for name, p in self.step.named_parameters()
                   if p.requires_grad and id(p) not in trained]
        if ignored:
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.step, ignored)
        device = self.ranks.device
        self.model = DistributedDataParallel(
            self.step, device_ids=[device] if device.type == 'cuda' else None)

    def _resume(self) -> None:
        document = load_state(self.out / STATE_DIR, self.policy, self.optimizer, self.probe,
                              rank=self.ranks.rank, device=self.ranks.device)
        self.rng.bit_generator.state = document['numpy_rng']
        self.first_epoch = int(document['epoch']) + 1
        self.best_mae, self.best_epoch = float(document['best_val_mae']), int(document['best_epoch'])
        self.history = list(document['history'])
        if self.ranks.is_main:
            LOG.info('resuming %s after epoch %d (best val MAE %.4f at epoch %d)', self.out,
                     self.first_epoch - 1, self.best_mae, self.best_epoch)

    # --- epochs ------------------------------------------------------------------------------
    def loop(self) -> TrainResult:
        config = self.config
        stopped_early = False
        last_epoch_s = 0.0
        epoch = self.first_epoch - 1
        if config.init and not self.history and len(self.val_set):   # not yet scored (or resumed)
            self._score_init()
        last = (config.epochs if not config.stop_after
                else min(config.epochs, self.first_epoch - 1 + config.stop_after))
        for epoch in range(self.first_epoch, last + 1):
            if self._out_of_time(last_epoch_s):
                stopped_early = True
                if self.ranks.is_main:
                    LOG.warning('stopping before epoch %d: the %.1f min budget would be exceeded', epoch,
                                config.max_minutes)
                epoch -= 1
                break
            epoch_start = time.monotonic()
            train_loss, lr = self._train_epoch(epoch)
            val_loss, errors = (evaluate_windows(self.policy, self.val_set, ranks=self.ranks)
                                if len(self.val_set) else (math.nan, None))
            last_epoch_s = time.monotonic() - epoch_start
            self._end_epoch(epoch, train_loss, lr, val_loss, errors, last_epoch_s)
        stopped_early = stopped_early or epoch < config.epochs
        return TrainResult(out=self.out, best_epoch=self.best_epoch, best_val_mae=self.best_mae,
                           epochs_run=epoch, stopped_early=stopped_early, history=self.history)

    def _score_init(self) -> None:
        """Epoch 0 of a fine-tune: the init model on the validation windows, before any step."""
        start = time.monotonic()
        val_loss, errors = evaluate_windows(self.policy, self.val_set, ranks=self.ranks)
        self._end_epoch(0, math.nan, 0.0, val_loss, errors, time.monotonic() - start)

    def _out_of_time(self, last_epoch_s: float) -> bool:
        """Would the next epoch overrun max_minutes? Rank 0 decides for every rank."""
        if not self.config.max_minutes:
            return False
        elapsed_min = (time.monotonic() - self.started) / 60.0
        return bool(self.ranks.broadcast(elapsed_min + last_epoch_s / 60.0 > self.config.max_minutes))

    def _batch(self, rows: np.ndarray) -> tuple:
        """TrainingStep arguments for this rank's part of the global batch `rows`."""
        config, ranks = self.config, self.ranks
        part: slice | np.ndarray = slice(None)
        share = 1.0
        if ranks.active:
            part = np.arange(ranks.rank, len(rows), ranks.world_size)
            if not len(part):         # a short last batch: take one row that counts for nothing
                part, share = np.arange(1), 0.0
        trunk, text, states, target, mask = self.train_set.get(rows, self.rng, part)
        if config.text_noise > 0:     # drawn for the whole global batch: the same stream on every rank
            noise = torch.randn(len(rows), text.shape[-1], dtype=text.dtype)[part]
            text = torch.nn.functional.normalize(text + config.text_noise * noise, dim=-1)
        tasks = None if self.window_tasks is None else self.window_tasks[torch.from_numpy(rows[part])]
        loss_scale = probe_scale = 1.0
        if ranks.active:
            valid = float(self.train_set.windows.mask[rows].sum())
            loss_scale = share * ranks.world_size * float(mask.sum()) / max(valid, 1.0)
            probe_scale = share * ranks.world_size * len(part) / len(rows)
        tensors = (trunk, text, states, target, mask, tasks)
        return (*(None if t is None else t.to(ranks.device) for t in tensors), loss_scale, probe_scale)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training windows; (mean train loss over the global batches, last lr)."""
        from tqdm import tqdm

        config = self.config
        self.step.train()
        order = self.rng.permutation(len(self.train_set))
        loss_sum, loss_count, lr = 0.0, 0, config.lr
        bar = tqdm(range(self.steps_per_epoch), desc=f'epoch {epoch}/{config.epochs}', unit='batch',
                   disable=not self.progress, dynamic_ncols=True, leave=False)
        for index in bar:
            lr = learning_rate((epoch - 1) * self.steps_per_epoch + index, self.total_steps, config)
            rows = order[index * config.batch_size:(index + 1) * config.batch_size]
            loss = train_step(self.model, self.optimizer, self.parameters, self._batch(rows), lr,
                              config.grad_clip)
            loss_sum += float(loss)
            loss_count += 1
            if index % 20 == 0:
                bar.set_postfix(loss=f'{loss_sum / loss_count:.4f}', lr=f'{lr:.2e}')
        bar.close()
        if self.ranks.active:   # each rank's loss is its weighted share: the sum is the global loss
            loss_sum = float(self.ranks.all_sum(np.array([loss_sum]))[0]) / self.ranks.world_size
        return loss_sum / max(loss_count, 1), lr

    def _end_epoch(self, epoch: int, train_loss: float, lr: float, val_loss: float,
                   errors: ChunkMAE | None, epoch_s: float) -> None:
        """Record the epoch; rank 0 writes the best checkpoint, metrics.csv and the state."""
        per_dim = errors.per_dim() if errors else [math.nan, math.nan]
        val_mae = errors.overall if errors else train_loss
        row = {'epoch': epoch, 'train_loss': round(train_loss, 6), 'val_loss': round(val_loss, 6),
               'val_mae': round(val_mae, 6), 'val_mae_linear': round(float(per_dim[0]), 6),
               'val_mae_angular': round(float(per_dim[1]), 6), 'lr': f'{lr:.3e}',
               'epoch_s': round(epoch_s, 2), 'elapsed_s': round(time.monotonic() - self.started, 1)}
        self.history.append(row)
        improved = val_mae < self.best_mae
        if improved:
            self.best_mae, self.best_epoch = val_mae, epoch
        rng_states = self.ranks.gather(rng_state(self.ranks.device))   # collective: every rank
        if not self.ranks.is_main:
            return
        if improved or self.config.keep == 'last':
            save_checkpoint(self.policy, self.out, extra_metadata=dict(
                self.metadata, epoch=epoch, val_mae=row['val_mae'], val_mae_linear=row['val_mae_linear'],
                val_mae_angular=row['val_mae_angular']))
        write_metrics(self.out / METRICS_FILE, self.history)
        save_state(self.out / STATE_DIR, self.policy, self.optimizer, {
            'epoch': epoch, 'numpy_rng': self.rng.bit_generator.state, 'best_val_mae': self.best_mae,
            'best_epoch': self.best_epoch, 'history': self.history, 'policy': self.policy_config.to_dict(),
            'train': self.config.to_dict(), 'world_size': self.ranks.world_size}, self.probe, rng_states)
        what = f'epoch {epoch}: train loss {row["train_loss"]:.4f}' if epoch else 'epoch 0: the init model'
        message = (f'{what}, val loss {val_loss:.4f}, '
                   f'val MAE {val_mae:.4f} (linear {per_dim[0]:.4f} m/s, angular {per_dim[1]:.4f} '
                   f'rad/s){" *best*" if improved else ""} [{epoch_s:.0f} s]')
        LOG.info(message)
        if self.progress:
            from tqdm import tqdm
            tqdm.write(message)
