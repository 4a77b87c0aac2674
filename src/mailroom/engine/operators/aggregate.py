"""Stream aggregation into a table: count, reduce, aggregate per key.

State lives in the task's key-value store (through the write-back cache). With caching on,
each batch touches each key's state once (pre-aggregated per batch where the aggregator can),
and the coalesced changes are emitted at commit; with caching off every record's update is
emitted in order. Emitted changes carry the previous value (``old_values``) so tables built on
them can retract it. Records with a NULL key are skipped, counted and reported to the processing log.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ..codec import pack, unpack
from ...state import ExpiryIndex
from ..aggregators import Aggregator
from ..batch import Batch
from ..node import Node

_TS = struct.Struct(">q")


def encode_key(key: Any) -> bytes:
    return pack(key)


def decode_key(raw: bytes) -> Any:
    return unpack(raw, use_list=False)


class AggregateNode(Node):
    """Per-key aggregation of a stream."""

    def __init__(self, name: str, store_name: str, agg: Aggregator, ttl_ms: int | None = None) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.agg = agg
        #: state TTL: a key not updated for this long (in stream time) is deleted, and its
        #: deletion emitted as a tombstone carrying the last value as the old value
        self.ttl_ms = ttl_ms
        self.expiry: ExpiryIndex | None = None
        self._next_due: int | None = None

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)
        if self.ttl_ms is not None:
            self.expiry = ExpiryIndex(ctx.kv_store(self.store_name + "-expiry"))

    def _touch(self, kb: bytes, previous_ts: int | None, ts: int) -> None:
        """Reschedule a key's expiry after an update (TTL only)."""
        ttl = self.ttl_ms
        due = ts + ttl
        self.expiry.set(kb, due, None if previous_ts is None else previous_ts + ttl)
        if self._next_due is not None and due < self._next_due:
            self._next_due = due

    def advance(self, stream_time: int, wall_time: int) -> None:
        self._expire(stream_time)

    def _expire(self, stream_time: int) -> None:
        if self.expiry is None or (self._next_due is not None and stream_time < self._next_due):
            return
        keys, old, ts = [], [], []
        for due, kb in self.expiry.due(stream_time):
            self.expiry.remove(kb, due)
            raw = self.store.get(kb)
            if raw is None or _TS.unpack_from(raw)[0] + self.ttl_ms != due:
                continue  # updated (or deleted) since this entry was made
            self.store.delete(kb)
            self.ctx.count("state-ttl-expired")
            if not self.ctx.caching:  # with caching the deletion goes out at commit
                keys.append(decode_key(kb))
                old.append(self.agg.result(self.agg.decode(raw[8:])))
                ts.append(stream_time)
        nxt = self.expiry.due(1 << 62, limit=1)
        self._next_due = nxt[0][0] if nxt else 1 << 62
        if keys:
            self.forward(Batch(keys, [None] * len(keys), np.asarray(ts, dtype=np.int64), old_values=old))

    def _load(self, kbs: list[bytes]) -> list[tuple[int, Any] | None]:
        out = []
        for raw in self.store.get_many(kbs):
            out.append(None if raw is None else (_TS.unpack_from(raw)[0], self.agg.decode(raw[8:])))
        return out

    def _value(self, ts: int, agg: Any) -> bytes:
        return _TS.pack(ts) + self.agg.encode(agg)

    def process(self, batch: Batch) -> None:
        nulls = [i for i, k in enumerate(batch.keys) if k is None]
        if nulls:
            self.ctx.null_keys(self.name, batch, nulls)
            keep = np.ones(len(batch), dtype=bool)
            keep[nulls] = False
            batch = batch.take(keep)
            if not len(batch):
                return
        if self.expiry is not None and len(batch.timestamps):
            # keys already due before the batch's earliest record expire before it touches them
            self._expire(max(self.ctx.stream_time, int(batch.timestamps.min())))
        if self.ctx.caching and self.agg.batchable:
            self._process_batched(batch)
        else:
            self._process_records(batch)

    def _process_batched(self, batch: Batch) -> None:
        partials = self.agg.partial(batch.keys, batch)
        uniq = list(partials)
        kbs = [encode_key(k) for k in uniq]
        ts_by_key = _max_ts(batch.keys, batch.timestamps)
        current = self._load(kbs)
        init = self.agg.initial
        puts = []
        for k, kb, cur in zip(uniq, kbs, current):
            ts0, a = cur if cur is not None else (-(1 << 62), init())
            ts1 = max(ts0, ts_by_key[k])
            puts.append((kb, self._value(ts1, self.agg.merge(a, partials[k]))))
            if self.expiry is not None:
                self._touch(kb, None if cur is None else ts0, ts1)
        self.store.put_many(puts)

    def _process_records(self, batch: Batch) -> None:
        kbs = [encode_key(k) for k in batch.keys]
        uniq = list(dict.fromkeys(kbs))
        state = dict(zip(uniq, self._load(uniq)))
        first_ts = {kb: s[0] for kb, s in state.items() if s is not None}  # for the TTL index
        emit = not self.ctx.caching
        out_keys, out_new, out_old, out_ts = [], [], [], []
        agg, init = self.agg, self.agg.initial
        for i, (k, kb, v, ts) in enumerate(zip(batch.keys, kbs, batch.rows(), batch.timestamps.tolist())):
            cur = state[kb]
            ts0, a = cur if cur is not None else (-(1 << 62), init())
            try:
                new = agg.add(a, k, v)
            except Exception as e:  # a failing aggregate function skips the record
                self.ctx.processing_log.report(
                    f"{type(e).__name__}: {e}", operator=self.name, topic=batch.topic, partition=batch.partition,
                    offset=None if batch.offsets is None else int(batch.offsets[i]),
                )
                continue
            state[kb] = (max(ts0, ts), new)
            if emit:
                out_keys.append(k)
                out_new.append(agg.result(new))
                out_old.append(None if cur is None else agg.result(a))
                out_ts.append(ts)
                self.store.put(kb, self._value(max(ts0, ts), new))
        if self.expiry is not None:
            for kb, s in state.items():
                if s is not None:
                    self._touch(kb, first_ts.get(kb), s[0])
        if not emit:
            self.store.put_many((kb, self._value(*s)) for kb, s in state.items() if s is not None)
        elif out_keys:
            self.forward(Batch(out_keys, out_new, np.asarray(out_ts, dtype=np.int64), old_values=out_old))

    def commit(self) -> None:
        if not self.ctx.caching:
            return
        changes = self.store.flush_with_old()
        if not changes:
            return
        keys, new, old, ts = [], [], [], []
        res = self.agg.result
        for kb, o, n in changes:
            keys.append(decode_key(kb))
            new.append(None if n is None else res(self.agg.decode(n[8:])))
            old.append(None if o is None else res(self.agg.decode(o[8:])))
            ts.append(_TS.unpack_from(n)[0] if n is not None else self.ctx.stream_time)
        self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))


def _max_ts(keys: list, timestamps: np.ndarray) -> dict:
    out: dict = {}
    for k, t in zip(keys, timestamps.tolist()):
        if t > out.get(k, -(1 << 62)):
            out[k] = t
    return out
