"""Aggregators: how an aggregation folds values into a per-key (or per-window) state.

An :class:`Aggregator` has the general, per-record form (``initial``, ``add``, ``subtract``
for table retractions, ``result``). The built-ins also have a batch form (``partial`` +
``merge``): the batch is pre-aggregated per key in native code (a Counter, a polars
group_by) and each key's state is touched once per batch, not once per record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import polars as pl

from .codec import pack, unpack
from .batch import Batch

#: the value column of a row that a combiner before a repartition topic made out of several
#: records of one key (see operators/repartition.py): how many records it stands for
COMBINED_COUNT = "__mailroom_count"
_COMBINED = COMBINED_COUNT


class Aggregator:
    """Folds values into an aggregate. Subclass, or use :func:`aggregator` with functions."""

    #: whether :meth:`partial` / :meth:`merge` may be used (no per-record emission needed)
    batchable = False
    #: whether :meth:`merge` ignores the aggregate it is given (the partial replaces it): the
    #: engine then need not decode a stored aggregate to merge into it
    replaces = False

    def initial(self) -> Any:
        return None

    def add(self, agg: Any, key: Any, value: Any) -> Any:
        raise NotImplementedError

    def subtract(self, agg: Any, key: Any, value: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} cannot retract values (table aggregations need it)")

    def result(self, agg: Any) -> Any:
        return agg

    def partial(self, keys: list[Any], batch: Batch) -> dict[Any, Any]:
        """Pre-aggregate a batch: key -> partial aggregate (only if ``batchable``)."""
        raise NotImplementedError

    def merge(self, agg: Any, partial: Any) -> Any:
        raise NotImplementedError

    def encode(self, agg: Any) -> bytes:
        return pack(agg)

    def decode(self, raw: bytes) -> Any:
        return unpack(raw)


class CountAggregator(Aggregator):
    """Count of records per key."""

    batchable = True

    def initial(self) -> int:
        return 0

    def add(self, agg, key, value):
        # (a row made by a combiner before a repartition topic stands for several records)
        if type(value) is dict and _COMBINED in value:
            return agg + value[_COMBINED]
        return agg + 1

    def subtract(self, agg, key, value):
        return agg - 1

    def partial(self, keys, batch):
        if batch.columnar and _COMBINED in batch.values.columns:
            out: Counter = Counter()
            for k, c in zip(keys, batch.values[_COMBINED].to_list()):
                out[k] += c
            return out
        return Counter(keys)

    def partial_columns(self, key_column: pl.Series, batch: Batch) -> tuple[list, list, list]:
        """The batch pre-aggregated from its key column, in native code: (distinct keys, their
        partial counts, their latest timestamps), keys in order of first appearance."""
        df = pl.DataFrame({"k": key_column, "t": batch.timestamps})
        n = pl.len().alias("n")
        if batch.columnar and _COMBINED in batch.values.columns:
            df = df.with_columns(batch.values[_COMBINED].alias("c"))
            n = pl.col("c").sum().alias("n")
        g = df.group_by("k", maintain_order=True).agg(n, pl.col("t").max())
        return g["k"].to_list(), g["n"].to_list(), g["t"].to_list()

    def merge(self, agg, partial):
        return agg + partial


class SumAggregator(Aggregator):
    """Sum of a field (dict values / columns) per key; NULLs are skipped."""

    batchable = True

    def __init__(self, field: str) -> None:
        self.field = field

    def initial(self):
        return 0

    def add(self, agg, key, value):
        v = value.get(self.field) if isinstance(value, dict) else value
        return agg if v is None else agg + v

    def subtract(self, agg, key, value):
        v = value.get(self.field) if isinstance(value, dict) else value
        return agg if v is None else agg - v

    def partial(self, keys, batch):
        if batch.columnar and keys and not isinstance(keys[0], (tuple, dict, list)):
            df = pl.DataFrame({"k": keys}).with_columns(batch.values[self.field].alias("v"))
            g = df.group_by("k", maintain_order=True).agg(pl.col("v").sum())
            return dict(zip(g["k"].to_list(), g["v"].to_list()))
        out: dict[Any, Any] = {}
        for k, v in zip(keys, batch.rows()):
            out[k] = self.add(out.get(k, 0), k, v)
        return out

    def merge(self, agg, partial):
        return agg + partial


class LatestAggregator(Aggregator):
    """The latest value per key, in the order records arrive (offset order): what
    ``reduce(lambda old, new: new)`` computes, and ksqlDB's LATEST_BY_OFFSET. Batched: a
    batch's last value per key is found in C (a dict built from the records in order)."""

    batchable = True
    replaces = True

    def add(self, agg, key, value):
        return value

    def partial(self, keys, batch):
        return dict(zip(keys, batch.rows()))  # the last write per key wins

    def merge(self, agg, partial):
        return partial


class ReduceAggregator(Aggregator):
    """``reducer(aggregate, value) -> aggregate``, the first value starting it (Kafka Streams'
    reduce). The aggregate node calls ``reducer`` directly, one Python call per record."""

    def __init__(self, reducer: Callable[[Any, Any], Any]) -> None:
        self.reducer = reducer

    def add(self, agg, key, value):
        return value if agg is None else self.reducer(agg, value)


class FunctionAggregator(Aggregator):
    """An aggregator from plain functions."""

    def __init__(
        self,
        initializer: Callable[[], Any],
        adder: Callable[[Any, Any, Any], Any],
        subtractor: Callable[[Any, Any, Any], Any] | None = None,
        result: Callable[[Any], Any] | None = None,
    ) -> None:
        self._init, self._add, self._sub, self._res = initializer, adder, subtractor, result

    def initial(self):
        return self._init()

    def add(self, agg, key, value):
        return self._add(key, value, agg)

    def subtract(self, agg, key, value):
        if self._sub is None:
            return super().subtract(agg, key, value)
        return self._sub(key, value, agg)

    def result(self, agg):
        return agg if self._res is None else self._res(agg)


def aggregator(initializer, adder, subtractor=None, result=None) -> Aggregator:
    """Kafka Streams-style: ``adder(key, value, aggregate) -> aggregate``."""
    return FunctionAggregator(initializer, adder, subtractor, result)
