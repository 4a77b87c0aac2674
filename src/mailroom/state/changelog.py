"""Changelog topics: every store change goes to a compacted topic, from which a task restores
its stores on start (after a crash, or on a new owner after a rebalance)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import LogError
from ..log import Log, Producer, TopicPartition

#: Topic config of changelog topics: compacted, so they hold the latest value per key.
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}


def changelog_topic(application_id: str, store_name: str) -> str:
    """The changelog topic of a store, named as Kafka Streams names it."""
    return f"{application_id}-{store_name}-changelog"


class Changelog:
    """Writes a store's changes to its partition of the changelog topic."""

    def __init__(self, producer: Producer, tp: TopicPartition) -> None:
        self.producer = producer
        self.tp = tp

    def send(self, changes: list[tuple[bytes, bytes | None]]) -> None:
        """Append the changes (None values become tombstones), in one batch."""
        if changes:
            keys = [c[0] for c in changes]  # (zip(*changes) unpacks every change as an argument)
            values = [c[1] for c in changes]
            self.producer.send_batch(self.tp.topic, values, keys, partition=self.tp.partition)


def restore(
    store,
    log: Log,
    tp: TopicPartition,
    from_offset: int = 0,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 50_000,
    stall_timeout: float = 120.0,
) -> int:
    """Replay the changelog partition ``tp`` from ``from_offset`` into ``store``.

    Reads up to the end offset seen at the start and returns it (the offset to checkpoint).
    ``progress(done, total)`` is called after each batch.
    """
    consumer = log.consumer()
    try:
        consumer.assign([tp])
        low, high = consumer.watermarks(tp)
        start = max(from_offset, low)
        if start >= high:
            return high
        consumer.seek(tp, start)
        done, total = 0, high - start
        stalled_since = time.monotonic()
        while consumer.position(tp) < high:
            batches = consumer.poll(batch, timeout=1.0)
            if not batches:
                if time.monotonic() - stalled_since > stall_timeout:
                    raise LogError(
                        f"restoring {tp.topic}[{tp.partition}] stalled at offset {consumer.position(tp)} of {high} "
                        f"for {stall_timeout:.0f}s: is the log reachable?"
                    )
                continue
            stalled_since = time.monotonic()
            for b in batches:
                keep = len(b) if b.next_offset <= high else int((b.offsets < high).sum())
                store.put_many(zip(b.keys[:keep], b.values[:keep]))
                done += keep
            if progress:
                progress(min(done, total), total)
        return high
    finally:
        consumer.close()
