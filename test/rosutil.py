"""The one rig for end-to-end ROS tests: node processes on loopback, a probe node, and the probe's
side of a node suite (camera, operator, e-stop button, recorders) on the topics of
config/vla_nav.yaml.

Domain ids (non-overlapping): tools 30-89 (vla_nav.tools.procs), the pytest process itself
100-129 (conftest.py), test files 130-229 (`domain_id_for`).

Every node process gets `vla_nav.config.loopback_ros_env(domain_id)` (DDS on loopback only, a
private domain), its own ROS_LOG_DIR, and test/ on PYTHONPATH so `backend:=policies:make_engine`
works. Waiting is always bounded polling with spin_once for the event a test needs, never a bare
sleep.
"""
from __future__ import annotations

import os
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vla_nav.config import loopback_ros_env, node_defaults
from vla_nav.ros.convert import absolute_topic
from vla_nav.tools.procs import NodeProcess, node_command, write_parameter_overrides

TEST_DIR = Path(__file__).resolve().parent
REPO_ROOT = TEST_DIR.parent
FILE_DOMAINS = (130, 230)          # test files; conftest.py uses 100-129, tools 30-89
WHITE = np.full((48, 64, 3), 255, np.uint8)
TEST_POLICY = {'backend': 'policies:make_engine'}

__all__ = ['REPO_ROOT', 'TEST_DIR', 'TEST_POLICY', 'WHITE', 'NodeProcess', 'Probe', 'Report', 'Rig',
           'Topics',
           'domain_id_for', 'node_env', 'start_node']


def domain_id_for(name: str) -> int:
    """A ROS_DOMAIN_ID derived from a test file name: distinct files rarely collide (130..229)."""
    low, high = FILE_DOMAINS
    return low + zlib.crc32(Path(name).stem.encode()) % (high - low)


def node_env(domain_id: int, log_dir: str | None = None, extra: dict | None = None) -> dict:
    env = loopback_ros_env(domain_id)
    env['ROS_LOG_DIR'] = log_dir or tempfile.mkdtemp(prefix='vla_nav_node_log_')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(TEST_DIR), str(REPO_ROOT),
                                                      env.get('PYTHONPATH', '')]))
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    env.update(extra or {})
    return env


def start_node(module: str, domain_id: int, params: dict | None = None, env: dict | None = None,
               namespace: str | None = None) -> NodeProcess:
    """`python -m vla_nav.nodes.<module>` with `params` (a params file, so types survive) in
    `namespace`, as a child process (vla_nav.tools.procs.NodeProcess) logging to a temp dir."""
    log_dir = Path(tempfile.mkdtemp(prefix=f'vla_nav_{module}_'))
    overrides = write_parameter_overrides(log_dir / 'params.yaml', params or {})
    command = node_command(module, [overrides], namespace)
    return NodeProcess.start(module, command, node_env(domain_id, str(log_dir / 'ros'), env),
                             log_dir / 'output.txt', params)


class Topics:
    """Fully qualified topic names of one namespace, from config/vla_nav.yaml."""

    def __init__(self, namespace: str = '') -> None:
        vla, executor, sim = (node_defaults(name) for name in ('vla_node', 'chunk_executor', 'sim_node'))
        names = {'image': vla['image_topic'], 'compressed_image': vla['compressed_image_topic'],
                 'instruction': vla['instruction_topic'], 'chunk': vla['chunk_topic'],
                 'cmd_vel': executor['cmd_vel_topic'], 'estop': executor['estop_topic'],
                 'diagnostics': vla['diagnostics_topic'], 'odom': sim['odom_topic'],
                 'status': sim['status_topic'], 'scene': sim['scene_topic']}
        for key, name in names.items():
            setattr(self, key, absolute_topic(name, namespace or '/'))


class Probe:
    """The test's own rclpy node in a private context: publishers, recorded subscriptions, and
    bounded waiting."""

    def __init__(self, domain_id: int, name: str = 'probe') -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from vla_nav.ros.runner import init_ros
        self.rclpy = rclpy
        self.context = rclpy.context.Context()
        init_ros(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}

    def record(self, msg_type, topic: str, qos=10) -> list:
        """Subscribe and append (monotonic receipt time, msg) to the returned list (a new list per
        call: two recorders of one topic each see every message once)."""
        messages: list = []
        self.received.setdefault(topic, messages)
        self.node.create_subscription(msg_type, topic,
                                      lambda msg: messages.append((time.monotonic(), msg)), qos)
        return messages

    def publisher(self, msg_type, topic: str, qos=10):
        return self.node.create_publisher(msg_type, topic, qos)

    def spin_for(self, seconds: float) -> None:
        """Keep recording for `seconds` (only to let more of a steady stream arrive: a test
        never relies on an event happening within it)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def spin_until(self, predicate: Callable[[], bool], timeout: float,
                   every: Callable[[], None] | None = None, period: float = 0.1) -> bool:
        """Spin until predicate() is true (True) or timeout (False); call `every` each period."""
        deadline = time.monotonic() + timeout
        next_call = time.monotonic()
        while time.monotonic() < deadline:
            if every is not None and time.monotonic() >= next_call:
                every()
                next_call += period
            self.executor.spin_once(timeout_sec=0.02)
            if predicate():
                return True
        return False

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 15.0) -> bool:
        """Discovery: publish nothing important before the other side is listening."""
        return self.spin_until(lambda: publisher.get_subscription_count() >= count, timeout)

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 15.0) -> bool:
        return self.spin_until(lambda: self.node.count_publishers(topic) >= count, timeout)

    @staticmethod
    def report_of(node_name: str):
        """accept= for wait_for_message on a diagnostics topic: a report from `node_name`."""
        return lambda array: any(status.name == node_name for status in array.status)

    def wait_for_message(self, messages: list, accept=None, timeout: float = 15.0) -> bool:
        """Until `messages` (a record() list) holds one that `accept`s. Seeing a publisher
        (wait_for_publishers) does not mean it sees this probe yet: what it sends before then is
        lost. A received message proves it does, for this reader and every reader the probe
        created before it (a participant's readers are announced in order), so wait for one
        before triggering a message that must not be missed (a goal's single preempt)."""
        return self.spin_until(lambda: any(accept is None or accept(msg) for _, msg in messages),
                               timeout)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


class Report:
    """One DiagnosticStatus as the probe received it."""

    def __init__(self, receipt: float, status) -> None:
        from vla_nav.ros.msgs import level_of, status_values
        self.receipt = receipt
        self.name = status.name
        self.hardware_id = status.hardware_id       # the publishing node's full name
        self.level = level_of(status)
        self.message = status.message
        self.values = status_values(status)

    def __repr__(self) -> str:
        return f'Report({self.name}, {self.level}, {self.message!r}, {self.values})'


class Rig:
    """The probe's side of one node suite (vla_node + chunk_executor [+ sim_node]) in
    `namespace`: camera, instruction, chunk and e-stop publishers; chunk, cmd_vel and diagnostics
    recorders (diagnostics last: a report proves every earlier reader is seen, see
    Probe.wait_for_message)."""

    def __init__(self, probe: Probe, namespace: str = '') -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image
        from std_msgs.msg import Bool, String
        from trajectory_msgs.msg import MultiDOFJointTrajectory

        from vla_nav.ros import qos
        self.probe = probe
        self.topics = topics = Topics(namespace)
        reliable = qos.reliable_qos()
        self.chunks = probe.record(MultiDOFJointTrajectory, topics.chunk, reliable)
        self.cmds = probe.record(Twist, topics.cmd_vel, reliable)
        self.image_pub = probe.publisher(Image, topics.image, qos.sensor_qos())
        self.instruction_pub = probe.publisher(String, topics.instruction, qos.latched_qos())
        self.chunk_pub = probe.publisher(MultiDOFJointTrajectory, topics.chunk, reliable)
        self.estop_pub = probe.publisher(Bool, topics.estop, reliable)
        self.diagnostics = probe.record(DiagnosticArray, topics.diagnostics)
        self.sent: list = []                      # the Image messages send_frame published
        self.sent_stamps: list[float] = []        # their stamps, rounded to the microsecond

    # --- inputs --------------------------------------------------------------------------------
    def send_frame(self, rgb: np.ndarray = WHITE, stamp: float | None = None) -> None:
        from vla_nav.ros.msgs import rgb_to_image_msg
        stamp = time.time() if stamp is None else stamp
        msg = rgb_to_image_msg(rgb, stamp)
        self.sent.append(msg)
        self.sent_stamps.append(round(stamp, 6))
        self.image_pub.publish(msg)

    def instruct(self, text: str) -> None:
        from std_msgs.msg import String
        self.instruction_pub.publish(String(data=text))

    def send_chunk(self, linear: float, angular: float, stamp: float | None = None) -> None:
        from vla_nav.ros.msgs import chunk_to_msg
        actions = np.tile([linear, angular], (10, 1))
        self.chunk_pub.publish(chunk_to_msg(time.time() if stamp is None else stamp, actions, 0.1,
                                            'base_link'))

    def estop(self, pressed: bool) -> None:
        from std_msgs.msg import Bool
        self.estop_pub.publish(Bool(data=pressed))

    # --- reading -------------------------------------------------------------------------------
    def point_chunks(self, since: int = 0) -> list:
        """Chunk messages with actions (not preempts) recorded from index `since` on."""
        return [msg for _, msg in self.chunks[since:] if msg.points]

    def last_cmd(self) -> tuple[float, float] | None:
        return (self.cmds[-1][1].linear.x, self.cmds[-1][1].angular.z) if self.cmds else None

    def moving(self) -> bool:
        return bool(self.cmds) and self.cmds[-1][1].linear.x > 0.05

    def stopped(self) -> bool:
        return self.last_cmd() == (0.0, 0.0)

    def reports(self, node_name: str, diagnostics: list | None = None, since: float = 0.0
                ) -> list[Report]:
        """`node_name`'s reports received after `since` (on /diagnostics unless `diagnostics`
        names another record() list). Several nodes share /diagnostics: always pick by name."""
        return [Report(receipt, status)
                for receipt, array in (self.diagnostics if diagnostics is None else diagnostics)
                if receipt > since for status in array.status if status.name == node_name]

    def latest(self, node_name: str, diagnostics: list | None = None) -> Report | None:
        reports = self.reports(node_name, diagnostics)
        return reports[-1] if reports else None

    def values(self, node_name: str, diagnostics: list | None = None) -> dict[str, str]:
        """The values of `node_name`'s latest report ({} before the first)."""
        report = self.latest(node_name, diagnostics)
        return report.values if report else {}

    # --- waiting -------------------------------------------------------------------------------
    def until(self, predicate, timeout: float = 10.0, every=None, period: float = 0.1) -> bool:
        return self.probe.spin_until(predicate, timeout, every=every, period=period)

    def wait_report(self, node_name: str, predicate, timeout: float = 10.0, every=None,
                    diagnostics: list | None = None) -> Report:
        """The first report of `node_name` received from now on that satisfies predicate(report);
        fails the test after `timeout`."""
        since, found = time.monotonic(), []

        def check() -> bool:
            found[:] = [report for report in self.reports(node_name, diagnostics, since)
                        if predicate(report)]
            return bool(found)

        assert self.until(check, timeout, every=every), (
            node_name, self.reports(node_name, diagnostics, since)[-3:])
        return found[0]
