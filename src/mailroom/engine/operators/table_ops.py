"""Table operators: source tables, filter / map_values on tables, value getters, grouped-table
aggregation (with retraction of the old value), and the materializer of derived tables.

Table changes travel as batches whose ``values`` are the new values (None: the key was
deleted) and whose ``old_values`` are the previous values (None: there was none).

Stateful operators that need the current value of a table they are not fed by (joins, the
foreign-key response) read it through a *value getter*: a description, built with the
topology, of how to find a table's current value in the task's stores (the source or
aggregate store, with the filters and mappers applied on top), as Kafka Streams'
``KTableValueGetter`` does. Tables that are the result of a join are materialized in their own
store so that the old value of every change is exactly what was emitted before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from ..codec import pack, unpack
from ...log import RecordBatch
from ..aggregators import Aggregator
from ..batch import Batch
from ..node import Node
from ..serdes import Serde
from .aggregate import decode_key, encode_key
from .source_sink import SourceNode

_TS = struct.Struct(">q")
_TSN = struct.Struct(">qq")
_NO_TS = -(1 << 62)


def encode_value(ts: int, value: Any) -> bytes:
    return _TS.pack(ts) + pack(value)


def decode_value(raw: bytes) -> Any:
    return unpack(raw[8:])


def report(node: Node, batch: Batch | None, i: int | None, e: Exception | str) -> None:
    reason = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
    node.ctx.processing_log.report(
        reason,
        operator=node.name,
        topic=None if batch is None else batch.topic,
        partition=None if batch is None else batch.partition,
        offset=None if batch is None or batch.offsets is None or i is None else int(batch.offsets[i]),
    )


class ListMsgpackSerde:
    """msgpack values decoded with lists as lists (the engine's MSGPACK gives tuples)."""

    def decode(self, raw):
        out, bad = [], []
        for i, b in enumerate(raw):
            try:
                out.append(None if b is None else unpack(b))
            except Exception as e:
                out.append(None)
                bad.append((i, f"invalid msgpack: {e}"))
        return out, bad

    def encode(self, values):
        if isinstance(values, pl.DataFrame):
            values = values.to_dicts()
        return [None if v is None else pack(v) for v in values]


LIST_MSGPACK = ListMsgpackSerde()


# -- predicates and mappers over table values ---------------------------------------------------
def eval_predicate(node: Node | None, predicate, keys: list, values: list, batch: Batch | None = None) -> list[bool]:
    """``predicate`` on each (key, value); a None value (no row) never matches. A failing
    predicate counts as false (and is reported when a node is given)."""
    out = [False] * len(values)
    idx = [i for i, v in enumerate(values) if v is not None]
    if not idx:
        return out
    if isinstance(predicate, pl.Expr):
        expr = predicate.fill_null(False)
        try:
            res = pl.from_dicts([values[i] for i in idx]).select(expr).to_series().to_list()
            for i, r in zip(idx, res):
                out[i] = bool(r)
            return out
        except Exception:
            pass
        for i in idx:
            try:
                out[i] = bool(pl.from_dicts([values[i]]).select(expr).item())
            except Exception as e:
                if node is not None:
                    report(node, batch, None, e)
        return out
    for i in idx:
        try:
            out[i] = bool(predicate(keys[i], values[i]))
        except Exception as e:  # a failing user function: the row does not match
            if node is not None:
                report(node, batch, None, e)
    return out


def apply_mapper(node: Node | None, fn, values: list, batch: Batch | None = None) -> list:
    """``fn(value)`` on each non-None value (a failing call gives None, reported)."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        try:
            out.append(fn(v))
        except Exception as e:
            if node is not None:
                report(node, batch, None, e)
            out.append(None)
    return out


# -- value getters ------------------------------------------------------------------------------------
class ValueGetter:
    """How to read a table's current values in a task: ``make(ctx)`` -> ``get(keys) -> values``."""

    def make(self, ctx) -> Callable[[list], list]:
        raise NotImplementedError


class StoreGetter(ValueGetter):
    """A table materialized by the table operators here (timestamp + msgpack value)."""

    def __init__(self, store: str) -> None:
        self.store = store

    def make(self, ctx):
        store = ctx.kv_store(self.store)

        def get(keys):
            return [None if r is None else decode_value(r) for r in store.get_many([encode_key(k) for k in keys])]

        return get


class AggregateStoreGetter(ValueGetter):
    """The table of a stream aggregation (:class:`~.aggregate.AggregateNode`'s store)."""

    def __init__(self, store: str, agg: Aggregator) -> None:
        self.store = store
        self.agg = agg

    def make(self, ctx):
        store, agg = ctx.kv_store(self.store), self.agg

        def get(keys):
            return [None if r is None else agg.result(agg.decode(r[8:])) for r in store.get_many([encode_key(k) for k in keys])]

        return get


class TableAggregateGetter(ValueGetter):
    """The table of a grouped-table aggregation (:class:`TableAggregateNode`'s store)."""

    def __init__(self, store: str, agg: Aggregator) -> None:
        self.store = store
        self.agg = agg

    def make(self, ctx):
        store, agg = ctx.kv_store(self.store), self.agg

        def get(keys):
            return [None if r is None else agg.result(agg.decode(r[16:])) for r in store.get_many([encode_key(k) for k in keys])]

        return get


class FilterGetter(ValueGetter):
    def __init__(self, parent: ValueGetter, predicate) -> None:
        self.parent = parent
        self.predicate = predicate

    def make(self, ctx):
        parent, pred = self.parent.make(ctx), self.predicate

        def get(keys):
            values = parent(keys)
            keep = eval_predicate(None, pred, keys, values)
            return [v if ok else None for v, ok in zip(values, keep)]

        return get


class MapValuesGetter(ValueGetter):
    def __init__(self, parent: ValueGetter, fn) -> None:
        self.parent = parent
        self.fn = fn

    def make(self, ctx):
        parent, fn = self.parent.make(ctx), self.fn

        def get(keys):
            return apply_mapper(None, fn, parent(keys))

        return get


# -- source tables --------------------------------------------------------------------------------------
class TableSourceNode(SourceNode):
    """A topic read as a table: upsert per key into a key-value store; a NULL value (tombstone)
    deletes the key. Emits each change with the key's previous value; with caching on, the
    changes are coalesced per key and emitted at commit. NULL keys go to the processing log."""

    def __init__(self, name: str, topic: str, key_serde: Serde, value_serde: Serde, store_name: str, prepare=None) -> None:
        super().__init__(name, topic, key_serde, value_serde, prepare=prepare)
        self.store_name = store_name

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)

    def ingest(self, rb: RecordBatch) -> int | None:
        raw_keys, raw_values = rb.keys, rb.values
        keys, bad_k = self.key_serde.decode(raw_keys)
        if isinstance(keys, pl.DataFrame):
            keys = keys.to_dicts() if keys.width > 1 else keys.to_series().to_list()
        tomb = [v is None for v in raw_values]
        live = [i for i, t in enumerate(tomb) if not t]
        values: list[Any] = [None] * len(raw_values)
        bad = {i: r for i, r in bad_k}
        if live:
            decoded, bad_v = self.value_serde.decode([raw_values[i] for i in live])
            if isinstance(decoded, pl.DataFrame):
                decoded = decoded.to_dicts()
            for j, v in zip(live, decoded):
                values[j] = v
            bad.update({live[j]: r for j, r in bad_v})
        ts = np.asarray(rb.timestamps, dtype=np.int64)
        for i, reason in sorted(bad.items()):
            self.ctx.processing_log.report(
                reason, operator=self.name, topic=rb.topic, partition=rb.partition, offset=int(rb.offsets[i]),
                key=raw_keys[i], value=raw_values[i],
            )
        nulls = [i for i, k in enumerate(keys) if k is None and i not in bad]
        if nulls:
            self.ctx.count("null-key-records-skipped", len(nulls))
            for i in nulls:
                self.ctx.processing_log.report(
                    "NULL key: the record cannot be a table row and was dropped", operator=self.name, topic=rb.topic,
                    partition=rb.partition, offset=int(rb.offsets[i]), key=raw_keys[i], value=raw_values[i],
                )
        skip = set(bad) | set(nulls)
        idx = [i for i in range(len(keys)) if i not in skip]
        self.ctx.count("records-in", len(idx))
        if not idx:
            return None
        batch = self._prepare(Batch([keys[i] for i in idx], [values[i] for i in idx], ts[idx],
                                    rb.offsets[idx], rb.topic, rb.partition,
                                    None if rb.headers is None else [rb.headers[i] for i in idx]))
        if not len(batch):
            return None
        self._upsert(batch.keys, batch.rows(), batch.timestamps, rb, batch.headers)
        return int(batch.timestamps.max())

    def _upsert(self, keys: list, values: list, ts: np.ndarray, rb: RecordBatch, headers: list | None = None) -> None:
        kbs = [encode_key(k) for k in keys]
        if self.ctx.caching:
            self.store.put_many((kb, None if v is None else encode_value(t, v)) for kb, v, t in zip(kbs, values, ts.tolist()))
            return
        uniq = list(dict.fromkeys(kbs))
        cur = {kb: (None if r is None else decode_value(r)) for kb, r in zip(uniq, self.store.get_many(uniq))}
        out_k, out_new, out_old, out_ts, out_h = [], [], [], [], []
        for i, (k, kb, v, t) in enumerate(zip(keys, kbs, values, ts.tolist())):
            old = cur[kb]
            cur[kb] = v
            self.store.put(kb, None if v is None else encode_value(t, v))
            if old is None and v is None:
                continue  # deleting a key that is not there: no change
            out_k.append(k)
            out_new.append(v)
            out_old.append(old)
            out_ts.append(t)
            out_h.append(None if headers is None else headers[i])
        if out_k:  # (each change keeps its record's headers, as Kafka Streams' forward does)
            self.forward(Batch(out_k, out_new, np.asarray(out_ts, dtype=np.int64), topic=rb.topic, partition=rb.partition,
                               headers=None if headers is None else out_h, old_values=out_old))

    def commit(self) -> None:
        if not self.ctx.caching:
            return
        emit_changes(self, self.store.flush_with_old())


def emit_changes(node: Node, changes: list[tuple[bytes, bytes | None, bytes | None]]) -> None:
    """Forward (key, old, new) store changes (timestamp + msgpack encoded) as a table batch."""
    keys, new, old, ts = [], [], [], []
    for kb, o, n in changes:
        if o is None and n is None:
            continue
        keys.append(decode_key(kb))
        new.append(None if n is None else decode_value(n))
        old.append(None if o is None else decode_value(o))
        ts.append(_TS.unpack_from(n if n is not None else o)[0])
    if keys:
        node.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))


# -- stateless table operators ----------------------------------------------------------------------
def _olds(batch: Batch) -> list:
    return batch.old_values if batch.old_values is not None else [None] * len(batch)


class TableFilterNode(Node):
    """Keep the rows matching the predicate: a row that stops matching becomes a delete (if it
    matched before); a change where neither the old nor the new row matches is dropped."""

    def __init__(self, name: str, predicate) -> None:
        super().__init__(name)
        self.predicate = predicate

    def process(self, batch: Batch) -> None:
        new, old = batch.rows(), _olds(batch)
        pn = eval_predicate(self, self.predicate, batch.keys, new, batch)
        po = eval_predicate(self, self.predicate, batch.keys, old, batch)
        out_new = [v if ok else None for v, ok in zip(new, pn)]
        out_old = [v if ok else None for v, ok in zip(old, po)]
        keep = np.array([n is not None or o is not None for n, o in zip(out_new, out_old)], dtype=bool)
        out = batch.with_values(out_new)
        out.old_values = out_old
        self.forward(out.take(keep) if not keep.all() else out)


class TableMapValuesNode(Node):
    """New values for a table's rows (``fn(value)``); deletes stay deletes."""

    def __init__(self, name: str, fn) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: Batch) -> None:
        out = batch.with_values(apply_mapper(self, self.fn, batch.rows(), batch))
        out.old_values = apply_mapper(None, self.fn, _olds(batch))  # the old value was reported when it was new
        self.forward(out)


class MaterializeNode(Node):
    """Materializes the rows it is given (``values``: the new value of each key, None = none)
    in its store, emitting each as a change with the previous value; None over None is dropped."""

    def __init__(self, name: str, store_name: str) -> None:
        super().__init__(name)
        self.store_name = store_name

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)

    def process(self, batch: Batch) -> None:
        out_k, out_new, out_old, out_ts = [], [], [], []
        for k, v, t in zip(batch.keys, batch.rows(), batch.timestamps.tolist()):
            kb = encode_key(k)
            raw = self.store.get(kb)
            old = None if raw is None else decode_value(raw)
            if old is None and v is None:
                continue
            self.store.put(kb, None if v is None else encode_value(t, v))
            out_k.append(k)
            out_new.append(v)
            out_old.append(old)
            out_ts.append(t)
        if out_k:
            self.forward(Batch(out_k, out_new, np.asarray(out_ts, dtype=np.int64), old_values=out_old))


class NullNode(Node):
    """Takes records and passes nothing on: a parent link that only places the parent in the
    same sub-topology as its child (co-partitioned join inputs)."""

    def process(self, batch: Batch) -> None:
        pass


# -- grouped tables -------------------------------------------------------------------------------------
class TableRepartitionMapNode(Node):
    """Re-keys a table's changes for a grouped-table aggregation. Each change becomes a
    (group, [new, old]) pair: one record when the row stays in its group, else an "undo" record
    ``(old group, [None, old])`` followed by ``(new group, [new, None])``."""

    def __init__(self, name: str, selector) -> None:
        super().__init__(name)
        self.selector = selector

    def _group(self, batch: Batch, k, v):
        sel = self.selector
        try:
            if isinstance(sel, str):
                return v.get(sel) if isinstance(v, dict) else None
            return sel(k, v)
        except Exception as e:
            report(self, batch, None, e)
            return None

    def process(self, batch: Batch) -> None:
        keys, vals, ts, src = [], [], [], []
        for i, (k, new, old, t) in enumerate(zip(batch.keys, batch.rows(), _olds(batch), batch.timestamps.tolist())):
            gn = None if new is None else self._group(batch, k, new)
            go = None if old is None else self._group(batch, k, old)
            if old is not None and new is not None and gn == go and gn is not None:
                keys.append(gn)
                vals.append([new, old])
                ts.append(t)
                src.append(i)
                continue
            if old is not None and go is not None:  # the old row was never counted under a NULL group
                keys.append(go)
                vals.append([None, old])
                ts.append(t)
                src.append(i)
            if new is not None:
                keys.append(gn)  # a NULL group is reported (and dropped) by the aggregation
                vals.append([new, None])
                ts.append(t)
                src.append(i)
        if keys:  # (with their records' headers)
            hs = None if batch.headers is None else [batch.headers[i] for i in src]
            self.forward(Batch(keys, vals, np.asarray(ts, dtype=np.int64), headers=hs))


class TableAggregateNode(Node):
    """Aggregates a grouped table: for each [new, old] pair the old value is subtracted from the
    group's aggregate and the new one added. With ``delete_empty`` (reduce) a group whose last
    row went away is deleted (a tombstone is emitted); otherwise it keeps its value (a count
    of 0), as in Kafka Streams."""

    def __init__(self, name: str, store_name: str, agg: Aggregator, delete_empty: bool = False) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.agg = agg
        self.delete_empty = delete_empty

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)

    def _result(self, raw: bytes | None):
        return None if raw is None else self.agg.result(self.agg.decode(raw[16:]))

    def process(self, batch: Batch) -> None:
        nulls = [i for i, k in enumerate(batch.keys) if k is None]
        if nulls:
            self.ctx.null_keys(self.name, batch, nulls)
        agg = self.agg
        emit = not self.ctx.caching
        out_k, out_new, out_old, out_ts, out_h = [], [], [], [], []
        for i, (k, pair, t) in enumerate(zip(batch.keys, batch.rows(), batch.timestamps.tolist())):
            if k is None:
                continue
            new, old = pair
            kb = encode_key(k)
            raw = self.store.get(kb)
            if raw is None:
                ts0, n, a = _NO_TS, 0, agg.initial()
            else:
                ts0, n = _TSN.unpack_from(raw)
                a = agg.decode(raw[16:])
            try:
                if old is not None and raw is not None:
                    a = agg.subtract(a, k, old)
                    n -= 1
                if new is not None:
                    a = agg.add(a, k, new)
                    n += 1
            except Exception as e:  # a failing aggregate function skips the record
                report(self, batch, i, e)
                continue
            if raw is None and new is None:
                continue
            if self.delete_empty and n <= 0:
                nraw = None
            else:
                nraw = _TSN.pack(max(ts0, t), n) + agg.encode(a)
            self.store.put(kb, nraw)
            if emit:
                out_k.append(k)
                out_new.append(self._result(nraw))
                out_old.append(self._result(raw))
                out_ts.append(t)
                out_h.append(None if batch.headers is None else batch.headers[i])
        if out_k:  # (with their records' headers)
            self.forward(Batch(out_k, out_new, np.asarray(out_ts, dtype=np.int64), old_values=out_old,
                               headers=None if batch.headers is None else out_h))

    def commit(self) -> None:
        if not self.ctx.caching:
            return
        keys, new, old, ts = [], [], [], []
        for kb, o, n in self.store.flush_with_old():
            if o is None and n is None:
                continue
            keys.append(decode_key(kb))
            new.append(self._result(n))
            old.append(self._result(o))
            ts.append(_TSN.unpack_from(n if n is not None else o)[0])
        if keys:
            self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))


class ReduceAggregator(Aggregator):
    """``adder(aggregate, value)`` / ``subtractor(aggregate, value)``; the first value starts it."""

    def __init__(self, adder, subtractor) -> None:
        self._add, self._sub = adder, subtractor

    def add(self, agg, key, value):
        return value if agg is None else self._add(agg, value)

    def subtract(self, agg, key, value):
        return self._sub(agg, value)
