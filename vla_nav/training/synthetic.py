"""A tiny, learnable synthetic data set as rosbag2 files: for tests and smoke runs of the tools.

Each episode is "turn left" or "turn right"; the camera shows a bright bar whose position moves
with time, and the command is a smooth function of the instruction and of time, so a policy can
learn it from the frames + instruction. Written with the same EpisodeBagWriter as record-sim.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

INSTRUCTIONS = ('turn left', 'turn right')


def synthetic_action(instruction_index: int, tick: int, length: int) -> tuple[float, float]:
    progress = tick / max(length - 1, 1)
    angular = (0.8 if instruction_index == 0 else -0.8) * math.sin(math.pi * progress)
    linear = 0.3 * (1.0 - progress)
    return linear, angular


def synthetic_frame(tick: int, length: int, image_size: int, instruction_index: int) -> np.ndarray:
    frame = np.full((image_size, image_size, 3), 40, np.uint8)
    column = int((image_size - 4) * tick / max(length - 1, 1))
    frame[:, column:column + 4, instruction_index] = 230
    return frame


def write_synthetic_bags(out: str | Path, episodes: int = 3, length: int = 30, image_size: int = 32,
                         dt: float = 0.1) -> list[Path]:
    """`episodes` bags `ep_000`... under `out` (instruction at t0, frame + cmd_vel + odom per tick)."""
    from vla_nav.data.bags import EpisodeBagWriter, seconds_to_ns

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for episode in range(episodes):
        kind = episode % len(INSTRUCTIONS)
        path = out / f'ep_{episode:03d}'
        x = y = yaw = 0.0
        with EpisodeBagWriter(path) as writer:
            start = seconds_to_ns(1.0 + episode * 100.0)
            writer.write_instruction(start, INSTRUCTIONS[kind])
            for tick in range(length):
                stamp = start + seconds_to_ns((tick + 1) * dt)
                linear, angular = synthetic_action(kind, tick, length)
                writer.write_image(stamp, synthetic_frame(tick, length, image_size, kind))
                writer.write_odom(stamp, x, y, yaw, linear, angular)
                writer.write_cmd_vel(stamp, linear, angular)
                x += linear * dt * math.cos(yaw)
                y += linear * dt * math.sin(yaw)
                yaw += angular * dt
        paths.append(path)
    return paths
