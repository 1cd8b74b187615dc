"""One optimisation step and one validation pass over cached windows: the parts of training
that do not depend on the loop around them.

    step = TrainingStep(policy)                       # the loss of a batch, as a module (DDP wraps it)
    loss = train_step(step, optimizer, policy.trainable_parameters(), batches.get(rows), lr=1e-3)
    val_loss, errors = evaluate_windows(policy, val_batches)
"""
from __future__ import annotations

import numpy as np
import torch

from vla_nav.model.policy import VLAPolicy
from vla_nav.training.distributed import Distributed
from vla_nav.training.metrics import ChunkMAE
from vla_nav.training.samples import Batches


class TrainingStep(torch.nn.Module):
    """The training loss of one batch of cached windows, as a module: the unit that
    DistributedDataParallel wraps (its forward is the whole trainable computation)."""

    def __init__(self, policy: VLAPolicy, probe: torch.nn.Module | None = None,
                 instruction_loss: float = 0.0) -> None:
        super().__init__()
        self.policy = policy
        self.probe = probe
        self.instruction_loss = instruction_loss

    def forward(self, trunk: torch.Tensor, text: torch.Tensor, states: torch.Tensor | None,
                target: torch.Tensor, mask: torch.Tensor, tasks: torch.Tensor | None = None,
                loss_scale: float = 1.0, probe_scale: float = 1.0) -> torch.Tensor:
        """Masked chunk loss (+ instruction_loss x the task probe's cross-entropy on `tasks`);
        the scales weight a rank's part of a global batch (1.0: the batch is whole)."""
        policy = self.policy
        features = policy.encode_window_from_trunk(trunk, text)
        loss, _ = policy.compute_loss(features, text, states, target, mask)
        if loss_scale != 1.0:
            loss = loss * loss_scale
        if self.probe is not None and tasks is not None:
            probe_loss = torch.nn.functional.cross_entropy(
                self.probe(policy.head_input.text_projection(text)), tasks)
            if probe_scale != 1.0:
                probe_loss = probe_loss * probe_scale
            loss = loss + self.instruction_loss * probe_loss
        return loss


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, parameters: list,
               batch: tuple, lr: float, grad_clip: float = 1.0) -> torch.Tensor:
    """One optimisation step of `model` (a TrainingStep, or one wrapped in DDP) on `batch` (its
    forward arguments): set the learning rate, backward, clip the gradient norm, step. Returns
    the (detached) loss."""
    for group in optimizer.param_groups:
        group['lr'] = lr
    loss = model(*batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
    return loss.detach()


def evaluate_windows(policy: VLAPolicy, batches: Batches, batch_size: int = 512,
                     ranks: Distributed | None = None) -> tuple[float, ChunkMAE]:
    """(mean loss, MAE of the newest position's chunk) over every window of `batches`; with
    `ranks`, each rank scores its contiguous part and the sums are all-reduced."""
    ranks = ranks or Distributed()
    cfg = policy.config
    errors = ChunkMAE(cfg.chunk, cfg.action_dim)
    total_loss, total_weight = 0.0, 0
    mine = np.array_split(np.arange(len(batches)), ranks.world_size)[ranks.rank]
    policy.eval()
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            rows = mine[start:start + batch_size]
            trunk, text, states, target, mask = (None if t is None else t.to(policy.device)
                                                 for t in batches.get(rows))
            features = policy.encode_window_from_trunk(trunk, text)
            loss, _ = policy.compute_loss(features, text, states, target, mask)
            newest = policy.predict_chunk(features, text, states)
            errors.add(newest.cpu().numpy(), target[:, -1].cpu().numpy(), mask[:, -1].cpu().numpy())
            weight = int(mask.sum())
            total_loss += float(loss) * weight
            total_weight += weight
    if ranks.active:
        total_loss, total_weight = ranks.all_sum(np.array([total_loss, total_weight]))
        errors.set_totals(ranks.all_sum(errors.totals()))
    return total_loss / max(total_weight, 1), errors
