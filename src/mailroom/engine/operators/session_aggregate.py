"""Session-windowed aggregation (Kafka Streams' ``windowedBy(SessionWindows)``).

A session of a key is a run of its records with no gap longer than ``gap`` ms between them;
its window is ``[first record time, last record time]`` (both inclusive). A record within
``gap`` of one or more existing sessions of its key extends them: those sessions are merged
(with ``merger``) into one, the merged-away ones are retracted downstream with a tombstone for
their old ``Windowed`` key, and the merged session is emitted under its new key.

Lateness and closing follow Kafka Streams: with ``close = stream time - gap - grace``, a record
whose merged session would end before ``close`` is late (dropped, counted, and reported to the
processing log), and with ``emit_final`` a session is emitted once, when ``end < close``
(i.e. ``end + gap + grace < stream time``: a session end is inclusive).

Sessions live in a window store (so they are changelogged and restored, and expire by whole
segments): keyed by (key, session end) -- a key's sessions never share an end -- with the
session start in the value, so finding the sessions a record may touch is one range scan per
key from ``ts - gap`` on, stopping at the first session starting after ``ts + gap``. With
``emit_final`` pending sessions are also indexed by end in a changelogged key-value store,
so closing them is a range scan that survives restarts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ...state import split_window_key, window_key
from ..aggregators import Aggregator, CountAggregator, SumAggregator, aggregator
from ..batch import Batch
from ..node import Node
from ..windows import SessionWindowed, SessionWindows, Windowed
from .aggregate import decode_key, encode_key
from .windowed_aggregate import _end_key

if TYPE_CHECKING:
    from ..topology import Stream, Table

_TS = struct.Struct(">q")
_MAX_TS = 1 << 62

#: ``merger(key, aggregate1, aggregate2) -> aggregate``
Merger = Callable[[Any, Any, Any], Any]


def _add_merger(key: Any, a: Any, b: Any) -> Any:
    return a + b


class SessionAggregateNode(Node):
    """Aggregates a stream per (key, session)."""

    def __init__(self, name: str, store_name: str, windows: SessionWindows, agg: Aggregator, merger: Merger,
                 emit_final: bool = False) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.windows = windows
        self.agg = agg
        self.merger = merger
        self.emit_final = emit_final

    def init(self, ctx) -> None:
        super().init(ctx)
        w = self.windows
        self.store = ctx.window_store(self.store_name, w.retention_ms, max(w.retention_ms // 2, 60_000))
        self.pending = ctx.kv_store(self.store_name + "-suppress") if self.emit_final else None

    # -- encoding ---------------------------------------------------------------------------------
    def _value(self, start: int, agg: Any) -> bytes:
        return _TS.pack(start) + self.agg.encode(agg)

    def _decode(self, raw: bytes) -> tuple[int, Any]:
        return _TS.unpack_from(raw)[0], self.agg.decode(raw[8:])

    def _find(self, kb: bytes, ts: int) -> list[tuple[int, int, Any]]:
        """(start, end, aggregate) of the key's live sessions with end >= ts - gap and start <= ts + gap."""
        gap = self.windows.gap
        visible = self.store.observed_time - self.store.retention_ms  # older ones are expired (puts there are ignored)
        lo = max(0, ts - gap, visible)
        out = []
        for end, raw in self.store.fetch(kb, lo, _MAX_TS):
            start, a = self._decode(raw)
            if start > ts + gap:
                break  # sessions never overlap: later ones start later still
            out.append((start, end, a))
        return out

    # -- processing ---------------------------------------------------------------------------------
    def process(self, batch: Batch) -> None:
        keep = np.array([k is not None for k in batch.keys], dtype=bool)
        if not keep.all():
            self.ctx.null_keys(self.name, batch, np.nonzero(~keep)[0].tolist())
            batch = batch.take(keep)
        if not len(batch):
            return
        w = self.windows
        stream_time = np.maximum.accumulate(np.maximum(batch.timestamps, self.ctx.stream_time)).tolist()
        emit = not self.ctx.caching and not self.emit_final
        out_k, out_new, out_old, out_ts = [], [], [], []
        res, late = self.agg.result, 0
        for i, (k, v, t) in enumerate(zip(batch.keys, batch.rows(), batch.timestamps.tolist())):
            kb = encode_key(k)
            found = self._find(kb, t)
            start = min([t] + [s for s, _, _ in found])
            end = max([t] + [e for _, e, _ in found])
            if end + w.gap + w.grace < stream_time[i]:
                late += 1
                continue
            try:
                a = self.agg.initial()
                for _, _, fa in found:
                    a = self.merger(k, a, fa)
                new = self.agg.add(a, k, v)
            except Exception as e:  # a failing aggregate/merge function skips the record
                self.ctx.processing_log.report(
                    f"{type(e).__name__}: {e}", operator=self.name, topic=batch.topic, partition=batch.partition,
                    offset=None if batch.offsets is None else int(batch.offsets[i]),
                )
                continue
            previous = None  # the aggregate the new session's own key had, if it existed
            for s, e, fa in found:
                if (s, e) == (start, end):
                    previous = fa
                    continue
                self.store.put(kb, e, None)
                if self.pending is not None:
                    self.pending.delete(_end_key(e) + window_key(kb, e))
                if emit:
                    out_k.append(SessionWindowed(k, s, e))
                    out_new.append(None)
                    out_old.append(res(fa))
                    out_ts.append(e)
            self.store.put(kb, end, self._value(start, new))
            if self.pending is not None:
                self.pending.put(_end_key(end) + window_key(kb, end), b"")
            if emit:
                out_k.append(SessionWindowed(k, start, end))
                out_new.append(res(new))
                out_old.append(None if previous is None else res(previous))
                out_ts.append(end)
        if late:
            self.ctx.late(self.name, late)
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
            kb, end = split_window_key(wk)
            k = decode_key(kb)
            os_, oa = self._decode(o) if o is not None else (None, None)
            if n is None:
                if o is not None:
                    keys.append(SessionWindowed(k, os_, end)), new.append(None), old.append(res(oa)), ts.append(end)
                continue
            ns, na = self._decode(n)
            if o is not None and os_ != ns:  # same end, earlier start: a different session key
                keys.append(SessionWindowed(k, os_, end)), new.append(None), old.append(res(oa)), ts.append(end)
                o = None
            keys.append(SessionWindowed(k, ns, end)), new.append(res(na)), old.append(None if o is None else res(oa)), ts.append(end)
        if keys:
            self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))

    def advance(self, stream_time: int, wall_time: int) -> None:
        if self.pending is not None:
            self._emit_closed(stream_time)
        # only after emitting: a jump in stream time may expire the segments of the closed sessions
        self.store.advance(stream_time)

    def _emit_closed(self, stream_time: int) -> None:
        w = self.windows
        closed = list(self.pending.range(None, _end_key(stream_time - w.gap - w.grace)))  # end + gap + grace < stream time
        if not closed:
            return
        keys, vals, ts = [], [], []
        for pk, _ in closed:
            kb, end = split_window_key(pk[8:])
            cur = self.store.get(kb, end)
            if cur is not None:
                start, a = self._decode(cur)
                keys.append(SessionWindowed(decode_key(kb), start, end))
                vals.append(self.agg.result(a))
                ts.append(end)
            self.pending.delete(pk)
        if keys:
            self.forward(Batch(keys, vals, np.asarray(ts, dtype=np.int64)))


class SessionWindowedGroupedStream:
    """A grouped stream, windowed into sessions (from ``GroupedStream.windowed_by(SessionWindows(...))``)."""

    def __init__(self, stream: Stream, windows: SessionWindows) -> None:
        self._s = stream
        self._w = windows

    def _aggregate(self, kind: str, agg: Aggregator, merger: Merger, name: str | None, emit_final: bool) -> Table:
        from ..topology import NodeSpec, Table

        top = self._s._top
        name = name or top._name(kind)
        store = f"{name}-store"
        stores = [(store, "window")] + ([(store + "-suppress", "kv")] if emit_final else [])
        w = self._w
        top._add(NodeSpec(name, lambda: SessionAggregateNode(name, store, w, agg, merger, emit_final), [self._s._node], stores=stores))
        return Table(top, name, store)

    def count(self, *, emit_final: bool = False, name: str | None = None) -> Table:
        """Records per key and session; ``emit_final``: only each session's final count, when it closes."""
        return self._aggregate("SESSION-COUNT", CountAggregator(), _add_merger, name, emit_final)

    def sum(self, field: str, *, emit_final: bool = False, name: str | None = None) -> Table:
        """Sum of a value field per key and session."""
        return self._aggregate("SESSION-SUM", SumAggregator(field), _add_merger, name, emit_final)

    def aggregate(
        self,
        initializer: Callable[[], Any],
        adder: Callable[[Any, Any, Any], Any],
        merger: Merger,
        *,
        emit_final: bool = False,
        name: str | None = None,
    ) -> Table:
        """``adder(key, value, aggregate) -> aggregate`` from ``initializer()``; when sessions merge,
        ``merger(key, aggregate1, aggregate2) -> aggregate`` combines theirs."""
        return self._aggregate("SESSION-AGGREGATE", aggregator(initializer, adder), merger, name, emit_final)

    def reduce(self, reducer: Callable[[Any, Any], Any], *, emit_final: bool = False, name: str | None = None) -> Table:
        """``reducer(aggregate, value) -> aggregate``; merged sessions are combined with the reducer too."""

        def merge(k, a, b):
            return b if a is None else a if b is None else reducer(a, b)

        return self._aggregate(
            "SESSION-REDUCE", aggregator(lambda: None, lambda k, v, a: v if a is None else reducer(a, v)), merge, name, emit_final
        )
