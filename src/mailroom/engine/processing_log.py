"""The processing log: records that could not be processed, with why, so nothing is lost silently.

Entries are JSON on a topic (``<application id>-processing-log`` by default): the source
topic, partition and offset, the operator, the reason, and the raw record (base64). The task
skips the record and goes on.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field

import orjson

from ..log import Producer

log = logging.getLogger("mailroom.processing")


@dataclass
class ProcessingLog:
    """Where a task reports the records it had to skip."""

    producer: Producer | None
    topic: str
    entries: list[dict] = field(default_factory=list)  # kept in memory too (the test driver reads them)
    keep: int = 10_000
    #: who reports (an App's application id): written as the entry's "logger" when set, so that
    #: several applications can share one processing-log topic
    logger: str | None = None

    def report(
        self,
        reason: str,
        *,
        operator: str,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        value: bytes | None = None,
    ) -> None:
        entry = {
            "ts": int(time.time() * 1000),
            "operator": operator,
            "reason": reason,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": None if key is None else base64.b64encode(key).decode(),
            "value": None if value is None else base64.b64encode(value).decode(),
        }
        if self.logger is not None:
            entry["logger"] = self.logger
        log.warning("skipped record %s[%s]@%s in %s: %s", topic, partition, offset, operator, reason)
        if len(self.entries) < self.keep:
            self.entries.append(entry)
        if self.producer is not None:
            self.producer.send(self.topic, orjson.dumps(entry), None if topic is None else f"{topic}-{partition}".encode())
