"""The robot-side goal sequencer (vla_nav.core.goal) alone and inside PolicyLoop / ClosedLoop."""
import json
import math

import numpy as np
import pytest
from policies import BrightnessPolicy

from vla_nav.config import load_config
from vla_nav.core.closed_loop import ClosedLoop
from vla_nav.core.executor import ChunkVerdict
from vla_nav.core.goal import GoalRules, GoalSequencer, GoalState, Motion, goal_status_record
from vla_nav.core.loop import PolicyLoop

MOVING = np.tile([0.3, 0.0], (10, 1))
TURNING = np.tile([0.0, 0.5], (10, 1))
STILL = np.zeros((10, 2))
WHITE = np.full((32, 32, 3), 255, np.uint8)
BLACK = np.zeros((32, 32, 3), np.uint8)

STOP = load_config().stop_words


def test_two_step_goal_advances_on_odometry_and_keeps_the_goal():
    seq = GoalSequencer(STOP)
    status = seq.start(7, 'turn left, then go forward 1 meter', 0.0)
    assert (status.state, status.step_index, status.step_count) == ('active', 0, 2)
    assert seq.policy_text == 'turn left' and status.step_kind == 'turn'
    seq.observe_motion(0.0, math.radians(45), relative=True)
    assert not seq.on_chunk(TURNING, 1.0)
    assert seq.status.done_estimate == pytest.approx(0.5)
    seq.observe_motion(0.0, math.radians(82), relative=True)   # within the 10 degree tolerance
    assert seq.on_chunk(TURNING, 2.0)
    assert (seq.status.goal_id, seq.status.step_index, seq.status.done_estimate) == (7, 1, 0.0)
    assert seq.policy_text == 'go forward 1 meter' and seq.status.state == 'active'
    seq.observe_motion(0.5, 0.0, relative=True)
    assert not seq.on_chunk(MOVING, 3.0) and seq.status.done_estimate == pytest.approx(0.5)
    seq.observe_motion(0.95, 0.0, relative=True)
    assert seq.on_chunk(MOVING, 4.0)
    assert seq.status.state == 'done' and seq.status.done_estimate == 1.0
    assert seq.policy_text == 'go forward 1 meter'    # done is a report: the policy holds the step


def test_a_right_turn_counts_clockwise_heading_only():
    seq = GoalSequencer(STOP)
    seq.start(1, 'turn right 45 degrees', 0.0)
    seq.observe_motion(0.0, math.radians(45), relative=True)   # the wrong way
    assert not seq.on_chunk(TURNING, 1.0) and seq.status.done_estimate == 0.0
    seq.observe_motion(0.0, math.radians(-44), relative=True)
    assert seq.on_chunk(-TURNING, 2.0) and seq.status.state == 'done'


def test_external_goal_relative_state_is_measured_from_the_step_start():
    seq = GoalSequencer(STOP)
    seq.start(1, 'turn left, then turn right', 0.0)
    seq.observe_motion(0.0, math.radians(90), relative=False)
    assert seq.on_chunk(TURNING, 1.0) and seq.status.step_index == 1
    seq.observe_motion(0.0, math.radians(90), relative=False)   # the step's baseline
    assert not seq.on_chunk(-TURNING, 1.1)
    seq.observe_motion(0.0, math.radians(0), relative=False)
    assert seq.on_chunk(-TURNING, 2.0) and seq.status.state == 'done'


def test_goto_is_done_when_the_chunks_say_stop_after_moving():
    seq = GoalSequencer(STOP, GoalRules(still_chunks=3))
    seq.start(1, 'go to the red cone', 0.0)
    for now in (1, 2, 3, 4):             # still from the start: it has not moved, not done
        assert not seq.on_chunk(STILL, now)
    assert seq.status.done_estimate == 0.0
    seq.on_chunk(MOVING, 5)
    seq.on_chunk(STILL, 6)
    seq.on_chunk(STILL, 7)
    assert seq.status.done_estimate == pytest.approx(2 / 3) and seq.status.state == 'active'
    seq.on_chunk(MOVING, 8)              # moving again: the count restarts
    assert seq.status.done_estimate == 0.0
    for now in (9, 10):
        seq.on_chunk(STILL, now)
    assert seq.on_chunk(STILL, 11) and seq.status.state == 'done'


def test_goto_with_odometry_needs_real_motion():
    seq = GoalSequencer(STOP, GoalRules(still_chunks=1, min_motion_m=0.2))
    seq.start(1, 'go to the red cone', 0.0)
    seq.observe_motion(0.05, 0.0, relative=True)
    seq.on_chunk(MOVING, 1)               # the chunks asked to move, the base barely did
    assert not seq.on_chunk(STILL, 2)
    seq.observe_motion(0.5, 0.0, relative=True)
    assert seq.on_chunk(STILL, 3) and seq.status.state == 'done'


def test_single_step_goal_gives_the_policy_the_sentence_as_typed():
    seq = GoalSequencer(STOP)
    seq.start(1, 'Please go to the RED cone.', 0.0)
    assert seq.policy_text == 'Please go to the RED cone.' and seq.status.step_count == 1


@pytest.mark.parametrize('text', ["don't go to the yellow cone", 'fly to the moon', 'go forward',
                                  'turn left, then turn right, then turn left, then turn right'])
def test_a_sentence_nothing_can_act_on_is_refused_with_the_reason(text):
    seq = GoalSequencer(STOP)
    status = seq.start(3, text, 1.0)
    assert status.state == 'refused' and status.reason and seq.policy_text == ''
    assert not seq.active and not seq.on_chunk(MOVING, 2.0)


def test_refuse_unparsed_off_gives_the_policy_the_whole_sentence():
    seq = GoalSequencer(STOP, GoalRules(refuse_unparsed=False))
    status = seq.start(3, 'fly to the moon', 1.0)
    assert status.state == 'active' and status.step_kind == 'policy'
    assert seq.policy_text == 'fly to the moon'


def test_a_new_goal_preempts_and_a_stop_stops_the_old_one():
    seq = GoalSequencer(STOP)
    seq.start(1, 'go to the red cone', 0.0)
    seq.start(2, 'turn left', 1.0)
    assert seq.previous.goal_id == 1 and seq.previous.state == 'preempted'
    assert 'goal 2' in seq.previous.reason
    status = seq.stop(3, 'stop', 2.0)
    assert seq.previous.goal_id == 2 and seq.previous.state == 'stopped'
    assert status.state == 'stopped' and seq.policy_text == ''
    seq.start(4, 'halt', 3.0)                  # the parser's own stop phrase: a stop, nothing ended
    assert seq.status.state == 'stopped' and seq.previous is None


def test_a_step_over_its_time_budget_fails():
    seq = GoalSequencer(STOP, GoalRules(step_timeout=10.0))
    seq.start(1, 'go to the red cone', 0.0)
    assert not seq.check_time(9.0)
    assert seq.check_time(10.5) and seq.status.state == 'failed'
    assert 'not done within 10 s' in seq.status.reason and seq.policy_text == ''


def test_invalid_policy_output_for_too_long_fails_and_a_valid_chunk_resets_it():
    seq = GoalSequencer(STOP, GoalRules(invalid_timeout=2.0))
    seq.start(1, 'go to the red cone', 0.0)
    assert not seq.on_invalid(1.0, 'NaN')
    seq.on_chunk(MOVING, 1.5)                  # a valid chunk: the failure clock restarts
    assert not seq.on_invalid(2.0, 'NaN') and not seq.on_invalid(3.9, 'NaN')
    assert seq.on_invalid(4.0, 'NaN') and seq.status.state == 'failed'
    assert 'NaN' in seq.status.reason


def test_a_learned_done_head_plugs_in_as_the_estimator():
    class Head:
        def __init__(self):
            self.calls = []

        def reset(self):
            self.calls.append('reset')

        def update(self, step, chunk, motion):
            self.calls.append(step.kind)
            return 1.0 if isinstance(motion, Motion) and step.kind == 'goto' else 0.4

    head = Head()
    seq = GoalSequencer(STOP, estimator=head)
    seq.start(1, 'go to the red cone, then turn left', 0.0)
    assert seq.on_chunk(STILL, 1.0) and seq.status.step_index == 1
    assert not seq.on_chunk(STILL, 2.0) and seq.status.done_estimate == pytest.approx(0.4)
    assert head.calls == ['reset', 'goto', 'reset', 'turn']


def test_goal_status_record_is_plain_json():
    seq = GoalSequencer(STOP)
    seq.start(5, 'turn left, then go forward 2 meters', 1.5)
    record = goal_status_record(seq.status)
    assert json.loads(json.dumps(record)) == record
    assert record == {'goal_id': 5, 'text': 'turn left, then go forward 2 meters',
                      'state': 'active', 'step': 1, 'steps': 2, 'step_text': 'turn left',
                      'step_kind': 'turn', 'done_estimate': 0.0, 'reason': '', 'stamp': 1.5}
    refused = goal_status_record(GoalSequencer(STOP).start(6, 'not the red one', 2.0))
    assert refused['state'] == 'refused' and refused['steps'] == 0 and refused['step'] == 0
    assert set(GoalState.ALL) == {'active', 'done', 'preempted', 'stopped', 'refused', 'failed'}


def test_goal_rules_are_validated():
    with pytest.raises(ValueError, match='still_chunks'):
        GoalRules(still_chunks=0)
    with pytest.raises(ValueError, match='step_timeout'):
        GoalRules(step_timeout=0.0)
    with pytest.raises(ValueError, match='done_'):
        load_config().vla_node.replace(done_turn_tolerance_deg=-1.0)


# --- inside PolicyLoop ----------------------------------------------------------------------
def _loop(state_dim=0):
    engine = BrightnessPolicy(state_dim=state_dim)
    loop = PolicyLoop.from_config(engine, load_config().vla_node)
    statuses = []
    loop.status_listener = statuses.append
    return engine, loop, statuses


def test_policy_loop_conditions_the_engine_on_the_current_step_only():
    engine, loop, statuses = _loop()
    assert loop.set_instruction('turn left 90 degrees, then go forward 1 meter', 1.0).kind == 'goal'
    goal_id = loop.goal_id
    loop.update_odometry(0.0, 0.0, 0.0, 0.0, 0.5)
    assert loop.step(WHITE, 1.1, 1.1) is not None and engine.instruction == 'turn left 90 degrees'
    assert loop.history_fill == 1
    loop.update_odometry(0.0, 0.0, math.radians(85), 0.0, 0.5)
    chunk = loop.step(WHITE, 1.2, 1.2)        # its chunk ends step 1: the step changes
    assert chunk is not None and chunk.goal_id == goal_id
    assert loop.status.step_index == 1 and loop.goal_id == goal_id
    assert loop.goal_start_stamp == 1.2 and loop.history_fill == 0   # like a new goal for the policy
    assert loop.step_instruction == 'go forward 1 meter'
    assert loop.step(WHITE, 1.3, 1.3) is not None and engine.instruction == 'go forward 1 meter'
    loop.update_odometry(0.0, 0.0, math.radians(85), 0.4, 0.0)   # per-step odometry restarts here
    loop.update_odometry(0.95, 0.0, math.radians(85), 0.4, 0.0)
    loop.step(WHITE, 1.4, 1.4)
    assert [(s.state, s.step_index) for s in statuses] == [('active', 0), ('active', 1), ('done', 1)]
    assert loop.active and loop.step(WHITE, 1.5, 1.5) is not None   # done: the policy holds the step


def test_policy_loop_refusal_stops_and_reports():
    engine, loop, statuses = _loop()
    loop.set_instruction('go to the red cone', 1.0)
    result = loop.set_instruction("don't go to the yellow cone", 2.0)
    assert result.kind == 'refused' and result.reason
    assert not loop.active and loop.step(WHITE, 2.1, 2.1) is None
    assert [s.state for s in statuses] == ['active', 'preempted', 'refused']
    assert statuses[-1].goal_id == loop.goal_id == statuses[0].goal_id + 1


def test_policy_loop_fails_the_goal_on_long_invalid_output():
    from policies import NanPolicy
    loop = PolicyLoop.from_config(NanPolicy(), load_config().vla_node.replace(goal_invalid_timeout=0.5))
    loop.set_instruction('go to the red cone', 1.0)
    for index in range(8):
        loop.step(WHITE, 1.1 + 0.1 * index, 1.1 + 0.1 * index)
    assert loop.status.state == 'failed' and not loop.active


def test_closed_loop_preempts_the_executor_at_a_step_change():
    config = load_config()
    closed = ClosedLoop.build(BrightnessPolicy(), config.vla_node, config.executor, latency=0.05)
    closed.instruct('turn left, then turn right', now=1.0)
    preempts = len([d for d in closed.deliveries if d.chunk is None])
    closed.update_odometry(0.0, 0.0, 0.0, 0.0, 0.5)
    closed.frame(WHITE, 1.1, 1.1)
    closed.tick(1.2)
    closed.update_odometry(0.0, 0.0, math.radians(88), 0.0, 0.5)
    closed.frame(WHITE, 1.2, 1.2)            # step 1 done on this chunk
    closed.tick(1.3)
    assert closed.status.step_index == 1
    assert len([d for d in closed.deliveries if d.chunk is None]) == preempts + 1
    assert closed.deliveries[-1].verdict is ChunkVerdict.OLD_GOAL   # the old step's last chunk
    assert [(s.state, s.step_index) for s in closed.statuses] == [('active', 0), ('active', 1)]


def test_single_step_goal_drives_as_before():
    """A single-step goal: the engine gets the sentence as typed and no step ever changes."""
    engine, loop, statuses = _loop()
    loop.set_instruction('Go to the red cone!', 1.0)
    for index in range(30):
        loop.step(BLACK, 1.1 + 0.1 * index, 1.1 + 0.1 * index)
    assert engine.instruction == 'Go to the red cone!' and loop.active
    assert [s.state for s in statuses] == ['active']      # never moved: never done
    assert loop.chunk_count == 30 and loop.history_fill == 8


def test_every_v1_sentence_is_read_as_one_step():
    """eval-sim, record-sim --driver policy and the demo send v1 sentences: none may be refused
    ("find the red cone and stop next to it" keeps its goto; the trailing stop is absorbed)."""
    from vla_nav.core.language import parse_instruction
    from vla_nav.sim.scenarios import all_instructions
    stop_words = load_config().stop_words
    for split in ('train', 'test'):
        for text in all_instructions(split):
            parse = parse_instruction(text, stop_words)
            assert not parse.refused and len(parse.steps) == 1, (text, parse.refused)


def test_an_engine_with_a_done_head_replaces_the_rule():
    class Head:
        def reset(self):
            pass

        def update(self, step, chunk, motion):
            return 1.0

    engine = BrightnessPolicy()
    engine.done_estimator = Head()
    loop = PolicyLoop.from_config(engine, load_config().vla_node)
    loop.set_instruction('go to the red cone, then turn left', 1.0)
    loop.step(WHITE, 1.1, 1.1)
    assert loop.status.step_index == 1      # the head said done on the first chunk
