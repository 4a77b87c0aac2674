"""The log interface: what the engine needs of a log, and no more.

Two implementations stand behind it with the same semantics: :mod:`mailroom.log.embedded`
(a durable log in a local folder; the default) and :mod:`mailroom.log.kafka` (Apache Kafka
through confluent-kafka). One conformance suite (``tests/log/``) runs against both.

The unit of work is the batch: producers send thousands of records per call and consumers poll
:class:`RecordBatch` objects, one per partition, whose columns can be read as Python lists or as
Arrow arrays without per-record Python.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

#: Seek targets understood by :meth:`Consumer.seek` (Kafka's own values).
OFFSET_BEGINNING = -2
OFFSET_END = -1

Headers = list[tuple[str, bytes | None]]


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it exists: its name, partition count and (non-default) config.

    Config keys are Kafka's: ``cleanup.policy`` (``delete`` | ``compact`` | ``compact,delete``),
    ``retention.ms``, ``retention.bytes``, ``segment.bytes``, ``segment.ms``,
    ``max.message.bytes``, ``delete.retention.ms``, ``min.compaction.lag.ms``.
    """

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = 1


@dataclass(slots=True)
class Record:
    """One record as read from a partition."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None


class RecordBatch:
    """Records of one partition, in offset order, held as columns.

    ``keys`` and ``values`` may be given as Python lists or as Arrow binary arrays; each form is
    made from the other on first use and kept. ``offsets`` and ``timestamps`` are int64 arrays.
    Iterating yields :class:`Record` objects (the slow path, for tests and tools).
    """

    __slots__ = ("topic", "partition", "offsets", "timestamps", "_keys", "_values", "_keys_pa", "_values_pa", "headers")

    def __init__(
        self,
        topic: str,
        partition: int,
        offsets: np.ndarray,
        timestamps: np.ndarray,
        keys: list[bytes | None] | pa.Array,
        values: list[bytes | None] | pa.Array,
        headers: list[Headers | None] | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offsets = offsets
        self.timestamps = timestamps
        self._keys = keys if isinstance(keys, list) else None
        self._keys_pa = keys if not isinstance(keys, list) else None
        self._values = values if isinstance(values, list) else None
        self._values_pa = values if not isinstance(values, list) else None
        self.headers = headers

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def keys(self) -> list[bytes | None]:
        """The keys as a list (None for a null key)."""
        if self._keys is None:
            self._keys = self._keys_pa.to_pylist()
        return self._keys

    @property
    def values(self) -> list[bytes | None]:
        """The values as a list (None for a null value: a tombstone)."""
        if self._values is None:
            self._values = self._values_pa.to_pylist()
        return self._values

    @property
    def key_array(self) -> pa.Array:
        """The keys as an Arrow binary array."""
        if self._keys_pa is None:
            self._keys_pa = pa.array(self._keys, type=pa.binary())
        return self._keys_pa

    @property
    def value_array(self) -> pa.Array:
        """The values as an Arrow binary array."""
        if self._values_pa is None:
            self._values_pa = pa.array(self._values, type=pa.binary())
        return self._values_pa

    @property
    def next_offset(self) -> int:
        """The offset to commit once every record of this batch is processed."""
        return int(self.offsets[-1]) + 1

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def __iter__(self) -> Iterator[Record]:
        keys, values, hdrs = self.keys, self.values, self.headers
        for i, (off, ts) in enumerate(zip(self.offsets.tolist(), self.timestamps.tolist())):
            yield Record(self.topic, self.partition, off, ts, keys[i], values[i], hdrs[i] if hdrs else None)

    def __repr__(self) -> str:
        if not len(self):
            return f"RecordBatch({self.topic}[{self.partition}], empty)"
        return f"RecordBatch({self.topic}[{self.partition}], offsets {self.offsets[0]}..{self.offsets[-1]}, {len(self)} records)"


AssignCallback = Callable[[list[TopicPartition]], None]


class Producer(abc.ABC):
    """Writes records to topics.

    Keyed records go to ``murmur2(key) % partitions`` (Kafka's default partitioner) unless a
    partition is given; unkeyed records are spread over partitions. A record is *acknowledged*
    once :meth:`flush` has returned (the embedded log acknowledges on return from ``send*``
    already): acknowledged records survive the producing process being killed.

    A producer made with a ``transactional_id`` writes only inside transactions; what it wrote
    becomes visible to consumers atomically with the offsets passed to
    :meth:`commit_transaction`, or never (:meth:`abort_transaction`, or a crash).
    """

    @abc.abstractmethod
    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        timestamp: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Send one record. ``timestamp`` is epoch milliseconds (default: now)."""

    @abc.abstractmethod
    def send_batch(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        *,
        partition: int | None = None,
        partitions: Sequence[int] | np.ndarray | None = None,
        timestamps: int | Sequence[int] | np.ndarray | None = None,
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        """Send many records in one call.

        ``partition`` sends all of them to one partition; ``partitions`` gives one per record;
        otherwise keys decide. ``timestamps`` is one int for all, one per record, or None (now).
        """

    @abc.abstractmethod
    def flush(self, timeout: float | None = None) -> None:
        """Block until every record sent so far is acknowledged; raise if any failed."""

    # -- transactions --------------------------------------------------------------------
    @abc.abstractmethod
    def begin_transaction(self) -> None:
        """Start a transaction (needs a transactional_id)."""

    @abc.abstractmethod
    def commit_transaction(
        self,
        offsets: Mapping[TopicPartition, int] | None = None,
        consumer: Consumer | None = None,
    ) -> None:
        """Make this transaction's records, and ``offsets`` committed for ``consumer``'s group,
        visible together. Raises :class:`~mailroom.errors.CommitFailedError` (and aborts) when the
        consumer no longer owns those partitions."""

    @abc.abstractmethod
    def abort_transaction(self) -> None:
        """Drop everything sent in the current transaction."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release resources."""

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Consumer(abc.ABC):
    """Reads records from topic partitions, in batches.

    Either :meth:`assign` partitions by hand, or :meth:`subscribe` to topics and let the group
    split their partitions between its members (consumers with the same ``group_id``, in any
    process). Offsets are never committed automatically: call :meth:`commit` (or commit them in
    a transaction). A consumer reads only committed transactional data (read_committed).
    """

    group_id: str | None

    @abc.abstractmethod
    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: AssignCallback | None = None,
        on_revoke: AssignCallback | None = None,
    ) -> None:
        """Join the group for ``topics``. The callbacks get the partitions added or taken away
        (incrementally: a rebalance revokes only the partitions that move)."""

    @abc.abstractmethod
    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read exactly these partitions (no group membership), from the committed offset, or per
        ``auto_offset_reset`` where none is committed."""

    @abc.abstractmethod
    def assignment(self) -> list[TopicPartition]:
        """The partitions this consumer reads now."""

    @abc.abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` next (or OFFSET_BEGINNING / OFFSET_END)."""

    @abc.abstractmethod
    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record poll will return for ``tp``."""

    @abc.abstractmethod
    def poll(self, max_records: int = 10_000, timeout: float = 1.0) -> list[RecordBatch]:
        """Up to ``max_records`` records as batches, in offset order within each partition (one
        batch per partition, or a few when the log holds them as large separate chunks: joining
        those would only copy); waits up to ``timeout`` seconds for the first record, returns []
        if none came."""

    @abc.abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (next offset to read, per partition) for the group, synchronously;
        by default the current positions of all assigned partitions."""

    @abc.abstractmethod
    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offset of each partition (None where nothing is committed)."""

    @abc.abstractmethod
    def watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        """(low, high): the first offset still held and the offset after the last record."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group and release resources (commits nothing)."""

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Log(abc.ABC):
    """A log: topics, producers, consumers. Open one with :func:`mailroom.log.open_log`."""

    @abc.abstractmethod
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        replication_factor: int | None = None,
        exist_ok: bool = False,
    ) -> TopicSpec:
        """Create a topic; raises TopicExistsError unless ``exist_ok``."""

    @abc.abstractmethod
    def delete_topic(self, name: str) -> None:
        """Delete a topic and its data; raises UnknownTopicError if there is none."""

    @abc.abstractmethod
    def describe_topic(self, name: str) -> TopicSpec:
        """The topic's partitions and config; raises UnknownTopicError if there is none."""

    @abc.abstractmethod
    def list_topics(self) -> list[str]:
        """Names of all topics, sorted (internal ones starting with '__' left out)."""

    @abc.abstractmethod
    def producer(self, *, transactional_id: str | None = None, **config: Any) -> Producer:
        """A new producer; with ``transactional_id``, a transactional one."""

    @abc.abstractmethod
    def consumer(self, group_id: str | None = None, *, auto_offset_reset: str = "earliest", **config: Any) -> Consumer:
        """A new consumer in ``group_id`` (None: no group, :meth:`Consumer.assign` only)."""

    def maintain(self) -> None:
        """Apply retention and compaction now where this backend does it itself (embedded);
        Kafka brokers do it on their own schedule."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources."""

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
