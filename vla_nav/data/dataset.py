"""Episodes from ANY rosbag2 with a camera, an instruction and cmd_vel, and training windows.

Alignment (all on one clock, see `vla_nav.data.bags`, default the bag's receive time):

* Segments. Each instruction message starts a new episode segment; it ends at the next
  instruction or the end of the bag. Messages before the first instruction belong to no segment.
  At equal stamps an instruction comes first (it starts the segment the frame belongs to).
* Ticks. A segment is resampled at the model's `dt`: tick k is at t0 + k*dt (integer ns), where
  t0 is the stamp of the segment's first camera frame, for every tick <= the last frame stamp.
* frames[k] = the newest camera frame stamped at or before tick k (a 30 Hz camera is thinned,
  a 5 Hz camera repeats frames), decoded by the same code as vla_node and resized to
  `image_size`.
* actions[k] = the (linear.x, angular.z) command in force at tick k: the newest cmd_vel of the
  segment stamped at or before tick k; (0, 0) before the segment's first command or when that
  command is older than `command_timeout` (a base stops without commands).
* states[k] = `GoalProgress` (vla_nav.core.robot_state) after the newest odom message stamped at
  or before tick k, reset at the instruction; zeros without odom (`Episode.has_odom`).
* Skipped, with a logged reason (and appended to `skipped` when given): segments with an empty
  instruction, no camera frames, no cmd_vel, or fewer than `min_frames` ticks; frames before the
  first instruction; bags that cannot be opened or have no camera/instruction/cmd_vel topic.

`make_windows` / `window_indices` turn an episode into per-tick windows, one target chunk per
window position.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from vla_nav.core.engine import DEFAULT_CHUNK, DEFAULT_DT, DEFAULT_WINDOW
from vla_nav.core.feature_ring import history_back
from vla_nav.core.image_decode import resize_rgb
from vla_nav.core.robot_state import STATE_DIM, GoalProgress
from vla_nav.data.bags import (
    NS_PER_S,
    BagError,
    BagTopics,
    bag_custom_data,
    camera_to_rgb,
    find_bags,
    in_stamp_order,
    iter_bag_messages,
    odom_of,
    seconds_to_ns,
    twist_of,
)

LOG = logging.getLogger('vla_nav.data')

# s; a recorded command older than this no longer drives the base. A property of the RECORDED
# robot, not of our simulator: ROS 2 diff_drive_controller's cmd_vel_timeout default is 0.5 s.
# Pass command_timeout for a base that differs.
DEFAULT_COMMAND_TIMEOUT = 0.5
REORDER_WINDOW_S = 0.25        # messages are re-sorted by stamp within this span (header clock)


@dataclass
class Episode:
    """One instruction segment resampled at dt. T = len(episode)."""

    instruction: str
    frames: np.ndarray          # (T, H, W, 3) uint8 RGB
    actions: np.ndarray         # (T, 2) float32 (linear.x m/s, angular.z rad/s)
    states: np.ndarray          # (T, STATE_DIM) float32 (GoalProgress; zeros without odom)
    stamps: np.ndarray          # (T,) float64 tick times, s
    source: str                 # '<bag dir>#<segment index>'
    has_odom: bool = False
    metadata: dict = field(default_factory=dict)   # the bag's custom_data (record-sim: outcome...)

    def __post_init__(self) -> None:
        length = len(self.stamps)
        expected = {'frames': (length, None, None, 3), 'actions': (length, 2),
                    'states': (length, STATE_DIM), 'stamps': (length,)}
        for name, shape in expected.items():
            array = getattr(self, name)
            if array.ndim != len(shape) or any(want is not None and have != want
                                               for have, want in zip(array.shape, shape, strict=True)):
                raise ValueError(f'Episode {self.source}: {name} has shape {array.shape}, '
                                 f'expected {shape} (None = any)')

    def __len__(self) -> int:
        return len(self.stamps)


def window_indices(length: int, window: int = DEFAULT_WINDOW, chunk: int = DEFAULT_CHUNK,
                   stride: int = 1, memory_slots: int = 0, memory_stride: int = 1
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays for supervising every window position with its own chunk.

    For tick t (0..T-1) the window holds ticks t-window+1 .. t (oldest first, position window-1 is
    the newest). Position p stands for tick j = t-window+1+p:
      frame_index[t, p] = max(j, 0)   positions before the start repeat the first frame, like the
                                      history ring after a goal starts (they are the same frame).
      action_index[t, p, i] = j + i   the i-th action of position p's chunk (chunk step i is meant
                                      for tick j + i, i.e. time stamps[j] + i*dt).
      mask[t, p, i] = 0 <= j and j + i < T   padded positions and steps past the episode end are
                                      not supervised (action_index is clipped there, never used).
    Returns (frame_index (T, window) int64, action_index (T, window, chunk) int64, mask (T, window,
    chunk) bool). Targets: `episode.actions[action_index]` -> (T, window, chunk, 2), see
    `make_windows`. States for position p: `episode.states[frame_index]`.
    stride > 1 (PolicyConfig.history_stride): position p stands for tick j = t - (window-1-p) *
    stride, as the runtime's FeatureRing reads it; the rest is unchanged.
    memory_slots > 0 (PolicyConfig.memory_slots): the oldest memory_slots positions stand for the
    ticks core.feature_ring.history_back places them at (memory_stride apart before the dense
    part). They are read, never supervised (mask False): a slot's own chunk would be predicted from
    a sparse past, a different task from the newest position's.
    """
    length = int(length)
    if window < 1 or chunk < 1 or length < 0 or stride < 1:
        raise ValueError(f'need window >= 1, chunk >= 1, length >= 0, stride >= 1; got {window}, '
                         f'{chunk}, {length}, {stride}')
    back = history_back(window, stride, memory_slots, memory_stride)
    ticks = np.arange(length)[:, None] - back[None, :]                           # (T, W): j
    frame_index = np.maximum(ticks, 0)
    steps = ticks[:, :, None] + np.arange(chunk)[None, None, :]                  # (T, W, C)
    mask = (ticks[:, :, None] >= 0) & (steps < length)
    mask[:, :memory_slots] = False
    action_index = np.clip(steps, 0, max(length - 1, 0))
    return frame_index.astype(np.int64), action_index.astype(np.int64), mask


def make_windows(episode: Episode, window: int = DEFAULT_WINDOW, chunk: int = DEFAULT_CHUNK
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame_index (T, W) int64, target (T, W, chunk, 2) float32, mask (T, W, chunk) bool).

    Window t, position p, chunk step i is supervised with episode.actions[t-W+1+p+i] where
    mask[t, p, i] (see `window_indices` for the alignment); target is zero where mask is False.
    Frames of window t: episode.frames[frame_index[t]] (oldest first).
    """
    frame_index, action_index, mask = window_indices(len(episode), window, chunk)
    target = episode.actions[action_index] * mask[..., None]
    return frame_index, target.astype(np.float32), mask


# --------------------------------------------------------------------------------------------
# Bag -> episodes


class _SegmentBuilder:
    """Accumulates one instruction segment: ticked frames streamed, commands/odom kept small."""

    def __init__(self, index: int, instruction: str, start_ns: int, dt_ns: int,
                 image_size: tuple[int, int] | None) -> None:
        self.index = index
        self.instruction = instruction.strip()
        self.start_ns = start_ns
        self.dt_ns = dt_ns
        self.image_size = image_size
        self.next_tick: int | None = None
        self.last_frame: tuple[int, object] | None = None   # (stamp, msg) not yet decoded
        self.last_rgb: np.ndarray | None = None              # newest decoded frame
        self.last_rgb_stamp: int | None = None
        self.tick_ns: list[int] = []
        self.tick_frames: list[np.ndarray] = []
        self.cmd_ns: list[int] = []
        self.cmd_values: list[tuple[float, float]] = []
        self.odom_ns: list[int] = []
        self.odom_states: list[np.ndarray] = []
        self.progress = GoalProgress()
        self.frames_seen = 0
        self.decode_errors: list[str] = []

    def _decoded_last(self) -> np.ndarray | None:
        """Decode the pending frame (once); on failure keep the previous good frame."""
        if self.last_frame is not None and self.last_rgb_stamp != self.last_frame[0]:
            stamp, msg = self.last_frame
            try:
                rgb = camera_to_rgb(msg)
                if callable(self.image_size):   # the model's view (EngineSpec.view: + fovea)
                    rgb = self.image_size(rgb)
                elif self.image_size is not None:
                    rgb = resize_rgb(rgb, *self.image_size)
                elif self.last_rgb is not None and rgb.shape != self.last_rgb.shape:
                    raise ValueError(f'frame size changed to {rgb.shape[:2]}; pass image_size')
                self.last_rgb, self.last_rgb_stamp = rgb, stamp
            except Exception as error:  # decoder errors are one type, resize/PIL others
                self.decode_errors.append(f'{stamp} ns: {error}')
                self.last_frame = None
        return self.last_rgb

    def _emit_ticks_before(self, limit_ns: int, inclusive: bool) -> None:
        while self.next_tick is not None and (
                self.next_tick < limit_ns or (inclusive and self.next_tick == limit_ns)):
            rgb = self._decoded_last()
            if rgb is None:   # nothing decodable yet: start ticking at the next frame instead
                self.next_tick = None
                return
            self.tick_ns.append(self.next_tick)
            self.tick_frames.append(rgb)
            self.next_tick += self.dt_ns

    def add_frame(self, stamp_ns: int, msg) -> None:
        if stamp_ns < self.start_ns or (self.last_frame and stamp_ns <= self.last_frame[0]):
            return   # before the goal, or out of order beyond the reorder window
        self.frames_seen += 1
        self._emit_ticks_before(stamp_ns, inclusive=False)
        self.last_frame = (stamp_ns, msg)
        if self.next_tick is None:
            self.next_tick = stamp_ns

    def add_command(self, stamp_ns: int, msg) -> None:
        if stamp_ns >= self.start_ns:
            self.cmd_ns.append(stamp_ns)
            self.cmd_values.append(twist_of(msg))

    def add_odom(self, stamp_ns: int, msg) -> None:
        if stamp_ns >= self.start_ns:
            self.odom_ns.append(stamp_ns)
            self.odom_states.append(self.progress.update(*odom_of(msg)))

    def finish(self, source: str, command_timeout_ns: int, min_frames: int, metadata: dict
               ) -> tuple[Episode | None, str]:
        """(episode, '') or (None, reason it was skipped)."""
        if self.last_frame is not None:
            self._emit_ticks_before(self.last_frame[0], inclusive=True)
        if self.decode_errors:
            LOG.warning('%s: %d camera frames could not be decoded (first: %s)', source,
                        len(self.decode_errors), self.decode_errors[0])
        if not self.instruction:
            return None, 'empty instruction'
        if not self.frames_seen:
            return None, 'no camera frames'
        if not self.cmd_ns:
            return None, 'no cmd_vel messages'
        if len(self.tick_ns) < min_frames:
            return None, f'too short ({len(self.tick_ns)} ticks < min_frames={min_frames})'
        ticks = np.asarray(self.tick_ns, np.int64)
        cmd_ns = np.asarray(self.cmd_ns, np.int64)
        newest = np.searchsorted(cmd_ns, ticks, side='right') - 1
        fresh = (newest >= 0) & (ticks - cmd_ns[np.maximum(newest, 0)] <= command_timeout_ns)
        values = np.asarray(self.cmd_values, np.float32)
        actions = np.where(fresh[:, None], values[np.maximum(newest, 0)], 0.0).astype(np.float32)
        states = np.zeros((len(ticks), STATE_DIM), np.float32)
        if self.odom_ns:
            newest_odom = np.searchsorted(np.asarray(self.odom_ns, np.int64), ticks, 'right') - 1
            known = newest_odom >= 0
            states[known] = np.stack(self.odom_states)[newest_odom[known]]
        return Episode(
            instruction=self.instruction, frames=np.stack(self.tick_frames), actions=actions,
            states=states, stamps=ticks.astype(np.float64) / NS_PER_S, source=source,
            has_odom=bool(self.odom_ns), metadata=dict(metadata)), ''


@dataclass
class _SplitStats:
    kinds: set = field(default_factory=set)   # message kinds seen
    segments: int = 0                         # instructions seen
    orphan_frames: int = 0                    # camera frames before the first instruction


def _split_segments(messages, dt_ns: int, image_size: tuple[int, int] | None,
                    stats: _SplitStats) -> Iterator[_SegmentBuilder]:
    """One builder per instruction segment (messages re-sorted by stamp), yielded when complete."""
    segment: _SegmentBuilder | None = None
    for message in in_stamp_order(messages, seconds_to_ns(REORDER_WINDOW_S)):
        stats.kinds.add(message.kind)
        if message.kind == 'instruction':
            if segment is not None:
                yield segment
            segment = _SegmentBuilder(stats.segments, str(message.msg.data), message.stamp_ns,
                                      dt_ns, image_size)
            stats.segments += 1
        elif segment is None:
            stats.orphan_frames += message.kind == 'camera'
        elif message.kind == 'camera':
            segment.add_frame(message.stamp_ns, message.msg)
        elif message.kind == 'cmd_vel':
            segment.add_command(message.stamp_ns, message.msg)
        else:
            segment.add_odom(message.stamp_ns, message.msg)
    if segment is not None:
        yield segment


def read_bag_episodes(path: str | os.PathLike, dt: float = DEFAULT_DT,
                      image_size: tuple[int, int] | None = None, topics: BagTopics | None = None,
                      clock: str = 'receive', command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
                      min_frames: int = 2, skipped: list[tuple[str, str]] | None = None
                      ) -> Iterator[Episode]:
    """The episodes of one bag directory (see the module docstring for the alignment)."""
    if dt <= 0:
        raise ValueError(f'dt must be > 0, got {dt}')
    if not command_timeout > 0:
        raise ValueError(f'command_timeout must be > 0, got {command_timeout}')
    skipped = [] if skipped is None else skipped

    def skip(source: str, reason: str) -> None:
        LOG.info('skipped %s: %s', source, reason)
        skipped.append((source, reason))

    path = str(path)
    try:
        metadata = bag_custom_data(path)
    except Exception:  # custom_data is optional; a broken metadata.yaml fails at open below
        metadata = {}
    messages = iter_bag_messages(path, topics, kinds=('instruction', 'odom', 'cmd_vel', 'camera'),
                                 clock=clock)
    stats = _SplitStats()
    timeout_ns = seconds_to_ns(command_timeout)
    try:
        for builder in _split_segments(messages, seconds_to_ns(dt), image_size, stats):
            source = f'{path}#{builder.index}'
            episode, reason = builder.finish(source, timeout_ns, min_frames, metadata)
            if episode is None:
                skip(source, reason)
            else:
                yield episode
    except BagError as error:
        skip(path, str(error))
        return
    missing = [kind for kind in ('camera', 'instruction', 'cmd_vel') if kind not in stats.kinds]
    if missing and not stats.segments:
        topics = topics or BagTopics.from_config()
        skip(path, f'no {", ".join(missing)} messages on the configured topics ({topics})')
    orphan_frames = stats.orphan_frames
    if orphan_frames:
        LOG.info('%s: %d camera frames before the first instruction were skipped', path,
                 orphan_frames)


def read_episodes(paths: str | os.PathLike | Iterable[str | os.PathLike], dt: float = DEFAULT_DT,
                  image_size: tuple[int, int] | None = None, topics: BagTopics | None = None,
                  clock: str = 'receive', command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
                  min_frames: int = 2, skipped: list[tuple[str, str]] | None = None
                  ) -> Iterator[Episode]:
    """Episodes of every bag under `paths` (bag dirs or folders of them), in sorted path order.

    image_size: (height, width) to resize frames to, or a callable frame -> model input image
    (`EngineSpec.view`, which adds a model's fovea strip; None: keep the bag's size, which must
    then be constant). topics: BagTopics (defaults from config/vla_nav.yaml). command_timeout: s, default
    DEFAULT_COMMAND_TIMEOUT (the recorded base's own cmd_vel timeout). `skipped` collects
    (source, reason) of everything left out.
    """
    for bag in find_bags(paths):
        yield from read_bag_episodes(bag, dt=dt, image_size=image_size, topics=topics,
                                     clock=clock, command_timeout=command_timeout,
                                     min_frames=min_frames, skipped=skipped)
