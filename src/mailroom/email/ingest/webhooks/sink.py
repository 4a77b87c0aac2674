"""Where the receiver's events go: one writer thread that produces them in batches (group commit).

Requests hand their events to :meth:`EventSink.write` and wait; the writer takes everything
queued so far, sends it as one batch (keyed by message id, timestamped by event time), flushes,
and only then releases the waiting requests. So an answer of 2xx means the events are
acknowledged by the log, concurrent requests share one flush, and a failed produce reaches the
request as an exception (the receiver answers 5xx and the provider sends again).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from dataclasses import dataclass, field

from ....engine.processing_log import ProcessingLog
from ....log import Log
from ...events import EmailEvent, encode

log = logging.getLogger("mailroom.email.webhooks")


@dataclass
class ErrorEntry:
    """A processing-log entry: why, which operator (``webhook-<provider>``), the offending payload."""

    reason: str
    operator: str
    value: bytes | None = None
    where: str | None = None


@dataclass
class _Item:
    events: list[EmailEvent]
    errors: list[ErrorEntry]
    done: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class EventSink:
    """Produces events to ``topic`` and error entries to ``error_topic`` from one thread."""

    def __init__(self, log_: Log, topic: str = "email-events", *, partitions: int = 4, error_topic: str | None = None,
                 max_batch: int = 20_000) -> None:
        self.log = log_
        self.topic = topic
        self.partitions = partitions
        self.error_topic = error_topic or f"{topic}-processing-log"
        self.max_batch = max_batch
        self._q: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._producer = None
        self.batches = 0
        self.events = 0
        self.errors = 0

    def start(self) -> None:
        self.log.create_topic(self.topic, partitions=self.partitions, exist_ok=True)
        self.log.create_topic(self.error_topic, partitions=1, exist_ok=True)
        self._producer = self.log.producer()
        self._plog = ProcessingLog(self._producer, self.error_topic, keep=0)
        self._thread = threading.Thread(target=self._run, name="webhook-sink", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, then stop."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._producer is not None:
            try:
                self._producer.flush()
            finally:
                self._producer.close()
                self._producer = None

    async def write(self, events: list[EmailEvent], errors: list[ErrorEntry] | None = None) -> None:
        """Return once ``events`` and ``errors`` are flushed to the log; raise if that failed."""
        if not events and not errors:
            return
        if self._thread is None:
            raise RuntimeError("the event sink is not running")
        item = _Item(events, errors or [])
        self._q.put(item)
        await asyncio.wrap_future(item.done)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._q.get()
            if first is None:
                break
            group = [first]
            n = len(first.events)
            while n < self.max_batch:  # whatever queued up while the last flush ran joins this one
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                n += len(nxt.events)
            try:
                self._write(group)
            except Exception as e:
                log.error("producing %d webhook events failed: %s", n, e)
                for it in group:
                    it.done.set_exception(e)
            else:
                for it in group:
                    it.done.set_result(None)

    def _write(self, group: list[_Item]) -> None:
        events = [e for it in group for e in it.events]
        p = self._producer
        if events:
            p.send_batch(self.topic, [encode(e) for e in events], [e.key for e in events], timestamps=[e.ts for e in events])
        for it in group:
            for err in it.errors:
                self._plog.report(err.reason, operator=err.operator, topic=err.where, value=err.value)
        p.flush()
        self.batches += 1
        self.events += len(events)
        self.errors += sum(len(it.errors) for it in group)
