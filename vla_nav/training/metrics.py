"""Masked chunk MAE in physical units (m/s, rad/s): per chunk step, per dimension and overall.

numpy only, so the offline evaluation can run through the ONNX engine without importing torch.

    errors = ChunkMAE(chunk=10)
    errors.add(predicted (N, chunk, 2), target (N, chunk, 2), mask (N, chunk) bool)
    errors.summary() -> {'overall', 'per_dim': {'linear', 'angular'}, 'per_step': [...],
                         'per_step_dim': [[linear, angular], ...], 'count', 'chunks'}

"overall" is the mean absolute error over every valid (chunk step, dimension) element, i.e. the
mean of the two per-dimension MAEs (each valid step has both dimensions).
"""
from __future__ import annotations

import numpy as np

ACTION_NAMES = ('linear', 'angular')
ACTION_UNITS = ('m/s', 'rad/s')


class ChunkMAE:
    """Accumulates |predicted - target| over valid chunk steps."""

    def __init__(self, chunk: int, action_dim: int = 2) -> None:
        if chunk < 1 or action_dim < 1:
            raise ValueError(f'need chunk >= 1 and action_dim >= 1, got {chunk}, {action_dim}')
        self.chunk = int(chunk)
        self.action_dim = int(action_dim)
        self._sum = np.zeros((self.chunk, self.action_dim), np.float64)
        self._count = np.zeros(self.chunk, np.int64)
        self.chunks = 0

    def add(self, predicted: np.ndarray, target: np.ndarray, mask: np.ndarray) -> None:
        predicted = np.asarray(predicted, np.float64).reshape(-1, self.chunk, self.action_dim)
        target = np.asarray(target, np.float64).reshape(predicted.shape)
        mask = np.asarray(mask, bool).reshape(predicted.shape[:2])
        error = np.abs(predicted - target) * mask[..., None]
        self._sum += error.sum(axis=0)
        self._count += mask.sum(axis=0)
        self.chunks += predicted.shape[0]

    def merge(self, other: ChunkMAE) -> None:
        self._sum += other._sum
        self._count += other._count
        self.chunks += other.chunks

    def totals(self) -> np.ndarray:
        """Every accumulator as one float64 vector (to sum over the ranks of a distributed run)."""
        return np.concatenate([self._sum.ravel(), self._count.astype(np.float64), [float(self.chunks)]])

    def set_totals(self, totals: np.ndarray) -> None:
        """Replace the accumulators with a `totals()` vector (e.g. summed over ranks)."""
        totals = np.asarray(totals, np.float64)
        size = self.chunk * self.action_dim
        if totals.shape != (size + self.chunk + 1,):
            raise ValueError(f'totals must have {size + self.chunk + 1} values, got {totals.shape}')
        self._sum = totals[:size].reshape(self.chunk, self.action_dim).copy()
        self._count = np.rint(totals[size:size + self.chunk]).astype(np.int64)
        self.chunks = int(round(totals[-1]))

    @property
    def count(self) -> int:
        """Valid chunk steps seen."""
        return int(self._count.sum())

    @property
    def overall(self) -> float:
        return float(self._sum.sum() / max(self.count * self.action_dim, 1))

    def per_dim(self) -> np.ndarray:
        return self._sum.sum(axis=0) / max(self.count, 1)

    def per_step(self) -> np.ndarray:
        """(chunk,) mean over dimensions of each chunk step's MAE."""
        return self._sum.sum(axis=1) / np.maximum(self._count, 1) / self.action_dim

    def summary(self) -> dict:
        names = [ACTION_NAMES[i] if i < len(ACTION_NAMES) else f'dim{i}'
                 for i in range(self.action_dim)]
        per_step_dim = self._sum / np.maximum(self._count, 1)[:, None]
        return {
            'overall': round(self.overall, 6),
            'per_dim': {name: round(float(v), 6) for name, v in zip(names, self.per_dim(), strict=True)},
            'per_step': [round(float(v), 6) for v in self.per_step()],
            'per_step_dim': [[round(float(v), 6) for v in row] for row in per_step_dim],
            'units': {name: ACTION_UNITS[i] if i < len(ACTION_UNITS) else ''
                      for i, name in enumerate(names)},
            'count': self.count,
            'chunks': int(self.chunks),
        }


def plot_mae_by_step(summary: dict, path, title: str = 'offline MAE by chunk step') -> None:
    """PNG: MAE per chunk step for each dimension (and their mean) from `ChunkMAE.summary()`."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    per_step_dim = np.asarray(summary['per_step_dim'])
    steps = np.arange(len(per_step_dim))
    figure, axis = plt.subplots(figsize=(6, 3.6), dpi=100)
    for index, (name, unit) in enumerate(summary['units'].items()):
        axis.plot(steps, per_step_dim[:, index], marker='o', label=f'{name} ({unit})')
    axis.plot(steps, summary['per_step'], linestyle='--', color='black', label='mean')
    axis.set_xlabel('chunk step (x dt)')
    axis.set_ylabel('MAE (physical units)')
    axis.set_title(f"{title}: overall {summary['overall']:.4f}")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
