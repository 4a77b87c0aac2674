"""The embedded log's producer: partitions a batch with numpy and appends one frame per partition.

The columns are converted once (see :mod:`.columns`): fixed-width keys and values are hashed
and gathered by partition where the conversion put them, and values of varying widths are
gathered from the conversion's binary views, each record copied once. The commonest batch,
keys and values each of one width and no headers, skips the Arrow columns altogether: every
partition's frame is built in one buffer (:mod:`.framer`) and written with one ``writev``.
"""

from __future__ import annotations

import itertools
import operator
import struct
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ...errors import InvalidRecordError, RecordTooLargeError, TransactionError
from ..base import Consumer, Headers, Producer, TopicPartition
from ..partitioner import murmur2_batch, partitions_for
from .columns import FixedColumn, ViewColumn, column, gather, to_arrow, widths
from .framer import fixed_frames
from .transactions import TransactionCoordinator

if TYPE_CHECKING:
    from .log import EmbeddedLog

_I64 = struct.Struct("<q")


def _max_len(arr: pa.Array) -> int:
    return widths(arr)[1]


def _one_timestamp(ts: np.ndarray) -> bool:
    """Whether every record has the same timestamp (a broadcast batch stamp: at once)."""
    return ts.strides[0] == 0 or bool(ts[0] == ts[-1] and (ts == ts[0]).all())


def _by_partition(parts: np.ndarray, nparts: int) -> tuple[np.ndarray, np.ndarray]:
    """The records' order sorted by partition (stable) and where each partition's run ends."""
    ends = np.cumsum(np.bincount(parts, minlength=nparts))
    # a stable sort of small integers is a radix sort in numpy: many times faster than int32's
    small = parts.astype(np.uint8) if nparts <= 0xFF else parts.astype(np.uint16) if nparts <= 0xFFFF else parts
    return np.argsort(small, kind="stable"), ends


def _order_fixed(keys: FixedColumn, nparts: int) -> tuple[np.ndarray, list[int]]:
    """The records' order sorted by Kafka's partition of their keys (stable), and how many
    records each partition gets: hashed where the keys lie."""
    chunks = keys.chunks
    if len(chunks) == 1:
        h = murmur2_batch(chunks[0][1])
    else:
        h = np.concatenate([murmur2_batch(rows) for _, rows in chunks])
    # Kafka's toPositive(murmur2) % partitions, straight to the small type the sort wants
    if nparts & (nparts - 1) == 0 and nparts <= 0x100:
        h &= np.uint32(nparts - 1)
        parts = h.astype(np.uint8)
    else:
        h &= np.uint32(0x7FFFFFFF)
        h %= np.uint32(nparts)
        parts = h.astype(np.uint8) if nparts <= 0x100 else h.astype(np.uint16) if nparts <= 0x10000 else h
    order = np.argsort(parts, kind="stable")  # (a radix sort of small integers)
    if nparts <= 8:  # (a few counts: faster than bincount, which widens the array first)
        return order, [int(np.count_nonzero(parts == p)) for p in range(nparts)]
    return order, np.bincount(parts, minlength=nparts).tolist()


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
            ts = np.ndarray((n,), np.int64, _I64.pack(stamp), 0, (0,))  # (np.broadcast_to, 20x faster)
        else:
            ts = np.asarray(timestamps, dtype=np.int64)
        if partition is None and partitions is None and nparts > 1 and keys is not None:
            # the common case: keyed records over several partitions. Fixed-width keys are
            # hashed where the conversion left them (no column built)
            kcol = column(keys)
            if isinstance(kcol, FixedColumn) or kcol.null_count < n:
                self._send_keyed(t, topic, nparts, values, kcol, ts, headers)
                return
            karr = kcol
        else:
            # columns as Arrow arrays: lengths, limits and the split by partition all run in C
            karr = None if keys is None else to_arrow(keys)
        vals = to_arrow(values)
        self._check(t, _max_len(vals) + (0 if karr is None else _max_len(karr)), karr)
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
        else:  # no key, or every key null (keyed batches went to _send_keyed): one partition, as Kafka's
            self._write(TopicPartition(topic, next(self._sticky) % nparts), ts, vals, karr, headers)
            return
        if len(parts) != n or (parts < 0).any() or (parts >= nparts).any():
            raise ValueError(f"partition out of range for topic '{topic}' ({nparts} partitions)")
        order, ends = _by_partition(parts, nparts)  # one take per column, then contiguous slices
        order_pa = pa.array(order)
        vals_s = vals.take(order_pa)
        keys_s = None if karr is None else karr.take(order_pa)
        self._write_split(t, topic, ends, order, ts, vals_s, keys_s, headers)

    def _send_keyed(
        self, t, topic: str, nparts: int, values, keys: pa.Array | FixedColumn, ts: np.ndarray, headers
    ) -> None:
        """The common case, keyed records over several partitions: hash the keys, order the
        records by partition, and gather each column once into that order, already split."""
        if isinstance(keys, FixedColumn):  # (no nulls) hashed where the conversion left them
            order, counts = _order_fixed(keys, nparts)
            # (the values converted after the hash: fresh in the cache for the gather)
            vals = column(values, views=True)
            if isinstance(vals, FixedColumn) and headers is None and self._txn is None:
                self._send_fixed(t, vals, keys, order, counts, ts)
                return
            ends = np.cumsum(counts)
            kwidths = (keys.width, keys.width)
        else:
            if keys.null_count:  # unkeyed records of a batch stick to one partition, as Kafka's do
                parts = np.full(len(keys), next(self._sticky) % nparts, dtype=np.int32)
                idx = np.nonzero(keys.is_valid().to_numpy(zero_copy_only=False))[0]
                parts[idx] = partitions_for(keys.take(idx), nparts)
            else:
                parts = partitions_for(keys, nparts)
            kwidths = widths(keys)
            order, ends = _by_partition(parts, nparts)
            vals = None
        if vals is None:  # (building the column first, then one gather, is fastest)
            vals = column(values, views=True)
        if isinstance(vals, FixedColumn):  # gathered straight from where the conversion left them
            self._check(t, vals.width + kwidths[1], keys)
            vals = vals.take(order)
        elif isinstance(vals, ViewColumn):  # any widths: each record copied once, into its place
            vals = vals.take(order)  # (nothing is written before the check)
            self._check(t, widths(vals)[1] + kwidths[1], keys)
        else:
            vwidths = widths(vals)
            self._check(t, vwidths[1] + kwidths[1], keys)
            vals = gather(vals, order, vwidths)
        keys_s = keys.take(order) if isinstance(keys, FixedColumn) else gather(keys, order, kwidths)
        self._write_split(t, topic, ends, order, ts, vals, keys_s, headers)

    def _send_fixed(self, t, vals: FixedColumn, keys: FixedColumn, order: np.ndarray, counts: list[int],
                    ts: np.ndarray) -> None:
        """The commonest batch, keys and values each of one width (ids; padded or fixed-size
        payloads), no headers: every partition's frame built in one buffer, each record
        copied once, and appended."""
        self._check(t, vals.width + keys.width, keys)
        frames = fixed_frames(keys, vals, order, counts, ts, _one_timestamp(ts))
        fsync = self._log.fsync
        for p, frame in enumerate(frames):
            if frame is not None:
                plog = t.partitions[p]
                plog.append_encoded([frame])
                if fsync:
                    plog.sync()

    def _write_split(self, t, topic: str, ends: np.ndarray, order: np.ndarray, ts: np.ndarray,
                     vals: pa.Array, keys: pa.Array | None, headers) -> None:
        """Write the records (in partition order, each partition's run ending at ``ends``):
        one frame a partition."""
        ts_s = ts if _one_timestamp(ts) else ts[order]  # one timestamp: no gather
        a = 0
        for p, b in enumerate(ends.tolist()):
            if b == a:
                continue
            self._write(
                TopicPartition(topic, p),
                ts_s[a:b],
                vals.slice(a, b - a),
                None if keys is None else keys.slice(a, b - a),
                None if headers is None else _take(headers, order[a:b]),
                t.partitions[p],
            )
            a = b

    def _check(self, t, biggest: int, keys: pa.Array | FixedColumn | None) -> None:
        """Raise unless every record fits the topic (``biggest``: its longest key + value)."""
        limit = t.settings.max_message_bytes
        if biggest > limit:
            raise RecordTooLargeError(t.spec.name, biggest, limit)
        if t.settings.compact and (keys is None or (isinstance(keys, pa.Array) and keys.null_count)):
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
