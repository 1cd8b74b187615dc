"""One training process or several (torchrun, accelerate launch, srun torchrun): who is who.

The launcher sets RANK, LOCAL_RANK and WORLD_SIZE (and MASTER_ADDR/MASTER_PORT); without them
there is one process and nothing here touches torch.distributed. With WORLD_SIZE > 1 the process
group is initialised from the environment (`env://`): NCCL when training on CUDA (each process
takes the GPU of its LOCAL_RANK), gloo on the CPU.

Rank 0 is the main process: it builds the trunk cache (the others wait, then read it; on a node
that does not share rank 0's filesystem, that node's first process builds its own copy first),
shows progress bars and logs, and writes the checkpoint, metrics.csv and training_state/. Runs
over several nodes need `--out` on a filesystem every node sees (resume reads it everywhere).
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

LOG = logging.getLogger('vla_nav.training')
T = TypeVar('T')


class RankFailedError(RuntimeError):
    """Rank 0 failed in work the other ranks were waiting for (its error is in the message)."""


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run; the collectives are no-ops with one process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def all_sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of `values` over every rank (float64 on the way)."""
        values = np.asarray(values, np.float64)
        if not self.active:
            return values
        tensor = torch.from_numpy(values.copy()).to(self.device)
        torch.distributed.all_reduce(tensor)
        return tensor.cpu().numpy()

    def broadcast(self, value: T) -> T:
        """Rank 0's `value` on every rank (any picklable object)."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.active:
            return [value]
        values: list = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def main_first(self, work: Callable[[], T]) -> T:
        """Run `work` (which may write files, e.g. build the trunk cache) on rank 0 first, then on
        the first process of each other node (which finds rank 0's files on a shared filesystem,
        or builds its node's own copy on a local one), then on the rest (they only read). No two
        processes write the same folder. An error anywhere is raised on every rank instead of
        leaving the others waiting."""
        if not self.active:
            return work()
        stages = (self.is_main, self.local_rank == 0 and not self.is_main, self.local_rank != 0)
        result = None
        for mine in stages:
            error: BaseException | None = None
            if mine:
                try:
                    result = work()
                except Exception as failure:
                    error = failure
            failures = [(rank, text) for rank, text in
                        enumerate(self.gather(None if error is None else f'{type(error).__name__}: {error}'))
                        if text is not None]
            if error is not None:
                raise error
            if failures:
                rank, text = failures[0]
                raise RankFailedError(f'rank {rank} failed: {text}')
        return result


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto': this process's GPU (cuda:LOCAL_RANK) when CUDA is available, else the CPU."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {name!r}: CUDA is not available here')
        if device.index is None:
            device = torch.device('cuda', local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, '')
    try:
        return int(value) if value else default
    except ValueError as error:
        raise ValueError(f'{name}={value!r} is not an integer (set by the launcher)') from error


@contextlib.contextmanager
def distributed(device: str = 'auto', timeout_minutes: float = 30.0) -> Iterator[Distributed]:
    """The process group for the duration of a training run (WORLD_SIZE > 1), else one process.

    A process group that is already initialised (e.g. by `accelerate` in the caller) is used as
    it is and left open."""
    world_size = _env_int('WORLD_SIZE', 1)
    rank, local_rank = _env_int('RANK', 0), _env_int('LOCAL_RANK', 0)
    if not 0 <= rank < world_size:
        raise ValueError(f'RANK={rank} outside WORLD_SIZE={world_size}')
    resolved = resolve_device(device, local_rank)
    created = False
    if world_size > 1 and not torch.distributed.is_initialized():
        backend = 'nccl' if resolved.type == 'cuda' else 'gloo'
        torch.distributed.init_process_group(backend=backend,
                                             timeout=datetime.timedelta(minutes=timeout_minutes))
        created = True
        LOG.info('distributed training: rank %d of %d (local rank %d), %s on %s', rank, world_size,
                 local_rank, backend, resolved)
    try:
        yield Distributed(rank=rank, local_rank=local_rank, world_size=world_size, device=resolved)
    finally:
        if created:
            torch.distributed.destroy_process_group()
