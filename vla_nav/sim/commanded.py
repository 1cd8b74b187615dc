"""The simulated base as sim_node drives it, without ROS: the last velocity command with a
timeout, physics steps counted into sim time, and braking to a standstill on shutdown."""
from __future__ import annotations


class CommandedBase:
    """Steps `sim` (a NavSim) by `physics_dt` under the last command; a command older than
    `cmd_vel_timeout` sim seconds becomes zero, so the base brakes like a real one whose
    commands stop."""

    def __init__(self, sim, physics_dt: float, cmd_vel_timeout: float) -> None:
        self.sim, self.physics_dt, self.cmd_vel_timeout = sim, float(physics_dt), float(cmd_vel_timeout)
        self.command, self.last_command_time = (0.0, 0.0), float('-inf')
        self.steps = 0

    @property
    def sim_time(self) -> float:
        return self.steps * self.physics_dt

    def set_command(self, linear: float, angular: float) -> None:
        self.command, self.last_command_time = (linear, angular), self.sim_time

    def step(self) -> None:
        """One physics step (no render) under the command, zero once it timed out."""
        if self.sim_time - self.last_command_time > self.cmd_vel_timeout:
            self.command = (0.0, 0.0)
        self.sim.step(*self.command, render=False)
        self.steps += 1

    def brake(self, max_seconds: float) -> None:
        """Zero command, then physics steps until the base stands still (at most `max_seconds`
        of sim time): it stops under its deceleration limits, as a real base does."""
        self.command = (0.0, 0.0)
        for _ in range(int(max_seconds / self.physics_dt)):
            if self.sim.observation.twist == (0.0, 0.0):
                break
            self.sim.step(0.0, 0.0, render=False)
            self.steps += 1
