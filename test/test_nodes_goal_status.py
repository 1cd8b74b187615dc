"""vla_node's goal status over real rclpy: multi-step progress on odometry, preempt, stop, refusal,
the late subscriber (transient local), the chunk as nav_msgs/Path and the status in /diagnostics."""
import json
import math
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from rosutil import TEST_POLICY, Probe, Rig, domain_id_for, start_node  # noqa: E402

from vla_nav.config import node_defaults  # noqa: E402
from vla_nav.core.chunk_geometry import integrate_chunk_poses  # noqa: E402
from vla_nav.ros import msgs, qos  # noqa: E402
from vla_nav.ros.convert import absolute_topic, msg_to_chunk, quaternion_to_yaw  # noqa: E402
from vla_nav.ros.goal_views import status_qos  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)
VLA = node_defaults('vla_node')
STATUS_TOPIC = absolute_topic(VLA['goal_status_topic'])
PATH_TOPIC = absolute_topic(VLA['path_topic'])
IMAGE_TOPIC = absolute_topic(VLA['annotated_image_topic'])


@pytest.fixture(scope='module')
def suite():
    from nav_msgs.msg import Odometry, Path
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    probe = Probe(DOMAIN)
    statuses = probe.record(String, STATUS_TOPIC, status_qos())   # before Rig: see Rig's doc
    paths = probe.record(Path, PATH_TOPIC, qos.reliable_qos())
    images = probe.record(Image, IMAGE_TOPIC, qos.sensor_qos())
    odom_pub = probe.publisher(Odometry, absolute_topic(VLA['state_topic']), qos.reliable_qos())
    rig = Rig(probe)
    vla = start_node('vla_node', DOMAIN, {**TEST_POLICY, 'publish_annotated_image': True})
    try:
        assert probe.wait_for_subscribers(rig.image_pub), vla.output
        assert probe.wait_for_subscribers(odom_pub), vla.output
        assert probe.wait_for_message(rig.diagnostics, probe.report_of('vla_node')), vla.output
        rig.images = images
        yield rig, vla, statuses, paths, odom_pub
    finally:
        vla.stop()
        probe.close()


def records(statuses, since=0):
    return [json.loads(msg.data) for _, msg in statuses[since:]]


def wait_status(rig, statuses, mark, predicate, vla, every=None, timeout=10.0):
    """The first status record from index `mark` on that satisfies `predicate` (bounded wait)."""
    assert rig.until(lambda: any(predicate(r) for r in records(statuses, mark)), timeout,
                     every=every), (records(statuses), vla.output[-3000:])
    return next(r for r in records(statuses, mark) if predicate(r))


def drive(rig, odom_pub, pose):
    """One odometry sample at `pose`, then one camera frame (the done rule runs on chunks)."""
    def send():
        odom_pub.publish(msgs.odometry_msg(time.time(), pose, (0.0, 0.0), 'odom', 'base_link'))
        rig.send_frame()
    return send


def test_multi_step_goal_reports_step_progress_and_done(suite):
    rig, vla, statuses, paths, odom_pub = suite
    mark, chunks = len(statuses), len(rig.chunks)
    rig.instruct('turn left 90 degrees, then go forward 1 meter')
    first = wait_status(rig, statuses, mark, lambda r: r['state'] == 'active', vla)
    assert (first['step'], first['steps'], first['step_text']) == (1, 2, 'turn left 90 degrees')
    goal = first['goal_id']
    # odometry where the step starts (the frames' chunks prove vla_node has read it), then turned
    assert rig.until(lambda: len(rig.point_chunks(chunks)) >= 3,
                     every=drive(rig, odom_pub, (0.0, 0.0, 0.0))), vla.output[-2000:]
    second = wait_status(rig, statuses, mark, lambda r: r['step'] == 2, vla,
                         every=drive(rig, odom_pub, (0.0, 0.0, math.radians(88))))
    assert (second['goal_id'], second['state'], second['step_text']) == (goal, 'active',
                                                                          'go forward 1 meter')
    # the step change preempted the executor: a second empty chunk after the goal's own preempt
    assert rig.until(lambda: sum(not msg.points for _, msg in rig.chunks[chunks:]) >= 2)
    step_chunks = len(rig.chunks)
    assert rig.until(lambda: len(rig.point_chunks(step_chunks)) >= 3,
                     every=drive(rig, odom_pub, (0.0, 0.0, math.radians(88)))), vla.output[-2000:]
    done = wait_status(rig, statuses, mark, lambda r: r['state'] == 'done', vla,
                       every=drive(rig, odom_pub, (1.0, 0.0, math.radians(88))))
    assert (done['goal_id'], done['step'], done['done_estimate']) == (goal, 2, 1.0)
    # the chunk as a Path in the base frame: 10 integrated steps from the origin
    assert paths, vla.output[-2000:]
    path = paths[-1][1]
    assert path.header.frame_id == 'base_link' and len(path.poses) == 11
    chunk = next(msg for _, msg in reversed(rig.chunks) if msg.points
                 and msg.header.stamp == path.header.stamp)      # the chunk this path shows
    _, actions, dt = msg_to_chunk(chunk)
    expected = integrate_chunk_poses(actions, dt)
    assert path.poses[0].pose.position.x == 0.0
    assert (path.poses[-1].pose.position.x, path.poses[-1].pose.position.y) == \
        pytest.approx(tuple(expected[-1, :2]), abs=1e-6)
    assert quaternion_to_yaw(path.poses[-1].pose.orientation) == pytest.approx(expected[-1, 2])
    # the annotated frame (on here; off by default): the camera frame scaled x2, the chunk drawn on it
    assert rig.images, vla.output[-2000:]
    image = rig.images[-1][1]
    assert (image.height, image.width, image.encoding) == (96, 128, 'rgb8')
    pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(96, 128, 3)
    assert (pixels != 255).any(axis=2).mean() > 0.01              # not the plain white frame
    # /diagnostics carries the same status
    report = rig.wait_report('vla_node', lambda r: r.values.get('goal_state') == 'done')
    assert report.values['goal_step'] == '2/2'


def test_new_goal_preempts_stop_stops_and_junk_is_refused(suite):
    rig, vla, statuses, paths, odom_pub = suite
    mark = len(statuses)
    rig.instruct('go to the red cone')
    old = wait_status(rig, statuses, mark, lambda r: r['state'] == 'active', vla)['goal_id']
    rig.instruct('go to the blue ball')
    preempted = wait_status(rig, statuses, mark, lambda r: r['state'] == 'preempted', vla)
    assert preempted['goal_id'] == old and preempted['text'] == 'go to the red cone'
    new = wait_status(rig, statuses, mark, lambda r: r['goal_id'] == old + 1, vla)
    assert new['state'] == 'active' and new['text'] == 'go to the blue ball'
    rig.instruct('stop')
    stopped = wait_status(rig, statuses, mark,
                          lambda r: r['goal_id'] == old + 1 and r['state'] == 'stopped', vla)
    assert "'stop'" in stopped['reason']
    rig.instruct('fly to the moon')
    refused = wait_status(rig, statuses, mark, lambda r: r['state'] == 'refused', vla)
    assert refused['text'] == 'fly to the moon' and 'nothing to act on' in refused['reason']
    assert rig.until(lambda: 'refused' in vla.output)          # a clear warning in the log
    mark_chunks = len(rig.chunks)
    rig.probe.spin_until(lambda: False, 0.5, every=rig.send_frame)
    assert not rig.point_chunks(mark_chunks)                     # refused: the robot stays stopped


def test_a_late_subscriber_reads_the_last_state(suite):
    from std_msgs.msg import String
    rig, vla, statuses, paths, odom_pub = suite
    rig.instruct('turn right')
    wait_status(rig, statuses, 0, lambda r: r['text'] == 'turn right', vla)
    late = rig.probe.record(String, STATUS_TOPIC, qos.latched_qos())
    assert rig.until(lambda: bool(late)), vla.output[-2000:]
    rig.probe.spin_for(0.3)   # the recent history may follow; the last record is the current state
    assert len(late) <= 10
    last = json.loads(late[-1][1].data)
    assert (last['text'], last['state']) == ('turn right', 'active')
