"""record-sim --driver: a trained policy drives through the ClosedLoop (DAgger data)."""
from __future__ import annotations

from vla_nav.config import load_config

STALL_S = 1.0       # s the driving policy may sit still while the expert wants to move
RESCUE_LOOKAHEAD_S = 0.6   # --rescue: the policy's command is held this long to test for a touch
RESCUE_S = 2.0             # --rescue: then the expert drives this long before the policy again


class PolicyDriver:
    """DAgger: a trained policy drives through PolicyLoop + ChunkExecutor (the vla_node and
    chunk_executor logic, as eval-sim runs it); the expert only labels.

    `command(observation, label, now)` is what drives the base for one control step. If the base
    has been at rest for STALL_S while the expert's label says move (stopped short, stopped at a
    distractor), the expert takes over until the episode ends (`takeover_at`, the stamp).

    With `rescue`, `command` also gets `would_collide(linear, angular, horizon)` (the simulator's
    look-ahead): when the policy's command held RESCUE_LOOKAHEAD_S would touch something, the
    expert drives for RESCUE_S and then hands back (`rescues` counts them). The policy keeps
    seeing every frame meanwhile, so it resumes with a current history. The episode goes on past
    the near miss: the labels show the way around the obstacle and what follows it, where a
    collision would have ended the recording.
    """

    def __init__(self, engine, executor_config, control_dt: float, rescue: bool = False):
        self.engine = engine
        self.executor_config = executor_config
        self.control_dt = control_dt
        self.rescue = rescue
        self.takeover_at: float | None = None
        self.rescues = 0

    def start(self, instruction: str, now: float) -> None:
        from vla_nav.core.closed_loop import ClosedLoop

        self.closed = ClosedLoop.build(self.engine, load_config().vla_node, self.executor_config,
                                       latency=0.0)
        self.closed.instruct(instruction, now)
        self.takeover_at = None
        self.rescues = 0
        self._rescue_until = -1.0
        self._still = 0.0

    def command(self, observation, label: tuple[float, float], now: float,
                would_collide=None) -> tuple[float, float]:
        from vla_nav.sim.episode import STOPPED_ANGULAR, STOPPED_LINEAR

        if self.takeover_at is not None:
            return label
        self.closed.update_odometry(*observation.pose, *observation.twist)   # as vla_node: /odom
        self.closed.frame(observation.rgb, now, now)
        linear, angular = self.closed.tick(now)
        if self.rescue and would_collide is not None:
            if now < self._rescue_until - 1e-9:
                return label
            if would_collide(linear, angular, RESCUE_LOOKAHEAD_S):
                self.rescues += 1
                self._rescue_until = now + RESCUE_S
                self._still = 0.0
                return label
        resting = abs(linear) < STOPPED_LINEAR and abs(angular) < STOPPED_ANGULAR
        wants_motion = label != (0.0, 0.0)
        self._still = self._still + self.control_dt if resting and wants_motion else 0.0
        if self._still >= STALL_S - 1e-9:
            self.takeover_at = now
            return label
        return linear, angular
