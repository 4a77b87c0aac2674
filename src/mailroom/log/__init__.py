"""The log: one interface (:class:`Log`), two implementations (embedded, Kafka).

    from mailroom.log import open_log
    log = open_log("embedded:./data")          # or "kafka://127.0.0.1:9092"
    log.create_topic("events", partitions=4)
    with log.producer() as p:
        p.send_batch("events", [b'{"a":1}'] * 10_000, keys=[b"k"] * 10_000)
"""

from __future__ import annotations

from typing import Any

from .base import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    Headers,
    Log,
    Producer,
    Record,
    RecordBatch,
    TopicPartition,
    TopicSpec,
)
from .partitioner import murmur2, partition_for, partitions_for

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "Consumer",
    "Headers",
    "Log",
    "Producer",
    "Record",
    "RecordBatch",
    "TopicPartition",
    "TopicSpec",
    "murmur2",
    "open_log",
    "partition_for",
    "partitions_for",
]


def open_log(url: str, **config: Any) -> Log:
    """Open a log by URL.

    - ``embedded:PATH`` (or a bare path): the embedded log in folder PATH (created if missing).
    - ``kafka://HOST:PORT[,HOST:PORT...]``: Apache Kafka; ``config`` holds librdkafka settings
      passed through to every client (``security.protocol``, ``sasl.mechanism``, ``ssl.ca.location``...).
    """
    if url.startswith("kafka://"):
        from .kafka import KafkaLog

        return KafkaLog(url[len("kafka://") :], **config)
    path = url[len("embedded:") :] if url.startswith("embedded:") else url
    from .embedded import EmbeddedLog

    return EmbeddedLog(path, **config)
