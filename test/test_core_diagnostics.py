"""What the nodes report on /diagnostics (vla_nav.core.diagnostics), without ROS: the keys README
"Diagnostics" lists, in order, their values, and the level rule applied to one period's counts."""
import math

import numpy as np
from policies import BrightnessPolicy, NanPolicy

from vla_nav.config import load_config
from vla_nav.core.diagnostics import ExecutorMonitor, PolicyMonitor
from vla_nav.core.executor import ChunkExecutor
from vla_nav.core.health import ERROR, OK, WARN
from vla_nav.core.loop import PolicyLoop

EXECUTOR_KEYS = ['state', 'chunk_rate_hz', 'linear_x', 'angular_z', 'chunk_age_s', 'plan_remaining',
                 'chunks_accepted', 'chunks_refused', 'last_refusal', 'watchdog_trips', 'estop',
                 'last_error']
POLICY_KEYS = ['frame_rate_hz', 'chunk_rate_hz', 'inference_p50_ms', 'inference_p99_ms', 'history_fill',
               'goal', 'goal_id', 'frames_stale', 'frames_undecodable', 'frames_overwritten', 'chunks',
               'policy_errors', 'last_error', 'backend']
WHITE = np.full((32, 32, 3), 255, np.uint8)


def test_executor_report_idle_then_tracking_then_refusing():
    core, monitor = ChunkExecutor(load_config().executor), ExecutorMonitor()
    level, message, values = monitor.report(core, 10.0, 100.0)
    assert (level, message) == (OK, 'idle') and list(values) == EXECUTOR_KEYS
    assert math.isnan(values['chunk_age_s']) and values['chunks_accepted'] == 0
    monitor.chunk_received(100.5)
    assert core.add_chunk(10.0, np.tile([0.2, 0.1], (10, 1)), 0.1, 10.0)
    core.tick(10.05)
    level, message, values = monitor.report(core, 10.1, 101.0)
    assert (level, message) == (OK, 'tracking')
    assert values['chunks_accepted'] == 1 and values['chunk_rate_hz'] == 0.5
    assert values['chunk_age_s'] == 10.1 - 10.0 and values['linear_x'] > 0.0
    monitor.chunk_received(101.5)
    monitor.refused('malformed chunk: no velocities')
    level, message, values = monitor.report(core, 10.2, 102.0)   # nothing accepted this period
    assert (level, message) == (ERROR, 'every chunk refused: malformed chunk: no velocities')
    assert values['last_error'] == 'malformed chunk: no velocities'
    assert monitor.report(core, 10.3, 103.0)[0] == OK   # a new period, nothing refused in it


def test_executor_report_estop_is_a_warning():
    core, monitor = ChunkExecutor(load_config().executor), ExecutorMonitor()
    core.set_estop(True)
    level, message, values = monitor.report(core, 1.0, 1.0)
    assert (level, message) == (WARN, 'e-stop latched') and values['estop'] is True


def test_policy_report_counts_one_period_and_totals():
    loop = PolicyLoop(BrightnessPolicy(), ['stop'], 64, 0.5, (2.0, 4.0))
    monitor = PolicyMonitor()
    level, message, values = monitor.report(loop, 0.0, 0, {'goal_state': 'none'})
    assert (level, message) == (OK, 'idle: no goal')
    assert list(values) == [*POLICY_KEYS, 'goal_state'] and values['goal'] == '(none)'
    assert values['backend'] == 'test' and math.isnan(values['inference_p99_ms'])
    loop.set_instruction('go left', 1.0)
    monitor.frame_received(1.0)
    monitor.decode_failed()
    monitor.frame_received(1.1)
    assert loop.step(WHITE, 1.1, 1.1) is not None
    monitor.chunk_published(1.1, 1.105)
    level, message, values = monitor.report(loop, 1.5, 3, {})
    assert (level, message) == (WARN, '1 frames could not be decoded')
    assert values['frame_rate_hz'] == 1.0 and values['chunk_rate_hz'] == 0.5
    assert values['frames_undecodable'] == 1 and values['frames_overwritten'] == 3
    assert values['chunks'] == 1 and values['goal'] == 'go left' and values['goal_id'] == loop.goal_id
    assert abs(values['inference_p50_ms'] - 5.0) < 1e-6
    level, message, values = monitor.report(loop, 1.6, 3, {})   # new period: no frame arrived
    assert (level, message) == (WARN, 'no camera frames') and values['frames_undecodable'] == 1


def test_policy_report_error_when_the_policy_fails():
    loop = PolicyLoop(NanPolicy(), ['stop'], 64, 0.5, (2.0, 4.0))
    monitor = PolicyMonitor()
    loop.set_instruction('go left', 1.0)
    monitor.frame_received(1.0)
    assert loop.step(WHITE, 1.0, 1.0) is None
    level, message, values = monitor.report(loop, 1.0, 0, {})
    assert level == ERROR and message == f'policy failing: {loop.last_error}'
    assert values['policy_errors'] == 1
