"""record-sim --noise: the seeded, temporally correlated perturbation of the executed command
(DART-style recovery data). Numpy only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_SALT = 0x5EED_DA27     # keeps the noise stream apart from the scenes'


@dataclass(frozen=True)
class NoiseConfig:
    """The perturbation of the executed command, relative to the expert's nominal speeds.

    scale: OU standard deviation as a fraction of the expert's (cruise speed, turn rate); 0 = clean.
    The OU offsets act in bursts (a two-state on/off chain) so the base also drives unperturbed
    stretches. Pauses (executed command zero for a while) start at `pause_rate * scale / 0.3` per
    second, `brake_pause_factor` times as often while the expert slows down from its peak (the
    final approach: "stopped short" states), at most `max_pauses` per episode.
    """

    scale: float
    time_constant: float = 0.8           # s, OU correlation time
    burst_on: float = 1.5                # s, mean length of a perturbed stretch
    burst_off: float = 1.5               # s, mean length of an unperturbed stretch
    pause_rate: float = 0.1              # pauses per s at scale 0.3
    pause_duration: tuple[float, float] = (0.5, 1.5)   # s, uniform
    brake_pause_factor: float = 4.0
    max_pauses: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.scale <= 1.0:
            raise ValueError(f'noise scale must be in [0, 1], got {self.scale}')
        if min(self.time_constant, self.burst_on, self.burst_off) <= 0:
            raise ValueError('noise time constants must be > 0')
        low, high = self.pause_duration
        if (not 0.0 < low <= high or self.pause_rate < 0 or self.brake_pause_factor < 1
                or self.max_pauses < 0):
            raise ValueError(f'invalid pause settings: {self}')


class CommandNoise:
    """Seeded, temporally correlated perturbation of (linear, angular) commands for one episode.

    `perturb(expert, twist, dt) -> executed`: the expert's command (the label) plus the current
    offset, or zeros during a pause; clamped to the robot limits. An expert at rest is never
    perturbed (it is done: the base must be able to settle at the goal). `nominal` is the
    expert's (cruise speed, turn rate). Deterministic in (seed, episode).
    """

    def __init__(self, config: NoiseConfig, nominal: tuple[float, float], limits, seed: int,
                 episode: int):
        self.config = config
        self.limits = limits
        self._nominal = np.asarray(nominal, np.float64)
        self._rng = np.random.default_rng(np.random.SeedSequence([NOISE_SALT, seed, episode]))
        self._sigma = config.scale * self._nominal
        self._offset = self._rng.normal(0.0, 1.0, 2) * self._sigma
        self._bursting = bool(self._rng.uniform() < 0.5)
        self._pause_left = 0.0
        self._pauses = 0
        self._peak = 0.0

    @property
    def pausing(self) -> bool:
        return self._pause_left > 0.0

    def perturb(self, expert: tuple[float, float], twist: tuple[float, float], dt: float
                ) -> tuple[float, float]:
        cfg = self.config
        if cfg.scale == 0.0 or (expert[0] == 0.0 and expert[1] == 0.0 and not self.pausing):
            return float(expert[0]), float(expert[1])   # at rest (done): let the base settle
        rng = self._rng
        decay = dt / cfg.time_constant
        self._offset += -decay * self._offset + self._sigma * np.sqrt(2.0 * decay) * rng.normal(size=2)
        mean_stretch = cfg.burst_on if self._bursting else cfg.burst_off
        if rng.uniform() < dt / mean_stretch:
            self._bursting = not self._bursting
        effort = float(np.max(np.abs(expert) / self._nominal))
        self._peak = max(self._peak, effort)
        braking = 0.0 < effort < 0.8 * self._peak
        hazard = cfg.pause_rate * cfg.scale / 0.3 * (cfg.brake_pause_factor if braking else 1.0)
        if self._pause_left > 0.0:
            self._pause_left = max(0.0, self._pause_left - dt)
        elif self._pauses < cfg.max_pauses and rng.uniform() < hazard * dt:
            self._pause_left = float(rng.uniform(*cfg.pause_duration))
            self._pauses += 1
        if self._pause_left > 0.0:
            return 0.0, 0.0
        linear, angular = expert
        if self._bursting:
            linear, angular = linear + self._offset[0], angular + self._offset[1]
        lim = self.limits
        return (float(np.clip(linear, lim.min_linear_vel, lim.max_linear_vel)),
                float(np.clip(angular, -lim.max_angular_vel, lim.max_angular_vel)))
