"""Stream-stream windowed joins: inner, left and outer (Kafka Streams' ``KStream#join`` with
``JoinWindows``).

Both sides are buffered in window stores (changelogged, restored, expired by whole segments),
keyed by (key, record timestamp); records of one key with the same timestamp share an entry
(a list of values). A left record at ``t`` joins the right records of its key with timestamps
in ``[t - before, t + after]`` and vice versa; each joined result is emitted at once, with the
later of the two timestamps.

Left and outer joins emit a non-joined record (``joiner(left, None)`` / ``joiner(None, right)``)
only once its window has closed without a match -- ``t + after + grace < stream time`` for a
left record, ``t + before + grace < stream time`` for a right one -- as Kafka Streams >= 3.1
does, so there are no spurious null results. Records waiting for that are kept in a
changelogged key-value store ordered by close time; a match removes them.

Late records (dropped, counted and reported to the processing log):

* a record whose own window has closed (as above), and
* where the other side emits non-joined results (the right side of a left join, both sides of
  an outer join), a record more than ``grace`` behind stream time (``t + grace < stream time``):
  it could match a record whose null result was already emitted. This is stricter than Kafka
  Streams, which joins it anyway and so emits a spurious null result plus the join.

The two sides arrive through small side nodes that tag each batch (a node cannot tell which
parent a batch came from); the join node is their common child, in one sub-topology with both
inputs. NULL keys and NULL values cannot join: they are dropped and reported.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..codec import pack, unpack
from ...state import split_window_key, window_key
from ..batch import Batch
from ..node import Node
from ..windows import JoinWindows
from .aggregate import decode_key, encode_key
from .windowed_aggregate import _end_key

if TYPE_CHECKING:
    from ..topology import Stream

LEFT, RIGHT = 0, 1
INNER, LEFT_JOIN, OUTER = "inner", "left", "outer"
_SIDE_TAG = "join_side"
_TS = struct.Struct(">q")


def _pack(values: list[Any]) -> bytes:
    return pack(values)


def _unpack(raw: bytes | None) -> list[Any]:
    return [] if raw is None else unpack(raw)


class StreamJoinSideNode(Node):
    """Tags each batch of one join input with its side, for the join node."""

    def __init__(self, name: str, side: int) -> None:
        super().__init__(name)
        self.side = side

    def process(self, batch: Batch) -> None:
        self.forward(Batch(batch.keys, batch.values, batch.timestamps, batch.offsets, batch.topic, batch.partition,
                           batch.headers, None, {**batch.extra, _SIDE_TAG: self.side}))


class StreamJoinNode(Node):
    """Joins two co-partitioned streams within a time window."""

    def __init__(self, name: str, windows: JoinWindows, joiner: Callable[[Any, Any], Any], kind: str,
                 left_store: str, right_store: str, pending_store: str | None) -> None:
        super().__init__(name)
        if kind not in (INNER, LEFT_JOIN, OUTER):
            raise ValueError(f"unknown join kind {kind!r}")
        self.windows = windows
        self.joiner = joiner
        self.kind = kind
        self.store_names = (left_store, right_store)
        self.pending_name = pending_store
        w = windows
        #: how far after a record's own timestamp its window reaches (its end)
        self.look = (w.after_ms, w.before_ms)
        #: the other side's timestamps a record joins: (ts - back, ts + ahead)
        self.range = ((w.before_ms, w.after_ms), (w.after_ms, w.before_ms))
        #: whether unmatched records of a side are emitted with a NULL partner
        self.emits_null = (kind in (LEFT_JOIN, OUTER), kind == OUTER)

    def init(self, ctx) -> None:
        super().init(ctx)
        r = self.windows.retention_ms
        seg = max(r // 2, 60_000)
        self.stores = tuple(ctx.window_store(n, r, seg) for n in self.store_names)
        self.pending = ctx.kv_store(self.pending_name) if self.pending_name else None

    def _pending_key(self, side: int, kb: bytes, ts: int) -> bytes:
        return _end_key(ts + self.look[side]) + bytes([side]) + window_key(kb, ts)

    def _report(self, batch: Batch, i: int, reason: str) -> None:
        self.ctx.processing_log.report(reason, operator=self.name, topic=batch.topic, partition=batch.partition,
                                       offset=None if batch.offsets is None else int(batch.offsets[i]))

    def process(self, batch: Batch) -> None:
        side = batch.extra.get(_SIDE_TAG)
        if side not in (LEFT, RIGHT):
            raise RuntimeError(f"{self.name}: a batch reached the join without a side tag")
        other = 1 - side
        grace = self.windows.grace_ms
        look = self.look[side]
        strict = self.emits_null[other]  # a late record could contradict an emitted null result
        back, ahead = self.range[side]
        mine, theirs = self.stores[side], self.stores[other]
        stream_time = np.maximum.accumulate(np.maximum(batch.timestamps, self.ctx.stream_time)).tolist()
        out_k, out_v, out_ts = [], [], []
        late = 0
        for i, (k, v, t) in enumerate(zip(batch.keys, batch.rows(), batch.timestamps.tolist())):
            if k is None:
                self.ctx.null_keys(self.name, batch, [i])
                continue
            if v is None:
                self.ctx.count("null-value-records-skipped")
                self._report(batch, i, "NULL value: the record cannot be joined and was dropped")
                continue
            st = stream_time[i]
            if t + look + grace < st or (strict and t + grace < st):
                late += 1
                continue
            kb = encode_key(k)
            mine.put(kb, t, _pack([*_unpack(mine.get(kb, t)), v]))
            matched = False
            lo, hi = max(0, t - back), t + ahead
            if hi >= lo:
                for to, raw in theirs.fetch(kb, lo, hi):
                    if self.pending is not None and self.emits_null[other]:
                        pk = self._pending_key(other, kb, to)
                        if self.pending.get(pk) is not None:
                            self.pending.delete(pk)
                    for ov in _unpack(raw):
                        matched = True
                        try:
                            joined = self.joiner(v, ov) if side == LEFT else self.joiner(ov, v)
                        except Exception as e:  # a failing joiner skips the pair, never the task
                            self._report(batch, i, f"{type(e).__name__}: {e}")
                            continue
                        out_k.append(k)
                        out_v.append(joined)
                        out_ts.append(max(t, to))
            if not matched and self.emits_null[side]:
                pk = self._pending_key(side, kb, t)
                self.pending.put(pk, _pack([*_unpack(self.pending.get(pk)), v]))
        if late:
            self.ctx.late(self.name, late)
        if out_k:
            self.forward(Batch(out_k, out_v, np.asarray(out_ts, dtype=np.int64)))

    def advance(self, stream_time: int, wall_time: int) -> None:
        if self.pending is not None:
            self._emit_unjoined(stream_time)
        for s in self.stores:
            s.advance(stream_time)

    def _emit_unjoined(self, stream_time: int) -> None:
        """Null results of the records whose window closed without a match (end + grace < stream time)."""
        closed = list(self.pending.range(None, _end_key(stream_time - self.windows.grace_ms)))
        if not closed:
            return
        keys, vals, ts = [], [], []
        for pk, raw in closed:
            side = pk[8]
            kb, t = split_window_key(pk[9:])
            k = decode_key(kb)
            for v in _unpack(raw):
                try:
                    joined = self.joiner(v, None) if side == LEFT else self.joiner(None, v)
                except Exception as e:
                    self.ctx.processing_log.report(f"{type(e).__name__}: {e}", operator=self.name)
                    continue
                keys.append(k)
                vals.append(joined)
                ts.append(t)
            self.pending.delete(pk)
        if keys:
            self.forward(Batch(keys, vals, np.asarray(ts, dtype=np.int64)))


def stream_join(left: Stream, right: Stream, joiner: Callable[[Any, Any], Any], window: JoinWindows, kind: str,
                name: str | None = None) -> Stream:
    """Add a windowed stream-stream join to the topology (the DSL's ``Stream.join`` and friends)."""
    from ..topology import NodeSpec, Stream

    if not isinstance(window, JoinWindows):
        raise TypeError(f"a stream-stream join needs JoinWindows, got {type(window).__name__}")
    top = left._top
    if right._top is not top:
        raise ValueError("both streams of a join must belong to the same topology")
    same = left._node == right._node
    # co-partitioning: a stream whose key changed goes through a repartition topic first
    if left._key_changed:
        left = left.repartition()
    if same:
        right = left
    elif right._key_changed:
        right = right.repartition()
    name = name or top._name({INNER: "JOIN", LEFT_JOIN: "LEFTJOIN", OUTER: "OUTERJOIN"}[kind])
    this, that = f"{name}-this", f"{name}-other"
    top._add(NodeSpec(this, lambda: StreamJoinSideNode(this, LEFT), [left._node]))
    top._add(NodeSpec(that, lambda: StreamJoinSideNode(that, RIGHT), [right._node]))
    ls, rs = f"{name}-this-store", f"{name}-other-store"
    ps = f"{name}-outer-store" if kind != INNER else None
    stores = [(ls, "window"), (rs, "window")] + ([(ps, "kv")] if ps else [])
    top._add(NodeSpec(name, lambda: StreamJoinNode(name, window, joiner, kind, ls, rs, ps), [this, that], stores=stores))
    return Stream(top, name, False)
