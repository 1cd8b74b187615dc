"""Start and stop the vla_nav node processes, each in its own process, with DDS on loopback.

`make demo`, `soak` (and any tool that needs the real node suite where `ros2 launch` is absent)
run exactly what launch/vla_nav.launch.py runs: `python -m vla_nav.nodes.<node> --ros-args
--params-file config/vla_nav.yaml --params-file <overrides>`. Overrides go through a generated
YAML file rather than `-p key:=value`, so strings with colons, empty strings and lists keep
their types.

Every process gets `vla_nav.config.loopback_ros_env(domain_id)` (DDS never leaves the machine),
a private ROS_DOMAIN_ID, ROS_LOG_DIR under the output directory and its own log file.

Stopping: SIGINT in STOP_ORDER. vla_node goes first (no new chunks; it sends a preempt), then
chunk_executor (its last word is a zero /cmd_vel), then sim_node (the robot heard that zero).
A process that ignores SIGINT gets SIGTERM, then SIGKILL, each after a bounded wait.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vla_nav.config import SOURCE_ROOT, config_path, loopback_ros_env

NODE_NAMES = ('sim_node', 'vla_node', 'chunk_executor')
STOP_ORDER = ('vla_node', 'chunk_executor', 'sim_node')
DOMAIN_ID_RANGE = (30, 90)          # private ids for tools; tests use conftest's 100+ range
SIGNAL_WAIT_S = 8.0                 # per signal, per process
KB_PER_MB = 1024.0


def private_domain_id(salt: int = 0) -> int:
    """A ROS_DOMAIN_ID unlikely to be shared with anything else running here.

    VLA_NAV_DOMAIN_ID wins when set; otherwise derived from the pid, so two demos started at
    once do not hear each other.
    """
    explicit = os.environ.get('VLA_NAV_DOMAIN_ID')
    if explicit:
        return int(explicit)
    low, high = DOMAIN_ID_RANGE
    return low + (os.getpid() + salt) % (high - low)


def rss_mb(pid: int) -> float | None:
    """Resident set size of a live process from /proc (None when gone or not Linux)."""
    try:
        with open(f'/proc/{pid}/status', encoding='ascii') as stream:
            for line in stream:
                if line.startswith('VmRSS:'):
                    return float(line.split()[1]) / KB_PER_MB
    except OSError:
        return None
    return None


def write_parameter_overrides(path: Path, parameters: dict[str, Any]) -> Path:
    """A params file that applies `parameters` to whichever node reads it (`/**`: any name and
    namespace), so strings with colons, empty strings and lists keep their types."""
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': dict(parameters)}}), encoding='utf-8')
    return path


def node_command(name: str, params_files: list[Path], namespace: str | None = None) -> list[str]:
    """`python -m vla_nav.nodes.<name> --ros-args --params-file ... [-r __ns:=/namespace]`."""
    command = [sys.executable, '-m', f'vla_nav.nodes.{name}', '--ros-args']
    for params_file in params_files:
        command += ['--params-file', str(params_file)]
    if namespace:
        command += ['-r', f'__ns:=/{namespace.strip("/")}']
    return command


@dataclass
class NodeProcess:
    """One running node: its process, the log it writes and the parameters it was given.
    The one process handle of the tools (demo, soak, replay) and of the ROS tests."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, name: str, command: list[str], env: dict[str, str], log_path: Path,
              parameters: dict[str, Any] | None = None) -> NodeProcess:
        """Run `command` with stdout+stderr into `log_path` (its first line is the command), in
        its own session: a Ctrl-C reaches only the caller, which stops its nodes in order."""
        with open(log_path, 'w', encoding='utf-8') as log:
            log.write('$ ' + ' '.join(command) + '\n')
            log.flush()
            popen = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(SOURCE_ROOT),
                                     start_new_session=True)
        return cls(name, popen, Path(log_path), dict(parameters or {}))

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def output(self) -> str:
        """Everything the node wrote so far."""
        try:
            return self.log_path.read_text(encoding='utf-8', errors='replace')
        except OSError:
            return ''

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid) if self.alive() else None

    def log_tail(self, lines: int = 15) -> str:
        return '\n'.join(self.output.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        if self.alive():
            try:
                self.popen.send_signal(signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye message."""
        self.signal(signal.SIGKILL)
        self.popen.wait()

    def wait(self, timeout: float = SIGNAL_WAIT_S) -> int:
        """The exit code; subprocess.TimeoutExpired after `timeout` seconds."""
        return self.popen.wait(timeout)

    def stop(self, wait_s: float = SIGNAL_WAIT_S) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL, each after a bounded wait; the exit code."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            self.signal(signum)
            try:
                self.popen.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        return self.returncode


class NodeSuite:
    """The node processes of one run; use as a context manager so they always stop."""

    def __init__(self, out_dir: str | os.PathLike, domain_id: int | None = None,
                 params_file: str | os.PathLike | None = None,
                 extra_pythonpath: tuple[str, ...] = (),
                 extra_env: dict[str, str] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.log_dir = self.out_dir / 'logs'
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.domain_id = private_domain_id() if domain_id is None else int(domain_id)
        self.params_file = Path(params_file) if params_file else config_path()
        self.env = self._environment(extra_pythonpath, extra_env or {})
        self.processes: dict[str, NodeProcess] = {}

    def _environment(self, extra_pythonpath: tuple[str, ...], extra_env: dict[str, str]) -> dict:
        env = loopback_ros_env(self.domain_id)
        env['ROS_LOG_DIR'] = str(self.log_dir / 'ros')
        env['PYTHONUNBUFFERED'] = '1'
        env.setdefault('MUJOCO_GL', 'egl')
        env.setdefault('HF_HUB_OFFLINE', '1')
        env.setdefault('TRANSFORMERS_OFFLINE', '1')
        paths = [str(SOURCE_ROOT), *extra_pythonpath]
        if env.get('PYTHONPATH'):
            paths.append(env['PYTHONPATH'])
        env['PYTHONPATH'] = os.pathsep.join(paths)
        env.update(extra_env)
        return env

    def command(self, name: str, parameters: dict[str, Any]) -> list[str]:
        """The command line of one node (also written to its log for reproduction)."""
        overrides = write_parameter_overrides(self.log_dir / f'{name}.params.yaml', parameters)
        return node_command(name, [self.params_file, overrides])

    def start(self, name: str, parameters: dict[str, Any] | None = None) -> NodeProcess:
        if name not in NODE_NAMES:
            raise ValueError(f'unknown node {name!r}; expected one of {NODE_NAMES}')
        if name in self.processes and self.processes[name].alive():
            raise RuntimeError(f'{name} is already running (pid {self.processes[name].pid})')
        parameters = dict(parameters or {})
        process = NodeProcess.start(name, self.command(name, parameters), self.env,
                                    self.log_dir / f'{name}.log', parameters)
        self.processes[name] = process
        return process

    def dead(self) -> dict[str, int]:
        """Nodes that exited (name -> exit code): during a run, any entry is a failure."""
        return {name: process.returncode for name, process in self.processes.items()
                if not process.alive()}

    def rss(self) -> dict[str, float | None]:
        return {name: process.rss_mb() for name, process in self.processes.items()}

    def stop(self, wait_s: float = SIGNAL_WAIT_S) -> dict[str, int | None]:
        """SIGINT each node in STOP_ORDER (then SIGTERM, SIGKILL); returns the exit codes.

        A second Ctrl-C while stopping is ignored: the nodes run in their own sessions and would
        otherwise outlive us."""
        shield = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if shield else None
        try:
            self._stop_all(wait_s)
        finally:
            if shield:
                signal.signal(signal.SIGINT, previous)
        return {name: process.returncode for name, process in self.processes.items()}

    def _stop_all(self, wait_s: float) -> None:
        order = [name for name in STOP_ORDER if name in self.processes]
        order += [name for name in self.processes if name not in order]
        for name in order:
            self.processes[name].stop(wait_s)

    def __enter__(self) -> NodeSuite:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def wait_until(predicate, timeout_s: float, poll=None, interval_s: float = 0.05) -> bool:
    """Call `poll()` (e.g. one spin) until `predicate()` holds or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if poll is not None:
            poll()
        else:
            time.sleep(interval_s)
    return bool(predicate())
