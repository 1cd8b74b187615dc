"""sim_node end to end in a subprocess (real rclpy, loopback DDS, private domain)."""
import json
import math
import signal

import pytest

pytest.importorskip('rclpy')

from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from rosutil import Probe, Topics, domain_id_for, start_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vla_nav.ros import convert, qos  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)
TOPICS = Topics()
STARTUP_S = 60.0


@pytest.fixture
def probe():
    node = Probe(DOMAIN, 'sim_probe')
    yield node
    node.close()


def _start(params):
    return start_node('sim_node', DOMAIN, params)


def _odom_pose(msg):
    return convert.odometry_to_pose_twist(msg)[:3]


def test_sim_node_publishes_camera_odom_scene_and_follows_cmd_vel(probe):
    sim = _start({'seed': 3, 'episode': 1, 'split': 'test'})
    try:
        images = probe.record(Image, TOPICS.image, qos.sensor_qos())
        odometry = probe.record(Odometry, TOPICS.odom, qos.reliable_qos())
        statuses = probe.record(String, TOPICS.status, qos.reliable_qos())
        scenes = probe.record(String, TOPICS.scene, qos.latched_qos())
        assert probe.spin_until(lambda: len(images) >= 3 and len(odometry) >= 10 and scenes,
                                STARTUP_S), sim.output
        image = images[-1][1]
        assert (image.encoding, image.height, image.width, image.step) == ('rgb8', 128, 128, 384)
        assert len(image.data) == 128 * 128 * 3
        scene = json.loads(scenes[0][1].data)
        assert (scene['split'], scene['seed'], scene['episode']) == ('test', 3, 1)
        assert scene['objects'] and {'colour', 'shape', 'position'} <= set(scene['objects'][0])
        start = _odom_pose(odometry[-1][1])
        assert start == pytest.approx(tuple(scene['start_pose']), abs=1e-3)

        instruction = probe.publisher(String, TOPICS.instruction, qos.latched_qos())
        cmd_vel = probe.publisher(Twist, TOPICS.cmd_vel, qos.reliable_qos())
        assert probe.wait_for_subscribers(instruction) and probe.wait_for_subscribers(cmd_vel)
        instruction.publish(String(data='turn left'))
        assert probe.spin_until(lambda: any(json.loads(m.data)['instruction'] == 'turn left'
                                            for _, m in statuses), 10.0)
        turn = Twist()
        turn.angular.z = 0.6
        probe.spin_until(lambda: abs(_odom_pose(odometry[-1][1])[2] - start[2]) > 0.3, 10.0,
                         every=lambda: cmd_vel.publish(turn), period=0.05)
        moved = _odom_pose(odometry[-1][1])
        assert abs(math.remainder(moved[2] - start[2], 2 * math.pi)) > 0.3
        assert odometry[-1][1].twist.twist.angular.z > 0.0
        # no more commands: the base brakes to a stop on its own (cmd_vel_timeout)
        assert probe.spin_until(lambda: odometry[-1][1].twist.twist.angular.z == 0.0, 5.0)
        status = json.loads(statuses[-1][1].data)
        assert status['kind'] == 'turn' and status['outcome'] in ('running', 'success', 'failure')
        assert {'time', 'time_limit', 'pose', 'metrics'} <= set(status)
        stamps = [convert.stamp_to_sec(m.header.stamp) for _, m in images[-5:]]
        assert stamps == sorted(stamps)

        sim.signal(signal.SIGINT)
        assert sim.wait(15) == 0
    finally:
        sim.stop()


def test_sim_node_judges_an_instruction_faster_than_real_time_with_clock(probe):
    sim = _start({'seed': 0, 'real_time_factor': 4.0})
    try:
        clock = probe.record(Clock, '/clock', qos.reliable_qos())
        statuses = probe.record(String, TOPICS.status, qos.reliable_qos())
        instruction = probe.publisher(String, TOPICS.instruction, qos.latched_qos())
        assert probe.spin_until(lambda: len(clock) >= 10, STARTUP_S), sim.output
        instruction.publish(String(data='stand still'))

        def outcome():
            for _, msg in reversed(statuses):
                status = json.loads(msg.data)
                if status['instruction'] == 'stand still' and status['outcome'] != 'running':
                    return status
            return None

        assert probe.spin_until(lambda: outcome() is not None, 20.0)
        assert outcome()['outcome'] == 'success' and outcome()['kind'] == 'stop'
        instruction.publish(String(data='sing a song'))
        assert probe.spin_until(lambda: json.loads(statuses[-1][1].data)['instruction']
                                == 'sing a song', 10.0)
        status = json.loads(statuses[-1][1].data)
        assert status['kind'] is None and status['outcome'] == 'failure'
        seconds = [convert.stamp_to_sec(m.clock) for _, m in clock]
        assert seconds == sorted(seconds)
        sim.signal(signal.SIGTERM)
        assert sim.wait(15) == 0
    finally:
        sim.stop()


def test_sim_node_refuses_bad_parameters():
    sim = _start({'split': 'validation'})
    try:
        assert sim.wait(60) == 1
        assert 'split' in sim.output
    finally:
        sim.stop()
