"""sim_node's pacing (vla_nav.core.pacing.StepPacer), without ROS."""
import pytest

from vla_nav.core.pacing import StepPacer


def test_runs_the_steps_real_time_asks_for():
    pacer = StepPacer(0.01, 1.0, 0.25, start=100.0)
    assert pacer.due(100.0, 0) == 0
    assert pacer.due(100.105, 0) == 10
    assert pacer.due(100.105, 10) == 0
    fast = StepPacer(0.01, 4.0, 0.25, start=0.0)
    assert fast.due(0.1, 0) == 40                      # x4 real time


def test_a_backlog_is_dropped_not_burst():
    pacer = StepPacer(0.01, 1.0, 0.25, start=0.0)
    assert pacer.due(2.0, 0) == 25                     # at most 0.25 s of physics at once
    assert pacer.dropped == 175
    assert pacer.due(2.0, 25) == 0                     # and the clock moved: no second burst
    assert pacer.due(2.015, 25) == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        StepPacer(0.0, 1.0, 0.25, 0.0)
