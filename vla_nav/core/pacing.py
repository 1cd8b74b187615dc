"""Real-time pacing of a fixed-step simulation (sim_node's wall timer), without ROS.

The simulation advances in steps of `step_s`; at wall time t it should have run
floor((t - start) * real_time_factor / step_s) steps. When the machine falls behind by more
than `max_catch_up_s` of wall time, the backlog is dropped (the simulation slows down for a
moment) instead of running a burst that would stall every other callback.
"""
from __future__ import annotations


class StepPacer:
    def __init__(self, step_s: float, real_time_factor: float, max_catch_up_s: float,
                 start: float) -> None:
        if step_s <= 0.0 or real_time_factor <= 0.0 or max_catch_up_s <= 0.0:
            raise ValueError('step_s, real_time_factor and max_catch_up_s must be > 0')
        self.step_s = step_s
        self.real_time_factor = real_time_factor
        self.start = start
        self.budget = max(1, int(max_catch_up_s * real_time_factor / step_s))
        self.dropped = 0          # steps skipped because the machine fell behind

    def due(self, now: float, steps_done: int) -> int:
        """How many steps to run now, `steps_done` having run since `start`."""
        target = int((now - self.start) * self.real_time_factor / self.step_s)
        backlog = target - steps_done
        if backlog > self.budget:
            skipped = backlog - self.budget
            self.start += skipped * self.step_s / self.real_time_factor
            self.dropped += skipped
            backlog = self.budget
        return max(0, backlog)
