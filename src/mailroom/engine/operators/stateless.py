"""Stateless operators: filter, map, flat_map, select_key, peek, merge.

Each takes either a polars expression (vectorized over the batch's columns: no per-record
Python) or a Python function (called per record, for what an expression cannot say).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import polars as pl

from ..batch import Batch
from ..node import Node


def _report(node: Node, batch: Batch, i: int, e: Exception) -> None:
    node.ctx.processing_log.report(
        f"{type(e).__name__}: {e}",
        operator=node.name,
        topic=batch.topic,
        partition=batch.partition,
        offset=None if batch.offsets is None else int(batch.offsets[i]),
    )


def _select(node: Node, batch: Batch, exprs) -> tuple[pl.DataFrame, np.ndarray]:
    """Evaluate expressions over the batch's values: (result frame of the kept records, kept mask).

    Row values (schemaless JSON) may lack a column or not be objects at all; one such record
    must not fail the whole batch (and the task), so on error each record is evaluated on its
    own and those that still fail are reported and dropped. Columnar values share one schema:
    an error there is the topology's, and is raised.
    """
    if batch.columnar:
        return batch.values.select(exprs), np.ones(len(batch), dtype=bool)
    rows = batch.values
    try:
        return pl.from_dicts(rows).select(exprs), np.ones(len(batch), dtype=bool)
    except Exception:
        pass
    keep = np.ones(len(batch), dtype=bool)
    frames = []
    for i, v in enumerate(rows):
        try:
            if not isinstance(v, dict):
                raise TypeError(f"expected an object value for a column expression, got {type(v).__name__}")
            frames.append(pl.from_dicts([v]).select(exprs))
        except Exception as e:
            keep[i] = False
            _report(node, batch, i, e)
    return (pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()), keep


class FilterNode(Node):
    """Keep the records for which the predicate holds (NULL counts as false)."""

    def __init__(self, name: str, predicate: pl.Expr | Callable[[Any, Any], bool]) -> None:
        super().__init__(name)
        self.predicate = predicate

    def process(self, batch: Batch) -> None:
        if isinstance(self.predicate, pl.Expr):
            res, keep = _select(self, batch, self.predicate.fill_null(False))
            mask = np.zeros(len(batch), dtype=bool)
            if len(res):
                mask[keep] = res.to_series().to_numpy()
        else:
            pred = self.predicate
            mask = np.zeros(len(batch), dtype=bool)
            for i, (k, v) in enumerate(zip(batch.keys, batch.rows())):
                try:
                    mask[i] = bool(pred(k, v))
                except Exception as e:  # a failing user function skips the record, never the task
                    _report(self, batch, i, e)
        self.forward(batch.take(mask))


class MapValuesNode(Node):
    """New values from old ones: expressions (columns of the result) or a function of the value."""

    def __init__(self, name: str, fn: Callable[[Any], Any] | list[pl.Expr] | dict[str, pl.Expr]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: Batch) -> None:
        if isinstance(self.fn, (list, dict)):
            exprs = self.fn if isinstance(self.fn, list) else [e.alias(n) for n, e in self.fn.items()]
            res, keep = _select(self, batch, exprs)
            b = batch if keep.all() else batch.take(keep)
            self.forward(b.with_values(res))
            return
        out, keep = [], np.ones(len(batch), dtype=bool)
        fn = self.fn
        for i, v in enumerate(batch.rows()):
            try:
                out.append(fn(v))
            except Exception as e:
                keep[i] = False
                out.append(None)
                _report(self, batch, i, e)
        b = batch.with_values(out)
        self.forward(b.take(keep) if not keep.all() else b)


class MapNode(Node):
    """New (key, value) pairs from old ones, by a function of (key, value)."""

    def __init__(self, name: str, fn: Callable[[Any, Any], tuple[Any, Any]]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: Batch) -> None:
        keys, vals, keep = [], [], np.ones(len(batch), dtype=bool)
        for i, (k, v) in enumerate(zip(batch.keys, batch.rows())):
            try:
                nk, nv = self.fn(k, v)
            except Exception as e:
                keep[i] = False
                nk = nv = None
                _report(self, batch, i, e)
            keys.append(nk)
            vals.append(nv)
        b = batch.with_values(vals, keys)
        self.forward(b.take(keep) if not keep.all() else b)


class FlatMapNode(Node):
    """Zero or more (key, value) pairs per record."""

    def __init__(self, name: str, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: Batch) -> None:
        keys, vals, src = [], [], []
        for i, (k, v) in enumerate(zip(batch.keys, batch.rows())):
            try:
                for nk, nv in self.fn(k, v):
                    keys.append(nk)
                    vals.append(nv)
                    src.append(i)
            except Exception as e:
                _report(self, batch, i, e)
        idx = np.asarray(src, dtype=np.int64)
        self.forward(
            Batch(
                keys,
                vals,
                batch.timestamps[idx],
                None if batch.offsets is None else batch.offsets[idx],
                batch.topic,
                batch.partition,
                None if batch.headers is None else [batch.headers[i] for i in src],
            )
        )


class SelectKeyNode(Node):
    """A new key per record: a column name or expression (vectorized), or a function of (key, value)."""

    def __init__(self, name: str, key: str | pl.Expr | Callable[[Any, Any], Any]) -> None:
        super().__init__(name)
        self.key = key

    def process(self, batch: Batch) -> None:
        if isinstance(self.key, str) and batch.columnar:
            self.forward(batch.with_key_series(batch.frame()[self.key]))
        elif isinstance(self.key, pl.Expr):
            res, keep = _select(self, batch, self.key)
            b = batch if keep.all() else batch.take(keep)
            if len(b):
                self.forward(b.with_key_series(res.to_series()))
        elif isinstance(self.key, str):
            self.forward(batch.with_values(batch.values, [None if v is None else v.get(self.key) for v in batch.rows()]))
        else:
            keys, keep = [], np.ones(len(batch), dtype=bool)
            for i, (k, v) in enumerate(zip(batch.keys, batch.rows())):
                try:
                    keys.append(self.key(k, v))
                except Exception as e:
                    keep[i] = False
                    keys.append(None)
                    _report(self, batch, i, e)
            b = batch.with_values(batch.values, keys)
            self.forward(b.take(keep) if not keep.all() else b)


class PeekNode(Node):
    """Call a function on each (key, value) and pass the records on unchanged."""

    def __init__(self, name: str, fn: Callable[[Any, Any], None]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: Batch) -> None:
        for i, (k, v) in enumerate(zip(batch.keys, batch.rows())):
            try:
                self.fn(k, v)
            except Exception as e:  # like every other user function: reported, never fails the task
                _report(self, batch, i, e)
        self.forward(batch)  # peek does not change records: a failing call drops none of them
