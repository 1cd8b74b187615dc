"""Input checks shared by the ONNX and torch engines (numpy only): one clear error per misuse."""
from __future__ import annotations

import numpy as np

from vla_nav.core.engine import EngineSpec


def check_frames(rgb: np.ndarray, spec: EngineSpec) -> np.ndarray:
    """(B, H, W, 3) uint8 RGB at the spec size -> a C-contiguous array, else ValueError."""
    expected = (spec.image_height, spec.image_width, 3)
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[1:] != expected:
        raise ValueError(f'frames must be uint8 (B, {expected[0]}, {expected[1]}, 3) RGB, '
                         f'got {rgb.dtype} {rgb.shape}')
    return np.ascontiguousarray(rgb)


def check_window(features: np.ndarray, states: np.ndarray | None,
                 spec: EngineSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """(W, F) features [+ (W, S) states] -> float32 arrays with a batch axis of 1.

    A state-taking policy given no states gets zeros (GoalProgress.zero_state: no odometry).
    """
    if features.shape != (spec.window, spec.feature_dim):
        raise ValueError(f'features must be ({spec.window}, {spec.feature_dim}), got {features.shape}')
    batch_features = np.ascontiguousarray(features, dtype=np.float32)[None]
    if not spec.state_dim:
        return batch_features, None
    if states is None:
        states = np.zeros((spec.window, spec.state_dim), dtype=np.float32)
    if states.shape != (spec.window, spec.state_dim):
        raise ValueError(f'states must be ({spec.window}, {spec.state_dim}), got {states.shape}')
    return batch_features, np.ascontiguousarray(states, dtype=np.float32)[None]
