"""Joins with tables: stream-table, table-table (by key) and foreign-key table-table.

Stream-table: each stream record looks up the table's current value for its key at arrival;
table updates trigger nothing. Table-table by key: a change on either side looks up the other
side (through its value getter) and yields the new joined row of that key (None: no row for
the join kind), which a :class:`~.table_ops.MaterializeNode` turns into a change with the old
value.

Foreign-key join (as Kafka Streams' KIP-213): the left table sends a *subscription* for each
row, keyed by its foreign key, through a repartition topic to the right table's partition;
the right side keeps the subscriptions (foreign key + left key -> hash of the left row) and
answers each one, and each later change of the right row, with the right value, through a
*response* topic keyed by the left key. The left side drops answers whose hash is not that of
its current row (stale: the row changed since) and joins the rest.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..codec import pack, unpack
from ..batch import Batch
from ..node import Node
from ..serdes import Serde
from .aggregate import decode_key, encode_key
from .table_ops import LIST_MSGPACK, ValueGetter, _olds, report

INNER, LEFT, OUTER = "inner", "left", "outer"


def _call(node: Node, batch: Batch, i: int, joiner, lv, rv) -> tuple[bool, Any]:
    try:
        return True, joiner(lv, rv)
    except Exception as e:  # a failing joiner skips the record (reported)
        report(node, batch, i, e)
        return False, None


class StreamTableJoinNode(Node):
    """Joins each stream record with the table's current value for its key."""

    def __init__(self, name: str, getter: ValueGetter, joiner, left: bool) -> None:
        super().__init__(name)
        self.getter = getter
        self.joiner = joiner
        self.left = left

    def init(self, ctx) -> None:
        super().init(ctx)
        self.get = self.getter.make(ctx)

    def process(self, batch: Batch) -> None:
        nulls = [i for i, k in enumerate(batch.keys) if k is None]
        if nulls:
            self.ctx.null_keys(self.name, batch, nulls)
        rows = batch.rows()
        idx = [i for i, k in enumerate(batch.keys) if k is not None]
        rvals = self.get([batch.keys[i] for i in idx]) if idx else []
        keep = np.zeros(len(batch), dtype=bool)
        out: list[Any] = [None] * len(batch)
        for i, rv in zip(idx, rvals):
            if rv is None and not self.left:
                continue
            ok, out[i] = _call(self, batch, i, self.joiner, rows[i], rv)
            keep[i] = ok
        b = batch.with_values(out)
        self.forward(b.take(keep))


class TableJoinSideNode(Node):
    """One side of a key-based table-table join: each change of this side is joined with the
    other side's current value. Emits the new joined row per key (None: no joined row)."""

    def __init__(self, name: str, other: ValueGetter, joiner, kind: str, this_is_left: bool) -> None:
        super().__init__(name)
        self.other = other
        self.joiner = joiner
        self.kind = kind
        self.this_is_left = this_is_left

    def init(self, ctx) -> None:
        super().init(ctx)
        self.get = self.other.make(ctx)

    def process(self, batch: Batch) -> None:
        others = self.get(batch.keys)
        out: list[Any] = []
        keep = np.ones(len(batch), dtype=bool)
        for i, (v, o) in enumerate(zip(batch.rows(), others)):
            lv, rv = (v, o) if self.this_is_left else (o, v)
            if self.kind == INNER:
                matched = lv is not None and rv is not None
            elif self.kind == LEFT:
                matched = lv is not None
            else:
                matched = lv is not None or rv is not None
            if not matched:
                out.append(None)
                continue
            ok, res = _call(self, batch, i, self.joiner, lv, rv)
            keep[i] = ok
            out.append(res)
        b = batch.with_values(out)
        self.forward(b.take(keep) if not keep.all() else b)


# -- foreign-key join ----------------------------------------------------------------------------------
SUBSCRIBE, UNSUBSCRIBE = 1, 0


def row_hash(value: Any) -> bytes:
    return hashlib.blake2b(pack(value), digest_size=12).digest()


class FkSubscribeNode(Node):
    """Left side: sends the subscriptions of the left table's changes to the right side (keyed
    by foreign key, encoded with the right table's key serde so they land in its partition),
    and passes on the rows it can decide alone: deletes, and rows without a foreign key."""

    topic: str  # the subscription topic (set by the task: the node spec's sink topic)

    def __init__(self, name: str, topic: str, fk, joiner, kind: str, fk_serde: Serde) -> None:
        super().__init__(name)
        self.topic = topic
        self.fk = fk
        self.joiner = joiner
        self.kind = kind
        self.fk_serde = fk_serde

    def _fk(self, batch: Batch, k, v):
        if v is None:
            return None
        try:
            return v.get(self.fk) if isinstance(self.fk, str) else self.fk(v)
        except Exception as e:
            report(self, batch, None, e)
            return None

    def process(self, batch: Batch) -> None:
        sk, sv, sts = [], [], []
        lk, lv, lts = [], [], []
        for i, (k, new, old, t) in enumerate(zip(batch.keys, batch.rows(), _olds(batch), batch.timestamps.tolist())):
            fn, fo = self._fk(batch, k, new), self._fk(batch, k, old)
            if fo is not None and fo != fn:
                sk.append(fo)
                sv.append([UNSUBSCRIBE, k, None])
                sts.append(t)
            if new is None:
                lk.append(k)  # deleted: so is its joined row
                lv.append(None)
                lts.append(t)
            elif fn is None:
                res = None
                if self.kind != "inner":
                    ok, res = _call(self, batch, i, self.joiner, new, None)
                lk.append(k)
                lv.append(res)
                lts.append(t)
            else:
                sk.append(fn)
                sv.append([SUBSCRIBE, k, row_hash(new)])
                sts.append(t)
        if sk:
            self.ctx.send(self.topic, self.fk_serde.encode(sk), LIST_MSGPACK.encode(sv), np.asarray(sts, dtype=np.int64), None)
        if lk:
            self.forward(Batch(lk, lv, np.asarray(lts, dtype=np.int64)))


def _sub_key(fk, lk) -> bytes:
    return encode_key(fk) + encode_key(lk)


class FkSubscriptionNode(Node):
    """Right side: keeps the subscriptions (foreign key + left key -> left row hash) and
    answers each new one with the right table's current value for the foreign key."""

    topic: str  # the response topic

    def __init__(self, name: str, topic: str, store_name: str, right: ValueGetter, left_key_serde: Serde) -> None:
        super().__init__(name)
        self.topic = topic
        self.store_name = store_name
        self.right = right
        self.left_key_serde = left_key_serde

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)
        self.get = self.right.make(ctx)

    def process(self, batch: Batch) -> None:
        rk, rv, rts = [], [], []
        for i, (fk, msg, t) in enumerate(zip(batch.keys, batch.rows(), batch.timestamps.tolist())):
            if fk is None or msg is None:
                continue
            op, lk, h = msg
            if op == UNSUBSCRIBE:
                self.store.put(_sub_key(fk, lk), None)
                continue
            self.store.put(_sub_key(fk, lk), pack(h))
            (value,) = self.get([fk])
            rk.append(lk)
            rv.append([h, value])
            rts.append(t)
        if rk:
            self.ctx.send(self.topic, self.left_key_serde.encode(rk), LIST_MSGPACK.encode(rv), np.asarray(rts, dtype=np.int64), None)


class FkRightChangeNode(Node):
    """Right side: a change of a right row is sent to every left row subscribed to its key."""

    topic: str  # the response topic

    def __init__(self, name: str, topic: str, store_name: str, left_key_serde: Serde) -> None:
        super().__init__(name)
        self.topic = topic
        self.store_name = store_name
        self.left_key_serde = left_key_serde

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)

    def process(self, batch: Batch) -> None:
        rk, rv, rts = [], [], []
        for fk, new, t in zip(batch.keys, batch.rows(), batch.timestamps.tolist()):
            prefix = encode_key(fk)
            for kb, hb in self.store.prefix(prefix):
                rk.append(decode_key(kb[len(prefix):]))
                rv.append([unpack(hb), new])
                rts.append(t)
        if rk:
            self.ctx.send(self.topic, self.left_key_serde.encode(rk), LIST_MSGPACK.encode(rv), np.asarray(rts, dtype=np.int64), None)


class FkResponseNode(Node):
    """Left side: joins the answers of the right side with the current left rows (an answer
    whose hash is not that of the current row is stale, and dropped)."""

    def __init__(self, name: str, left: ValueGetter, joiner, kind: str) -> None:
        super().__init__(name)
        self.left = left
        self.joiner = joiner
        self.kind = kind

    def init(self, ctx) -> None:
        super().init(ctx)
        self.get = self.left.make(ctx)

    def process(self, batch: Batch) -> None:
        idx = [i for i, (k, m) in enumerate(zip(batch.keys, batch.rows())) if k is not None and m is not None]
        if not idx:
            return
        rows = batch.rows()
        lefts = self.get([batch.keys[i] for i in idx])
        ok_mask = np.zeros(len(batch), dtype=bool)
        out: list[Any] = [None] * len(batch)
        for i, lv in zip(idx, lefts):
            h, rv = rows[i]
            if lv is None or row_hash(lv) != h:
                self.ctx.count("fk-join-stale-responses")
                continue
            if rv is None and self.kind == "inner":
                ok_mask[i] = True  # no match (any more): no joined row
                continue
            ok_mask[i], out[i] = _call(self, batch, i, self.joiner, lv, rv)
        self.forward(batch.with_values(out).take(ok_mask))
