"""rosbag2 in and out with the `rosbags` library: no rclpy, so it runs anywhere the package does.

Writing: `EpisodeBagWriter` writes camera Image (rgb8 by default), instruction String, cmd_vel
Twist, odom Odometry and action chunks (MultiDOFJointTrajectory, the vla_node convention) as mcap
(default; optional zstd chunk compression) or sqlite3, with the ROS 2 Humble typestore so Humble
can read them back. Every writer method takes the stamp as integer nanoseconds; it becomes both
the header stamp and the bag's receive time.

Reading: `iter_bag_messages` reads ANY rosbag2 (mcap or sqlite3, written by `ros2 bag record` or
by us). Message definitions embedded in the bag win; bags without them (Humble sqlite3) fall back
to the Humble typestore. Topics are matched by name (`BagTopics`, defaults from
config/vla_nav.yaml) and classified by message type, so the camera topic may carry Image or
CompressedImage and cmd_vel may carry Twist or TwistStamped.

Time: `clock='receive'` (default) stamps every message with the bag's receive time, one clock for
all topics (cmd_vel has no header). `clock='header'` uses header stamps where a message has one.
"""
from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

import numpy as np

from vla_nav.config import load_config
from vla_nav.core.image_decode import decode_compressed, decode_image, encode_image_fields
from vla_nav.core.node_config import TopicNames
from vla_nav.ros import convert

LOG = logging.getLogger('vla_nav.data')

STORAGE_FORMATS = ('mcap', 'sqlite3')
BAG_VERSION = 8              # rosbag2 metadata version written (rosbags writes 8 or 9)
NS_PER_S = 1_000_000_000
CLOCKS = ('receive', 'header')

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
STRING = 'std_msgs/msg/String'
TWIST = 'geometry_msgs/msg/Twist'
TWIST_STAMPED = 'geometry_msgs/msg/TwistStamped'
ODOMETRY = 'nav_msgs/msg/Odometry'
CHUNK = 'trajectory_msgs/msg/MultiDOFJointTrajectory'

# message kind -> accepted message types
KIND_TYPES = {
    'camera': (IMAGE, COMPRESSED_IMAGE),
    'instruction': (STRING,),
    'cmd_vel': (TWIST, TWIST_STAMPED),
    'odom': (ODOMETRY,),
    'chunk': (CHUNK,),
}


class BagError(RuntimeError):
    """A bag cannot be opened or lacks what the caller needs; the message names the bag."""


@dataclass(frozen=True)
class BagTopics:
    """Topic names to read and write. Build with `from_config` (config/vla_nav.yaml defaults)."""

    image: str
    compressed_image: str
    instruction: str
    cmd_vel: str
    odom: str
    chunk: str

    def __post_init__(self) -> None:
        for field in fields(self):
            name = getattr(self, field.name)
            if not isinstance(name, str) or not name.strip('/'):
                raise ValueError(f'topic {field.name} must be a topic name, got {name!r}')
            if not name.startswith('/'):   # bags store absolute names; config names may be relative
                object.__setattr__(self, field.name, '/' + name)

    @classmethod
    def from_config(cls, **overrides: str | None) -> BagTopics:
        """Defaults from config/vla_nav.yaml (`load_config().topics`); None overrides are ignored."""
        return cls.from_topic_names(load_config().topics, **overrides)

    @classmethod
    def from_topic_names(cls, names: TopicNames, **overrides: str | None) -> BagTopics:
        """From the typed topic names; None overrides are ignored. Relative names get a leading
        '/' (a bag recorded without a namespace)."""
        values = {'image': names.image, 'compressed_image': names.compressed_image,
                  'instruction': names.instruction, 'cmd_vel': names.cmd_vel, 'odom': names.odom,
                  'chunk': names.chunk}
        unknown = set(overrides) - set(values)
        if unknown:
            raise ValueError(f'unknown topic keys {sorted(unknown)}; known: {sorted(values)}')
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def kind_of(self, topic: str, msgtype: str) -> str | None:
        """Which kind ('camera', 'instruction', 'cmd_vel', 'odom', 'chunk') a connection is."""
        by_topic = {
            self.image: 'camera', self.compressed_image: 'camera', self.instruction: 'instruction',
            self.cmd_vel: 'cmd_vel', self.odom: 'odom', self.chunk: 'chunk'}
        kind = by_topic.get(topic)
        if kind is None or msgtype not in KIND_TYPES[kind]:
            return None
        return kind


@cache
def humble_typestore():
    """The ROS 2 Humble type definitions: what we write with and the fallback for reading."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


def seconds_to_ns(seconds: float) -> int:
    return int(round(seconds * NS_PER_S))


stamp_to_ns = convert.stamp_to_ns        # one stamp conversion for nodes, tools and bags


# --------------------------------------------------------------------------------------------
# Writing


class EpisodeBagWriter:
    """One rosbag2 directory of camera, instruction, cmd_vel, odom (and chunk) messages.

    Use as a context manager; connections are created on first use of each topic. `metadata`
    lands in the bag's custom_data (e.g. episode outcome), readable with `bag_custom_data`.
    """

    def __init__(self, path: str | os.PathLike, topics: BagTopics | None = None,
                 storage: str = 'mcap', compress: bool = False,
                 metadata: dict[str, str] | None = None) -> None:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
        if storage not in STORAGE_FORMATS:
            raise ValueError(f'storage must be one of {STORAGE_FORMATS}, got {storage!r}')
        if compress and storage != 'mcap':
            raise ValueError('compression is only supported for mcap (zstd chunks)')
        self.path = Path(path)
        self.topics = topics or BagTopics.from_config()
        self._typestore = humble_typestore()
        self._types = self._typestore.types
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        if compress:
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        for key, value in (metadata or {}).items():
            self._writer.set_custom_data(str(key), str(value))
        self._connections: dict[tuple[str, str], object] = {}
        self._open = False

    def __enter__(self) -> EpisodeBagWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close()

    def open(self) -> None:
        self._writer.open()
        self._open = True

    def set_metadata(self, **values: object) -> None:
        """Add key/value pairs (stored as strings) to the bag's custom_data; before close."""
        for key, value in values.items():
            self._writer.set_custom_data(str(key), str(value))

    def close(self) -> None:
        if self._open:
            self._open = False
            self._writer.close()

    # -- message builders ------------------------------------------------------------------

    def _header(self, stamp_ns: int, frame_id: str):
        stamp_ns = int(stamp_ns)
        time = self._types['builtin_interfaces/msg/Time'](
            sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)
        return self._types['std_msgs/msg/Header'](stamp=time, frame_id=frame_id)

    def _twist(self, linear: float, angular: float):
        vector = self._types['geometry_msgs/msg/Vector3']
        return self._types[TWIST](linear=vector(x=float(linear), y=0.0, z=0.0),
                                  angular=vector(x=0.0, y=0.0, z=float(angular)))

    def write_message(self, topic: str, msg, stamp_ns: int) -> None:
        """Write any Humble-typestore message object at receive time `stamp_ns`."""
        if not self._open:
            raise BagError(f'{self.path}: writer is not open (use it as a context manager)')
        msgtype = msg.__msgtype__
        connection = self._connections.get((topic, msgtype))
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
            self._connections[(topic, msgtype)] = connection
        data = self._typestore.serialize_cdr(msg, msgtype)
        self._writer.write(connection, int(stamp_ns), data)

    def write_image(self, stamp_ns: int, rgb: np.ndarray, encoding: str = 'rgb8',
                    row_padding: int = 0, frame_id: str = 'camera',
                    topic: str | None = None) -> None:
        """sensor_msgs/Image from a uint8 RGB frame, converted to `encoding` (rgb8, bgr8, rgba8,
        bgra8, mono8) with `row_padding` extra bytes per row (drivers that align rows)."""
        fields = encode_image_fields(rgb, encoding, row_padding)
        fields['data'] = np.frombuffer(fields['data'], np.uint8)
        msg = self._types[IMAGE](header=self._header(stamp_ns, frame_id), **fields)
        self.write_message(topic or self.topics.image, msg, stamp_ns)

    def write_compressed_image(self, stamp_ns: int, data: bytes, format: str = 'jpeg',  # noqa: A002
                               frame_id: str = 'camera', topic: str | None = None) -> None:
        """sensor_msgs/CompressedImage (JPEG/PNG bytes) on the compressed camera topic."""
        msg = self._types[COMPRESSED_IMAGE](
            header=self._header(stamp_ns, frame_id), format=format,
            data=np.frombuffer(bytes(data), np.uint8))
        self.write_message(topic or self.topics.compressed_image, msg, stamp_ns)

    def write_instruction(self, stamp_ns: int, text: str) -> None:
        self.write_message(self.topics.instruction, self._types[STRING](data=text), stamp_ns)

    def write_cmd_vel(self, stamp_ns: int, linear: float, angular: float, stamped: bool = False,
                      frame_id: str = 'base_link') -> None:
        """geometry_msgs/Twist (or TwistStamped) with linear.x and angular.z."""
        twist = self._twist(linear, angular)
        if stamped:
            twist = self._types[TWIST_STAMPED](header=self._header(stamp_ns, frame_id), twist=twist)
        self.write_message(self.topics.cmd_vel, twist, stamp_ns)

    def write_odom(self, stamp_ns: int, x: float, y: float, yaw: float, linear: float,
                   angular: float, frame_id: str = 'odom', child_frame_id: str = 'base_link'
                   ) -> None:
        """nav_msgs/Odometry of a planar pose (x, y, yaw) and body twist (linear.x, angular.z)."""
        types = self._types
        qz, qw = convert.yaw_to_quaternion_zw(yaw)
        pose = types['geometry_msgs/msg/Pose'](
            position=types['geometry_msgs/msg/Point'](x=float(x), y=float(y), z=0.0),
            orientation=types['geometry_msgs/msg/Quaternion'](
                x=0.0, y=0.0, z=qz, w=qw))
        covariance = np.zeros(36, np.float64)
        msg = types[ODOMETRY](
            header=self._header(stamp_ns, frame_id), child_frame_id=child_frame_id,
            pose=types['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=covariance),
            twist=types['geometry_msgs/msg/TwistWithCovariance'](
                twist=self._twist(linear, angular), covariance=covariance.copy()))
        self.write_message(self.topics.odom, msg, stamp_ns)

    def write_chunk(self, stamp_ns: int, actions: np.ndarray, dt: float,
                    frame_id: str = 'base_link', receive_ns: int | None = None) -> None:
        """MultiDOFJointTrajectory as vla_node publishes it: header.stamp = observation time,
        points[i].velocities[0] = Twist(actions[i]), time_from_start = i*dt. Zero rows = preempt.
        """
        types = self._types
        duration = types['builtin_interfaces/msg/Duration']
        points = []
        for index, (linear, angular) in enumerate(np.asarray(actions, np.float64).reshape(-1, 2)):
            offset_ns = seconds_to_ns(index * dt)
            points.append(types['trajectory_msgs/msg/MultiDOFJointTrajectoryPoint'](
                transforms=[], velocities=[self._twist(linear, angular)], accelerations=[],
                time_from_start=duration(sec=offset_ns // NS_PER_S, nanosec=offset_ns % NS_PER_S)))
        msg = types[CHUNK](header=self._header(stamp_ns, frame_id), joint_names=[frame_id],
                           points=points)
        self.write_message(self.topics.chunk, msg, stamp_ns if receive_ns is None else receive_ns)


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class BagMessage:
    """One message of a kind we understand. `stamp_ns` follows the chosen clock."""

    kind: str          # 'camera' | 'instruction' | 'cmd_vel' | 'odom' | 'chunk'
    topic: str
    msgtype: str
    stamp_ns: int
    receive_ns: int
    msg: object


def is_bag_dir(path: Path) -> bool:
    return path.is_dir() and (path / 'metadata.yaml').is_file()


def find_bags(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Bag directories under `paths` (each a bag dir or a folder of them, searched recursively).

    Hidden folders (name starting with '.') are skipped: record-sim writes partial bags there.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f'{root}: no such bag or directory')
        if is_bag_dir(root):
            found.append(root)
            continue
        if not root.is_dir():
            raise BagError(f'{root}: not a rosbag2 directory (expected a folder with metadata.yaml)')
        for directory, subdirs, _ in os.walk(root):
            subdirs[:] = sorted(name for name in subdirs if not name.startswith('.'))
            for name in subdirs:
                if is_bag_dir(Path(directory) / name):
                    found.append(Path(directory) / name)
            subdirs[:] = [name for name in subdirs if not is_bag_dir(Path(directory) / name)]
    return found


def _open_reader(path: Path):
    from rosbags.highlevel import AnyReader
    try:
        reader = AnyReader([Path(path)], default_typestore=humble_typestore())
        reader.open()
    except Exception as error:  # rosbags raises several unrelated types for a bad bag
        raise BagError(f'{path}: cannot open rosbag2: {error}') from error
    return reader


def bag_topics(path: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """topic -> (message type, message count): for error messages and `info`-style reports."""
    reader = _open_reader(Path(path))
    try:
        return {name: (info.msgtype or '?', info.msgcount) for name, info in reader.topics.items()}
    finally:
        reader.close()


def bag_custom_data(path: str | os.PathLike) -> dict[str, str]:
    """The custom_data of a bag's metadata.yaml ({} when there is none)."""
    import yaml
    with open(Path(path) / 'metadata.yaml', encoding='utf-8') as stream:
        info = yaml.safe_load(stream)['rosbag2_bagfile_information']
    return dict(info.get('custom_data') or {})


def _header_ns(msg) -> int | None:
    header = getattr(msg, 'header', None)
    return None if header is None else stamp_to_ns(header.stamp)


def iter_bag_messages(path: str | os.PathLike, topics: BagTopics | None = None,
                      kinds: Iterable[str] = tuple(KIND_TYPES), clock: str = 'receive'
                      ) -> Iterator[BagMessage]:
    """Messages of the wanted kinds, in receive-time order.

    Camera: the raw image topic when the bag has it, else the compressed one. Connections on
    known topic names but with an unexpected type are skipped with a warning.
    """
    if clock not in CLOCKS:
        raise ValueError(f'clock must be one of {CLOCKS}, got {clock!r}')
    topics = topics or BagTopics.from_config()
    kinds = set(kinds)
    path = Path(path)
    reader = _open_reader(path)
    try:
        wanted = {}   # connection id -> (connection, kind)
        for connection in reader.connections:
            kind = topics.kind_of(connection.topic, connection.msgtype)
            if kind is None:
                if connection.topic in (topics.image, topics.compressed_image, topics.instruction,
                                        topics.cmd_vel, topics.odom, topics.chunk):
                    LOG.warning('%s: topic %s has type %s, which is not read; skipped',
                                path, connection.topic, connection.msgtype)
                continue
            if kind in kinds:
                wanted[connection.id] = (connection, kind)
        camera_topics = {c.topic for c, kind in wanted.values() if kind == 'camera'}
        if len(camera_topics) > 1:  # both raw and compressed: the raw one is the reference
            wanted = {key: (c, kind) for key, (c, kind) in wanted.items()
                      if kind != 'camera' or c.topic == topics.image}
        if not wanted:
            return
        connections = [c for c, _ in wanted.values()]
        for connection, receive_ns, raw in reader.messages(connections=connections):
            try:
                msg = reader.deserialize(raw, connection.msgtype)
            except Exception as error:
                LOG.warning('%s: undecodable %s message at %d ns skipped: %s',
                            path, connection.topic, receive_ns, error)
                continue
            stamp_ns = receive_ns
            if clock == 'header':
                stamp_ns = _header_ns(msg) or receive_ns
            yield BagMessage(wanted[connection.id][1], connection.topic, connection.msgtype, stamp_ns,
                             receive_ns, msg)
    finally:
        reader.close()


# at equal stamps: a goal first (it starts the segment its frame belongs to), the camera last
_KIND_ORDER = {'instruction': 0, 'odom': 1, 'cmd_vel': 2, 'chunk': 3, 'camera': 4}


def in_stamp_order(messages: Iterable[BagMessage], window_ns: int = 0) -> Iterator[BagMessage]:
    """Re-sort by (stamp, kind: instruction first, camera last) within a sliding `window_ns`.

    Bags are stored in receive order; header stamps may be slightly out of order, and messages
    of the same stamp come in any order.
    """
    heap: list[tuple[int, int, int, BagMessage]] = []
    for sequence, message in enumerate(messages):
        heapq.heappush(heap, (message.stamp_ns, _KIND_ORDER[message.kind], sequence, message))
        while heap and heap[0][0] < message.stamp_ns - window_ns:
            yield heapq.heappop(heap)[3]
    while heap:
        yield heapq.heappop(heap)[3]


# --------------------------------------------------------------------------------------------
# Message -> numbers


def camera_to_rgb(msg) -> np.ndarray:
    """Image (any encoding vla_node reads, padded rows too) or CompressedImage -> uint8 RGB.

    Raises vla_nav.core.image_decode.ImageDecodeError for frames that cannot be read.
    """
    if msg.__msgtype__ == COMPRESSED_IMAGE:
        return decode_compressed(bytes(msg.data), msg.format)
    return decode_image(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                                memoryview(msg.data), int(msg.is_bigendian))


def twist_of(msg) -> tuple[float, float]:
    """(linear.x, angular.z) of a Twist or TwistStamped."""
    return convert.twist_to_pair(msg)


def odom_of(msg) -> tuple[float, float, float, float, float]:
    """(x, y, yaw, linear.x, angular.z) of a nav_msgs/Odometry."""
    return convert.odometry_to_pose_twist(msg)


def chunk_of(msg) -> tuple[int, np.ndarray, float]:
    """(header stamp ns, actions (N, 2) float32, dt s) of a MultiDOFJointTrajectory chunk.

    dt comes from the points' time_from_start (0.0 for chunks with fewer than two points).
    A malformed chunk raises vla_nav.ros.convert.MalformedChunkError (a ValueError), the one
    behaviour everywhere: the chunk is rejected whole, never padded.
    """
    _, actions, dt = convert.msg_to_chunk(msg)
    return stamp_to_ns(msg.header.stamp), actions.astype(np.float32), dt
