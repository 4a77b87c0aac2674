"""The embedded log's producer: partitions a batch with numpy and appends one frame per partition."""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ...errors import InvalidRecordError, RecordTooLargeError, TransactionError
from ..base import Consumer, Headers, Producer, TopicPartition
from ..partitioner import partitions_for
from .transactions import TransactionCoordinator

if TYPE_CHECKING:
    from .log import EmbeddedLog


def _arrow(col: Sequence[bytes | None] | pa.Array) -> pa.Array:
    """A column of bytes as an Arrow binary array (one C pass; Arrow input is kept)."""
    if isinstance(col, pa.Array):
        return col if col.type == pa.binary() else col.cast(pa.binary())
    return pa.array(col, type=pa.binary())


def _max_len(arr: pa.Array) -> int:
    return _widths(arr)[1]


def _widths(arr: pa.Array) -> tuple[int, int]:
    """The shortest and the longest record of a binary column (nulls count as 0)."""
    if len(arr) == 0 or arr.null_count == len(arr):
        return 0, 0
    offsets = np.frombuffer(arr.buffers()[1], dtype="<i4", count=len(arr) + 1, offset=4 * arr.offset)
    lengths = np.diff(offsets)
    return int(lengths.min()), int(lengths.max())


def _gather(arr: pa.Array, order: np.ndarray, order_pa: pa.Array, widths: tuple[int, int]) -> pa.Array:
    """``arr.take(order)``. A column whose records all have one width (fixed-size keys: ids,
    numbers, UUIDs) is gathered as rows by numpy, several times faster than Arrow's take,
    which copies record by record."""
    n = len(arr)
    w = widths[0]
    if w != widths[1] or w == 0 or arr.null_count or n * w > 0x7FFFFFFF:
        return arr.take(order_pa)
    first = int(np.frombuffer(arr.buffers()[1], dtype="<i4", count=1, offset=4 * arr.offset)[0])
    rows = np.frombuffer(arr.buffers()[2], dtype=f"V{w}", count=n, offset=first)
    data = np.take(rows, order, mode="clip")  # (order is a permutation: no index to check)
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _one_timestamp(ts: np.ndarray) -> bool:
    """Whether every record has the same timestamp (a broadcast batch stamp: at once)."""
    return ts.strides[0] == 0 or bool(ts[0] == ts[-1] and (ts == ts[0]).all())


def _by_partition(parts: np.ndarray, nparts: int) -> tuple[np.ndarray, np.ndarray]:
    """The records' order sorted by partition (stable) and where each partition's run ends."""
    ends = np.cumsum(np.bincount(parts, minlength=nparts))
    # a stable sort of small integers is a radix sort in numpy: many times faster than int32's
    small = parts.astype(np.uint8) if nparts <= 0xFF else parts.astype(np.uint16) if nparts <= 0xFFFF else parts
    return np.argsort(small, kind="stable"), ends


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
        if timestamps is None or isinstance(timestamps, (int, np.integer)):
            # one timestamp for the batch: a read-only broadcast view (no array of n copies to
            # fill, gather and compare; encode sees its zero stride and stores it once)
            stamp = int(time.time() * 1000) if timestamps is None else int(timestamps)
            ts = np.broadcast_to(np.int64(stamp), (n,))
        else:
            ts = np.asarray(timestamps, dtype=np.int64)
        # columns as Arrow arrays: lengths, limits, hashing and the split by partition all run in C
        karr = None if keys is None else _arrow(keys)
        if partition is None and partitions is None and nparts > 1 and karr is not None and karr.null_count < n:
            self._send_keyed(t, topic, nparts, values, karr, ts, headers)
            return
        vals = _arrow(values)
        self._check(t, vals, karr)
        if partition is not None:
            if not 0 <= partition < nparts:
                self._log.partition(TopicPartition(topic, partition))  # raises with a clear message
            self._write(TopicPartition(topic, partition), ts, vals, karr, headers)
            return
        if partitions is not None:
            parts = np.asarray(partitions, dtype=np.int32)
        elif nparts == 1:
            self._write(TopicPartition(topic, 0), ts, vals, karr, headers)
            return
        elif karr is None or karr.null_count == n:
            self._write(TopicPartition(topic, next(self._sticky) % nparts), ts, vals, karr, headers)
            return
        elif karr.null_count:  # unkeyed records of a batch stick to one partition, as Kafka's do
            sticky = next(self._sticky) % nparts
            parts = np.full(n, sticky, dtype=np.int32)
            idx = np.nonzero(karr.is_valid().to_numpy(zero_copy_only=False))[0]
            parts[idx] = partitions_for(karr.take(idx), nparts)
        else:
            parts = partitions_for(karr, nparts)
        if len(parts) != n or (parts < 0).any() or (parts >= nparts).any():
            raise ValueError(f"partition out of range for topic '{topic}' ({nparts} partitions)")
        order, ends = _by_partition(parts, nparts)  # one take per column, then contiguous slices
        order_pa = pa.array(order)
        vals_s = vals.take(order_pa)
        keys_s = None if karr is None else karr.take(order_pa)
        ts_s = ts if _one_timestamp(ts) else ts[order]
        a = 0
        for p, b in enumerate(ends.tolist()):
            if b == a:
                continue
            self._write(
                TopicPartition(topic, p),
                ts_s[a:b],
                vals_s.slice(a, b - a),
                None if keys_s is None else keys_s.slice(a, b - a),
                None if headers is None else _take(headers, order[a:b]),
                t.partitions[p],
            )
            a = b

    def _send_keyed(self, t, topic: str, nparts: int, values, karr: pa.Array, ts: np.ndarray, headers) -> None:
        """The common case, keyed records over several partitions: order the records by
        partition first, so each column is built once, already split (no gather afterwards)."""
        n = len(karr)
        if karr.null_count:  # unkeyed records of a batch stick to one partition, as Kafka's do
            parts = np.full(n, next(self._sticky) % nparts, dtype=np.int32)
            idx = np.nonzero(karr.is_valid().to_numpy(zero_copy_only=False))[0]
            parts[idx] = partitions_for(karr.take(idx), nparts)
        else:
            parts = partitions_for(karr, nparts)
        order, ends = _by_partition(parts, nparts)
        order_pa = pa.array(order)
        vals = _arrow(values)  # (building the array first, then one take, is fastest)
        vw, kw = _widths(vals), _widths(karr)
        self._check(t, vals, karr, vw[1] + kw[1])
        vals = _gather(vals, order, order_pa, vw)
        keys_s = _gather(karr, order, order_pa, kw)
        ts_s = ts if _one_timestamp(ts) else ts[order]  # one timestamp: no gather
        a = 0
        for p, b in enumerate(ends.tolist()):
            if b == a:
                continue
            self._write(
                TopicPartition(topic, p),
                ts_s[a:b],
                vals.slice(a, b - a),
                keys_s.slice(a, b - a),
                None if headers is None else _take(headers, order[a:b]),
                t.partitions[p],
            )
            a = b

    def _check(self, t, values: pa.Array, keys: pa.Array | None, biggest: int | None = None) -> None:
        limit = t.settings.max_message_bytes
        if biggest is None:
            biggest = _max_len(values)
            if keys is not None:
                biggest += _max_len(keys)
        if biggest > limit:
            raise RecordTooLargeError(t.spec.name, biggest, limit)
        if t.settings.compact and (keys is None or keys.null_count):
            raise InvalidRecordError(
                f"topic '{t.spec.name}' is compacted (cleanup.policy=compact): every record needs a key"
            )

    def _write(self, tp: TopicPartition, ts, values, keys, headers, plog=None) -> None:
        if self._txn is not None:
            if self._pending is None:
                raise TransactionError("this producer is transactional: call begin_transaction() before sending")
            self._pending.setdefault(tp, []).append((ts, values, keys, headers))
            return
        if plog is None:
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
