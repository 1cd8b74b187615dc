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
    from vla_nav.data.bags import in_stamp_order, iter_bag_messages

    replay = _OfflineReplay(engine)
    wall_start = time.monotonic()
    first_ns: int | None = None
    kinds = ('camera', 'instruction', 'odom')
    for message in in_stamp_order(iter_bag_messages(bag, topics, kinds=kinds, clock='receive')):
        if first_ns is None:
            first_ns = message.receive_ns
        if not fast:
            delay = (message.receive_ns - first_ns) / NS - (time.monotonic() - wall_start)
            if delay > 0:
                time.sleep(delay)
        replay.handle(message)
    return replay.finish()


class _OfflineReplay:
    """One bag's messages, in receive order, through a ClosedLoop ticked on the bag clock."""

    def __init__(self, engine) -> None:
        from vla_nav.core.closed_loop import ClosedLoop

        config = load_config()
        self.closed = ClosedLoop.build(engine, config.vla_node, config.executor, latency=0.0)
        self.period_ns = int(round(NS / config.executor.control_rate))
        self.dt = float(engine.spec.dt)
        self.output = ReplayOutput()
        self.next_tick: int | None = None
        self.last_ns: int | None = None
        self.largest_lag = 0.0
        self._deliveries_seen = 0

    def tick_until(self, limit_ns: int, inclusive: bool) -> None:
        while self.next_tick < limit_ns or (inclusive and self.next_tick == limit_ns):
            linear, angular = self.closed.tick(self.next_tick / NS)
            self.output.commands.append((self.next_tick, linear, angular))
            self.next_tick += self.period_ns

    def handle(self, message) -> None:
        from vla_nav.data.bags import odom_of

        now_ns = message.receive_ns
        if self.next_tick is None:
            self.next_tick = now_ns
        self.tick_until(now_ns, inclusive=False)   # ticks strictly before this message see the past
        self.last_ns = now_ns
        if message.kind == 'instruction':
            self._instruction(str(message.msg.data), now_ns)
        elif message.kind == 'odom':
            self.closed.update_odometry(*odom_of(message.msg))
        else:
            self._frame(message.msg, now_ns)

    def _instruction(self, text: str, now_ns: int) -> None:
        self.output.instructions.append((now_ns, text))
        self.closed.instruct(text, now_ns / NS)
        self._preempts(now_ns)

    def _preempts(self, now_ns: int) -> None:
        """Every preempt the ClosedLoop made (a goal, stop or refused sentence; a goal's step
        change or failure), as vla_node publishes them: an empty chunk."""
        deliveries = self.closed.deliveries
        for delivery in deliveries[self._deliveries_seen:]:
            if delivery.chunk is None:
                stamp_ns = int(round(delivery.stamp * NS))
                self.output.chunks.append((stamp_ns, now_ns, np.zeros((0, 2), np.float32), self.dt))
        self._deliveries_seen = len(deliveries)

    def _frame(self, msg, now_ns: int) -> None:
        from vla_nav.data.bags import camera_to_rgb

        output = self.output
        output.frames += 1
        stamp_ns = frame_stamp_ns(msg, now_ns)
        self.largest_lag = max(self.largest_lag, abs(now_ns - stamp_ns) / NS)
        try:
            rgb = camera_to_rgb(msg)
        except Exception as error:   # a bad frame is refused, as in vla_node
            output.frames_refused += 1
            output.last_error = f'{type(error).__name__}: {error}'
            return
        chunk = self.closed.frame(rgb, stamp_ns / NS, now_ns / NS)
        self._preempts(now_ns)
        if chunk is not None:
            output.chunks.append((stamp_ns, now_ns, chunk.actions.copy(), chunk.dt))

    def finish(self) -> ReplayOutput:
        output, loop = self.output, self.closed.loop
        if self.last_ns is not None:
            self.tick_until(self.last_ns, inclusive=True)
        output.frames_refused += loop.stale_count
        output.errors = loop.error_count
        output.last_error = loop.last_error or output.last_error
        if output.frames and self.largest_lag > loop.max_image_age:
            output.last_error = (f'camera header stamps and bag receive times differ by up to '
                                 f'{self.largest_lag:.3f} s (> max_image_age {loop.max_image_age} '
                                 's): frames were refused as stale; was the bag recorded with '
                                 'use_sim_time?')
        return output
