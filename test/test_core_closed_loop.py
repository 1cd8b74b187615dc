"""ClosedLoop: one preempt rule, latency injection and refusals as an Enum, without ROS."""
import numpy as np
from policies import BrightnessPolicy

from vla_nav.config import load_config
from vla_nav.core.closed_loop import ClosedLoop
from vla_nav.core.executor import ChunkVerdict

GREY = np.full((32, 32, 3), 128, np.uint8)


def _closed(latency):
    config = load_config()
    return ClosedLoop.build(BrightnessPolicy(), config.vla_node, config.executor, latency=latency)


def test_a_chunk_reaches_the_executor_only_after_the_latency():
    closed = _closed(latency=0.25)
    closed.instruct('go left', now=1.0)
    assert closed.frame(GREY, 1.0, 1.0) is not None and closed.pending == 1
    assert closed.tick(1.1) == (0.0, 0.0) and closed.pending == 1   # still in flight
    closed.tick(1.25)
    assert closed.pending == 0 and closed.deliveries[-1].verdict is ChunkVerdict.ACCEPTED
    assert closed.deliveries[-1].arrival == 1.25
    assert closed.tick(1.3) != (0.0, 0.0)


def test_a_new_goal_preempts_at_the_goal_start_and_refuses_the_old_goals_chunk():
    closed = _closed(latency=0.3)
    closed.instruct('go left', now=1.0)
    closed.frame(GREY, 1.0, 1.0)
    closed.frame(GREY, 1.1, 1.1)
    result = closed.instruct('turn right', now=1.15)
    preempt = closed.deliveries[-1]
    assert result.kind == 'goal' and preempt.chunk is None and preempt.stamp == 1.1
    chunk = closed.frame(GREY, 1.2, 1.2)                   # the new goal's first frame
    assert chunk is not None and chunk.stamp > preempt.stamp
    closed.tick(1.6)
    verdicts = [d.verdict for d in closed.deliveries if d.chunk is not None]
    # the two chunks of the old goal arrive after the preempt: refused as OLD_GOAL, not as errors
    assert verdicts == [ChunkVerdict.OLD_GOAL, ChunkVerdict.OLD_GOAL, ChunkVerdict.ACCEPTED]
    assert not ChunkVerdict.OLD_GOAL and ChunkVerdict.ACCEPTED


def test_measured_latency_uses_the_step_time_and_junk_changes_nothing():
    ticks = iter([0.0, 0.05])
    config = load_config()
    closed = ClosedLoop.build(BrightnessPolicy(), config.vla_node, config.executor, latency=None)
    closed._clock = lambda: next(ticks)
    closed.instruct('go to the red cone', now=1.0)
    closed.frame(GREY, 1.0, 1.0)
    assert closed.step_seconds == [0.05]
    assert closed.tick(1.04) == (0.0, 0.0) and closed.pending == 1
    assert closed.instruct('   ', now=1.06).kind == 'rejected'
    closed.tick(1.06)
    assert closed.deliveries[-1].verdict is ChunkVerdict.ACCEPTED
    assert closed.instruct('wait', now=1.1).kind == 'stop'   # the one stop-phrase list
    assert closed.deliveries[-1].chunk is None
