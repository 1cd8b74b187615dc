"""/diagnostics over real ROS 2: what vla_node and chunk_executor report, and the OK/WARN/ERROR levels
their module docstrings document, driven through transitions by a probe node.

vla_node (status "vla_node"): input and chunk rates, inference p50/p99, history fill, goal, last
error; OK running / idle, WARN without frames or with undecodable frames, ERROR when the policy
fails (the NaN test policy). chunk_executor (status "chunk_executor"): chunk input rate, state
idle -> tracking -> braking -> stopped -> estop, last error; OK, WARN on a watchdog trip and while
the e-stop is latched, ERROR when every chunk of a report period was refused (too old, malformed),
not when only preempts arrived. The out-of-bounds test policy shows both clamps end to end.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from rosutil import TEST_POLICY, WHITE, Probe, Report, Rig, domain_id_for, start_node  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory  # noqa: E402

from vla_nav.config import node_defaults  # noqa: E402
from vla_nav.core import health  # noqa: E402
from vla_nav.ros import convert, msgs, qos  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)
VLA = node_defaults('vla_node')
EXECUTOR = node_defaults('chunk_executor')
PERIOD_S = 0.2                                   # diagnostics_period of every node here
SLOW_BRAKE = {'max_linear_decel': 0.4, 'max_angular_decel': 1.0}   # braking lasts ~1 s: observable
NAN_TOPICS = {'chunk_topic': '/nan/chunks', 'diagnostics_topic': '/nan/diagnostics'}
OOB_TOPICS = {'chunk_topic': '/oob/chunks', 'diagnostics_topic': '/oob/diagnostics'}


class DiagnosticsRig(Rig):
    """The common rig plus a NaN policy and an out-of-bounds policy (+ its own executor), each on
    their own topics."""

    def __init__(self) -> None:
        super().__init__(Probe(DOMAIN, 'diagnostics_probe'))
        policy = {**TEST_POLICY, 'diagnostics_period': PERIOD_S}
        self.processes = {
            'vla': start_node('vla_node', DOMAIN, policy),
            'executor': start_node('chunk_executor', DOMAIN, {'diagnostics_period': PERIOD_S, **SLOW_BRAKE}),
            'nan': start_node('vla_node', DOMAIN, {**policy, **NAN_TOPICS},
                              env={'VLA_NAV_TEST_POLICY': 'nan'}),
            'oob': start_node('vla_node', DOMAIN, {**policy, **OOB_TOPICS},
                              env={'VLA_NAV_TEST_POLICY': 'out_of_bounds'}),
            'oob_executor': start_node('chunk_executor', DOMAIN, {
                'chunk_topic': OOB_TOPICS['chunk_topic'], 'cmd_vel_topic': '/oob/cmd_vel',
                'diagnostics_topic': OOB_TOPICS['diagnostics_topic'], 'diagnostics_period': PERIOD_S}),
        }
        probe, reliable = self.probe, qos.reliable_qos()
        self.nan_chunks = probe.record(MultiDOFJointTrajectory, NAN_TOPICS['chunk_topic'], reliable)
        self.oob_chunks = probe.record(MultiDOFJointTrajectory, OOB_TOPICS['chunk_topic'], reliable)
        self.oob_cmds = probe.record(Twist, '/oob/cmd_vel', reliable)
        self.nan_arrays = probe.record(DiagnosticArray, NAN_TOPICS['diagnostics_topic'])

    def ready(self) -> bool:
        probe = self.probe
        return (probe.wait_for_subscribers(self.image_pub, 3)
                and probe.wait_for_subscribers(self.instruction_pub, 3)
                and probe.wait_for_subscribers(self.chunk_pub, 1)
                and probe.wait_for_subscribers(self.estop_pub, 2)
                and self.until(lambda: self.latest('chunk_executor') and self.latest('vla_node')
                               and self.latest('vla_node', self.nan_arrays), 15.0))

    def outputs(self) -> str:
        return '\n'.join(f'--- {name} ---\n{p.output[-1500:]}' for name, p in self.processes.items())

    def close(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.probe.close()


@pytest.fixture(scope='module')
def rig():
    started = DiagnosticsRig()
    try:
        assert started.ready(), started.outputs()
        yield started
    finally:
        started.close()


def number(report: Report, key: str) -> float:
    return float(report.values[key])


def test_vla_node_reports_rates_latency_history_goal_and_levels(rig):
    idle = rig.latest('vla_node')
    assert (idle.level, idle.message, idle.values['goal']) == (health.OK, 'idle: no goal', '(none)')
    assert {'frame_rate_hz', 'chunk_rate_hz', 'inference_p50_ms', 'inference_p99_ms', 'history_fill',
            'goal', 'last_error', 'frames_undecodable', 'policy_errors'} <= set(idle.values)
    rig.instruct('go left')
    full = rig.wait_report('vla_node', lambda r: r.values['history_fill'] == '8'
                           and number(r, 'chunk_rate_hz') > 0, 10.0, every=rig.send_frame)
    assert (full.level, full.message, full.values['goal']) == (health.OK, 'running', 'go left'), full
    assert number(full, 'frame_rate_hz') > 0 and full.values['last_error'] == ''
    p50, p99 = number(full, 'inference_p50_ms'), number(full, 'inference_p99_ms')
    assert math.isfinite(p50) and 0 <= p50 <= p99, full
    # a new goal restarts the history
    rig.instruct('go right')
    fresh = rig.wait_report('vla_node', lambda r: r.values['goal'] == 'go right', 5.0, every=rig.send_frame)
    assert int(fresh.values['history_fill']) < 8, fresh
    # goal but no camera: WARN
    silent = rig.wait_report('vla_node', lambda r: r.level != health.OK, 5.0)
    assert (silent.level, silent.message) == (health.WARN, 'no camera frames'), silent
    # frames from a camera whose clock runs 10 s ahead: all refused as stale, WARN with the reason
    skewed = rig.wait_report('vla_node', lambda r: 'stale' in r.message, 5.0,
                             every=lambda: rig.send_frame(stamp=time.time() + 10.0))
    assert skewed.level == health.WARN and 'future' in skewed.values['last_error'], skewed
    # then only undecodable frames: WARN, not ERROR (the documented ERROR is for policy errors,
    # however recent last_error is)
    broken = msgs.rgb_to_image_msg(WHITE, time.time())
    broken.step = 5

    def send_broken() -> None:
        broken.header.stamp = msgs.sec_to_stamp(time.time())
        rig.image_pub.publish(broken)

    junk = rig.wait_report('vla_node', lambda r: 'decoded' in r.message or r.level == health.ERROR,
                           5.0, every=send_broken)
    assert junk.level == health.WARN and junk.message.endswith('frames could not be decoded'), junk
    back = rig.wait_report('vla_node', lambda r: r.message == 'running', 5.0, every=rig.send_frame)
    assert back.level == health.OK


def test_nan_policy_is_an_error_with_the_last_error_and_never_a_chunk(rig):
    rig.instruct('go left')
    failing = rig.wait_report('vla_node', lambda r: r.level == health.ERROR, 10.0, every=rig.send_frame,
                              diagnostics=rig.nan_arrays)
    assert failing.message.startswith('policy failing:') and 'non-finite' in failing.message, failing
    assert 'non-finite' in failing.values['last_error'] and int(failing.values['policy_errors']) > 0
    assert failing.values['chunks'] == '0'
    assert rig.nan_chunks and all(not msg.points for _, msg in rig.nan_chunks)   # preempts only
    assert 'no chunk: act returned' in rig.processes['nan'].output


def test_out_of_bounds_policy_is_clamped_by_vla_node_and_by_the_executor(rig):
    rig.instruct('go left')
    assert rig.until(lambda: rig.oob_cmds and rig.oob_cmds[-1][1].linear.x == EXECUTOR['max_linear_vel']
                     and rig.oob_cmds[-1][1].angular.z == EXECUTOR['max_angular_vel'], 10.0,
                     every=rig.send_frame), rig.outputs()
    points = [msg for _, msg in rig.oob_chunks if msg.points]
    for msg in points:                       # the test policy says 100 m/s, 100 rad/s
        actions = convert.msg_to_chunk(msg)[1]
        assert np.all(actions == [VLA['action_limit_linear'], VLA['action_limit_angular']])
    for _, cmd in rig.oob_cmds:
        assert cmd.linear.x <= EXECUTOR['max_linear_vel']
        assert abs(cmd.angular.z) <= EXECUTOR['max_angular_vel']
    assert 'clamped' in rig.processes['oob'].output


def test_executor_states_levels_rate_and_last_error(rig):
    rig.instruct('go left')
    tracking = rig.wait_report('chunk_executor', lambda r: r.values['state'] == 'tracking', 10.0,
                               every=rig.send_frame)
    assert tracking.level == health.OK and tracking.message == 'tracking'
    assert number(tracking, 'chunk_rate_hz') > 0 and int(tracking.values['chunks_accepted']) > 0
    # camera stops: the watchdog brakes (WARN for the report that saw the trip), then stopped (OK)
    braking = rig.wait_report('chunk_executor', lambda r: r.values['state'] == 'braking', 5.0)
    assert int(braking.values['watchdog_trips']) >= 1
    assert any(r.level == health.WARN and r.message.startswith('watchdog')
               for r in rig.reports('chunk_executor', since=braking.receipt - 1.0))
    stopped = rig.wait_report('chunk_executor', lambda r: r.values['state'] == 'stopped', 5.0)
    stopped = rig.wait_report('chunk_executor', lambda r: r.values['state'] == 'stopped', 5.0)  # next one
    assert (stopped.level, stopped.message) == (health.OK, 'stopped'), stopped
    # e-stop: WARN while latched, OK after release
    rig.estop(True)
    latched = rig.wait_report('chunk_executor', lambda r: r.values['state'] == 'estop', 5.0)
    assert (latched.level, latched.message) == (health.WARN, 'e-stop latched')
    assert latched.values['estop'] == 'True'
    rig.estop(False)
    released = rig.wait_report('chunk_executor', lambda r: r.values['estop'] == 'False', 5.0)
    assert (released.level, released.values['state']) == (health.OK, 'stopped'), released
    # every chunk of a period refused (stamped 5 s ago: too old, or older than the plan): ERROR
    old = lambda: rig.send_chunk(0.3, 0.0, stamp=time.time() - 5.0)  # noqa: E731
    refused = rig.wait_report('chunk_executor', lambda r: r.level == health.ERROR, 5.0, every=old)
    reason = refused.values['last_error']
    assert refused.message == f'every chunk refused: {reason}'
    assert 'old' in reason or 'not newer than the plan' in reason, refused
    # only preempts in a period (vla_node said stop): that is no error
    preempt = lambda: rig.chunk_pub.publish(msgs.preempt_msg(time.time(), 'base_link'))  # noqa: E731
    # (if preempts counted as refusals, no report would be OK while they flow)
    rig.wait_report('chunk_executor', lambda r: r.level == health.OK, 5.0, every=preempt)
    calm = rig.wait_report('chunk_executor', lambda r: True, 5.0, every=preempt)   # a whole period
    assert calm.level == health.OK, calm
    # only malformed chunks (no velocities): ERROR, the robot cannot move

    def malformed() -> None:
        msg = msgs.chunk_to_msg(time.time(), np.tile([0.3, 0.0], (10, 1)), 0.1, 'base_link')
        msg.points[0].velocities = []
        rig.chunk_pub.publish(msg)

    bad = rig.wait_report('chunk_executor', lambda r: r.level != health.OK, 5.0, every=malformed)
    assert bad.level == health.ERROR and 'velocities' in bad.values['last_error'], bad
    good = rig.wait_report('chunk_executor', lambda r: r.values['state'] == 'tracking', 5.0,
                           every=lambda: rig.send_chunk(0.3, 0.0))
    assert good.level == health.OK
