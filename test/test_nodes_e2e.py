"""End-to-end: vla_node and chunk_executor as separate processes (real rclpy + Fast DDS, loopback,
a private domain), driven by a probe node that publishes images, instructions, chunks and e-stops.
"""
import signal
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rosutil import TEST_POLICY, WHITE, Probe, Rig, domain_id_for, start_node  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from vla_nav.core import health  # noqa: E402
from vla_nav.ros import convert, msgs, qos  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)


@pytest.fixture
def rig():
    probe = Probe(DOMAIN)
    yield Rig(probe)
    probe.close()


@pytest.fixture
def start():
    started = []

    def start_one(module, env=None, **params):
        process = start_node(module, DOMAIN, params, env=env)
        started.append(process)
        return process

    yield start_one
    for process in started:
        process.stop()


def start_stack(rig, start, **vla_params):
    vla = start('vla_node', **{**TEST_POLICY, **vla_params})
    executor = start('chunk_executor')
    assert rig.probe.wait_for_subscribers(rig.image_pub), vla.output
    assert rig.probe.wait_for_subscribers(rig.instruction_pub), vla.output
    assert rig.probe.wait_for_publishers(rig.topics.cmd_vel), executor.output
    # vla_node's report proves it sees every reader of the probe: no preempt can be lost
    assert rig.probe.wait_for_message(rig.diagnostics, rig.probe.report_of('vla_node')), vla.output
    return vla, executor


def test_images_and_goal_make_chunks_and_motion(rig, start):
    vla, executor = start_stack(rig, start)
    assert rig.until(lambda: len(rig.cmds) >= 3)
    assert all(msg.linear.x == 0.0 and msg.angular.z == 0.0 for _, msg in rig.cmds)  # idle: zeros
    rig.instruct('go left')
    assert rig.until(lambda: len(rig.point_chunks()) >= 5 and rig.moving(), every=rig.send_frame), \
        vla.output + executor.output
    empty = [msg for _, msg in rig.chunks if not msg.points]
    assert len(empty) == 1                                       # the goal's preempt
    for msg in rig.point_chunks():
        assert len(msg.points) == 10 and msg.header.frame_id == 'base_link'
        assert round(convert.stamp_to_sec(msg.header.stamp), 6) in rig.sent_stamps
        stamp, actions, dt = convert.msg_to_chunk(msg)
        assert dt == pytest.approx(0.1) and actions[0, 0] > 0.3 and actions[0, 1] > 0.3
    assert rig.cmds[-1][1].angular.z > 0.0                       # "left" turns left


def test_new_goal_preempts_and_old_chunks_are_discarded(rig, start):
    vla, executor = start_stack(rig, start)
    rig.instruct('go left')
    assert rig.until(lambda: rig.moving() and rig.cmds[-1][1].angular.z > 0.3, every=rig.send_frame)
    before = len(rig.chunks)
    newest_before = max(convert.stamp_to_sec(msg.header.stamp) for msg in rig.point_chunks())
    instructed_at = time.monotonic()
    rig.instruct('now go right')
    since = lambda: [msg.angular.z for receipt, msg in rig.cmds if receipt > instructed_at]  # noqa: E731
    # wait for the swing right and a few commands past it (a fast machine gets there in 3 ticks)
    assert rig.until(lambda: rig.cmds[-1][1].angular.z < -0.3 and len(since()) > 6, every=rig.send_frame), \
        vla.output + executor.output
    later = [msg for _, msg in rig.chunks[before:]]
    preempts = [index for index, msg in enumerate(later) if not msg.points]
    assert preempts, 'no preempt chunk after the new goal'
    preempt_stamp = convert.stamp_to_sec(later[preempts[0]].header.stamp)
    assert preempt_stamp >= newest_before
    for msg in later[preempts[0] + 1:]:
        stamp, actions, _ = convert.msg_to_chunk(msg)
        assert stamp > preempt_stamp and actions[0, 1] < 0        # only the new goal's chunks
    # from the new goal on, the turn only swings right: no old-goal chunk pulled it back left
    turning = since()
    assert len(turning) > 6 and np.all(np.diff(turning) <= 1e-9)


def test_stop_word_brakes_to_zero(rig, start):
    start_stack(rig, start)
    rig.instruct('go left')
    assert rig.until(rig.moving, every=rig.send_frame)
    rig.instruct('STOP!')
    assert rig.until(lambda: rig.cmds[-1][1].linear.x == 0.0, every=rig.send_frame)
    count = len(rig.point_chunks())
    rig.until(lambda: False, timeout=0.5, every=rig.send_frame)
    assert len(rig.point_chunks()) == count                        # no chunks until a new goal
    assert rig.cmds[-1][1].linear.x == 0.0 and rig.cmds[-1][1].angular.z == 0.0


def test_estop_is_latched_until_released(rig, start):
    executor = start('chunk_executor', diagnostics_period=0.2)
    assert rig.probe.wait_for_subscribers(rig.chunk_pub) and rig.probe.wait_for_subscribers(rig.estop_pub)
    feed = lambda: rig.send_chunk(0.3, 0.2)  # noqa: E731
    assert rig.until(rig.moving, every=feed), executor.output
    rig.estop(True)
    assert rig.until(lambda: rig.cmds[-1][1].linear.x == 0.0, timeout=2.0)
    mark = len(rig.cmds)
    assert rig.until(lambda: len(rig.cmds) > mark + 5, every=feed)   # chunks keep coming...
    assert all(msg.linear.x == 0.0 and msg.angular.z == 0.0 for _, msg in rig.cmds[mark:])
    assert rig.until(lambda: any(report.message == 'e-stop latched' and report.level == health.WARN
                                 for report in rig.reports('chunk_executor')))
    rig.estop(False)
    assert rig.until(rig.moving, every=feed), executor.output      # released: moves again


def test_watchdog_brakes_to_exact_zero_when_vla_node_dies(rig, start):
    vla, executor = start_stack(rig, start)
    rig.instruct('go left')
    assert rig.until(rig.moving, every=rig.send_frame)
    vla.kill()                                                     # SIGKILL: no goodbye preempt
    assert rig.until(rig.stopped, timeout=3.0, every=rig.send_frame)
    mark = len(rig.cmds)
    assert rig.until(lambda: len(rig.cmds) > mark + 10, every=rig.send_frame)
    assert all(msg.linear.x == 0.0 and msg.angular.z == 0.0 for _, msg in rig.cmds[mark:])
    assert 'shutdown' not in executor.output and executor.alive()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_executor_publishes_zero_on_shutdown(rig, start, signum):
    executor = start('chunk_executor')
    assert rig.probe.wait_for_subscribers(rig.chunk_pub)
    assert rig.until(rig.moving, every=lambda: rig.send_chunk(0.4, 0.0)), executor.output
    executor.signal(signum)
    assert executor.wait(10) == 0, executor.output
    assert rig.until(rig.stopped, timeout=3.0)                    # the last word is a zero
    assert 'zero command published' in executor.output


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_vla_node_sends_preempt_on_shutdown(rig, start, signum):
    vla = start('vla_node', **TEST_POLICY)
    assert rig.probe.wait_for_subscribers(rig.instruction_pub)
    rig.instruct('go to the red cone')
    assert rig.until(lambda: rig.point_chunks(), every=rig.send_frame), vla.output
    vla.signal(signum)
    assert vla.wait(10) == 0, vla.output
    assert rig.until(lambda: not rig.chunks[-1][1].points, timeout=3.0)   # the last word: a preempt


def test_bad_model_path_is_one_fatal_error(start, tmp_path):
    missing = tmp_path / 'no_such_model'
    vla = start('vla_node', model=str(missing), backend='onnx')
    code = vla.wait(30)
    assert code != 0
    fatal = [line for line in vla.output.splitlines() if 'FATAL' in line]
    assert len(fatal) == 1 and str(missing) in fatal[0], vla.output
    assert 'Traceback' not in vla.output


def test_bad_input_never_kills_vla_node(rig, start):
    vla = start('vla_node', **TEST_POLICY, diagnostics_period=0.3)
    assert rig.probe.wait_for_subscribers(rig.image_pub)
    rig.instruct('go to the red cone')
    broken = msgs.rgb_to_image_msg(WHITE, time.time())
    broken.step = 7                                               # smaller than a row
    weird = msgs.rgb_to_image_msg(WHITE, time.time())
    weird.encoding = 'yuv422'

    def send_junk():
        broken.header.stamp = weird.header.stamp = msgs.sec_to_stamp(time.time())
        rig.image_pub.publish(broken)
        rig.image_pub.publish(weird)
        rig.instruct('   ')

    def undecodable() -> int:
        return int(rig.values('vla_node').get('frames_undecodable', 0))

    assert rig.until(lambda: undecodable() >= 2, every=send_junk), vla.output
    assert vla.alive() and not rig.point_chunks()
    assert 'frame dropped' in vla.output and 'instruction rejected' in vla.output
    rig.instruct('go to the blue box')
    assert rig.until(lambda: rig.point_chunks(), every=rig.send_frame), vla.output


def test_compressed_transport(rig, start):
    vla = start('vla_node', **TEST_POLICY, image_transport='compressed')
    publisher = rig.probe.publisher(CompressedImage, rig.topics.compressed_image, qos.sensor_qos())
    assert rig.probe.wait_for_subscribers(publisher), vla.output
    rig.instruct('go to the red cone')
    send = lambda: publisher.publish(msgs.rgb_to_compressed_msg(WHITE, time.time()))  # noqa: E731
    assert rig.until(lambda: rig.point_chunks(), every=send), vla.output
    assert convert.msg_to_chunk(rig.point_chunks()[0])[1][0, 0] > 0.3


def test_executor_limits_change_at_run_time(rig, start):
    executor = start('chunk_executor')
    assert rig.probe.wait_for_subscribers(rig.chunk_pub)
    feed = lambda: rig.send_chunk(0.45, 0.0)  # noqa: E731
    assert rig.until(lambda: rig.cmds and rig.cmds[-1][1].linear.x > 0.4, every=feed), executor.output
    client = rig.probe.node.create_client(SetParameters, '/chunk_executor/set_parameters')
    assert client.wait_for_service(timeout_sec=10)
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.2)
    future = client.call_async(SetParameters.Request(
        parameters=[Parameter(name='max_linear_vel', value=value)]))
    assert rig.until(future.done, timeout=5)
    assert future.result().results[0].successful
    mark = len(rig.cmds)
    assert rig.until(lambda: len(rig.cmds) > mark + 5 and rig.cmds[-1][1].linear.x == pytest.approx(0.2),
                     every=feed), rig.cmds[mark:]
    assert all(msg.linear.x <= 0.2 + 1e-9 for _, msg in rig.cmds[mark + 1:])


def test_slow_inference_never_delays_a_preempt(rig, start):
    """Inference runs off the executor thread: a new goal's preempt goes out while the policy is
    still busy with a frame of the old goal, and that frame's chunk is never published."""
    vla = start('vla_node', env={'VLA_NAV_TEST_POLICY': 'slow', 'VLA_NAV_TEST_POLICY_DELAY': '1.5'},
                **TEST_POLICY)
    assert rig.probe.wait_for_subscribers(rig.instruction_pub), vla.output
    rig.instruct('go left')
    assert rig.until(lambda: rig.point_chunks(), timeout=15, every=rig.send_frame), vla.output
    rig.until(lambda: False, timeout=0.3, every=rig.send_frame)   # the next inference is running
    before = len(rig.chunks)
    rig.instruct('go right')
    assert rig.until(lambda: len(rig.chunks) > before + 1, timeout=15, every=rig.send_frame)
    first_after, second_after = (msg for _, msg in rig.chunks[before:before + 2])
    assert not first_after.points                                  # the preempt came first...
    assert convert.msg_to_chunk(second_after)[1][0, 1] < 0          # ...then only the new goal
