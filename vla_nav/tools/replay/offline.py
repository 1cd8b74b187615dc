"""Offline replay: the bag's messages through the ClosedLoop on the bag's clock (deterministic)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vla_nav.config import load_config
from vla_nav.tools.replay.common import NS, ReplayOutput, frame_stamp_ns


def replay_offline(bag: Path, engine, topics, fast: bool = True) -> ReplayOutput:
    """Feed the bag through the ClosedLoop on the bag's clock (see module doc): chunks reach the
    executor at the receive time of their frame (no latency)."""
    from vla_nav.core.closed_loop import ClosedLoop
    from vla_nav.core.instruction import GOAL, STOP
    from vla_nav.data.bags import camera_to_rgb, in_stamp_order, iter_bag_messages, odom_of

    config = load_config()
    closed = ClosedLoop.build(engine, config.vla_node, config.executor, latency=0.0)
    loop, executor = closed.loop, closed.executor
    period_ns = int(round(NS / executor.config.control_rate))
    output = ReplayOutput()
    next_tick: int | None = None
    wall_start = time.monotonic()
    first_ns: int | None = None

    def tick_until(limit_ns: int, inclusive: bool) -> None:
        nonlocal next_tick
        while next_tick < limit_ns or (inclusive and next_tick == limit_ns):
            linear, angular = closed.tick(next_tick / NS)
            output.commands.append((next_tick, linear, angular))
            next_tick += period_ns

    last_ns = None
    largest_lag = 0.0
    kinds = ('camera', 'instruction', 'odom')
    for message in in_stamp_order(iter_bag_messages(bag, topics, kinds=kinds, clock='receive')):
        now_ns = message.receive_ns
        if first_ns is None:
            first_ns = next_tick = now_ns
        if not fast:
            delay = (now_ns - first_ns) / NS - (time.monotonic() - wall_start)
            if delay > 0:
                time.sleep(delay)
        tick_until(now_ns, inclusive=False)   # ticks strictly before this message see the past
        last_ns = now_ns
        now = now_ns / NS
        if message.kind == 'instruction':
            text = str(message.msg.data)
            output.instructions.append((now_ns, text))
            result = closed.instruct(text, now)
            if result.kind in (GOAL, STOP):
                stamp = loop.goal_start_stamp
                output.chunks.append((int(round(stamp * NS)), now_ns, np.zeros((0, 2), np.float32),
                                      float(engine.spec.dt)))
        elif message.kind == 'odom':
            closed.update_odometry(*odom_of(message.msg))
        else:
            output.frames += 1
            stamp_ns = frame_stamp_ns(message.msg, now_ns)
            largest_lag = max(largest_lag, abs(now_ns - stamp_ns) / NS)
            try:
                rgb = camera_to_rgb(message.msg)
            except Exception as error:   # a bad frame is refused, as in vla_node
                output.frames_refused += 1
                output.last_error = f'{type(error).__name__}: {error}'
                continue
            chunk = closed.frame(rgb, stamp_ns / NS, now)
            if chunk is not None:
                output.chunks.append((stamp_ns, now_ns, chunk.actions.copy(), chunk.dt))
    if last_ns is not None:
        tick_until(last_ns, inclusive=True)
    output.frames_refused += loop.stale_count
    output.errors = loop.error_count
    output.last_error = loop.last_error or output.last_error
    if output.frames and largest_lag > loop.max_image_age:
        output.last_error = (f'camera header stamps and bag receive times differ by up to '
                             f'{largest_lag:.3f} s (> max_image_age {loop.max_image_age} s): frames '
                             'were refused as stale; was the bag recorded with use_sim_time?')
    return output
