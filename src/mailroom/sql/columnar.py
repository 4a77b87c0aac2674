"""Columnar operators of the SQL layer: WHERE, projections and aggregate preparation over
whole batches (polars expressions from :mod:`.vectorized`), and an aggregator that folds a
batch into each key's state in one go.

Every operator keeps the row function it replaces: a batch that cannot be made into typed
columns (a stream record without a value, a value of an unexpected type) or whose vectorized
evaluation fails goes through the row path, so the results never differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from ..engine.aggregators import Aggregator
from ..engine.batch import Batch
from ..engine.node import Node
from ..formats.types import SqlType
from .vectorized import dtype_of

_N = "__mailroom_n"


def frame_of(batch: Batch, columns: dict[str, SqlType], null_marker: str) -> pl.DataFrame | None:
    """The batch's values as a frame with ``columns`` in their dtypes, or None when they cannot
    be (the row path then handles the batch)."""
    if batch.columnar:
        df: pl.DataFrame = batch.values  # type: ignore[assignment]
        fixes = []
        for name, t in columns.items():
            dt = dtype_of(t)
            if name not in df.columns:
                return None
            if df.schema[name] != dt:
                if df.schema[name] != pl.Null:
                    return None
                fixes.append(pl.col(name).cast(dt))
        if fixes:
            df = df.with_columns(fixes)
        return df if columns else df.with_columns(pl.lit(0).alias(_N))
    rows = batch.values
    data: dict[str, pl.Series] = {}
    try:
        for r in rows:
            if r is None or null_marker in r:
                return None
        for name, t in columns.items():
            data[name] = pl.Series(name, [r.get(name) for r in rows], dtype=dtype_of(t), strict=True)
    except Exception:  # noqa: BLE001 - values of other types than the schema's: the row path
        return None
    if not data:
        data[_N] = pl.Series(_N, np.zeros(len(rows), dtype=np.int8))
    return pl.DataFrame(data)


class _Vector(Node):
    """Shared: the frame of a batch, or None for the row path."""

    def __init__(self, name: str, columns: dict[str, SqlType], null_marker: str) -> None:
        super().__init__(name)
        self.columns = dict(columns)
        self.null_marker = null_marker

    def _select(self, batch: Batch, exprs: list[pl.Expr]) -> pl.DataFrame | None:
        df = frame_of(batch, self.columns, self.null_marker)
        if df is None:
            return None
        try:
            out = df.select(exprs) if exprs else df.select(pl.lit(0, dtype=pl.Int8).alias(_N))
        except Exception:  # noqa: BLE001 - e.g. a UDF returned a value of another type: the row path
            return None
        if out.height != len(batch):  # only constants: one row
            out = out.select(pl.all().repeat_by(len(batch)).explode()) if out.height == 1 else None
        return out


class VectorFilter(_Vector):
    """WHERE: keeps the records whose predicate is TRUE."""

    def __init__(self, name: str, predicate: pl.Expr, columns: dict[str, SqlType], null_marker: str,
                 row_predicate: Callable[[Any], bool]) -> None:
        super().__init__(name, columns, null_marker)
        self.predicate = predicate.fill_null(False)
        self.row_predicate = row_predicate

    def process(self, batch: Batch) -> None:
        res = self._select(batch, [self.predicate])
        if res is not None:
            mask = res.to_series().to_numpy().astype(bool, copy=False)
        else:
            pred = self.row_predicate
            mask = np.fromiter((pred(v) for v in batch.rows()), dtype=bool, count=len(batch))
        self.forward(batch.take(mask))


class VectorMapValues(_Vector):
    """A projection (or the aggregate arguments): new values as the columns of a frame."""

    def __init__(self, name: str, exprs: list[tuple[str, pl.Expr]], columns: dict[str, SqlType], null_marker: str,
                 row_fn: Callable[[Any], Any], drop_nulls: bool = False) -> None:
        super().__init__(name, columns, null_marker)
        self.exprs = [e.alias(n) for n, e in exprs]
        self.row_fn = row_fn
        #: drop the records whose new value is None (aggregate arguments: a stream record without
        #: a value is not aggregated, as Kafka Streams skips null values)
        self.drop_nulls = drop_nulls

    def process(self, batch: Batch) -> None:
        res = self._select(batch, self.exprs)
        if res is None:
            fn = self.row_fn
            vals = [fn(v) for v in batch.rows()]
            batch = batch.with_values(vals)
            if self.drop_nulls:
                batch = _without_nulls(batch, vals)
            self.forward(batch)
            return
        self.forward(batch.with_values(res))


def _without_nulls(batch: Batch, vals: list) -> Batch:
    """The records of ``batch`` whose value (``vals``) is not None."""
    mask = np.fromiter((v is not None for v in vals), dtype=bool, count=len(vals))
    return batch if mask.all() else batch.take(mask)


class VectorRekey(_Vector):
    """GROUP BY on other columns than the key: the group key and the aggregate arguments."""

    def __init__(self, name: str, key_exprs: list[pl.Expr], exprs: list[tuple[str, pl.Expr]], columns: dict[str, SqlType],
                 null_marker: str, row_fn: Callable[[Any, Any], tuple[Any, Any]], drop_nulls: bool = False) -> None:
        super().__init__(name, columns, null_marker)
        self.nkeys = len(key_exprs)
        self.exprs = [e.alias(f"__k{i}") for i, e in enumerate(key_exprs)] + [e.alias(n) for n, e in exprs]
        self.row_fn = row_fn
        self.drop_nulls = drop_nulls  # as VectorMapValues'

    def process(self, batch: Batch) -> None:
        res = self._select(batch, self.exprs)
        if res is None:
            keys, vals = [], []
            fn = self.row_fn
            for k, v in zip(batch.keys, batch.rows()):
                nk, nv = fn(k, v)
                keys.append(nk)
                vals.append(nv)
            batch = batch.with_values(vals, keys)
            self.forward(_without_nulls(batch, vals) if self.drop_nulls else batch)
            return
        n = self.nkeys
        if n == 0:
            keys = [""] * len(res)
        elif n == 1:
            keys = res.to_series(0).to_list()
        else:
            cols = [res.to_series(i).to_list() for i in range(n)]
            keys = [None if None in t else t for t in zip(*cols)]
        self.forward(batch.with_values(res.drop([f"__k{i}" for i in range(n)]), keys))


class SqlAggregator(Aggregator):
    """The aggregates of a query over the prepared argument values of each record.

    A record's value is the prepared arguments: a frame row (columns ``names[i]`` for aggregate
    ``i``) or, from the row path, a list with one list of values per aggregate (None: the
    aggregate skips the record). A batch is folded per key in one pass (``partial`` groups the
    records, ``merge`` folds a key's values in order into its state), so results are the
    per-record ones.
    """

    batchable = True

    def __init__(self, aggs: list[Any], names: list[list[str]], on_error: Callable[[str], None],
                 column_aggs: list[Any] | None = None) -> None:
        self.aggs = aggs
        self.names = names
        self.onerr = on_error
        #: the same aggregates for values already in their parameter types (the columnar arguments)
        self.column_aggs = column_aggs or aggs
        self._counts = [_is_count_star(r, ns) for r, ns in zip(self.column_aggs, names)]
        self._int_sums = [_is_int_sum(r) for r in self.column_aggs]
        #: the batch forms (``aggregate_many``) where the aggregate has one
        self._many = [getattr(r, "aggregate_many", None) for r in self.column_aggs]

    def initial(self) -> list:
        return [r.initialize() for r in self.aggs]

    def add(self, agg: Any, key: Any, value: Any) -> Any:
        if value is None:
            return agg
        aggs = self.aggs
        if isinstance(value, dict):  # a row of the columnar arguments
            vals = [[value[c] for c in ns] for ns in self.names]
            aggs = self.column_aggs
        else:
            vals = value
        out = list(agg)
        for i, r in enumerate(aggs):
            if vals[i] is None:
                continue
            try:
                out[i] = r.aggregate(out[i], *vals[i])
            except Exception as ex:  # noqa: BLE001 - a failing UDAF skips the value
                self.onerr(f"aggregate {r.name} failed: {ex}")
        return out

    def partial(self, keys: list[Any], batch: Batch) -> dict[Any, Any]:
        """The batch's records per key. Columnar: the argument columns reordered once so that
        each key's records are one run ``[lo, hi)`` (in arrival order), so a key's arguments are
        list slices, not per-key gathers; row path: the key's row values."""
        groups: dict[Any, list[int]] = {}
        for i, k in enumerate(keys):
            g = groups.get(k)
            if g is None:
                groups[k] = [i]
            else:
                g.append(i)
        if batch.columnar:
            df: pl.DataFrame = batch.values  # type: ignore[assignment]
            needed = list(dict.fromkeys(c for ns in self.names for c in ns))
            if not needed or len(groups) == len(keys):
                # no argument columns (COUNT(*) alone; a frame of no columns has no rows to
                # gather), or every key once: already one run per key
                grouped = df.select(needed)
            else:
                grouped = df.select(needed)[[i for idx in groups.values() for i in idx]]
            lists = {c: grouped[c].to_list() for c in needed}
            cols: Any = [[lists[c] for c in ns] for ns in self.names]
            out: dict[Any, Any] = {}
            lo = 0
            for k, idx in groups.items():
                hi = lo + len(idx)
                out[k] = (cols, lo, hi)
                lo = hi
            return out
        rows = batch.values
        return {k: (None, [rows[i] for i in idx]) for k, idx in groups.items()}

    def merge(self, agg: Any, partial: Any) -> Any:
        if partial[0] is None:  # row values (lists) of the key's records
            for v in partial[1]:
                agg = self.add(agg, None, v)
            return agg
        cols, lo, hi = partial
        out = list(agg)
        for j, r in enumerate(self.column_aggs):
            s = out[j]
            if self._counts[j]:
                out[j] = s + (hi - lo)
                continue
            args = [c[lo:hi] for c in cols[j]]
            if self._int_sums[j] and len(args) == 1:
                s = s + sum([x for x in args[0] if x is not None])
            elif self._many[j] is not None:
                # the aggregate's batch form over the key's argument runs; if it fails, the
                # per-value fold below reports (and skips) the failing values as usual
                try:
                    s = self._many[j](s, *args)
                except Exception:  # noqa: BLE001
                    s = self._fold(r, s, args)
            else:
                s = self._fold(r, s, args)
            out[j] = s
        return out

    def _fold(self, r: Any, s: Any, args: list[list[Any]]) -> Any:
        """Fold the argument runs ``args`` (one list per argument) into ``s`` one value at a time."""
        onerr = self.onerr
        f = r.aggregate
        if len(args) == 1:
            for v in args[0]:
                try:
                    s = f(s, v)
                except Exception as ex:  # noqa: BLE001
                    onerr(f"aggregate {r.name} failed: {ex}")
        else:
            for vals in zip(*args):
                try:
                    s = f(s, *vals)
                except Exception as ex:  # noqa: BLE001
                    onerr(f"aggregate {r.name} failed: {ex}")
        return s


def _impl(r: Any) -> Any:
    return getattr(r.aggregate, "__self__", None)


def _is_count_star(r: Any, names: list[str]) -> bool:
    """COUNT(*): the built-in counts every record (its state is the count)."""
    from ..functions.builtins.aggregates import Count

    return not names and type(_impl(r)) is Count


def _is_int_sum(r: Any) -> bool:
    """SUM of integers: the built-in adds the non-NULL values to an int state (exact in any order)."""
    from ..functions.builtins.aggregates import Sum

    impl = _impl(r)
    return type(impl) is Sum and impl.kind in ("INT", "BIGINT")
