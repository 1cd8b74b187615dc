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
    import threading

    from vla_nav.config import use_loopback_ros
    from vla_nav.data.bags import COMPRESSED_IMAGE, bag_topics, in_stamp_order, iter_bag_messages

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

    import rclpy
    from geometry_msgs.msg import Twist, TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from vla_nav.ros import qos
    from vla_nav.ros.convert import MalformedChunkError, msg_to_chunk, stamp_to_ns, twist_to_pair
    from vla_nav.ros.runner import init_ros

    stamped = load_config().chunk_executor.stamped
    output = ReplayOutput()
    published: dict[int, int] = {}            # published frame stamp ns -> bag stamp ns
    received_chunks: list = []
    received_commands: list = []
    lock = threading.Lock()
    context = rclpy.Context()
    init_ros(context=context, domain_id=domain_id)
    node = rclpy.create_node('vla_nav_replay', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:   # callbacks run here; the main thread paces and publishes
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)

    def on_chunk(msg) -> None:
        try:   # a malformed chunk is rejected whole, as chunk_executor rejects it
            _, actions, dt = msg_to_chunk(msg)
        except MalformedChunkError as error:
            with lock:
                output.errors += 1
                output.last_error = f'malformed chunk skipped: {error}'
            return
        with lock:
            received_chunks.append((stamp_to_ns(msg.header.stamp), time.time_ns(),
                                    actions.astype(np.float32), dt))

    def on_cmd_vel(msg) -> None:
        linear, angular = twist_to_pair(msg)
        with lock:
            received_commands.append((time.time_ns(), linear, angular))

    try:
        camera_type = CompressedImage if compressed else Image
        camera_pub = node.create_publisher(
            camera_type, topics.compressed_image if compressed else topics.image,
            qos.sensor_qos())
        instruction_pub = node.create_publisher(String, topics.instruction, qos.latched_qos())
        reliable = qos.reliable_qos(depth=100)
        node.create_subscription(MultiDOFJointTrajectory, topics.chunk, on_chunk, reliable)
        node.create_subscription(TwistStamped if stamped else Twist, topics.cmd_vel, on_cmd_vel,
                                 reliable)
        spinner.start()
        deadline = time.monotonic() + LIVE_READY_TIMEOUT_S
        while not (camera_pub.get_subscription_count() and instruction_pub.get_subscription_count()
                   and received_commands):
            for name, code in (suite.dead() if suite else {}).items():
                raise ReplayError(f'{name} exited with {code}:\n'
                                 f'{suite.processes[name].log_tail()}')
            if time.monotonic() > deadline:
                raise ReplayError(f'no vla_node/chunk_executor answered on '
                                 f'{topics.image} / {topics.cmd_vel} within {LIVE_READY_TIMEOUT_S:.0f}'
                                 f' s (ROS_DOMAIN_ID={domain_id}, loopback only); start them or '
                                 'pass --spawn-nodes')
            time.sleep(0.05)

        offset_ns = None
        first_ns = last_ns = None
        for message in in_stamp_order(iter_bag_messages(bag, topics,
                                                        kinds=('camera', 'instruction'))):
            if offset_ns is None:
                first_ns = message.receive_ns
                offset_ns = time.time_ns() + int(LIVE_LEAD_S * NS) - first_ns
            delay = (message.receive_ns + offset_ns - time.time_ns()) / NS
            if delay > 0:
                time.sleep(delay)
            last_ns = message.receive_ns
            if message.kind == 'instruction':
                output.instructions.append((message.receive_ns, str(message.msg.data)))
                instruction_pub.publish(String(data=str(message.msg.data)))
                continue
            msgtype = COMPRESSED_IMAGE if compressed else message.msgtype
            frame = _to_rclpy(message.msg, msgtype, camera_type)
            bag_stamp = frame_stamp_ns(message.msg, message.receive_ns)
            wire_stamp = bag_stamp + offset_ns
            frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(wire_stamp, NS)
            published[wire_stamp] = bag_stamp
            camera_pub.publish(frame)
            output.frames += 1
        if offset_ns is not None:   # let the last chunks and the executor's braking arrive
            tail = load_config().executor.watchdog_timeout + 0.5
            time.sleep(tail)
    finally:
        spinning.clear()
        if spinner.is_alive():
            spinner.join(timeout=2)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        if suite is not None:
            suite.stop()
    if offset_ns is None:
        return output

    wire = np.array(sorted(published), np.int64)

    def to_bag_stamp(stamp: int) -> int:
        """A stamp vla_node sent back -> the bag stamp of the frame it names (0 stays 0)."""
        if stamp <= 0:
            return 0
        index = int(np.searchsorted(wire, stamp))
        candidates = wire[max(index - 1, 0):index + 1]
        if len(candidates):
            nearest = int(candidates[np.argmin(np.abs(candidates - stamp))])
            if abs(nearest - stamp) <= STAMP_MATCH_NS:
                return published[nearest]
        return stamp - offset_ns

    for stamp, receive, actions, dt in received_chunks:
        if receive - offset_ns >= first_ns:
            output.chunks.append((to_bag_stamp(stamp), receive - offset_ns, actions, dt))
    output.commands = [(receive - offset_ns, linear, angular)
                       for receive, linear, angular in received_commands
                       if first_ns <= receive - offset_ns <= last_ns]
    return output


# --------------------------------------------------------------------------------------------
# Output bag
