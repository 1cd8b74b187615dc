"""Live replay: the bag drives running vla_node + chunk_executor processes over DDS (loopback
only); chunks and /cmd_vel are recorded and mapped back onto the bag's clock."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vla_nav.config import load_config
from vla_nav.tools.replay.common import LOG, NS, ReplayError, ReplayOutput, frame_stamp_ns

LIVE_READY_TIMEOUT_S = 60.0   # model load (+ a first ONNX export) in a spawned vla_node
LIVE_LEAD_S = 0.2             # the first message is published this long after the start
STAMP_MATCH_NS = 1_000_000    # vla_node carries stamps as float seconds: match within 1 ms


def _spawn_nodes(args, topics, transport: str, domain_id: int, log_dir: Path):
    """vla_node + chunk_executor as processes (vla_nav.tools.procs), on our topics and model."""
    from vla_nav.tools.procs import NodeSuite
    suite = NodeSuite(log_dir, domain_id=domain_id)
    suite.start('vla_node', {
        'model': str(args.model or ''), 'backend': args.backend, 'device': args.device,
        'image_topic': topics.image, 'compressed_image_topic': topics.compressed_image,
        'image_transport': transport, 'instruction_topic': topics.instruction,
        'state_topic': topics.odom, 'chunk_topic': topics.chunk})
    suite.start('chunk_executor', {'chunk_topic': topics.chunk, 'cmd_vel_topic': topics.cmd_vel})
    return suite


def _to_rclpy(msg, msgtype: str, rclpy_type):
    """A rosbags message -> the rclpy message, through CDR (fields, not bytes, are what match)."""
    from rclpy.serialization import deserialize_message

    from vla_nav.data.bags import humble_typestore
    return deserialize_message(bytes(humble_typestore().serialize_cdr(msg, msgtype)), rclpy_type)


def replay_live(bag: Path, topics, args) -> ReplayOutput:
    """Publish the bag's camera + instruction to vla_node and record chunks + cmd_vel."""
    import os
    import tempfile

    from vla_nav.config import use_loopback_ros
    from vla_nav.data.bags import bag_topics

    if args.fast:
        LOG.warning('--live plays in recorded timing: vla_node keeps only the newest frame, so '
                    'a flood of frames would only be dropped')
    domain_id = args.domain_id if args.domain_id is not None else int(
        os.environ.get('ROS_DOMAIN_ID', '0'))
    use_loopback_ros()   # DDS discovery on loopback; the domain goes to our own context only
    compressed = topics.image not in bag_topics(bag) and topics.compressed_image in bag_topics(bag)
    suite = None
    if args.spawn_nodes:   # node logs go to a temp folder, named in any start-up error
        suite = _spawn_nodes(args, topics, 'compressed' if compressed else 'raw', domain_id,
                             Path(tempfile.mkdtemp(prefix='vla_nav_replay_')))
    probe = _LiveProbe(topics, compressed, domain_id)
    try:
        probe.wait_ready(suite)
        played = _play(bag, topics, probe, compressed)
    finally:
        probe.close()
        if suite is not None:
            suite.stop()
    return played.map_back(probe) if played.offset_ns is not None else played.output


class _LiveProbe:
    """A private rclpy context + node: publishes camera and instruction, records chunks and cmd_vel
    (callbacks on a spinner thread; the caller's thread paces and publishes)."""

    def __init__(self, topics, compressed: bool, domain_id: int) -> None:
        import threading

        import rclpy
        from geometry_msgs.msg import Twist, TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String
        from trajectory_msgs.msg import MultiDOFJointTrajectory

        from vla_nav.ros import qos
        from vla_nav.ros.runner import init_ros

        self.topics, self.domain_id = topics, domain_id
        self.stamped = load_config().chunk_executor.stamped
        self.received_chunks: list = []
        self.received_commands: list = []
        self.malformed_chunks = 0
        self.lock = threading.Lock()
        self.context = rclpy.Context()
        init_ros(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('vla_nav_replay', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.camera_type = CompressedImage if compressed else Image
        self.string_type = String
        self.camera_pub = self.node.create_publisher(
            self.camera_type, topics.compressed_image if compressed else topics.image,
            qos.sensor_qos())
        self.instruction_pub = self.node.create_publisher(String, topics.instruction, qos.latched_qos())
        reliable = qos.reliable_qos(depth=100)
        self.node.create_subscription(MultiDOFJointTrajectory, topics.chunk, self._on_chunk, reliable)
        self.node.create_subscription(TwistStamped if self.stamped else Twist, topics.cmd_vel,
                                      self._on_cmd_vel, reliable)
        self.spinning = threading.Event()
        self.spinning.set()
        self.spinner = threading.Thread(target=self._spin, daemon=True)
        self.spinner.start()

    def _spin(self) -> None:
        while self.spinning.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_chunk(self, msg) -> None:
        from vla_nav.ros.convert import MalformedChunkError, msg_to_chunk, stamp_to_ns
        try:   # a malformed chunk is rejected whole, as chunk_executor rejects it
            _, actions, dt = msg_to_chunk(msg)
        except MalformedChunkError as error:
            self.malformed_chunks += 1
            if self.malformed_chunks == 1:
                LOG.warning('malformed chunk skipped (as chunk_executor does): %s', error)
            return
        with self.lock:
            self.received_chunks.append((stamp_to_ns(msg.header.stamp), time.time_ns(),
                                         actions.astype(np.float32), dt))

    def _on_cmd_vel(self, msg) -> None:
        from vla_nav.ros.convert import twist_to_pair
        with self.lock:
            self.received_commands.append((time.time_ns(), *twist_to_pair(msg)))

    def wait_ready(self, suite) -> None:
        """Until vla_node listens and chunk_executor publishes (bounded; a dead node fails now)."""
        deadline = time.monotonic() + LIVE_READY_TIMEOUT_S
        while not (self.camera_pub.get_subscription_count()
                   and self.instruction_pub.get_subscription_count() and self.received_commands):
            for name, code in (suite.dead() if suite else {}).items():
                raise ReplayError(f'{name} exited with {code}:\n'
                                  f'{suite.processes[name].log_tail()}')
            if time.monotonic() > deadline:
                raise ReplayError(f'no vla_node/chunk_executor answered on {self.topics.image} / '
                                  f'{self.topics.cmd_vel} within {LIVE_READY_TIMEOUT_S:.0f} s '
                                  f'(ROS_DOMAIN_ID={self.domain_id}, loopback only); start them or '
                                  'pass --spawn-nodes')
            time.sleep(0.05)

    def close(self) -> None:
        import rclpy

        self.spinning.clear()
        if self.spinner.is_alive():
            self.spinner.join(timeout=2)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class _Played:
    """What was published, to map what came back onto the bag's clock."""

    def __init__(self) -> None:
        self.output = ReplayOutput()
        self.published: dict[int, int] = {}     # published frame stamp ns -> bag stamp ns
        self.offset_ns: int | None = None       # wall ns - bag ns
        self.first_ns = self.last_ns = 0

    def to_bag_stamp(self, stamp: int, wire: np.ndarray) -> int:
        """A stamp vla_node sent back -> the bag stamp of the frame it names (0 stays 0)."""
        if stamp <= 0:
            return 0
        index = int(np.searchsorted(wire, stamp))
        candidates = wire[max(index - 1, 0):index + 1]
        if len(candidates):
            nearest = int(candidates[np.argmin(np.abs(candidates - stamp))])
            if abs(nearest - stamp) <= STAMP_MATCH_NS:
                return self.published[nearest]
        return stamp - self.offset_ns

    def map_back(self, probe: _LiveProbe) -> ReplayOutput:
        wire = np.array(sorted(self.published), np.int64)
        output, offset = self.output, self.offset_ns
        for stamp, receive, actions, dt in probe.received_chunks:
            if receive - offset >= self.first_ns:
                output.chunks.append((self.to_bag_stamp(stamp, wire), receive - offset, actions, dt))
        output.commands = [(receive - offset, linear, angular)
                           for receive, linear, angular in probe.received_commands
                           if self.first_ns <= receive - offset <= self.last_ns]
        return output


def _play(bag: Path, topics, probe: _LiveProbe, compressed: bool) -> _Played:
    """Publish the bag's camera + instruction in recorded timing, frames restamped to now."""
    from vla_nav.data.bags import COMPRESSED_IMAGE, in_stamp_order, iter_bag_messages

    played = _Played()
    for message in in_stamp_order(iter_bag_messages(bag, topics, kinds=('camera', 'instruction'))):
        if played.offset_ns is None:
            played.first_ns = message.receive_ns
            played.offset_ns = time.time_ns() + int(LIVE_LEAD_S * NS) - played.first_ns
        delay = (message.receive_ns + played.offset_ns - time.time_ns()) / NS
        if delay > 0:
            time.sleep(delay)
        played.last_ns = message.receive_ns
        if message.kind == 'instruction':
            played.output.instructions.append((message.receive_ns, str(message.msg.data)))
            probe.instruction_pub.publish(probe.string_type(data=str(message.msg.data)))
            continue
        msgtype = COMPRESSED_IMAGE if compressed else message.msgtype
        frame = _to_rclpy(message.msg, msgtype, probe.camera_type)
        bag_stamp = frame_stamp_ns(message.msg, message.receive_ns)
        wire_stamp = bag_stamp + played.offset_ns
        frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(wire_stamp, NS)
        played.published[wire_stamp] = bag_stamp
        probe.camera_pub.publish(frame)
        played.output.frames += 1
    if played.offset_ns is not None:   # let the last chunks and the executor's braking arrive
        time.sleep(load_config().executor.watchdog_timeout + 0.5)
    return played


# --------------------------------------------------------------------------------------------
# Output bag
