"""The embedded log's producer: partitions a batch with numpy and appends one frame per partition."""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...errors import InvalidRecordError, RecordTooLargeError, TransactionError
from ..base import Consumer, Headers, Producer, TopicPartition
from ..partitioner import partitions_for
from .transactions import TransactionCoordinator

if TYPE_CHECKING:
    from .log import EmbeddedLog


def _take(seq: Sequence, idx: np.ndarray) -> list:
    if len(idx) == 1:
        return [seq[int(idx[0])]]
    return list(operator.itemgetter(*idx.tolist())(seq))


class EmbeddedProducer(Producer):
    """Writes straight to the partitions' segments: a record is acknowledged when ``send*`` returns."""

    def __init__(self, log: EmbeddedLog, transactional_id: str | None = None) -> None:
        self._log = log
        self._sticky = itertools.count()
        self._txn: TransactionCoordinator | None = None
        self._pending: dict[TopicPartition, list[tuple]] | None = None
        if transactional_id is not None:
            self._txn = TransactionCoordinator(log, transactional_id)

    def send(self, topic, value, key=None, *, partition=None, timestamp=None, headers=None) -> None:
        self.send_batch(
            topic,
            [value],
            None if key is None else [key],
            partition=partition,
            timestamps=timestamp,
            headers=None if headers is None else [headers],
        )

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
        n = len(values)
        if n == 0:
            return
        t = self._log.topic(topic)
        nparts = len(t.partitions)
        if keys is not None and len(keys) != n:
            raise ValueError(f"{len(keys)} keys for {n} values")
        if timestamps is None:
            ts = np.full(n, int(time.time() * 1000), dtype=np.int64)
        elif isinstance(timestamps, int):
            ts = np.full(n, timestamps, dtype=np.int64)
        else:
            ts = np.asarray(timestamps, dtype=np.int64)
        self._check(t, values, keys)
        if partition is not None:
            if not 0 <= partition < nparts:
                self._log.partition(TopicPartition(topic, partition))  # raises with a clear message
            self._write(TopicPartition(topic, partition), ts, values, keys, headers)
            return
        if partitions is not None:
            parts = np.asarray(partitions, dtype=np.int32)
        elif nparts == 1:
            self._write(TopicPartition(topic, 0), ts, values, keys, headers)
            return
        elif keys is None:
            self._write(TopicPartition(topic, next(self._sticky) % nparts), ts, values, keys, headers)
            return
        elif None in keys:  # unkeyed records of a batch stick to one partition, as Kafka's do
            sticky = next(self._sticky) % nparts
            parts = np.full(n, sticky, dtype=np.int32)
            keyed = np.fromiter((k is not None for k in keys), dtype=bool, count=n)
            idx = np.nonzero(keyed)[0]
            if len(idx):
                parts[idx] = partitions_for(_take(keys, idx), nparts)
        else:
            parts = partitions_for(keys, nparts)
        if (parts < 0).any() or (parts >= nparts).any():
            raise ValueError(f"partition out of range for topic '{topic}' ({nparts} partitions)")
        for p in np.unique(parts).tolist():
            idx = np.nonzero(parts == p)[0]
            self._write(
                TopicPartition(topic, p),
                ts[idx],
                _take(values, idx),
                None if keys is None else _take(keys, idx),
                None if headers is None else _take(headers, idx),
            )

    def _check(self, t, values, keys) -> None:
        limit = t.settings.max_message_bytes
        biggest = max(map(len, filter(None, values)), default=0)
        if keys is not None:
            biggest += max(map(len, filter(None, keys)), default=0)
        if biggest > limit:
            raise RecordTooLargeError(t.spec.name, biggest, limit)
        if t.settings.compact and (keys is None or None in keys):
            raise InvalidRecordError(
                f"topic '{t.spec.name}' is compacted (cleanup.policy=compact): every record needs a key"
            )

    def _write(self, tp: TopicPartition, ts, values, keys, headers) -> None:
        if self._txn is not None:
            if self._pending is None:
                raise TransactionError("this producer is transactional: call begin_transaction() before sending")
            self._pending.setdefault(tp, []).append((ts, values, keys, headers))
            return
        plog = self._log.partition(tp)
        plog.append(ts, values, keys, headers)
        if self._log.fsync:
            plog.sync()

    def flush(self, timeout: float | None = None) -> None:
        """Nothing to wait for: every send has reached the log when it returns."""

    # -- transactions --------------------------------------------------------------------
    def begin_transaction(self) -> None:
        if self._txn is None:
            raise TransactionError("begin_transaction needs a producer made with a transactional_id")
        if self._pending is not None:
            raise TransactionError("a transaction is already open: commit or abort it first")
        self._txn.check_epoch()
        self._pending = {}

    def commit_transaction(self, offsets: Mapping[TopicPartition, int] | None = None, consumer: Consumer | None = None) -> None:
        if self._txn is None or self._pending is None:
            raise TransactionError("no open transaction to commit: call begin_transaction() first")
        pending, self._pending = self._pending, None
        member = getattr(consumer, "member", None)
        group = getattr(consumer, "group_id", None)
        if offsets and group is None:
            raise TransactionError("committing offsets in a transaction needs the consumer of a group")
        self._txn.commit(pending, dict(offsets or {}), group, member)

    def abort_transaction(self) -> None:
        if self._txn is None or self._pending is None:
            raise TransactionError("no open transaction to abort")
        self._pending = None  # nothing was written: buffered records are simply dropped

    def close(self) -> None:
        if self._txn is not None:
            self._pending = None
            self._txn.close()
