"""End-to-end: vla_node and chunk_executor as separate processes (real rclpy + Fast DDS, loopback,
a private domain), driven by a probe node that publishes images, instructions, chunks and e-stops.
"""
import signal
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from rosutil import NodeProcess, Probe, domain_id_for  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Bool, String  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory  # noqa: E402

from vla_nav.nodes import ros_io  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)
TEST_POLICY = {'backend': 'policies:make_engine'}
WHITE = np.full((48, 64, 3), 255, np.uint8)
CHUNK_TOPIC, CMD_TOPIC, DIAGNOSTICS_TOPIC = '/vla/action_chunk', '/cmd_vel', '/diagnostics'


class Rig:
    """The probe's publishers/recorders for the default topics, plus helpers."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.chunks = probe.record(MultiDOFJointTrajectory, CHUNK_TOPIC, ros_io.reliable_qos())
        self.cmds = probe.record(Twist, CMD_TOPIC, ros_io.reliable_qos())
        self.diagnostics = probe.record(DiagnosticArray, DIAGNOSTICS_TOPIC)    # the last reader
        self.image_pub = probe.publisher(Image, '/camera/image_raw', ros_io.sensor_qos())
        self.instruction_pub = probe.publisher(String, '/instruction', ros_io.latched_qos())
        self.chunk_pub = probe.publisher(MultiDOFJointTrajectory, CHUNK_TOPIC, ros_io.reliable_qos())
        self.estop_pub = probe.publisher(Bool, '/estop', ros_io.reliable_qos())
        self.sent_stamps: list[float] = []

    def send_frame(self, rgb=WHITE) -> None:
        stamp = time.time()
        self.sent_stamps.append(round(stamp, 6))
        self.image_pub.publish(ros_io.rgb_to_image_msg(rgb, stamp))

    def instruct(self, text: str) -> None:
        self.instruction_pub.publish(String(data=text))

    def send_chunk(self, linear: float, angular: float, stamp: float | None = None) -> None:
        actions = np.tile([linear, angular], (10, 1))
        self.chunk_pub.publish(ros_io.chunk_to_msg(stamp or time.time(), actions, 0.1, 'base_link'))

    def point_chunks(self, since: int = 0) -> list:
        return [msg for _, msg in self.chunks[since:] if msg.points]

    def until(self, predicate, timeout=10.0, every=None, period=0.1) -> bool:
        return self.probe.spin_until(predicate, timeout, every=every, period=period)

    def moving(self) -> bool:
        return bool(self.cmds) and self.cmds[-1][1].linear.x > 0.05


@pytest.fixture
def rig():
    probe = Probe(DOMAIN)
    yield Rig(probe)
    probe.close()


@pytest.fixture
def start():
    started = []

    def start_node(module, env=None, **params):
        process = NodeProcess(module, DOMAIN, params, env=env)
        started.append(process)
        return process

    yield start_node
    for process in started:
        process.stop()


def start_stack(rig, start, **vla_params):
    vla = start('vla_node', **{**TEST_POLICY, **vla_params})
    executor = start('chunk_executor')
    assert rig.probe.wait_for_subscribers(rig.image_pub), vla.output
    assert rig.probe.wait_for_subscribers(rig.instruction_pub), vla.output
    assert rig.probe.wait_for_publishers(CMD_TOPIC), executor.output
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
        assert round(ros_io.stamp_to_sec(msg.header.stamp), 6) in rig.sent_stamps
        stamp, actions, dt = ros_io.msg_to_chunk(msg)
        assert dt == pytest.approx(0.1) and actions[0, 0] > 0.3 and actions[0, 1] > 0.3
    assert rig.cmds[-1][1].angular.z > 0.0                       # "left" turns left


def test_new_goal_preempts_and_old_chunks_are_discarded(rig, start):
    vla, executor = start_stack(rig, start)
    rig.instruct('go left')
    assert rig.until(lambda: rig.moving() and rig.cmds[-1][1].angular.z > 0.3, every=rig.send_frame)
    before = len(rig.chunks)
    newest_before = max(ros_io.stamp_to_sec(msg.header.stamp) for msg in rig.point_chunks())
    instructed_at = time.monotonic()
    rig.instruct('now go right')
    assert rig.until(lambda: rig.cmds[-1][1].angular.z < -0.3, every=rig.send_frame), \
        vla.output + executor.output
    later = [msg for _, msg in rig.chunks[before:]]
    preempts = [index for index, msg in enumerate(later) if not msg.points]
    assert preempts, 'no preempt chunk after the new goal'
    preempt_stamp = ros_io.stamp_to_sec(later[preempts[0]].header.stamp)
    assert preempt_stamp >= newest_before
    for msg in later[preempts[0] + 1:]:
        stamp, actions, _ = ros_io.msg_to_chunk(msg)
        assert stamp > preempt_stamp and actions[0, 1] < 0        # only the new goal's chunks
    # from the new goal on, the turn only swings right: no old-goal chunk pulled it back left
    turning = [msg.angular.z for receipt, msg in rig.cmds if receipt > instructed_at]
    assert len(turning) > 3 and np.all(np.diff(turning) <= 1e-9)


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
    diagnostics = rig.diagnostics
    executor = start('chunk_executor', diagnostics_period=0.2)
    assert rig.probe.wait_for_subscribers(rig.chunk_pub) and rig.probe.wait_for_subscribers(rig.estop_pub)
    feed = lambda: rig.send_chunk(0.3, 0.2)  # noqa: E731
    assert rig.until(rig.moving, every=feed), executor.output
    rig.estop_pub.publish(Bool(data=True))
    assert rig.until(lambda: rig.cmds[-1][1].linear.x == 0.0, timeout=2.0)
    mark = len(rig.cmds)
    rig.until(lambda: False, timeout=0.6, every=feed)             # chunks keep coming...
    assert len(rig.cmds) > mark + 5
    assert all(msg.linear.x == 0.0 and msg.angular.z == 0.0 for _, msg in rig.cmds[mark:])
    assert rig.until(lambda: any(array.status[0].message == 'e-stop latched'
                                 and array.status[0].level == bytes([1]) for _, array in diagnostics))
    rig.estop_pub.publish(Bool(data=False))
    assert rig.until(rig.moving, every=feed), executor.output      # released: moves again


def test_watchdog_brakes_to_exact_zero_when_vla_node_dies(rig, start):
    vla, executor = start_stack(rig, start)
    rig.instruct('go left')
    assert rig.until(rig.moving, every=rig.send_frame)
    vla.process.kill()                                             # SIGKILL: no goodbye preempt
    vla.wait()
    assert rig.until(lambda: rig.cmds[-1][1].linear.x == 0.0 and rig.cmds[-1][1].angular.z == 0.0,
                     timeout=3.0, every=rig.send_frame)
    mark = len(rig.cmds)
    rig.until(lambda: False, timeout=1.0, every=rig.send_frame)
    assert len(rig.cmds) > mark + 10
    assert all(msg.linear.x == 0.0 and msg.angular.z == 0.0 for _, msg in rig.cmds[mark:])
    assert 'shutdown' not in executor.output and executor.alive()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_executor_publishes_zero_on_shutdown(rig, start, signum):
    executor = start('chunk_executor')
    assert rig.probe.wait_for_subscribers(rig.chunk_pub)
    assert rig.until(rig.moving, every=lambda: rig.send_chunk(0.4, 0.0)), executor.output
    executor.signal(signum)
    assert executor.wait(10) == 0, executor.output
    rig.probe.spin_for(0.3)
    last = rig.cmds[-1][1]
    assert (last.linear.x, last.angular.z) == (0.0, 0.0)
    assert 'zero command published' in executor.output


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_vla_node_sends_preempt_on_shutdown(rig, start, signum):
    vla = start('vla_node', **TEST_POLICY)
    assert rig.probe.wait_for_subscribers(rig.instruction_pub)
    rig.instruct('go')
    assert rig.until(lambda: rig.point_chunks(), every=rig.send_frame), vla.output
    vla.signal(signum)
    assert vla.wait(10) == 0, vla.output
    rig.probe.spin_for(0.3)
    assert not rig.chunks[-1][1].points                           # the last word is a preempt


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
    diagnostics = rig.diagnostics
    assert rig.probe.wait_for_subscribers(rig.image_pub)
    rig.instruct('go')
    broken = ros_io.rgb_to_image_msg(WHITE, time.time())
    broken.step = 7                                               # smaller than a row
    weird = ros_io.rgb_to_image_msg(WHITE, time.time())
    weird.encoding = 'yuv422'

    def send_junk():
        broken.header.stamp = weird.header.stamp = ros_io.sec_to_stamp(time.time())
        rig.image_pub.publish(broken)
        rig.image_pub.publish(weird)
        rig.instruct('   ')

    def undecodable() -> int:
        for _, array in reversed(diagnostics):
            values = {kv.key: kv.value for kv in array.status[0].values}
            if 'frames_undecodable' in values:
                return int(values['frames_undecodable'])
        return 0

    assert rig.until(lambda: undecodable() >= 2, every=send_junk), vla.output
    assert vla.alive() and not rig.point_chunks()
    assert 'frame dropped' in vla.output and 'instruction rejected' in vla.output
    rig.instruct('go again')
    assert rig.until(lambda: rig.point_chunks(), every=rig.send_frame), vla.output


def test_compressed_transport(rig, start):
    vla = start('vla_node', **TEST_POLICY, image_transport='compressed')
    publisher = rig.probe.publisher(CompressedImage, '/camera/image_raw/compressed',
                                    ros_io.sensor_qos())
    assert rig.probe.wait_for_subscribers(publisher), vla.output
    rig.instruct('go')
    send = lambda: publisher.publish(ros_io.rgb_to_compressed_msg(WHITE, time.time()))  # noqa: E731
    assert rig.until(lambda: rig.point_chunks(), every=send), vla.output
    assert ros_io.msg_to_chunk(rig.point_chunks()[0])[1][0, 0] > 0.3


def test_executor_limits_change_at_run_time(rig, start):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
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
    rig.until(lambda: False, timeout=0.5, every=feed)
    assert all(msg.linear.x <= 0.2 + 1e-9 for _, msg in rig.cmds[mark + 1:])
    assert rig.cmds[-1][1].linear.x == pytest.approx(0.2)


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
    assert ros_io.msg_to_chunk(second_after)[1][0, 1] < 0          # ...then only the new goal
