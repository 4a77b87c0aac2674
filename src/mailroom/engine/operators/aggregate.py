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

import msgpack
import numpy as np

from ..aggregators import Aggregator
from ..batch import Batch
from ..node import Node

_TS = struct.Struct(">q")


def encode_key(key: Any) -> bytes:
    return msgpack.packb(key, use_bin_type=True)


def decode_key(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, use_list=False)


class AggregateNode(Node):
    """Per-key aggregation of a stream."""

    def __init__(self, name: str, store_name: str, agg: Aggregator) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.agg = agg

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)

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
            puts.append((kb, self._value(max(ts0, ts_by_key[k]), self.agg.merge(a, partials[k]))))
        self.store.put_many(puts)

    def _process_records(self, batch: Batch) -> None:
        kbs = [encode_key(k) for k in batch.keys]
        uniq = list(dict.fromkeys(kbs))
        state = dict(zip(uniq, self._load(uniq)))
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
            ts.append(_TS.unpack_from(n)[0] if n is not None else 0)
        self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))


def _max_ts(keys: list, timestamps: np.ndarray) -> dict:
    out: dict = {}
    for k, t in zip(keys, timestamps.tolist()):
        if t > out.get(k, -(1 << 62)):
            out[k] = t
    return out
