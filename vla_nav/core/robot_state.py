"""The robot-state vector the policy may take beside the images: one definition for every user.

vla_node (from /odom), the dataset reader (from recorded odom), eval-sim and replay all build the
state with `GoalProgress`, so training and deployment agree on what the numbers mean.

state = (v, w, distance from the pose where the goal started, unwrapped yaw change since then):
the last two make "go forward 2 meters" and "turn left" observable to a policy whose image
history spans under a second.

A model with state_dim GOAL_STATE_DIM (8) also takes `goal_features`: the structured reading of
the step's number (vla_nav.core.language parses "45 degrees", "a quarter turn", "half a meter")
as what is left of it, so the policy need not read "45" vs "90" out of a sentence embedding.
PolicyLoop appends them from its goal sequencer's step; training from each segment's instruction.
"""
from __future__ import annotations

import math

import numpy as np

from vla_nav.core.language import Step

STATE_DIM = 4
STATE_NAMES = ('linear_x', 'angular_z', 'goal_distance', 'goal_yaw')
# turn step? (1/0), asked angle - yaw change so far (rad, signed), forward step? (1/0),
# asked distance - distance so far (m); all zero for goto / stop / an unparsed sentence
GOAL_FEATURE_NAMES = ('turn_step', 'turn_left_rad', 'forward_step', 'forward_left_m')
GOAL_STATE_DIM = STATE_DIM + len(GOAL_FEATURE_NAMES)


def goal_features(step: Step | None, distance: np.ndarray | float, yaw_change: np.ndarray | float
                  ) -> np.ndarray:
    """(..., 4) float32 `GOAL_FEATURE_NAMES` of one step at the given progress since it started
    (scalars or arrays of equal shape: one row per tick)."""
    distance = np.asarray(distance, dtype=np.float64)
    yaw_change = np.asarray(yaw_change, dtype=np.float64)
    out = np.zeros((*np.broadcast(distance, yaw_change).shape, len(GOAL_FEATURE_NAMES)), np.float32)
    if step is not None and step.kind == 'turn':
        out[..., 0] = 1.0
        out[..., 1] = math.radians(step.angle_deg) - yaw_change
    elif step is not None and step.kind == 'forward':
        out[..., 2] = 1.0
        out[..., 3] = step.distance_m - distance
    return out


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rad) of a planar pose's orientation quaternion."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def wrap_angle(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


class GoalProgress:
    """Odometry relative to the pose at which the current goal started."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new goal: the next pose becomes the start."""
        self._start_xy: tuple[float, float] | None = None
        self._last_yaw = 0.0
        self._yaw_change = 0.0

    @property
    def started(self) -> bool:
        return self._start_xy is not None

    def update(self, x: float, y: float, yaw: float, linear: float, angular: float) -> np.ndarray:
        """Feed one odometry sample; returns the float32 state vector (STATE_DIM,)."""
        if self._start_xy is None:
            self._start_xy = (x, y)
            self._last_yaw = yaw
        self._yaw_change += wrap_angle(yaw - self._last_yaw)
        self._last_yaw = yaw
        distance = math.hypot(x - self._start_xy[0], y - self._start_xy[1])
        return np.array([linear, angular, distance, self._yaw_change], dtype=np.float32)

    def zero_state(self) -> np.ndarray:
        """The state when no odometry is available."""
        return np.zeros(STATE_DIM, dtype=np.float32)
