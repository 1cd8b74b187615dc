"""The simulated differential-drive base: velocity and acceleration limits, kinematic integration.

The base honours the same limits as the chunk executor (config/vla_nav.yaml `chunk_executor`), so
a command the executor lets through is one the simulated robot can follow exactly: build them with
`RobotLimits.from_executor(load_config().executor)` (the simulator never reads the YAML itself).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from vla_nav.core.executor import ExecutorConfig

_LIMIT_KEYS = ('max_linear_vel', 'min_linear_vel', 'max_angular_vel', 'max_linear_accel',
               'max_angular_accel', 'max_linear_decel', 'max_angular_decel')


@dataclass(frozen=True)
class RobotLimits:
    max_linear_vel: float
    min_linear_vel: float
    max_angular_vel: float
    max_linear_accel: float
    max_angular_accel: float
    max_linear_decel: float
    max_angular_decel: float

    def __post_init__(self):
        if not (self.min_linear_vel <= 0.0 < self.max_linear_vel and self.max_angular_vel > 0.0):
            raise ValueError(f'velocity limits must satisfy min <= 0 < max: {self}')
        for name in _LIMIT_KEYS[3:]:
            if getattr(self, name) <= 0.0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')

    @classmethod
    def from_executor(cls, config: ExecutorConfig) -> RobotLimits:
        """The chunk executor's velocity and acceleration limits."""
        return cls(**{key: float(getattr(config, key)) for key in _LIMIT_KEYS})


def _approach(current: float, target: float, accel: float, decel: float, dt: float) -> float:
    """Move a velocity toward target: `decel` while its magnitude shrinks, `accel` while it grows;
    a reversal brakes to zero first."""
    if current * target < 0.0:
        return max(0.0, current - decel * dt) if current > 0.0 else min(0.0, current + decel * dt)
    step = (decel if abs(target) < abs(current) else accel) * dt
    return min(target, current + step) if target > current else max(target, current - step)


class DiffDriveBase:
    """Planar pose + body twist; `command` sets the wanted twist, `advance` integrates dt."""

    def __init__(self, limits: RobotLimits):
        self.limits = limits
        self.reset((0.0, 0.0, 0.0))

    def reset(self, pose: tuple[float, float, float]) -> None:
        self.x, self.y, self.yaw = (float(v) for v in pose)
        self.linear = self.angular = 0.0
        self._wanted = (0.0, 0.0)

    @property
    def pose(self) -> tuple[float, float, float]:
        return self.x, self.y, self.yaw

    @property
    def twist(self) -> tuple[float, float]:
        return self.linear, self.angular

    def command(self, linear: float, angular: float) -> None:
        """Wanted twist, clamped to the velocity limits (NaN/inf mean stop)."""
        lim = self.limits
        linear = float(linear) if math.isfinite(linear) else 0.0
        angular = float(angular) if math.isfinite(angular) else 0.0
        self._wanted = (min(max(linear, lim.min_linear_vel), lim.max_linear_vel),
                        min(max(angular, -lim.max_angular_vel), lim.max_angular_vel))

    def stop(self) -> None:
        """Halt at once (a collision): no braking distance."""
        self.linear = self.angular = 0.0
        self._wanted = (0.0, 0.0)

    def advance(self, dt: float) -> tuple[float, float, float]:
        """Accelerate toward the wanted twist within limits, then move along the arc; new pose."""
        lim = self.limits
        self.linear = _approach(self.linear, self._wanted[0], lim.max_linear_accel,
                                lim.max_linear_decel, dt)
        self.angular = _approach(self.angular, self._wanted[1], lim.max_angular_accel,
                                 lim.max_angular_decel, dt)
        self.x, self.y, self.yaw = integrate_pose(self.pose, self.linear, self.angular, dt)
        return self.pose


def integrate_pose(pose: tuple[float, float, float], linear: float, angular: float, dt: float
                   ) -> tuple[float, float, float]:
    """Exact unicycle motion for a constant twist over dt."""
    x, y, yaw = pose
    if abs(angular) < 1e-9:
        x += linear * dt * math.cos(yaw)
        y += linear * dt * math.sin(yaw)
    else:
        radius = linear / angular
        x += radius * (math.sin(yaw + angular * dt) - math.sin(yaw))
        y -= radius * (math.cos(yaw + angular * dt) - math.cos(yaw))
    yaw = math.atan2(math.sin(yaw + angular * dt), math.cos(yaw + angular * dt))
    return x, y, yaw
