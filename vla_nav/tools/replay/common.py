"""What a replay produces and its output bag: shared by the offline and live replays."""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_nav.config import load_config

LOG = logging.getLogger('vla_nav.replay')
REPLAY_MARKER = 'vla_nav_replay'   # custom_data key: a bag this tool wrote (safe to overwrite)
NS = 1_000_000_000


class ReplayError(RuntimeError):
    """The replay could not run (no nodes answered, output folder taken): exit 2, not 1."""


@dataclass
class ReplayOutput:
    """Produced messages on the bag's clock (integer ns)."""

    chunks: list = field(default_factory=list)        # (stamp_ns, receive_ns, actions (N,2), dt)
    commands: list = field(default_factory=list)      # (tick_ns, linear, angular)
    instructions: list = field(default_factory=list)  # (receive_ns, text)
    frames: int = 0
    frames_refused: int = 0
    errors: int = 0
    last_error: str = ''


def frame_stamp_ns(msg, receive_ns: int) -> int:
    from vla_nav.ros.convert import stamp_to_ns
    stamp = stamp_to_ns(msg.header.stamp)
    return stamp if stamp > 0 else receive_ns


def write_output(path: Path, output: ReplayOutput, topics, storage: str, source: Path) -> None:
    from vla_nav.data.bags import EpisodeBagWriter, bag_custom_data
    if path.exists():
        ours = (path / 'metadata.yaml').is_file() and REPLAY_MARKER in bag_custom_data(path)
        if not ours:
            raise ReplayError(f'{path} exists and is not a replay output; not overwriting')
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = load_config().chunk_executor.stamped
    records = ([(ns, 0, 'instruction', text) for ns, text in output.instructions]
               + [(receive, 1, 'chunk', (stamp, actions, dt))
                  for stamp, receive, actions, dt in output.chunks]
               + [(ns, 2, 'cmd_vel', (linear, angular)) for ns, linear, angular in output.commands])
    records.sort(key=lambda record: record[:2])
    with EpisodeBagWriter(path, topics=topics, storage=storage,
                          metadata={REPLAY_MARKER: '1', 'source': str(source)}) as writer:
        for ns, _, kind, value in records:
            if kind == 'instruction':
                writer.write_instruction(ns, value)
            elif kind == 'chunk':
                stamp, actions, dt = value
                writer.write_chunk(stamp, actions, dt, receive_ns=ns)
            else:
                writer.write_cmd_vel(ns, *value, stamped=stamped)


def read_output(path: Path, topics) -> tuple[list, np.ndarray]:
    """(chunks [(stamp_ns, actions)], cmd_vel (n, 3) [receive_ns, linear, angular]) of a bag."""
    from vla_nav.data.bags import chunk_of, iter_bag_messages, twist_of
    chunks, commands = [], []
    for message in iter_bag_messages(path, topics, kinds=('chunk', 'cmd_vel')):
        if message.kind == 'chunk':
            try:
                stamp, actions, _ = chunk_of(message.msg)
            except ValueError:   # malformed: rejected whole (vla_nav.ros.convert)
                continue
            chunks.append((stamp, actions))
        else:
            commands.append((message.receive_ns, *twist_of(message.msg)))
    return chunks, np.array(commands, np.float64).reshape(-1, 3)


# --------------------------------------------------------------------------------------------
# Comparisons
