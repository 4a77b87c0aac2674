"""Windowed aggregation (tumbling and hopping): per key and window, with grace and late data.

Window assignment and the late check are vectorized over the batch. Stream time as of each
record is the running maximum of timestamps, so a record is late exactly when Kafka Streams
would call it late. With ``emit_final`` (ksqlDB's EMIT FINAL, Kafka Streams' suppress) a
window's result is emitted once, when it closes; pending windows are kept in their own
changelogged store keyed by (end, window) so closing is a range scan, and survives restarts.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ...state import split_window_key, window_key
from ..aggregators import Aggregator
from ..batch import Batch
from ..node import Node
from ..windows import TimeWindows, Windowed
from .aggregate import decode_key, encode_key

_TS = struct.Struct(">q")
_U64 = struct.Struct(">Q")


def _end_key(end: int) -> bytes:
    """A window end as a pending-store key prefix that sorts like the number.

    Signed big-endian bytes sort negative numbers after positive ones, so the close bound
    (stream time - grace + 1, negative while stream time < grace) took in every pending window.
    """
    return _U64.pack(end + (1 << 63))


class WindowedAggregateNode(Node):
    """Aggregates a stream per (key, time window)."""

    def __init__(self, name: str, store_name: str, windows: TimeWindows, agg: Aggregator, emit_final: bool = False) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.windows = windows
        self.agg = agg
        self.emit_final = emit_final

    def init(self, ctx) -> None:
        super().init(ctx)
        w = self.windows
        self.store = ctx.window_store(self.store_name, w.retention_ms, max(w.retention_ms // 2, 60_000))
        self.pending = ctx.kv_store(self.store_name + "-suppress") if self.emit_final else None

    def _value(self, ts: int, agg: Any) -> bytes:
        return _TS.pack(ts) + self.agg.encode(agg)

    def process(self, batch: Batch) -> None:
        w = self.windows
        keep = np.array([k is not None for k in batch.keys], dtype=bool)
        if not keep.all():
            self.ctx.null_keys(self.name, batch, np.nonzero(~keep)[0].tolist())
            batch = batch.take(keep)
        if not len(batch):
            return
        ts = batch.timestamps
        stream_time = np.maximum.accumulate(np.maximum(ts, self.ctx.stream_time))
        rec, starts = w.assign(ts)
        late = starts + w.size + w.grace <= stream_time[rec]
        if late.any():
            self.ctx.late(self.name, int(late.sum()))
            rec, starts = rec[~late], starts[~late]
        if not len(rec):
            return
        expanded = batch.take(rec) if len(rec) != len(batch) or not (rec == np.arange(len(batch))).all() else batch
        keys = expanded.keys
        starts_l = starts.tolist()
        if self.ctx.caching and self.agg.batchable:
            wkeys = list(zip(keys, starts_l))
            partials = self.agg.partial(wkeys, expanded)
            ts_by: dict = {}
            for wk, t in zip(wkeys, expanded.timestamps.tolist()):
                if t > ts_by.get(wk, -(1 << 62)):
                    ts_by[wk] = t
            init = self.agg.initial
            for (k, s), part in partials.items():
                kb = encode_key(k)
                cur = self.store.get(kb, s)
                ts0, a = (_TS.unpack_from(cur)[0], self.agg.decode(cur[8:])) if cur is not None else (-(1 << 62), init())
                self.store.put(kb, s, self._value(max(ts0, ts_by[(k, s)]), self.agg.merge(a, part)))
                if self.pending is not None:
                    self.pending.put(_end_key(s + w.size) + window_key(kb, s), b"")
            return
        emit = not self.ctx.caching and not self.emit_final
        out_k, out_new, out_old, out_ts = [], [], [], []
        init = self.agg.initial
        for k, s, v, t in zip(keys, starts_l, expanded.rows(), expanded.timestamps.tolist()):
            kb = encode_key(k)
            cur = self.store.get(kb, s)
            ts0, a = (_TS.unpack_from(cur)[0], self.agg.decode(cur[8:])) if cur is not None else (-(1 << 62), init())
            new = self.agg.add(a, k, v)
            self.store.put(kb, s, self._value(max(ts0, t), new))
            if self.pending is not None:
                self.pending.put(_end_key(s + w.size) + window_key(kb, s), b"")
            if emit:
                out_k.append(Windowed(k, s, s + w.size))
                out_new.append(self.agg.result(new))
                out_old.append(None if cur is None else self.agg.result(a))
                out_ts.append(t)
        if out_k:
            self.forward(Batch(out_k, out_new, np.asarray(out_ts, dtype=np.int64), old_values=out_old))

    def commit(self) -> None:
        changes = self.store.flush_with_old()
        if self.pending is not None:
            self.pending.flush()
        if not self.ctx.caching or self.emit_final or not changes:
            return
        keys, new, old, ts = [], [], [], []
        res = self.agg.result
        for wk, o, n in changes:
            kb, s = split_window_key(wk)
            keys.append(Windowed(decode_key(kb), s, s + self.windows.size))
            new.append(None if n is None else res(self.agg.decode(n[8:])))
            old.append(None if o is None else res(self.agg.decode(o[8:])))
            ts.append(_TS.unpack_from(n)[0] if n is not None else 0)
        self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))

    def advance(self, stream_time: int, wall_time: int) -> None:
        if self.pending is not None:
            self._emit_closed(stream_time)
        # only after emitting: a jump in stream time may expire the segments of the closed windows
        self.store.advance(stream_time)

    def _emit_closed(self, stream_time: int) -> None:
        w = self.windows
        closed = list(self.pending.range(None, _end_key(stream_time - w.grace + 1)))
        if not closed:
            return
        keys, vals, ts = [], [], []
        for pk, _ in closed:
            wk = pk[8:]
            kb, s = split_window_key(wk)
            cur = self.store.get(kb, s)
            if cur is not None:
                keys.append(Windowed(decode_key(kb), s, s + w.size))
                vals.append(self.agg.result(self.agg.decode(cur[8:])))
                ts.append(_TS.unpack_from(cur)[0])
            self.pending.delete(pk)
        if keys:
            self.forward(Batch(keys, vals, np.asarray(ts, dtype=np.int64)))
