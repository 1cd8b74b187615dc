"""The one policy interface that vla_node, replay, eval-sim and bench use.

Backends (ONNX Runtime, torch; vla_nav.runtime) implement `PolicyEngine`; callers never know which
one runs. It lives in the core (numpy only) because every layer needs it: model/ raises
ModelLoadError, data/ and training/ read the EngineSpec defaults (dt, window, chunk), runtime/
implements the engines, and core.loop drives them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from vla_nav.core.feature_ring import FeatureRing
from vla_nav.core.image_decode import Fovea, model_view

DEFAULT_WINDOW = 8       # frames of history the head looks at
DEFAULT_CHUNK = 10       # actions per chunk
DEFAULT_ACTION_DIM = 2   # (linear.x m/s, angular.z rad/s)
DEFAULT_DT = 0.1         # s between consecutive actions of a chunk


@dataclass(frozen=True)
class EngineSpec:
    """Shapes and timing a caller needs to drive an engine."""

    image_height: int          # the engine resizes nothing: callers pass frames of this size
    image_width: int
    feature_dim: int           # length of one cached per-frame feature
    window: int = DEFAULT_WINDOW
    history_stride: int = 1    # frames between window positions (PolicyConfig.history_stride)
    memory_slots: int = 0      # the oldest positions as a slow memory (PolicyConfig.memory_slots)
    memory_stride: int = 1     # frames between two memory slots
    chunk: int = DEFAULT_CHUNK
    action_dim: int = DEFAULT_ACTION_DIM
    dt: float = DEFAULT_DT
    state_dim: int = 0         # 0: no robot state; 4: vla_nav.core.robot_state (v, w, goal progress)
    fovea: Fovea = Fovea()     # the zoomed strip under the full view (image_height includes its rows)

    def ring(self, dim: int) -> FeatureRing:
        """A history ring of `dim`-vectors laid out as this model's window (features or states)."""
        return FeatureRing(self.window, dim, self.history_stride, self.memory_slots, self.memory_stride)

    def view(self, rgb: np.ndarray) -> np.ndarray:
        """A camera frame of any size -> this engine's input image (core.image_decode.model_view)."""
        return model_view(rgb, self.image_height, self.image_width, self.fovea)


class PolicyEngine(ABC):
    """encode newest frame -> feature; head over the window of features -> chunk.

    `set_instruction` is called once per goal: the instruction embedding is computed there and
    cached, never per frame.
    """

    spec: EngineSpec
    backend: str = ''          # 'onnx' | 'torch'
    provider: str = ''         # e.g. 'CPUExecutionProvider', 'CUDAExecutionProvider', 'torch-cpu'

    @abstractmethod
    def set_instruction(self, text: str) -> None:
        """Embed the goal once and keep it for every following call."""

    @abstractmethod
    def encode_frame(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB frame (spec.image_height, spec.image_width, 3) -> float32 (feature_dim,)."""

    @abstractmethod
    def act(self, features: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
        """float32 (window, feature_dim) oldest first [+ (window, state_dim)] ->
        float32 (chunk, action_dim) in physical units (m/s, rad/s), normalisation inverted."""

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget per-goal state (the cached instruction embedding stays until replaced)."""


class ModelLoadError(RuntimeError):
    """A model file is missing, corrupt or does not match: the message names the file and why."""

    def __init__(self, path, problem: str):
        super().__init__(f'{path}: {problem}')
        self.path = path
        self.problem = problem
