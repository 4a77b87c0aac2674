"""What a task offers its nodes: stores, time, the processing log, and output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..state import CachingStore, WindowStore
from .processing_log import ProcessingLog


@dataclass
class TaskContext:
    """Per-task services. The runtime and the test driver each make their own."""

    task_id: str
    partition: int
    caching: bool
    processing_log: ProcessingLog
    #: store name -> the (cached, changelogged) key-value store
    kv_store: Callable[[str], CachingStore]
    #: (name, retention_ms, segment_ms) -> window store
    window_store: Callable[[str, int, int], WindowStore]
    #: (topic, keys, values, timestamps, headers|None, partitions=None) -> None
    send: Callable[..., None]
    #: topic -> its partition count (repartition sinks split batches by it)
    partitions_of: Callable[[str], int] = lambda topic: 1
    stream_time: int = -(1 << 62)
    metrics: dict[str, int] = field(default_factory=dict)

    def count(self, metric: str, n: int = 1) -> None:
        self.metrics[metric] = self.metrics.get(metric, 0) + n

    def null_keys(self, operator: str, batch: Any, positions: list[int]) -> None:
        """Records skipped by an aggregation for having a NULL key (metric + processing log).

        Counting alone lost them silently; like ksqlDB, each one is reported with its origin.
        """
        self.count("null-key-records-skipped", len(positions))
        for i in positions:
            self.processing_log.report(
                "NULL key: the record cannot be aggregated and was dropped",
                operator=operator,
                topic=batch.topic,
                partition=batch.partition,
                offset=None if batch.offsets is None else int(batch.offsets[i]),
            )

    def late(self, operator: str, n: int, sample: Any = None) -> None:
        """Records dropped for arriving after their window closed (metric + processing log)."""
        self.count("late-records-dropped", n)
        self.processing_log.report(
            f"{n} late record(s) dropped: their window had closed (window end + grace <= stream time {self.stream_time})",
            operator=operator,
        )
