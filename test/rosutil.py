"""Shared helpers for end-to-end ROS tests: node subprocesses on loopback, and a probe node.

Every process gets `vla_nav.config.loopback_ros_env(domain_id)` (DDS on loopback only, a private
domain), its own ROS_LOG_DIR, and test/ on PYTHONPATH so `backend:=policies:make_engine` works.
Waiting is always bounded polling with spin_once, never a bare sleep.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from vla_nav.config import loopback_ros_env

TEST_DIR = Path(__file__).resolve().parent
REPO_ROOT = TEST_DIR.parent


def domain_id_for(name: str) -> int:
    """A ROS_DOMAIN_ID derived from a test file name: distinct files rarely collide (130..229)."""
    return 130 + zlib.crc32(Path(name).stem.encode()) % 100


def node_env(domain_id: int, log_dir: str | None = None, extra: dict | None = None) -> dict:
    env = loopback_ros_env(domain_id)
    env['ROS_LOG_DIR'] = log_dir or tempfile.mkdtemp(prefix='vla_nav_node_log_')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(TEST_DIR), str(REPO_ROOT),
                                                      env.get('PYTHONPATH', '')]))
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    env.update(extra or {})
    return env


class NodeProcess:
    """`python -m vla_nav.nodes.<module> --ros-args -p name:=value ...` as a child process."""

    def __init__(self, module: str, domain_id: int, params: dict | None = None,
                 env: dict | None = None, log_dir: str | None = None) -> None:
        self.module = module
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f'vla_nav_{module}_'))
        arguments = []
        for name, value in (params or {}).items():
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            arguments += ['-p', f'{name}:={value}']
        command = [sys.executable, '-m', f'vla_nav.nodes.{module}', '--ros-args', *arguments]
        self.output_path = self.log_dir / 'output.txt'
        self._output = open(self.output_path, 'w')   # closed in wait() or stop()
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=self._output, stderr=subprocess.STDOUT,
            env=node_env(domain_id, str(self.log_dir / 'ros'), env))

    @property
    def output(self) -> str:
        if not self._output.closed:
            self._output.flush()
        return self.output_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.process.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._output.close()

    def stop(self) -> None:
        """Make sure the child is gone (fixture teardown)."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._output.close()


class Probe:
    """The test's own rclpy node in a private context: publishers, recorded subscriptions, and
    bounded waiting."""

    def __init__(self, domain_id: int, name: str = 'probe') -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}

    def record(self, msg_type, topic: str, qos=10) -> list:
        """Subscribe and append (monotonic receipt time, msg) to the returned list."""
        messages = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic,
                                      lambda msg: messages.append((time.monotonic(), msg)), qos)
        return messages

    def publisher(self, msg_type, topic: str, qos=10):
        return self.node.create_publisher(msg_type, topic, qos)

    def spin_for(self, seconds: float) -> None:
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
        return lambda array: array.status[0].name == node_name

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
