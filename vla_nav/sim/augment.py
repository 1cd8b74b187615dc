"""Image augmentation for training on simulated frames: noise, blur, brightness/contrast and a
colour jitter that stays within a hue (so "the red cone" stays red). numpy only, seeded.

    augment_image(rgb, rng, config=AugmentConfig()) -> rgb   (uint8 (H, W, 3) in and out)

A camera keeps its exposure, colour balance and focus from one frame to the next; only the sensor
noise changes. `draw_look(rng)` draws the first part once (an episode's `Look`) and
`apply_look(rgb, look, rng)` applies it to each frame with fresh noise (`record-sim --augment`);
augment_image is the two in one call, a new look per image.

The camera-mount jitter (height, pitch, field of view) is not here: the v2 world renders it
(rooms.CAMERA_RANGES), since it changes geometry, not pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    noise_std: tuple[float, float] = (0.0, 6.0)      # gaussian pixel noise, in 0..255 units
    blur_probability: float = 0.3                    # chance of a 3x3 box blur (1 or 2 passes)
    brightness: tuple[float, float] = (-20.0, 20.0)  # added, 0..255 units
    contrast: tuple[float, float] = (0.8, 1.2)       # scale about the image mean
    channel_gain: float = 0.06                       # per-channel gain jitter (+-), small: no hue flips

    def __post_init__(self):
        if not (0.0 <= self.blur_probability <= 1.0):
            raise ValueError('blur_probability must be in [0, 1]')
        if self.noise_std[0] < 0 or self.noise_std[1] < self.noise_std[0]:
            raise ValueError('noise_std must be a (low, high) range of values >= 0')
        if not (0.0 <= self.channel_gain < 0.5):
            raise ValueError('channel_gain must be in [0, 0.5)')


def box_blur(image: np.ndarray) -> np.ndarray:
    """3x3 mean filter with edge padding (float in, float out)."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode='edge')
    height, width = image.shape[:2]
    total = sum(padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3))
    return total / 9.0


@dataclass(frozen=True)
class Look:
    """One draw of the photometric augmentation; the noise level is drawn, the noise is not."""

    gains: tuple[float, float, float]   # per-channel gain
    contrast: float                     # scale about the image mean
    brightness: float                   # added, 0..255 units
    blur_passes: int                    # 3x3 box blurs (0: sharp)
    noise_std: float                    # gaussian pixel noise, 0..255 units


def draw_look(rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> Look:
    gains = 1.0 + rng.uniform(-config.channel_gain, config.channel_gain, size=3)
    contrast = float(rng.uniform(*config.contrast))
    brightness = float(rng.uniform(*config.brightness))
    blur_passes = int(rng.integers(1, 3)) if rng.uniform() < config.blur_probability else 0
    return Look(tuple(float(g) for g in gains), contrast, brightness, blur_passes,
                float(rng.uniform(*config.noise_std)))


def apply_look(rgb: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    """`look` applied to an RGB uint8 image, with fresh gaussian noise from rng."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}')
    image = rgb.astype(np.float32) * np.asarray(look.gains, dtype=np.float32)
    mean = image.mean()
    image = (image - mean) * look.contrast + mean + look.brightness
    for _ in range(look.blur_passes):
        image = box_blur(image)
    if look.noise_std > 0:
        image = image + rng.normal(0.0, look.noise_std, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def augment_image(rgb: np.ndarray, rng: np.random.Generator,
                  config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One random augmentation of an RGB uint8 image; the same rng state gives the same result."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}')
    return apply_look(rgb, draw_look(rng, config), rng)
