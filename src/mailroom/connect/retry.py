"""Exponential backoff that a stop request can cut short."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Interrupted(Exception):
    """A wait was cut short because the caller asked to stop."""


class Backoff:
    """Waits ``initial``, then twice as long each time, up to ``maximum`` seconds (with ±20% jitter
    so many sinks do not hammer a recovering server in step); :meth:`reset` after a success."""

    def __init__(self, initial: float = 0.1, maximum: float = 30.0, factor: float = 2.0) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.attempt = 0

    def next_delay(self) -> float:
        """The next wait in seconds (and count the attempt)."""
        delay = min(self.maximum, self.initial * self.factor ** self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.8, 1.2)

    def wait(self, stopping: Callable[[], bool]) -> float:
        """Sleep the next delay in short naps; raise :class:`Interrupted` as soon as ``stopping()``."""
        delay = self.next_delay()
        end = time.monotonic() + delay
        while True:
            if stopping():
                raise Interrupted
            left = end - time.monotonic()
            if left <= 0:
                return delay
            time.sleep(min(left, 0.05))

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self.attempt = 0
