"""sim_node's base (vla_nav.sim.commanded.CommandedBase), without ROS: command timeout, sim time,
braking to a standstill."""
from types import SimpleNamespace

from vla_nav.sim.commanded import CommandedBase


class FakeSim:
    """Records the commands it is stepped with; the base stands still after `moving_steps` steps
    of zero command."""

    def __init__(self, moving_steps: int = 3) -> None:
        self.commands, self.moving_steps = [], moving_steps

    def step(self, linear, angular, render=True):
        assert render is False
        self.commands.append((linear, angular))
        if (linear, angular) == (0.0, 0.0):
            self.moving_steps -= 1

    @property
    def observation(self):
        return SimpleNamespace(twist=(0.0, 0.0) if self.moving_steps <= 0 else (0.1, 0.0))


def test_command_holds_until_the_timeout_then_zero():
    sim = FakeSim()
    base = CommandedBase(sim, 0.1, 0.25)
    base.step()                                  # no command yet: zero
    base.set_command(0.3, -0.2)                  # at sim time 0.1
    for _ in range(4):
        base.step()
    assert sim.commands == [(0.0, 0.0), (0.3, -0.2), (0.3, -0.2), (0.3, -0.2), (0.0, 0.0)]
    assert base.steps == 5 and abs(base.sim_time - 0.5) < 1e-12


def test_brake_steps_until_still_and_is_bounded():
    sim = FakeSim(moving_steps=3)
    base = CommandedBase(sim, 0.1, 0.5)
    base.set_command(0.3, 0.0)
    base.brake(2.0)
    assert sim.commands == [(0.0, 0.0)] * 3 and base.command == (0.0, 0.0) and base.steps == 3
    endless = FakeSim(moving_steps=10**6)
    bounded = CommandedBase(endless, 0.1, 0.5)
    bounded.brake(1.0)
    assert bounded.steps == 10
