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


def test_sim_status_report_without_ros():
    """sim_node's status JSON (vla_nav.sim.status) from a stand-in simulator."""
    from types import SimpleNamespace as Obj

    from vla_nav.sim.status import episode_outcome, episode_status
    scenario = Obj(kind='goto', target=Obj(name='red cone'), time_limit=20.0)
    sim = Obj(scenario=scenario, outcome=None, metrics=lambda: {'path': 1.0},
              observation=Obj(time=1.23456, pose=(1.0, 2.0, 0.5), twist=(0.1, 0.0)))
    status = episode_status(sim, 'go to the red cone', 3.0)
    assert (status['kind'], status['target'], status['outcome'], status['time']) == (
        'goto', 'red cone', 'running', 1.235)
    assert episode_outcome(Obj(scenario=None, outcome=None), 'sing a song') == 'failure'
    assert episode_outcome(Obj(scenario=None, outcome=None), '') == 'running'
    assert episode_outcome(Obj(scenario=scenario, outcome='success'), 'x') == 'success'
