"""Operator-visible behaviour of the ROS layer, end to end (real rclpy + Fast DDS, loopback):

- two robots side by side on ONE domain, each suite (vla_node + chunk_executor) in its own
  namespace with the default (relative) topic names: two goals, two different cmd_vel, no
  cross-talk;
- `image_transport:=compressed sim:=true`: sim_node publishes `<camera>/compressed` (JPEG) and the
  robot moves;
- a library's Python logging / warnings.warn ("falling back") reaches the node's ROS log.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip('rclpy')

from nav_msgs.msg import Odometry  # noqa: E402
from rosutil import TEST_POLICY, Probe, Rig, Topics, domain_id_for, start_node  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vla_nav.ros import convert, qos  # noqa: E402
from vla_nav.tools.procs import wait_until  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)


@pytest.fixture
def probe():
    node = Probe(DOMAIN, 'namespaces_probe')
    yield node
    node.close()


@pytest.fixture
def start():
    started = []

    def start_one(module, namespace=None, env=None, **params):
        process = start_node(module, DOMAIN, params, env=env, namespace=namespace)
        started.append(process)
        return process

    yield start_one
    for process in started:
        process.stop()


def test_two_namespaced_robots_on_one_domain_do_not_cross_talk(probe, start):
    robots = {}
    for namespace in ('robot1', 'robot2'):
        vla = start('vla_node', namespace, **TEST_POLICY)
        executor = start('chunk_executor', namespace)
        robots[namespace] = (Rig(probe, namespace), vla, executor)
    for namespace, (rig, vla, executor) in robots.items():
        assert rig.topics.cmd_vel == f'/{namespace}/cmd_vel'
        assert probe.wait_for_subscribers(rig.image_pub) and probe.wait_for_subscribers(rig.instruction_pub)
        assert probe.wait_for_publishers(rig.topics.cmd_vel), executor.output
        # both report on the shared, absolute /diagnostics: wait for this robot's vla_node (its
        # report proves it sees the probe's readers, so its goal's preempt cannot be lost)
        assert rig.until(lambda: any(r.hardware_id == f'/{namespace}/vla_node'  # noqa: B023
                                     for r in rig.reports('vla_node')), 15.0), vla.output  # noqa: B023
    assert probe.node.count_subscribers('/camera/image_raw') == 0      # nothing left in the root
    left, right = robots['robot1'][0], robots['robot2'][0]
    left.instruct('go left')
    right.instruct('go right')

    def feed() -> None:
        left.send_frame()
        right.send_frame()

    assert probe.spin_until(lambda: left.moving() and right.moving()
                            and left.cmds[-1][1].angular.z > 0.3 and right.cmds[-1][1].angular.z < -0.3,
                            20.0, every=feed), robots['robot1'][1].output + robots['robot2'][1].output
    for rig, sign in ((left, 1.0), (right, -1.0)):
        turns = [convert.msg_to_chunk(msg)[1][0, 1] for msg in rig.point_chunks()]
        assert turns and all(turn * sign > 0 for turn in turns)      # only its own goal's chunks
    for namespace, goal in (('robot1', 'go left'), ('robot2', 'go right')):
        output = robots[namespace][1].output
        assert f"goal '{goal}'" in output and output.count("goal '") == 1, output


def test_compressed_transport_with_the_simulator_moves_the_robot(probe, start):
    """`ros2 launch ... image_transport:=compressed sim:=true`: vla_node listens on
    camera/image_raw/compressed, which sim_node publishes as JPEG while someone subscribes."""
    sim = start('sim_node', seed=0)
    vla = start('vla_node', image_transport='compressed', **TEST_POLICY)
    executor = start('chunk_executor')
    topics = Topics()
    odometry = probe.record(Odometry, topics.odom, qos.reliable_qos())
    jpegs = probe.record(CompressedImage, topics.compressed_image, qos.sensor_qos())
    statuses = probe.record(String, topics.status, qos.reliable_qos())
    instruction = probe.publisher(String, topics.instruction, qos.latched_qos())
    assert probe.wait_for_subscribers(instruction, 2, timeout=60.0), sim.output + vla.output
    assert probe.spin_until(lambda: jpegs and odometry, 60.0), sim.output
    assert jpegs[-1][1].format == 'jpeg' and bytes(jpegs[-1][1].data[:2]) == b'\xff\xd8'
    start_pose = convert.odometry_to_pose_twist(odometry[-1][1])
    instruction.publish(String(data='go forward 1 meter'))
    assert probe.spin_until(lambda: statuses and json.loads(statuses[-1][1].data)['instruction']
                            == 'go forward 1 meter', 10.0), sim.output

    def moved() -> float:
        x, y, *_ = convert.odometry_to_pose_twist(odometry[-1][1])
        return ((x - start_pose[0]) ** 2 + (y - start_pose[1]) ** 2) ** 0.5

    assert probe.spin_until(lambda: moved() > 0.05, 30.0), vla.output[-2000:] + executor.output[-2000:]
    assert 'frame dropped' not in vla.output


def test_library_warnings_reach_the_node_ros_log(start):
    """ONNX Runtime / torch fall-backs are Python logging warnings and warnings.warn: the node's
    ROS logger (console, ROS log files, /rosout) carries them with the node's name."""
    vla = start('vla_node', env={'VLA_NAV_TEST_POLICY_WARN': '1'}, **TEST_POLICY)
    assert wait_until(lambda: 'ready; waiting for' in vla.output or not vla.alive(), 60.0), vla.output
    lines = [line for line in vla.output.splitlines() if 'falling back' in line]
    assert any(line.startswith('[WARN]') and '[vla_node]' in line and '[onnxruntime]' in line
               for line in lines), vla.output
    assert any(line.startswith('[WARN]') and '[py.warnings]' in line for line in lines), vla.output
