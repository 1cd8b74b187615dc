"""Faults, proven with real ROS 2: nodes in separate processes (rclpy + Fast DDS on loopback, a
private domain), a probe node that plays camera, operator and e-stop button.

- SIGKILL of vla_node mid-motion: the watchdog starts braking within watchdog_timeout + one control
  period of the last chunk and /cmd_vel reaches exactly zero within that + |v| / deceleration; it
  stays zero.
- Camera stall (silent, then frozen on one stamp): no chunk from a stale frame; the base brakes.
- Camera at 60 Hz against a 4 Hz policy: only the newest frame is used, no queue, no memory growth,
  strictly increasing chunk stamps.
- chunk_executor restarts under a running vla_node: it never replays old chunks.
- /estop: zero on the next tick, latched until released, a new instruction does not release it.
- SIGTERM of vla_node: its preempt stops the base before the watchdog would; SIGINT/SIGTERM of
  sim_node: the simulated base stops before exit. (SIGINT/SIGTERM of chunk_executor and the
  preempt of vla_node themselves are covered in test_nodes_e2e.py.)

Every test waits for the events it needs (bounded). The wall-clock and memory bounds (watchdog
latency after SIGKILL, acceleration from rest after a restart, lag and RSS with a fast camera) are
separate tests marked `timing`: excluded from `make test` (a loaded 2-core CI machine can stretch
any wall-clock bound), run by `make test-timing` on a quiet machine. They use receipt times at the
probe; SCHEDULING_MARGIN_S covers DDS delivery, a late timer tick and the probe's own scheduling,
small against the bounds themselves, so a missing watchdog or a slow brake still fails.
"""
from __future__ import annotations

import signal
import time

import numpy as np
import policies
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rosutil import TEST_POLICY, WHITE, NodeProcess, Probe, Rig, domain_id_for, start_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory  # noqa: E402

from vla_nav.config import node_defaults  # noqa: E402
from vla_nav.core import health  # noqa: E402
from vla_nav.ros import convert, msgs, qos  # noqa: E402
from vla_nav.tools.procs import rss_mb  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)
VLA = node_defaults('vla_node')
EXECUTOR = node_defaults('chunk_executor')
PERIOD = 1.0 / EXECUTOR['control_rate']
SCHEDULING_MARGIN_S = 0.25
DELIVERY_S = 0.15       # a frame sent this long ago has reached vla_node's mailbox
CRUISE = (policies.LINEAR_GAIN, policies.TURN_BIAS)        # white frames + "go left"


def is_zero(msg) -> bool:
    return msg.linear.x == 0.0 and msg.angular.z == 0.0


class Stack(Rig):
    """The common rig plus vla_node and chunk_executor processes, restarted on demand."""

    def __init__(self) -> None:
        super().__init__(Probe(DOMAIN, 'faults_probe'))
        self.vla: NodeProcess | None = None
        self.executor: NodeProcess | None = None
        self.others: list[NodeProcess] = []

    # --- processes ---------------------------------------------------------------------------
    def ensure_vla(self) -> NodeProcess:
        if self.vla is None or not self.vla.alive():
            started = time.monotonic()
            self.vla = start_node('vla_node', DOMAIN, TEST_POLICY)
            assert self.probe.wait_for_subscribers(self.image_pub), self.vla.output
            assert self.probe.wait_for_subscribers(self.instruction_pub), self.vla.output
            # its report proves it sees the probe's chunk reader: no preempt can be lost
            assert self.until(lambda: self.reports('vla_node', since=started), 15.0), self.vla.output
        return self.vla

    def ensure_executor(self, **params) -> NodeProcess:
        if self.executor is None or not self.executor.alive() or params:
            if self.executor is not None:
                self.executor.stop()
            self.executor = start_node('chunk_executor', DOMAIN, {'diagnostics_period': 0.2, **params})
            mark = len(self.cmds)
            assert self.until(lambda: len(self.cmds) > mark, 15.0), self.executor.output
        return self.executor

    def start(self, module: str, params: dict, env: dict | None = None) -> NodeProcess:
        process = start_node(module, DOMAIN, params, env=env)
        self.others.append(process)
        return process

    def close(self) -> None:
        for process in [self.vla, self.executor, *self.others]:
            if process is not None:
                process.stop()
        self.probe.close()

    # --- driving -----------------------------------------------------------------------------
    def cruising(self) -> bool:
        """Steady on the brightness policy's "go left" command (not still accelerating)."""
        return bool(self.cmds) and self.cmds[-1][1].linear.x == pytest.approx(CRUISE[0]) \
            and self.cmds[-1][1].angular.z == pytest.approx(CRUISE[1])

    def drive_left(self) -> None:
        self.ensure_vla()
        self.ensure_executor()
        self.instruct('go left')
        assert self.until(self.cruising, 15.0, every=self.send_frame), \
            self.vla.output[-2000:] + self.executor.output[-2000:]

    def timed_point_chunks(self, since: int = 0) -> list[tuple[float, MultiDOFJointTrajectory]]:
        return [(receipt, msg) for receipt, msg in self.chunks[since:] if msg.points]

    def executor_values(self) -> dict[str, str]:
        return self.values('chunk_executor')


@pytest.fixture(scope='module')
def stack():
    rig = Stack()
    yield rig
    rig.close()


def test_estop_zero_on_next_tick_latched_and_not_released_by_a_new_goal(stack):
    stack.drive_left()
    pressed = time.monotonic()
    stack.estop(True)
    assert stack.until(lambda: any(r > pressed and is_zero(m) for r, m in stack.cmds), 2.0)
    # a new goal while latched: vla_node preempts and sends right-turn chunks, the base stays put
    chunk_mark = len(stack.chunks)
    stack.instruct('now go right')
    assert stack.until(lambda: len(stack.timed_point_chunks(chunk_mark)) >= 5, 10.0, every=stack.send_frame)
    right = convert.msg_to_chunk(stack.timed_point_chunks(chunk_mark)[-1][1])[1]
    assert right[0, 1] < 0.0                                  # the new goal's chunks do flow...
    latched_mark = len(stack.cmds)
    assert stack.until(lambda: len(stack.cmds) - latched_mark >= 8, every=stack.send_frame)
    after = [msg for receipt, msg in stack.cmds if receipt > pressed]
    first_zero = next(index for index, msg in enumerate(after) if is_zero(msg))
    assert all(is_zero(msg) for msg in after[first_zero:])  # once zero, zero while latched
    assert stack.until(lambda: stack.executor_values().get('state') == 'estop', 3.0)
    # released: the base follows the new goal
    stack.estop(False)
    assert stack.until(lambda: stack.cmds[-1][1].angular.z < -0.3, 10.0, every=stack.send_frame)


def test_camera_stall_brakes_and_no_chunk_comes_from_a_stale_frame(stack):
    stack.drive_left()
    stalled, last_frame = time.monotonic(), stack.sent[-1]
    last_stamp = convert.stamp_to_sec(last_frame.header.stamp)
    # silent camera: the watchdog brakes the base to exactly zero
    assert stack.until(lambda: is_zero(stack.cmds[-1][1]) and stack.cmds[-1][0] > stalled, 5.0)
    chunk_mark = len(stack.chunks)
    # a frozen driver repeats its last frame (same stamp), another sends an old one: still nothing
    old = msgs.rgb_to_image_msg(WHITE, time.time() - 2.0 * VLA['max_image_age'])

    def replay_stale() -> None:
        stack.image_pub.publish(last_frame)
        stack.image_pub.publish(old)

    def stale() -> int:
        return int(stack.values('vla_node').get('frames_stale', 0))

    zero_mark, stale_before = len(stack.cmds), stale()
    # vla_node has refused (and reported) the stale frames, and the executor ticked on meanwhile
    assert stack.until(lambda: stale() >= stale_before + 2 and len(stack.cmds) - zero_mark >= 10,
                       every=replay_stale), stack.values('vla_node')
    assert stack.timed_point_chunks(chunk_mark) == []
    assert all(is_zero(m) for _, m in stack.cmds[zero_mark:])
    stamps = [convert.stamp_to_sec(msg.header.stamp) for _, msg in stack.timed_point_chunks()]
    assert max(stamps) <= last_stamp + 1e-6
    assert len(stamps) == len(set(stamps))                  # no frame made two chunks


def restart_executor_and_resume(stack) -> tuple[float, float, Twist]:
    """Kill chunk_executor mid-motion, restart it (max_chunk_age 5 s: old chunks would pass the
    age check), check it stays at zero without fresh frames, then resume the camera.
    Returns (kill time, resume time, the first non-zero command of the new executor)."""
    stack.drive_left()
    old_count = len(stack.cmds)
    stack.executor.kill()                                      # a crash: no goodbye zero
    killed = time.monotonic()
    stack.ensure_executor(max_chunk_age=5.0)
    # the killed executor's last commands may still sit in the probe's queue (receipt after the
    # kill): it was cruising, so the new executor's first command is the first zero after them
    assert stack.until(lambda: any(is_zero(m) for _, m in stack.cmds[old_count:]), 15.0)
    first_new = next(i for i in range(old_count, len(stack.cmds)) if is_zero(stack.cmds[i][1]))
    leftovers = [m for _, m in stack.cmds[old_count:first_new]]
    assert all((m.linear.x, m.angular.z) == pytest.approx(CRUISE) for m in leftovers), leftovers
    mark = len(stack.cmds)
    assert stack.until(lambda: len(stack.cmds) > mark + 10)    # ticks go on, no frames: nothing fresh
    assert all(is_zero(msg) for _, msg in stack.cmds[first_new:])
    resumed = time.monotonic()
    chunk_mark = len(stack.chunks)
    assert stack.until(lambda: stack.cmds[-1][1].linear.x > 0.0, 10.0, every=stack.send_frame)
    first_move_at, first = next((r, m) for r, m in stack.cmds[first_new:] if not is_zero(m))
    fresh = stack.timed_point_chunks(chunk_mark)
    assert fresh and fresh[0][0] <= first_move_at and fresh[0][0] > resumed
    return killed, resumed, first


def test_executor_restart_resumes_only_with_fresh_chunks(stack):
    """A restarted chunk_executor must not act on chunks from before it started, even ones young
    enough to pass its age check (max_chunk_age raised to 5 s here): the first command is zero and
    the base moves again only after a chunk from a frame sent after the restart."""
    restart_executor_and_resume(stack)
    stack.executor.stop()                                      # later tests get default parameters


@pytest.mark.timing
def test_executor_restart_accelerates_from_rest_within_the_limit(stack):
    _, _, first = restart_executor_and_resume(stack)
    assert first.linear.x <= EXECUTOR['max_linear_accel'] * (PERIOD + SCHEDULING_MARGIN_S)  # from rest
    stack.executor.stop()


FAST_DELAY_S, FAST_RATE_HZ, FAST_SECONDS = 0.25, 60.0, 4.0


def run_fast_camera(stack) -> dict:
    """60 Hz camera (320x240) against a policy that needs 0.25 s, for FAST_SECONDS after the
    first two chunks. Returns what the probe saw (chunk stamps and receipts, frame stamps sent,
    vla_node's RSS before and after, its reports)."""
    topics = {'image_topic': '/fast_camera/image', 'chunk_topic': '/fast_camera/chunks',
              'diagnostics_topic': '/fast_camera/diagnostics', 'diagnostics_period': 0.5}
    vla = stack.start('vla_node', {**TEST_POLICY, **topics},
                      env={'VLA_NAV_TEST_POLICY': 'slow', 'VLA_NAV_TEST_POLICY_DELAY': str(FAST_DELAY_S)})
    probe = stack.probe
    camera = probe.publisher(Image, topics['image_topic'], qos.sensor_qos())
    chunks: list[tuple[float, MultiDOFJointTrajectory]] = []
    probe.node.create_subscription(   # chunks with actions only (a goal change adds a preempt)
        MultiDOFJointTrajectory, topics['chunk_topic'],
        lambda msg: msg.points and chunks.append((time.time(), msg)), qos.reliable_qos())
    diagnostics = probe.record(DiagnosticArray, topics['diagnostics_topic'])
    assert probe.wait_for_subscribers(camera), vla.output
    assert probe.wait_for_message(diagnostics), vla.output   # it sees the chunk reader too
    stack.instruct('go to the red cone')
    frame = msgs.rgb_to_image_msg(np.full((240, 320, 3), 180, np.uint8), time.time())
    sent: list[float] = []

    def publish() -> None:
        now = time.time()
        frame.header.stamp = msgs.sec_to_stamp(now)
        sent.append(round(now, 6))
        camera.publish(frame)

    period = 1.0 / FAST_RATE_HZ
    assert probe.spin_until(lambda: len(chunks) >= 2, 15.0, every=publish, period=period), vla.output
    rss_warm, first = rss_mb(vla.pid), len(chunks)
    # the camera outran inference for FAST_SECONDS and at least 5 chunks (under load: longer)
    deadline = time.monotonic() + FAST_SECONDS
    probe.spin_until(lambda: time.monotonic() > deadline and len(chunks) - first >= 5,
                     4 * FAST_SECONDS, every=publish, period=period)
    rss_end = rss_mb(vla.pid)
    # the report after the run (frames_overwritten, inference p99)
    mark = len(diagnostics)
    assert probe.spin_until(lambda: len(diagnostics) > mark + 1, 10.0), vla.output
    vla.signal(signal.SIGINT)
    assert vla.wait(10) == 0
    return {'run': chunks[first:], 'stamps': [convert.stamp_to_sec(m.header.stamp) for _, m in chunks],
            'sent': sent, 'rss': (rss_warm, rss_end),
            'reports': [(msgs.level_of(st), st.message, msgs.status_values(st))
                        for _, array in diagnostics for st in array.status]}


def test_camera_faster_than_inference_uses_only_the_newest_frame(stack):
    """The one-slot mailbox keeps the newest frame: chunk stamps strictly increase, each names a
    frame that was sent, one chunk per inference while many more frames arrived, the mailbox
    reports overwritten frames, and vla_node's documented WARN (inference p99 above 2 x the chunk
    dt: 0.25 s > 0.2 s) appears."""
    seen = run_fast_camera(stack)
    run, stamps, sent = seen['run'], seen['stamps'], seen['sent']
    assert len(run) >= 5
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))        # strictly increasing
    assert all(round(stamp, 6) in sent for stamp in stamps)
    assert any(values.get('frames_overwritten', '0') != '0' for _, _, values in seen['reports'])
    assert any(level == health.WARN and 'inference p99' in message
               for level, message, _ in seen['reports']), seen['reports']


@pytest.mark.timing
def test_camera_faster_than_inference_keeps_no_backlog_in_time_or_memory(stack):
    """Wall-clock and memory bounds of the same run (`make test-timing`): no backlog builds up
    (lag < 2 x delay + margin), at most one chunk per inference, no FIFO (each inference takes
    the newest frame sent DELIVERY_S before it started), RSS grows < 20 MB (a queue of 240 frames
    would be 55 MB)."""
    seen = run_fast_camera(stack)
    run, stamps, sent = seen['run'], seen['stamps'], seen['sent']
    elapsed = run[-1][0] - run[0][0]
    assert len(run) <= elapsed / FAST_DELAY_S + 2                          # one per inference
    frames_in_run = sum(1 for stamp in sent if stamp >= convert.stamp_to_sec(run[0][1].header.stamp))
    assert frames_in_run >= 4 * len(run)                                   # the camera outran it
    for before, after in zip(stamps, stamps[1:], strict=False):
        newest = max(stamp for stamp in sent if stamp <= before + FAST_DELAY_S - DELIVERY_S)
        assert after >= newest - 1e-6, (before, after, newest)
    lags = [receipt - convert.stamp_to_sec(msg.header.stamp) for receipt, msg in run]
    rss_warm, rss_end = seen['rss']
    print(f'fast camera: {len(sent)} frames, {len(run)} chunks, lag max {max(lags) * 1000:.0f} ms, '
          f'RSS {rss_warm:.1f} -> {rss_end:.1f} MB')
    assert max(lags) < 2 * FAST_DELAY_S + SCHEDULING_MARGIN_S
    assert rss_end - rss_warm < 20.0, (rss_warm, rss_end)


def test_sigterm_of_vla_node_stops_the_base_before_the_watchdog(stack):
    """vla_node's last word (an empty preempt) brakes the base at once: the executor's watchdog
    never trips."""
    stack.drive_left()
    assert stack.until(lambda: stack.executor_values().get('state') == 'tracking', 3.0,
                       every=stack.send_frame)
    trips = stack.executor_values()['watchdog_trips']
    last_point = stack.timed_point_chunks()[-1][1]
    stack.vla.signal(signal.SIGTERM)
    assert stack.vla.wait(10) == 0, stack.vla.output
    assert stack.until(lambda: not stack.chunks[-1][1].points, 3.0)
    preempt = stack.chunks[-1][1]
    assert convert.stamp_to_sec(preempt.header.stamp) >= convert.stamp_to_sec(last_point.header.stamp)
    assert stack.until(lambda: is_zero(stack.cmds[-1][1]), 3.0)
    # the probe may still hold reports sent while braking (it drains topics at its own pace)
    assert stack.until(lambda: stack.executor_values().get('state') == 'stopped', 3.0), \
        stack.executor_values()
    assert stack.executor_values()['watchdog_trips'] == trips, stack.executor_values()


def kill_vla_node_mid_motion(stack) -> tuple[float, list, int, int]:
    """SIGKILL vla_node while cruising; returns (receipt of the last chunk, the commands after
    it, index of the first braking command, index of the first zero)."""
    stack.drive_left()
    mark = len(stack.chunks)
    assert stack.until(lambda: len(stack.timed_point_chunks(mark)) >= 3, every=stack.send_frame)
    stack.vla.kill()                                                  # SIGKILL: no goodbye preempt
    killed = time.monotonic()
    assert stack.until(lambda: is_zero(stack.cmds[-1][1]) and stack.cmds[-1][0] > killed, 5.0)
    mark = len(stack.cmds)
    assert stack.until(lambda: len(stack.cmds) - mark >= 20)          # and it stays zero
    last_chunk = stack.timed_point_chunks()[-1][0]
    after = [(receipt, msg) for receipt, msg in stack.cmds if receipt > last_chunk]
    braking = next(index for index, (_, msg) in enumerate(after) if msg.linear.x < CRUISE[0] - 1e-6)
    stopped = next(index for index, (_, msg) in enumerate(after) if is_zero(msg))
    return last_chunk, after, braking, stopped


def test_sigkill_of_vla_node_mid_motion_brakes_monotonically_to_zero(stack):
    _, after, braking, stopped = kill_vla_node_mid_motion(stack)
    assert all(not is_zero(msg) for _, msg in after[:stopped])
    speeds = [msg.linear.x for _, msg in after[braking:stopped + 1]]
    assert all(b <= a for a, b in zip(speeds, speeds[1:], strict=False))            # monotonic braking
    assert all(is_zero(msg) for _, msg in after[stopped:])                          # stays zero
    assert stack.executor.alive()


@pytest.mark.timing
def test_sigkill_of_vla_node_mid_motion_brakes_within_the_watchdog_bound(stack):
    """The watchdog starts braking within watchdog_timeout + one control period of the last
    chunk, and /cmd_vel reaches exactly zero within that + |v| / deceleration (`make test-timing`)."""
    last_chunk, after, braking, stopped = kill_vla_node_mid_motion(stack)
    brake_start = after[braking][0] - last_chunk
    stop_time = after[stopped][0] - last_chunk
    brake_bound = EXECUTOR['watchdog_timeout'] + PERIOD
    stop_bound = brake_bound + max(CRUISE[0] / EXECUTOR['max_linear_decel'],
                                   CRUISE[1] / EXECUTOR['max_angular_decel']) + PERIOD
    print(f'SIGKILL: braking {brake_start:.3f} s (bound {brake_bound:.3f}), zero {stop_time:.3f} s '
          f'(bound {stop_bound:.3f}) after the last chunk')
    assert brake_start <= brake_bound + SCHEDULING_MARGIN_S
    assert stop_time <= stop_bound + SCHEDULING_MARGIN_S


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_sim_node_stops_its_base_before_exit(stack, signum):
    topics = {'image_topic': '/sim_faults/image', 'cmd_vel_topic': '/sim_faults/cmd_vel',
              'odom_topic': '/sim_faults/odom', 'status_topic': '/sim_faults/status',
              'scene_topic': '/sim_faults/scene', 'instruction_topic': '/sim_faults/instruction',
              'camera_rate': 2.0}
    sim = stack.start('sim_node', topics)
    probe = stack.probe
    odometry = probe.record(Odometry, topics['odom_topic'], qos.reliable_qos())
    cmd_vel = probe.publisher(Twist, topics['cmd_vel_topic'], qos.reliable_qos())
    assert probe.wait_for_subscribers(cmd_vel, timeout=60.0), sim.output
    drive = Twist()
    drive.angular.z = 1.0                                             # turn on the spot: no walls
    assert probe.spin_until(lambda: odometry and odometry[-1][1].twist.twist.angular.z > 0.9, 20.0,
                            every=lambda: cmd_vel.publish(drive), period=0.05), sim.output
    for _ in range(3):
        cmd_vel.publish(drive)                                        # still commanded when signalled
    sim.signal(signum)
    assert sim.wait(15) == 0, sim.output
    # its last /odom (sent before exit, acknowledged) says the base stands still
    assert probe.spin_until(lambda: odometry[-1][1].twist.twist.angular.z == 0.0, 3.0), sim.output[-2000:]
    last = odometry[-1][1].twist.twist
    assert (last.linear.x, last.angular.z) == (0.0, 0.0), sim.output[-2000:]
