"""PolicyLoop with the deterministic brightness policy; stats and mailbox helpers."""
import dataclasses
import threading

import numpy as np
import pytest
from policies import LINEAR_GAIN, TURN_BIAS, BrightnessPolicy, NanPolicy, OutOfBoundsPolicy

from vla_nav.core.image_decode import Fovea
from vla_nav.core.loop import PolicyLoop
from vla_nav.core.mailbox import LatestMailbox
from vla_nav.core.stats import LatencyStats, RateMeter

WHITE = np.full((48, 64, 3), 255, np.uint8)
BLACK = np.zeros((48, 64, 3), np.uint8)


def make_loop(engine=None, action_limits=(2.0, 4.0)):
    engine = engine or BrightnessPolicy()
    return engine, PolicyLoop(engine, ['stop', 'halt'], 64, 0.5, action_limits)


def test_no_chunks_without_a_goal_and_after_stop():
    engine, loop = make_loop()
    assert loop.step(WHITE, 1.0, 1.0) is None and not loop.active
    assert loop.set_instruction('go left').kind == 'goal'
    assert loop.step(WHITE, 1.1, 1.1) is not None
    assert loop.set_instruction('Stop!').kind == 'stop' and not loop.active
    assert loop.step(WHITE, 1.2, 1.2) is None


def test_chunk_shape_stamp_and_content():
    engine, loop = make_loop()
    loop.set_instruction('turn left please')
    result = loop.step(WHITE, 5.0, 5.1)
    assert result.stamp == 5.0 and result.goal_id == loop.goal_id and result.dt == 0.1
    assert result.actions.shape == (10, 2) and result.actions.dtype == np.float32
    np.testing.assert_allclose(result.actions[0], [LINEAR_GAIN, TURN_BIAS], rtol=1e-5)
    assert engine.instruction == 'turn left please'


def one_white_then_three_black(engine):
    """The chunk after a goal saw one white frame and then three black ones."""
    engine, loop = make_loop(engine)
    loop.set_instruction('go to the red cone')
    loop.step(WHITE, 1.0, 1.0)
    for index in range(1, 4):
        chunk = loop.step(BLACK, 1.0 + index * 0.1, 1.0 + index * 0.1)
    assert engine.encoded == 4 and loop.history_fill == 4
    return chunk


def test_history_encodes_only_newest_and_repeats_oldest():
    chunk = one_white_then_three_black(BrightnessPolicy())
    # window = 5 x white (oldest repeated) + 3 x black
    assert chunk.actions[0, 0] == pytest.approx(LINEAR_GAIN * 5 / 8, rel=1e-5)


def test_a_history_stride_spaces_the_window_the_engine_sees():
    engine = BrightnessPolicy()
    engine.spec = dataclasses.replace(engine.spec, history_stride=3)
    chunk = one_white_then_three_black(engine)
    # positions stand for ticks 3 - 3k: only the newest is black, the rest reach back to tick 0
    assert chunk.actions[0, 0] == pytest.approx(LINEAR_GAIN * 7 / 8, rel=1e-5)


def test_the_engine_sees_the_models_view_with_its_fovea_strip():
    """A model with a fovea gets the full view and, under it, the zoomed middle of the frame."""
    class Recording(BrightnessPolicy):
        def encode_frame(self, rgb):
            self.frames.append(rgb)
            return np.zeros(self.spec.feature_dim, np.float32)
    engine = Recording()
    engine.frames = []
    engine.spec = dataclasses.replace(engine.spec, image_height=48, image_width=32, fovea=Fovea(rows=16))
    frame = np.zeros((96, 128, 3), np.uint8)
    frame[:, 32:96] = 255          # the middle half of the width is white
    engine, loop = make_loop(engine)
    loop.set_instruction('go to the red cone')
    loop.step(frame, 1.0, 1.0)
    (seen,) = engine.frames
    assert seen.shape == (48, 32, 3)
    assert 0.4 < seen[:32].mean() / 255 < 0.6     # the full view: half white
    assert seen[32:, 1:-1].min() >= 250            # the strip (zoom 2): white (edges filtered)


def test_new_goal_clears_history_and_refuses_old_frames():
    engine, loop = make_loop()
    loop.set_instruction('go left')
    for index in range(5):
        loop.step(WHITE, 1.0 + index * 0.1, 1.5)
    assert loop.history_fill == 5
    first_goal = loop.goal_id
    loop.set_instruction('go right')
    assert loop.goal_id == first_goal + 1 and loop.history_fill == 0
    assert loop.goal_start_stamp == pytest.approx(1.4) == loop.preempt_stamp
    assert loop.step(WHITE, 1.4, 1.5) is None                     # not newer than the preempt
    chunk = loop.step(BLACK, 1.45, 1.5)
    assert chunk.actions[0, 1] == pytest.approx(-TURN_BIAS) and loop.history_fill == 1


def test_junk_instruction_changes_nothing():
    engine, loop = make_loop()
    loop.set_instruction('go to the red cone')
    goal = loop.goal_id
    result = loop.set_instruction('   ')
    assert result.kind == 'rejected' and loop.goal_id == goal and loop.active


def test_stale_and_future_frames_are_dropped():
    engine, loop = make_loop()
    loop.set_instruction('go to the red cone')
    assert loop.step(WHITE, 1.0, 1.6) is None                     # 0.6 s old > 0.5
    assert loop.step(WHITE, 3.0, 1.0) is None and 'future' in loop.last_error
    assert loop.step(WHITE, 1.0, 1.1) is not None
    assert loop.step(WHITE, 1.0, 1.1) is None                     # not newer than the previous
    assert loop.stale_count == 3


def test_reset_starts_a_new_episode_with_a_restarted_clock():
    _, loop = make_loop()
    loop.set_instruction('go to the red cone')
    assert loop.step(WHITE, 50.0, 50.0) is not None
    loop.reset()
    assert not loop.active and loop.history_fill == 0 and loop.preempt_stamp == 0.0
    loop.set_instruction('go to the blue box')
    assert loop.step(WHITE, 1.0, 1.0) is not None                 # earlier stamps are fine now


def test_nan_output_is_refused_and_out_of_bounds_clamped():
    _, loop = make_loop(NanPolicy())
    loop.set_instruction('go to the red cone')
    assert loop.step(WHITE, 1.0, 1.0) is None
    assert 'non-finite' in loop.last_error and loop.error_count == 1
    _, loop = make_loop(OutOfBoundsPolicy(), action_limits=(2.0, 4.0))
    loop.set_instruction('go to the red cone')
    chunk = loop.step(WHITE, 1.0, 1.0)
    assert chunk.clamped and np.all(chunk.actions == [2.0, 4.0])


def test_engine_exception_does_not_escape():
    engine, loop = make_loop()
    loop.set_instruction('go to the red cone')
    engine.encode_frame = lambda rgb: (_ for _ in ()).throw(RuntimeError('boom'))
    assert loop.step(WHITE, 1.0, 1.0) is None and 'boom' in loop.last_error


def test_state_window_from_odometry():
    engine = BrightnessPolicy(state_dim=4)
    _, loop = make_loop(engine)
    loop.set_instruction('go to the red cone')
    loop.step(WHITE, 1.0, 1.0)
    np.testing.assert_array_equal(engine.last_states, np.zeros((8, 4)))
    loop.update_odometry(1.0, 0.0, 0.0, 0.3, 0.1)
    loop.update_odometry(3.0, 0.0, 0.5, 0.3, 0.1)
    loop.step(WHITE, 1.1, 1.1)
    np.testing.assert_allclose(engine.last_states[-1], [0.3, 0.1, 2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(engine.last_states[0], 0.0)
    loop.set_instruction('go to the blue box')                                  # new goal: progress restarts
    loop.update_odometry(5.0, 0.0, 0.0, 0.0, 0.0)
    loop.step(WHITE, 1.2, 1.2)
    assert engine.last_states[-1, 2] == 0.0


def test_goal_features_read_the_steps_number_and_count_down():
    engine = BrightnessPolicy(state_dim=8)
    _, loop = make_loop(engine)
    loop.set_instruction('turn left 45 degrees')
    loop.update_odometry(0.0, 0.0, 0.0, 0.0, 0.0)
    loop.step(WHITE, 1.0, 1.0)
    np.testing.assert_allclose(engine.last_states[-1, 4:], [1.0, np.pi / 4, 0.0, 0.0], atol=1e-6)
    loop.update_odometry(0.0, 0.0, 0.5, 0.0, 0.4)                                  # turned 0.5 rad
    loop.step(WHITE, 1.1, 1.1)
    np.testing.assert_allclose(engine.last_states[-1], [0, 0.4, 0, 0.5, 1, np.pi / 4 - 0.5, 0, 0],
                               atol=1e-6)
    loop.set_instruction('go forward half a meter')
    loop.update_odometry(0.0, 0.0, 0.5, 0.2, 0.0)
    loop.update_odometry(0.2, 0.0, 0.5, 0.2, 0.0)
    loop.step(WHITE, 1.2, 1.2)
    np.testing.assert_allclose(engine.last_states[-1, 4:], [0.0, 0.0, 1.0, 0.3], atol=1e-6)
    loop.set_instruction('turn right a quarter turn, then go to the red cone')      # two steps: the turn
    loop.step(WHITE, 1.3, 1.3)
    np.testing.assert_allclose(engine.last_states[-1, 4:], [1.0, -np.pi / 2, 0.0, 0.0], atol=1e-6)
    loop.set_instruction('go to the red cone')                                      # goto: no number
    loop.step(WHITE, 1.4, 1.4)
    np.testing.assert_array_equal(engine.last_states[-1, 4:], 0.0)


def test_goal_change_during_inference_discards_the_result():
    engine, loop = make_loop()
    loop.set_instruction('go left')
    original_act = engine.act

    def act_then_change_goal(features, states=None):
        loop.set_instruction('go right')          # arrives while the head runs
        return original_act(features, states)

    engine.act = act_then_change_goal
    assert loop.step(WHITE, 1.0, 1.0) is None
    engine.act = original_act
    assert loop.step(WHITE, 1.1, 1.1).actions[0, 1] == pytest.approx(-TURN_BIAS)


def test_rate_and_latency_stats():
    meter = RateMeter(horizon=1.0)
    for index in range(10):
        meter.tick(index * 0.1)
    assert meter.rate(0.95) == pytest.approx(10.0) and meter.rate(5.0) == 0.0
    stats = LatencyStats(capacity=100)
    assert np.isnan(stats.percentile_ms(50))
    for value in range(1, 101):
        stats.add(value / 1000)
    assert stats.percentile_ms(50) == pytest.approx(50.5) and stats.percentile_ms(99) > 98


def test_mailbox_keeps_only_newest():
    mailbox = LatestMailbox()
    assert mailbox.take(timeout=0.01) is None
    mailbox.put(1)
    mailbox.put(2)
    assert mailbox.take(0) == 2 and mailbox.overwritten == 1
    worker_got = []
    worker = threading.Thread(target=lambda: worker_got.append(mailbox.take(timeout=5)))
    worker.start()
    mailbox.close()
    worker.join(5)
    assert worker_got == [None] and mailbox.closed
