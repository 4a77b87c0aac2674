"""The Processor API: custom operators with state and timers, for what the DSL does not say.

Subclass :class:`Processor`, declare its stores, and attach it with :meth:`Stream.process`::

    class StuckMail(Processor):
        \"\"\"Alert on a message with no final event for 4 hours.\"\"\"
        stores = ["open-messages"]

        def init(self, ctx):
            super().init(ctx)
            self.open = ctx.kv_store("open-messages")
            self.schedule(60_000, self.sweep)             # every minute of stream time

        def process(self, batch):
            for key, event, ts in zip(batch.keys, batch.rows(), batch.timestamps.tolist()):
                ...                                        # keep state in self.open

        def sweep(self, now):
            self.emit(["m1"], [{"alert": "stuck"}], [now])

    top.stream("events").process(StuckMail).to("alerts")

Timers run on stream time (the largest event time seen by the task: deterministic, replays
the same way) or on wall-clock time (``wall_clock=True``: fires while the input is idle too).
A timer due several times over fires once, like Kafka Streams' punctuation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .batch import Batch
from .node import Node


@dataclass
class _Timer:
    interval_ms: int
    callback: Callable[[int], None]
    wall_clock: bool
    next_due: int | None = None


class Processor(Node):
    """A user-defined operator (one instance per task; its state lives in declared stores)."""

    #: names of the key-value stores this processor uses (changelogged and restored per task)
    stores: ClassVar[Sequence[str]] = ()

    def __init__(self, name: str = "") -> None:
        super().__init__(name or type(self).__name__)
        self._timers: list[_Timer] = []

    def schedule(self, interval_ms: int, callback: Callable[[int], None], *, wall_clock: bool = False) -> None:
        """Call ``callback(now)`` every ``interval_ms`` of stream time (or of wall-clock time)."""
        if interval_ms <= 0:
            raise ValueError("a timer's interval must be positive")
        self._timers.append(_Timer(interval_ms, callback, wall_clock))

    def emit(self, keys: list[Any], values: list[Any], timestamps: Sequence[int] | np.ndarray) -> None:
        """Send records downstream (from process or a timer)."""
        if keys:
            self.forward(Batch(list(keys), list(values), np.asarray(timestamps, dtype=np.int64)))

    def advance(self, stream_time: int, wall_time: int) -> None:
        for t in self._timers:
            now = wall_time if t.wall_clock else stream_time
            if now < -(1 << 61):
                continue  # no stream time yet
            first = t.next_due is None
            if first and t.wall_clock:
                t.next_due = now - now % t.interval_ms + t.interval_ms
                continue
            # stream time: the first time it is known it may already be far past the first
            # records (one batch can span hours), so the timer fires at once, as if it had
            # been due; otherwise a timer would wait a whole interval more for records that
            # may never come (a drained input never moves stream time again)
            if first or now >= t.next_due:
                t.next_due = now - now % t.interval_ms + t.interval_ms
                try:
                    t.callback(now)
                except Exception as e:  # a failing timer is reported, the task goes on
                    self.ctx.processing_log.report(f"timer {getattr(t.callback, '__name__', '?')}: {type(e).__name__}: {e}",
                                                   operator=self.name)
