"""ChunkExecutor: schedule, drop of past actions, blend rule, limits, watchdog, e-stop, preempt."""
import math

import numpy as np
import pytest

from vla_nav.config import load_config
from vla_nav.core.executor import ChunkExecutor, ExecutorConfig

DT = 0.1


def config(**changes):
    base = load_config().executor
    # generous acceleration by default so that most tests see the plan itself
    fast = {'max_linear_accel': 100.0, 'max_angular_accel': 100.0,
            'max_linear_decel': 100.0, 'max_angular_decel': 100.0}
    return base.replace(**{**fast, **changes})


def chunk(linear, angular, steps=10):
    return np.tile([linear, angular], (steps, 1)).astype(np.float64)


def ramp(steps=10):
    """action i = (0.01 * i, 0.1)."""
    return np.stack([0.01 * np.arange(steps), np.full(steps, 0.1)], axis=1)


def test_config_from_yaml_and_validation():
    cfg = load_config().executor
    assert cfg.control_rate == 20.0 and isinstance(cfg.blend_steps, int)
    with pytest.raises(ValueError, match='missing'):
        ExecutorConfig.from_params({'control_rate': 20.0})
    for bad in ({'control_rate': 0.0}, {'blend_old_weight': 1.5}, {'min_linear_vel': 0.1},
                {'max_linear_accel': math.nan}, {'blend_steps': 1.5}, {'watchdog_timeout': -1}):
        with pytest.raises(ValueError):
            cfg.replace(**bad)


def test_actions_follow_the_stamp_schedule():
    executor = ChunkExecutor(config(blend_steps=0))
    assert executor.state == 'idle' and executor.tick(0.0) == (0.0, 0.0)
    assert executor.add_chunk(10.0, ramp(), DT, now=10.0)
    for i in range(5):
        linear, angular = executor.tick(10.0 + i * DT + 0.01)
        assert linear == pytest.approx(0.01 * i) or (i == 0 and linear == 0.0)   # 0 at i=0
        assert angular == pytest.approx(0.1)
    assert executor.state == 'tracking'


def test_actions_in_the_past_are_dropped_on_arrival():
    executor = ChunkExecutor(config(blend_steps=0))
    assert executor.add_chunk(10.0, ramp(), DT, now=10.35)      # 3 slots are over
    plan = executor.plan_actions()
    assert len(plan) == 7 and plan[0, 0] == pytest.approx(0.03)
    assert executor.tick(10.36)[0] == pytest.approx(0.03)
    assert not executor.add_chunk(10.5, ramp(), DT, now=11.6)   # max_chunk_age 1.0 s
    assert 'old' in executor.last_reject_reason


def test_blend_overlap_with_old_plan():
    executor = ChunkExecutor(config(blend_steps=2, blend_old_weight=0.3))
    executor.add_chunk(10.0, chunk(0.4, 0.5), DT, now=10.0)
    executor.add_chunk(10.1, chunk(0.2, 1.0), DT, now=10.1)
    plan = executor.plan_actions()
    np.testing.assert_allclose(plan[0], [0.3 * 0.4 + 0.7 * 0.2, 0.3 * 0.5 + 0.7 * 1.0])
    np.testing.assert_allclose(plan[1], plan[0])
    np.testing.assert_allclose(plan[2], [0.2, 1.0])              # beyond the overlap: new only


def test_blend_never_averages_opposite_turns():
    executor = ChunkExecutor(config(blend_steps=3, blend_old_weight=0.3))
    executor.add_chunk(10.0, chunk(0.3, 0.8), DT, now=10.0)
    executor.add_chunk(10.1, chunk(0.3, -0.8), DT, now=10.1)
    np.testing.assert_allclose(executor.plan_actions()[:3], chunk(0.3, -0.8, 3))


def test_nan_limits_and_deadband():
    executor = ChunkExecutor(config(blend_steps=0))
    actions = chunk(5.0, -9.0)
    actions[1] = [np.nan, np.inf]
    actions[2] = [0.001, 0.005]   # inside the deadband
    executor.add_chunk(10.0, actions, DT, now=10.0)
    assert executor.tick(10.01) == (0.5, -1.5)                    # velocity limits
    assert executor.tick(10.11) == (0.0, 0.0)                     # NaN/inf -> 0
    assert executor.tick(10.21) == (0.0, 0.0)                     # deadband
    executor.add_chunk(10.3, chunk(-1.0, 0.0), DT, now=10.3)
    assert executor.tick(10.31)[0] == -0.2                        # reverse limit


def test_acceleration_limit_and_stronger_braking():
    cfg = config(blend_steps=0, max_linear_accel=1.0, max_linear_decel=2.5)
    executor = ChunkExecutor(cfg)
    executor.tick(10.0)
    executor.add_chunk(10.0, chunk(0.5, 0.0, 10), DT, now=10.0)
    speeds = [executor.tick(10.0 + 0.05 * i)[0] for i in range(1, 11)]
    assert speeds[0] == pytest.approx(0.05)                       # 1.0 m/s^2 x 0.05 s
    assert np.all(np.diff(speeds) > 0) and speeds[-1] == pytest.approx(0.5)
    executor.preempt(10.5)                                        # brake at 2.5 m/s^2
    assert executor.tick(10.55)[0] == pytest.approx(0.5 - 0.125)
    assert executor.state == 'braking'


def test_sign_flip_brakes_through_zero():
    executor = ChunkExecutor(config(blend_steps=0, max_angular_decel=6.0))
    executor.tick(9.95)
    executor.add_chunk(10.0, chunk(0.0, 1.0), DT, now=10.0)
    executor.tick(10.0)
    executor.add_chunk(10.05, chunk(0.0, -1.0), DT, now=10.05)
    assert executor.tick(10.1)[1] == pytest.approx(1.0 - 6.0 * 0.1)
    assert executor.tick(10.2)[1] == 0.0                          # stops at zero first
    assert executor.tick(10.3)[1] < 0.0


def test_plan_runs_dry_decays_then_watchdog_brakes_to_exact_zero():
    cfg = config(blend_steps=0, decay_time_constant=0.2, watchdog_timeout=0.5)
    executor = ChunkExecutor(cfg)
    executor.add_chunk(10.0, chunk(0.4, 1.0, 2), DT, now=10.0)    # 0.2 s of plan
    times = np.arange(10.0, 11.0, 0.05)
    commands = np.array([executor.tick(t) for t in times])
    dry = (times >= 10.2) & (times <= 10.5)
    assert np.all(np.diff(commands[dry, 0]) < 0) and commands[dry][0, 0] > 0   # decay
    after = times > 10.5 + 1e-9
    assert np.all(commands[after] == 0.0)                         # exactly zero...
    assert executor.state == 'stopped' and executor.watchdog_trips == 1
    assert executor.tick(20.0) == (0.0, 0.0)                      # ...and stays there


def test_watchdog_trips_even_with_actions_left():
    executor = ChunkExecutor(config(blend_steps=0, watchdog_timeout=0.3))
    executor.add_chunk(10.0, chunk(0.4, 0.0, 10), DT, now=10.0)
    assert executor.tick(10.25)[0] == 0.4
    assert executor.tick(10.35) == (0.0, 0.0) and executor.watchdog_trips == 1


def test_estop_is_immediate_and_latched():
    executor = ChunkExecutor(config(blend_steps=0))
    executor.add_chunk(10.0, chunk(0.4, 0.5), DT, now=10.0)
    assert executor.tick(10.01) == (0.4, 0.5)
    executor.set_estop(True)
    assert executor.tick(10.02) == (0.0, 0.0) and executor.state == 'estop'
    assert not executor.add_chunk(10.05, chunk(0.4, 0.5), DT, now=10.05)
    executor.preempt(10.06)                                       # a new goal does not unlatch
    assert executor.tick(10.1) == (0.0, 0.0) and executor.state == 'estop'
    executor.set_estop(False)
    assert executor.state == 'stopped' and executor.tick(10.15) == (0.0, 0.0)
    assert executor.add_chunk(10.2, chunk(0.4, 0.5), DT, now=10.2)
    assert executor.tick(10.21) == (0.4, 0.5)


def test_preempt_discards_plan_and_stale_chunks():
    executor = ChunkExecutor(config(blend_steps=0))
    executor.add_chunk(10.0, chunk(0.4, 0.5), DT, now=10.0)
    executor.tick(10.01)
    executor.preempt(10.2)
    assert executor.plan_actions() is None
    assert not executor.add_chunk(10.2, chunk(0.4, 0.5), DT, now=10.25)   # old goal, in flight
    assert 'preempt' in executor.last_reject_reason
    assert executor.tick(10.3) == (0.0, 0.0) and executor.state == 'stopped'
    assert executor.add_chunk(10.3, chunk(0.1, 0.2), DT, now=10.31)
    assert executor.tick(10.32) == (0.1, 0.2)


def test_out_of_order_future_and_malformed_chunks_are_refused():
    executor = ChunkExecutor(config())
    assert executor.add_chunk(10.0, chunk(0.1, 0.0), DT, now=10.0)
    assert not executor.add_chunk(9.9, chunk(0.1, 0.0), DT, now=10.0)
    assert not executor.add_chunk(15.0, chunk(0.1, 0.0), DT, now=10.0)
    assert 'future' in executor.last_reject_reason
    assert not executor.add_chunk(10.1, np.zeros((0, 2)), DT, now=10.1)
    assert not executor.add_chunk(10.1, chunk(0.1, 0.0), 0.0, now=10.1)
    assert executor.rejected_chunks == 4 and executor.accepted_chunks == 1


def test_set_config_applies_next_tick():
    executor = ChunkExecutor(config(blend_steps=0))
    executor.add_chunk(10.0, chunk(0.5, 0.0), DT, now=10.0)
    assert executor.tick(10.01)[0] == 0.5
    executor.set_config(executor.config.replace(max_linear_vel=0.2))
    assert executor.tick(10.02)[0] == 0.2
    with pytest.raises(TypeError):
        executor.set_config({'max_linear_vel': 1.0})


def test_every_refusal_has_its_verdict():
    from vla_nav.core.executor import ChunkVerdict

    executor = ChunkExecutor(load_config().executor)
    chunk = np.full((10, 2), 0.1)
    assert executor.add_chunk(1.0, chunk[:, :1], 0.1, now=1.0) is ChunkVerdict.BAD_SHAPE
    assert executor.add_chunk(1.0, chunk, float('nan'), now=1.0) is ChunkVerdict.BAD_TIMING
    assert executor.add_chunk(1.0, chunk, 0.1, now=5.0) is ChunkVerdict.TOO_OLD
    assert executor.add_chunk(9.0, chunk, 0.1, now=1.0) is ChunkVerdict.IN_FUTURE
    assert executor.add_chunk(1.0, chunk, 0.1, now=1.05) is ChunkVerdict.ACCEPTED
    assert executor.add_chunk(1.0, chunk, 0.1, now=1.1) is ChunkVerdict.NOT_NEWER
    executor.preempt(1.2, now=1.2)
    assert executor.add_chunk(1.2, chunk, 0.1, now=1.25) is ChunkVerdict.OLD_GOAL
    assert executor.last_refusal is ChunkVerdict.OLD_GOAL and 'old goal' in executor.last_reject_reason
    executor.set_estop(True)
    assert executor.add_chunk(1.3, chunk, 0.1, now=1.3) is ChunkVerdict.ESTOP
    assert not ChunkVerdict.ESTOP and executor.rejected_chunks == 7
