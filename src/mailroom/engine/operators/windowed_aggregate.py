"""Windowed aggregation (tumbling and hopping): per key and window, with grace and late data.

Window assignment and the late check are vectorized over the batch. Stream time as of each
record is the running maximum of timestamps, so a record is late exactly when Kafka Streams
would call it late. With ``emit_final`` (ksqlDB's EMIT FINAL, Kafka Streams' suppress) a
window's result is emitted once, when it closes; pending windows are kept in their own
changelogged store keyed by (end, window) so closing is a range scan, and survives restarts.

``final_within_retention`` (what ksqlDB's EMIT FINAL does): Kafka Streams' emit-on-window-close
reads the closed windows back from the window store, and that store has already dropped
windows older than its retention (size + grace unless set) as of the latest window start put.
So a window closed by a jump in stream time so large that it left the retention at that same
record never gets a final result. Without the flag every window's final result is emitted.
"""

from __future__ import annotations

import operator
import struct
from typing import Any

import numpy as np
import polars as pl

from ...state import split_window_key, window_key
from ..aggregators import Aggregator, CountAggregator
from ..batch import Batch
from ..node import Node
from ..windows import TimeWindows, Windowed
from .aggregate import _ABSENT, _IS_STR, _NO_TS, _SCALARS, _max_ts, decode_key, encode_key

_TS = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_first = operator.itemgetter(0)
_UNDECODED = object()  # an entry's state at the last commit is not held decoded (read it from the raw value)
#: how many open windows a windowed aggregation keeps decoded across commits (the rest are
#: read back from the store when a record comes for them)
KEEP_WINDOWS = 100_000


def _end_key(end: int) -> bytes:
    """A window end as a pending-store key prefix that sorts like the number.

    Signed big-endian bytes sort negative numbers after positive ones, so the close bound
    (stream time - grace + 1, negative while stream time < grace) took in every pending window.
    """
    return _U64.pack(end + (1 << 63))


class WindowedAggregateNode(Node):
    """Aggregates a stream per (key, time window)."""

    def __init__(self, name: str, store_name: str, windows: TimeWindows, agg: Aggregator, emit_final: bool = False, *,
                 final_within_retention: bool = False) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.windows = windows
        self.agg = agg
        self.emit_final = emit_final
        self.final_within_retention = final_within_retention
        #: the stream times this node's records took since the last advance (ascending runs), to
        #: tell at which record each closing window closed (see ``final_within_retention``)
        self._times: list[np.ndarray] = []
        #: (key, start) -> [key bytes, start, max timestamp, state, raw value at the last commit, raw value now,
        #: window key, state at the last commit (if a scalar, else _UNDECODED)]; open windows stay
        #: here across commits (up to KEEP_WINDOWS), so a window a batch goes on with is not read back
        self._hot: dict[Any, list] = {}
        #: windows changed since the last commit, in order of their first change (emitted at commit)
        self._changed: dict[Any, None] = {}
        self._simple: bool | None = None
        #: ``_hot`` entries changed since their state was last put in the store (deferred writes,
        #: as in AggregateNode; not with emit_final, whose pending index is written per batch)
        self._dirty: dict[Any, None] = {}

    def init(self, ctx) -> None:
        super().init(ctx)
        w = self.windows
        self.store = ctx.window_store(self.store_name, w.retention_ms, max(w.retention_ms // 2, 60_000))
        self.pending = ctx.kv_store(self.store_name + "-suppress") if self.emit_final else None

    def _value(self, ts: int, agg: Any) -> bytes:
        return _TS.pack(ts) + self.agg.encode(agg)

    def process(self, batch: Batch) -> None:
        w = self.windows
        ks = batch.key_series()
        if ks is not None and not ks.null_count():
            keep = np.ones(len(batch), dtype=bool)  # (a key column says so at once)
        else:
            keep = np.array([k is not None for k in batch.keys], dtype=bool)
        if not keep.all():
            self.ctx.null_keys(self.name, batch, np.nonzero(~keep)[0].tolist())
            batch = batch.take(keep)
        if not len(batch):
            return
        ts = batch.timestamps
        stream_time = np.maximum.accumulate(np.maximum(ts, self.ctx.stream_time))
        if self.final_within_retention and self.emit_final:
            self._times.append(stream_time[np.r_[True, stream_time[1:] != stream_time[:-1]]])
        rec, starts = w.assign(ts)
        late = starts + w.size + w.grace <= stream_time[rec]
        if late.any():
            self.ctx.late(self.name, int(late.sum()))
            rec, starts = rec[~late], starts[~late]
        if not len(rec):
            return
        expanded = batch.take(rec) if len(rec) != len(batch) or not (rec == np.arange(len(batch))).all() else batch
        if self.ctx.caching:
            self._process_hot(expanded, starts)
            return
        keys = expanded.keys
        starts_l = starts.tolist()
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

    # -- caching: the node's own cache of decoded state (as in AggregateNode) -------------------------
    def _process_hot(self, batch: Batch, starts: np.ndarray) -> None:
        """Per (key, window): state decoded once per commit interval, one store read for the
        windows new to it and one write per window per batch; emitted at commit from here."""
        agg, hot = self.agg, self._hot
        ks = batch.key_series()
        if ks is not None and ks.dtype == pl.String and not ks.null_count():
            simple = self._simple is not False  # (all str: the column's type says so)
            keys = None  # the list, only if a path below needs it
        else:
            ks = None
            keys = batch.keys
            simple = self._simple is not False and all(map(_IS_STR, keys))
        if not simple and self._simple:
            self._dirty = {(hot[w][0], hot[w][1]): None for w in self._dirty}
            self._changed = {(hot[w][0], hot[w][1]): None for w in self._changed}
            self._hot = hot = {(e[0], e[1]): e for e in hot.values()}  # from now on by key bytes
        self._simple = simple
        ts = batch.timestamps
        if agg.batchable and simple and type(agg) is CountAggregator:
            # counts and latest timestamps per window in one polars group_by: no per-record Python
            g = (pl.DataFrame({"k": ks if ks is not None else pl.Series(keys, dtype=pl.String), "s": starts, "t": ts})
                 .group_by("k", "s", maintain_order=True).agg(pl.len().alias("n"), pl.col("t").max()))
            wins = list(zip(g["k"].to_list(), g["s"].to_list()))
            parts, tmax = g["n"].to_list(), g["t"].to_list()
            self._load_hot(wins, simple)
            merge, init = agg.merge, agg.initial
            for wk, part, t in zip(wins, parts, tmax):
                e = hot[wk]
                a = e[3]
                e[3] = merge(init() if a is _ABSENT else a, part)
                if t > e[2]:
                    e[2] = t
            self._put_hot(wins)
            return
        if keys is None:
            keys = batch.keys
        starts_l = starts.tolist()
        lks = list(zip(keys, starts_l) if simple else zip(map(encode_key, keys), starts_l))
        self._load_hot(lks, simple)
        if agg.batchable:
            partials = agg.partial(lks, batch)
            ts_by = _max_ts(lks, ts)
            merge, init = agg.merge, agg.initial
            for wk, part in partials.items():
                e = hot[wk]
                a = e[3]
                e[3] = merge(init() if a is _ABSENT else a, part)
                if ts_by[wk] > e[2]:
                    e[2] = ts_by[wk]
            self._put_hot(partials)
            return
        add, init = agg.add, agg.initial
        for wk, k, v, t in zip(lks, keys, batch.rows(), ts.tolist()):
            e = hot[wk]
            a = e[3]
            e[3] = add(init() if a is _ABSENT else a, k, v)
            if t > e[2]:
                e[2] = t
        self._put_hot(dict.fromkeys(lks))

    def _load_hot(self, wins: list, simple: bool) -> None:
        hot = self._hot
        new = [w for w in dict.fromkeys(wins) if w not in hot]
        if not new:
            return
        byte_wins = [(encode_key(k), s) for k, s in new] if simple else new
        wks = [(window_key(kb, s), s) for kb, s in byte_wins]
        decode = self.agg.decode
        # (windows not in _hot have no deferred write: no need to run it for this read)
        for w, (kb, s), (wk, _s), raw in zip(new, byte_wins, wks, self.store.get_many(wks, keyed=True, deferred=True)):
            if raw is None:
                hot[w] = [kb, s, _NO_TS, _ABSENT, None, None, wk, _UNDECODED]
            else:
                a = decode(raw[8:])
                hot[w] = [kb, s, _TS.unpack_from(raw)[0], a, raw, raw, wk, a if type(a) in _SCALARS else _UNDECODED]

    def _put_hot(self, wins) -> None:
        touched = dict.fromkeys(wins)
        self._changed.update(touched)
        if self.pending is None:  # put at the next read or flush of the store, once per commit
            self._dirty.update(touched)
            self.store.defer(self._write_dirty)
            return
        self._put(wins)

    def _write_dirty(self) -> None:
        dirty, self._dirty = self._dirty, {}
        hot = self._hot
        self._put([w for w in dirty if w in hot])

    def _put(self, wins) -> None:
        hot, enc, pk, pending = self._hot, self.agg.encode, _TS.pack, self.pending
        size = self.windows.size
        puts = []
        for w in wins:
            e = hot[w]
            e[5] = raw = pk(e[2]) + enc(e[3])
            puts.append((e[6], e[1], raw))
            if pending is not None:
                pending.put(_end_key(e[1] + size) + e[6], b"")
        self.store.put_many(puts, keyed=True)

    def _commit_hot(self) -> None:
        self._write_dirty()
        hot, changed = self._hot, self._changed
        self._changed = {}
        self.store.flush()
        if self.pending is not None:
            self.pending.flush()
        if changed and not self.emit_final:
            self._emit_changed([(w, hot[w]) for w in changed if w in hot])
        self._keep_open(hot)

    def _emit_changed(self, items: list) -> None:
        seg_ms, segments = self.store.segment_ms, self.store.segments()
        # in the order the store's flush would give: by segment, then by first update (windows
        # whose segment was dropped since are not emitted: the store lost them too)
        sids = [e[1] // seg_ms for _w, e in items]
        if sids.count(sids[0]) == len(sids) and sids[0] in segments:
            entries = items
        else:
            entries = [it for _sid, it in sorted(zip(sids, items), key=_first) if _sid in segments]
        keys, new, old, ts = [], [], [], []
        res, decode, size = self.agg.result, self.agg.decode, self.windows.size
        simple = self._simple is True
        for w, (kb, s, t, a, o, n, _wk, oa) in entries:
            keys.append(Windowed(w[0] if simple else decode_key(kb), s, s + size))
            new.append(res(a if type(a) in _SCALARS else decode(n[8:])))
            old.append(None if o is None else res(oa if oa is not _UNDECODED else decode(o[8:])))
            ts.append(t)
        if keys:
            self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))

    def _keep_open(self, hot: dict) -> None:
        """Keep the decoded windows that may still change (not closed by grace), the newest
        up to KEEP_WINDOWS, their current value now the value as of this commit."""
        w = self.windows
        closed = self.ctx.stream_time - w.size - w.grace  # a window starting at or before it is closed
        keep = {k: e for k, e in hot.items() if e[1] > closed and e[3] is not _ABSENT}
        if len(keep) > KEEP_WINDOWS:
            keep = dict(sorted(keep.items(), key=lambda it: it[1][1])[-KEEP_WINDOWS:])
        for e in keep.values():
            e[4] = e[5]
            e[7] = e[3] if type(e[3]) in _SCALARS else _UNDECODED
        self._hot = keep

    def commit(self) -> None:
        if self.ctx.caching:
            self._commit_hot()
            return
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
            self._times = []
        # only after emitting: a jump in stream time may expire the segments of the closed windows
        self.store.advance(stream_time)

    def _emit_closed(self, stream_time: int) -> None:
        w = self.windows
        closed = list(self.pending.range(None, _end_key(stream_time - w.grace + 1)))
        if not closed:
            return
        keys, vals, ts = [], [], []
        expired = self._expired_at_close(closed, stream_time) if self.final_within_retention else None
        if expired is not None and expired.any():
            self.ctx.count("final-results-expired", int(expired.sum()))
        for i, (pk, _) in enumerate(closed):
            wk = pk[8:]
            kb, s = split_window_key(wk)
            if expired is not None and expired[i]:
                self.pending.delete(pk)
                continue
            cur = self.store.get(kb, s)
            if cur is not None:
                keys.append(Windowed(decode_key(kb), s, s + w.size))
                vals.append(self.agg.result(self.agg.decode(cur[8:])))
                ts.append(_TS.unpack_from(cur)[0])
            self.pending.delete(pk)
        if keys:
            self.forward(Batch(keys, vals, np.asarray(ts, dtype=np.int64)))

    def _expired_at_close(self, closed: list, stream_time: int) -> np.ndarray:
        """Per closing window: whether Kafka Streams' window store had already dropped it at the
        record that closed it (the first stream time >= end + grace), its store time then being
        the latest window start so far, i.e. that stream time's last window start."""
        w = self.windows
        times = np.concatenate([*self._times, np.array([stream_time], dtype=np.int64)])
        times = np.maximum.accumulate(times)  # (ascending; the runs of each batch follow on)
        ends = np.fromiter((_U64.unpack_from(pk)[0] - (1 << 63) for pk, _ in closed), dtype=np.int64, count=len(closed))
        at = times[np.minimum(np.searchsorted(times, ends + w.grace), len(times) - 1)]
        store_time = at - at % w.advance
        return ends - w.size < store_time - w.retention_ms
