"""Deterministic test policies (PolicyEngine subclasses) and TINY_POLICY, the tiny VLAPolicy config
of the training tests. Test-only: the product ships none.

Selected with `backend: "policies:make_engine"` (test/ on PYTHONPATH). The variant comes from the
factory name (make_slow_engine, make_nan_engine, make_out_of_bounds_engine) or from the environment
variable VLA_NAV_TEST_POLICY ('brightness' (default) | 'slow' | 'nan' | 'out_of_bounds');
VLA_NAV_TEST_POLICY_DELAY sets the slow variant's seconds per act (default 0.3).

The brightness policy: linear.x = LINEAR_GAIN x mean brightness of the window (0..1), angular.z =
ANGULAR_GAIN x (red - blue balance of the window) + TURN_BIAS when the goal says 'left' (-TURN_BIAS
for 'right'). Every chunk step is the same action. A white frame + "go left" gives a known
forward-and-left chunk; the instruction makes goals distinguishable in end-to-end tests.
"""
from __future__ import annotations

import logging
import os
import time
import warnings

import numpy as np

from vla_nav.core.engine import EngineSpec, PolicyEngine

IMAGE_SIZE = 32
FEATURE_DIM = 4          # mean R, G, B, brightness (0..1)
LINEAR_GAIN = 0.4        # m/s at full brightness
ANGULAR_GAIN = 1.0       # rad/s per unit red-blue balance
TURN_BIAS = 0.5          # rad/s for 'left' / -'right' goals
OUT_OF_BOUNDS = 100.0    # what the out_of_bounds variant outputs (m/s, rad/s)
ENV_VARIANT = 'VLA_NAV_TEST_POLICY'
ENV_DELAY = 'VLA_NAV_TEST_POLICY_DELAY'
ENV_WARN = 'VLA_NAV_TEST_POLICY_WARN'

# The smallest trainable VLAPolicy, as PolicyConfig fields (torch-free here): 32 px frames, a tiny
# neck, head and text projection, the 4-d robot state. The training tests share it.
TINY_POLICY = dict(image_size=32, feature_dim=32, neck_channels=8, head_hidden=32, text_head_dim=16,
                   state_dim=4)


class BrightnessPolicy(PolicyEngine):
    backend = 'test'
    provider = 'numpy'

    def __init__(self, state_dim: int = 0, dt: float = 0.1) -> None:
        self.spec = EngineSpec(image_height=IMAGE_SIZE, image_width=IMAGE_SIZE,
                               feature_dim=FEATURE_DIM, window=8, chunk=10, action_dim=2, dt=dt,
                               state_dim=state_dim)
        self.instruction = ''
        self.turn = 0.0
        self.encoded = 0          # frames encoded (tests check only the newest is encoded)
        self.acts = 0
        self.last_states = None

    def set_instruction(self, text: str) -> None:
        self.instruction = text
        words = text.lower().split()
        self.turn = TURN_BIAS if 'left' in words else -TURN_BIAS if 'right' in words else 0.0

    def encode_frame(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape != (IMAGE_SIZE, IMAGE_SIZE, 3) or rgb.dtype != np.uint8:
            raise ValueError(f'expected uint8 ({IMAGE_SIZE}, {IMAGE_SIZE}, 3), got {rgb.dtype} {rgb.shape}')
        self.encoded += 1
        colour = rgb.reshape(-1, 3).mean(axis=0) / 255.0
        return np.array([*colour, colour.mean()], dtype=np.float32)

    def act(self, features: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
        self.acts += 1
        self.last_states = None if states is None else states.copy()
        mean = features.mean(axis=0)
        linear = LINEAR_GAIN * mean[3]
        angular = ANGULAR_GAIN * (mean[0] - mean[2]) + self.turn
        return np.tile(np.array([linear, angular], dtype=np.float32), (self.spec.chunk, 1))

    def reset(self) -> None:
        self.acts = 0


class SlowPolicy(BrightnessPolicy):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def act(self, features, states=None):
        time.sleep(self.delay)
        return super().act(features, states)


class NanPolicy(BrightnessPolicy):
    def act(self, features, states=None):
        actions = super().act(features, states)
        actions[3, 1] = np.nan
        return actions


class OutOfBoundsPolicy(BrightnessPolicy):
    def act(self, features, states=None):
        return np.full((self.spec.chunk, 2), OUT_OF_BOUNDS, dtype=np.float32)


def build(variant: str) -> BrightnessPolicy:
    if variant == 'brightness':
        return BrightnessPolicy()
    if variant == 'slow':
        return SlowPolicy(float(os.environ.get(ENV_DELAY, '0.3')))
    if variant == 'nan':
        return NanPolicy()
    if variant == 'out_of_bounds':
        return OutOfBoundsPolicy()
    raise ValueError(f'unknown test policy variant {variant!r}')


def warn_like_a_provider_fallback() -> None:
    """What ONNX Runtime / torch do on a missing GPU: a Python logging warning and a
    warnings.warn (VLA_NAV_TEST_POLICY_WARN=1; test_ros_namespaces checks they reach the ROS log)."""
    logging.getLogger('onnxruntime').warning(
        'device %r: this build lacks CUDAExecutionProvider; falling back to CPU', 'cuda')
    warnings.warn('CUDA initialization: no GPU found, falling back to CPU', UserWarning, stacklevel=2)


def make_engine(model_dir=None, device='cpu', engine_cache_dir=None, variant=None) -> BrightnessPolicy:
    """load_engine factory; the model directory is ignored (nothing to load)."""
    if os.environ.get(ENV_WARN):
        warn_like_a_provider_fallback()
    return build(variant or os.environ.get(ENV_VARIANT, 'brightness'))


def make_slow_engine(**kwargs) -> BrightnessPolicy:
    return make_engine(variant='slow', **kwargs)


def make_nan_engine(**kwargs) -> BrightnessPolicy:
    return make_engine(variant='nan', **kwargs)


def make_out_of_bounds_engine(**kwargs) -> BrightnessPolicy:
    return make_engine(variant='out_of_bounds', **kwargs)
