"""record-sim --driver: a trained policy drives through the ClosedLoop (DAgger data)."""
from __future__ import annotations

from vla_nav.config import load_config

STALL_S = 1.0       # s the driving policy may sit still while the expert wants to move


class PolicyDriver:
    """DAgger: a trained policy drives through PolicyLoop + ChunkExecutor (the vla_node and
    chunk_executor logic, as eval-sim runs it); the expert only labels.

    `command(observation, label, now)` is what drives the base for one control step. If the base
    has been at rest for STALL_S while the expert's label says move (stopped short, stopped at a
    distractor), the expert takes over until the episode ends (`takeover_at`, the stamp).
    """

    def __init__(self, engine, executor_config, control_dt: float):
        self.engine = engine
        self.executor_config = executor_config
        self.control_dt = control_dt
        self.takeover_at: float | None = None

    def start(self, instruction: str, now: float) -> None:
        from vla_nav.core.closed_loop import ClosedLoop

        self.closed = ClosedLoop.build(self.engine, load_config().vla_node, self.executor_config,
                                       latency=0.0)
        self.closed.instruct(instruction, now)
        self.takeover_at = None
        self._still = 0.0

    def command(self, observation, label: tuple[float, float], now: float) -> tuple[float, float]:
        from vla_nav.sim.episode import STOPPED_ANGULAR, STOPPED_LINEAR

        if self.takeover_at is not None:
            return label
        self.closed.update_odometry(*observation.pose, *observation.twist)   # as vla_node: /odom
        self.closed.frame(observation.rgb, now, now)
        linear, angular = self.closed.tick(now)
        resting = abs(linear) < STOPPED_LINEAR and abs(angular) < STOPPED_ANGULAR
        wants_motion = label != (0.0, 0.0)
        self._still = self._still + self.control_dt if resting and wants_motion else 0.0
        if self._still >= STALL_S - 1e-9:
            self.takeover_at = now
            return label
        return linear, angular
