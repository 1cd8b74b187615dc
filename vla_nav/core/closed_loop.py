"""ClosedLoop: the policy and the executor wired as vla_node + chunk_executor wire them, without ROS.

The one sequence every offline driver runs (replay, eval-sim, record-sim --driver, the demo's
bookkeeping), and the rules the two nodes follow over DDS:

1. `instruct(text, now)`: PolicyLoop.set_instruction; a goal or a stop preempts the executor at
   `loop.goal_start_stamp` (the newest frame stamp seen when the goal was accepted): the plan is
   dropped, the base brakes, and any chunk stamped at or before it (in flight for the old goal) is
   refused with ChunkVerdict.OLD_GOAL. Junk is rejected and changes nothing. (Not
   `loop.preempt_stamp`: that moves on with every frame; a frame of the NEW goal arriving between
   the instruction and the preempt would make its own chunk look like an old goal's.)
2. `frame(rgb, stamp, now, state)`: PolicyLoop.step on the frame; a chunk is delivered to the
   executor `latency` seconds later (None: the measured wall time of the step, as in a live node;
   0: at once).
3. `tick(now)`: delivers every chunk whose arrival time has come (the executor sees it at its
   arrival time), then returns ChunkExecutor.tick(now): the command to publish.

The goal sequencer (vla_nav.core.goal) runs inside PolicyLoop, so offline drivers follow the
same step and done rules as vla_node: `statuses` records every GoalStatus change, and a step
change or a failure preempts the executor (loop.preempt_on), as vla_node publishes a preempt.

Chunks due are also delivered before an instruction or a frame, so events are applied in time
order. Imports numpy and vla_nav.core only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from vla_nav.core.engine import PolicyEngine
from vla_nav.core.executor import ChunkExecutor, ChunkVerdict, ExecutorConfig
from vla_nav.core.goal import GoalStatus
from vla_nav.core.instruction import GOAL, REFUSED, STOP, InstructionResult
from vla_nav.core.loop import Chunk, PolicyLoop, preempt_on
from vla_nav.core.node_config import VlaNodeConfig

_ARRIVAL_SLACK = 1e-9   # s; float slack when comparing an arrival time with now


@dataclass(frozen=True)
class Delivery:
    """A chunk handed to the executor (or a preempt: `chunk` None) and what the executor said."""

    arrival: float                 # s, when the executor saw it
    stamp: float                   # s, the chunk's (or preempt's) stamp
    chunk: Chunk | None
    verdict: ChunkVerdict | None   # None for a preempt


class ClosedLoop:
    """PolicyLoop + ChunkExecutor + the preempt rule + latency injection (see module doc)."""

    def __init__(self, loop: PolicyLoop, executor: ChunkExecutor, latency: float | None = 0.0,
                 clock=time.perf_counter) -> None:
        if latency is not None and not latency >= 0.0:
            raise ValueError(f'latency must be >= 0 s or None (measured), got {latency}')
        self.loop = loop
        self.executor = executor
        self.latency = latency
        self._clock = clock
        self._pending: list[tuple[float, Chunk]] = []
        self.step_seconds: list[float] = []     # wall time of every PolicyLoop.step
        self.deliveries: list[Delivery] = []    # every preempt and chunk, in delivery order
        self.statuses: list[GoalStatus] = []    # every goal status change, in order
        self._new_statuses: list[GoalStatus] = []
        loop.status_listener = self._new_statuses.append

    @classmethod
    def build(cls, engine: PolicyEngine, loop_config: VlaNodeConfig, executor_config: ExecutorConfig,
              latency: float | None = 0.0) -> ClosedLoop:
        """From an engine, the vla_node config (VlaNodeConfig) and the executor limits."""
        return cls(PolicyLoop.from_config(engine, loop_config), ChunkExecutor(executor_config),
                   latency)

    # --- inputs --------------------------------------------------------------------------
    def instruct(self, text: str, now: float) -> InstructionResult:
        """A new instruction at `now`; a goal or stop preempts at loop.goal_start_stamp."""
        self._deliver(now)
        result = self.loop.set_instruction(text, now)
        self._take_statuses(now, preempt=False)
        if result.kind in (GOAL, STOP, REFUSED):
            self._preempt(now)
        return result

    def _preempt(self, now: float) -> None:
        stamp = self.loop.goal_start_stamp
        self.executor.preempt(stamp, now)
        self.deliveries.append(Delivery(now, stamp, None, None))

    def _take_statuses(self, now: float, preempt: bool = True) -> None:
        new, self._new_statuses[:] = list(self._new_statuses), []
        for status in new:
            previous = self.statuses[-1] if self.statuses else None
            self.statuses.append(status)
            if preempt and preempt_on(status, previous):
                self._preempt(now)

    def update_odometry(self, x: float, y: float, yaw: float, linear: float, angular: float) -> None:
        self.loop.update_odometry(x, y, yaw, linear, angular)

    def frame(self, rgb: np.ndarray, stamp: float, now: float,
              state: np.ndarray | None = None) -> Chunk | None:
        """One camera frame; the chunk (if any) reaches the executor after the latency."""
        self._deliver(now)
        started = self._clock()
        chunk = self.loop.step(rgb, stamp, now, state=state)
        elapsed = self._clock() - started
        self.step_seconds.append(elapsed)
        self._take_statuses(now)
        if chunk is not None:
            self._pending.append((now + (elapsed if self.latency is None else self.latency), chunk))
        return chunk

    def tick(self, now: float) -> tuple[float, float]:
        """Deliver the chunks due, then the executor's command for `now`."""
        self._deliver(now)
        return self.executor.tick(now)

    def _deliver(self, now: float) -> None:
        due = [item for item in self._pending if item[0] <= now + _ARRIVAL_SLACK]
        if not due:
            return
        self._pending = [item for item in self._pending if item[0] > now + _ARRIVAL_SLACK]
        for arrival, chunk in sorted(due, key=lambda item: item[0]):
            verdict = self.executor.add_chunk(chunk.stamp, chunk.actions, chunk.dt, now=arrival)
            self.deliveries.append(Delivery(arrival, chunk.stamp, chunk, verdict))

    # --- read-outs -----------------------------------------------------------------------
    @property
    def status(self) -> GoalStatus:
        """The current goal's status (robot side: the sequencer's done rule)."""
        return self.loop.status

    @property
    def pending(self) -> int:
        """Chunks produced but not yet delivered."""
        return len(self._pending)

    def inference_ms_p50(self) -> float | None:
        return round(1000.0 * float(np.median(self.step_seconds)), 3) if self.step_seconds else None
