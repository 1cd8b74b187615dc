"""A one-slot mailbox between a ROS callback and a worker thread: only the newest item counts.

The camera callback must never wait for inference; it drops its frame here and returns. The worker
takes whatever is newest; anything overwritten before it was taken is counted as dropped.
"""
from __future__ import annotations

import threading
from typing import Any


class LatestMailbox:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Any = None
        self._full = False
        self._closed = False
        self.overwritten = 0     # items replaced before the worker took them

    def put(self, item: Any) -> None:
        with self._condition:
            if self._full:
                self.overwritten += 1
            self._item, self._full = item, True
            self._condition.notify()

    def take(self, timeout: float | None = None) -> Any:
        """The newest item, or None after `timeout` seconds or once closed."""
        with self._condition:
            if not self._full and not self._closed:
                self._condition.wait(timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake the worker for good (node shutdown)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
