"""Percentiles of a numeric column: PERCENTILE (exact) and APPROX_PERCENTILE (bounded state).

    PERCENTILE(latency_ms, 0.95)              -- exact, linear interpolation between ranks
    APPROX_PERCENTILE(latency_ms, 0.95)       -- within 1% of the exact value, small state
    APPROX_PERCENTILE(latency_ms, 0.95, 0.005)  -- within 0.5%

The percentage is a literal between 0 and 1. NULLs are skipped; no rows give NULL. Both can be
undone (so they aggregate tables too) and merged (session windows).

PERCENTILE keeps every distinct value with its count (``{value: count}``), so its state grows
with the number of distinct values: fine for small groups. Its result is ``PERCENTILE_CONT``'s:
with the values sorted ``x[0..n-1]`` and ``h = p * (n - 1)``, ``x[floor(h)]`` plus the fraction
of ``h`` of the way to the next value.

APPROX_PERCENTILE is a DDSketch (Masson et al., VLDB 2019): values go to logarithmic buckets
``(gamma^(i-1), gamma^i]`` with ``gamma = (1 + a) / (1 - a)`` for relative accuracy ``a``
(default 0.01), so a window of a million latencies keeps a few hundred counters. The result is
the value of rank ``floor(p * (n - 1))`` of the sorted values (the nearest lower rank) to within
``a`` relative error: ``|result - exact| <= a * |exact|``.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

import numpy as np

from mailroom.formats.types import SqlType

from ..registry import FunctionError, FunctionRegistry, Overload
from .aggregates import _Agg

#: |x| below this counts as zero in the sketch (log buckets cannot hold 0)
_MIN_ABS = 1e-9
#: runs shorter than this are folded value by value (numpy's fixed cost is not worth it)
_VECTOR_MIN = 16
_NAN = float("nan")


def _fraction(literals: tuple, name: str) -> float:
    if not literals or isinstance(literals[0], bool) or not isinstance(literals[0], (int, float, decimal.Decimal)):
        raise FunctionError(f"{name} needs a constant percentage between 0 and 1, e.g. {name}(col, 0.95)")
    p = float(literals[0])
    if not 0.0 <= p <= 1.0:
        raise FunctionError(f"{name}: the percentage must be between 0 and 1, got {p}")
    return p


def _count_into(counts: dict, keys: np.ndarray) -> dict:
    """A copy of ``counts`` plus one per key, new keys added in order of first appearance."""
    out = dict(counts)
    if len(keys):
        uniq, first, n = np.unique(keys, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        for k, c in zip(uniq[order].tolist(), n[order].tolist()):
            out[k] = out.get(k, 0) + c
    return out


def _bump(counts: dict, k: Any, d: int) -> dict:
    out = dict(counts)
    n = out.get(k, 0) + d
    if n > 0:
        out[k] = n
    else:
        out.pop(k, None)
    return out


class Percentile(_Agg):
    """Exact. State: {value: count}."""

    def __init__(self, types: list[Any], literals: tuple) -> None:
        super().__init__(types, literals)
        self.p = _fraction(literals, "PERCENTILE")

    def initialize(self) -> dict:
        return {}

    def aggregate(self, s: dict, v: Any, *_: Any) -> dict:
        return s if v is None else _bump(s, v, 1)

    def undo(self, s: dict, v: Any, *_: Any) -> dict:
        return s if v is None else _bump(s, v, -1)

    def merge(self, a: dict, b: dict) -> dict:
        out = dict(a)
        for k, n in b.items():
            out[k] = out.get(k, 0) + n
        return out

    def result(self, s: dict) -> float | None:
        n = sum(s.values())
        if n == 0:
            return None
        h = self.p * (n - 1)
        lo = math.floor(h)
        items = sorted(s.items())

        def at(rank: int) -> float:
            seen = 0
            for v, c in items:
                seen += c
                if seen > rank:
                    return float(v)
            return float(items[-1][0])

        x_lo = at(lo)
        return x_lo if h == lo else x_lo + (h - lo) * (at(lo + 1) - x_lo)


class ApproxPercentile(_Agg):
    """DDSketch. State: [zero count, {bucket: count} of positives, {bucket: count} of negatives]."""

    def __init__(self, types: list[Any], literals: tuple) -> None:
        super().__init__(types, literals)
        self.p = _fraction(literals, "APPROX_PERCENTILE")
        acc = float(literals[1]) if len(literals) > 1 else 0.01
        if not 0.0 < acc < 1.0:
            raise FunctionError(f"APPROX_PERCENTILE: the relative accuracy must be between 0 and 1, got {acc}")
        self.gamma = (1 + acc) / (1 - acc)
        self.log_gamma = math.log(self.gamma)

    def initialize(self) -> list:
        return [0, {}, {}]

    def _update(self, s: list, v: Any, d: int) -> list:
        if v is None:
            return s
        x = float(v)
        if math.isnan(x):
            return s
        if abs(x) < _MIN_ABS:
            return [s[0] + d, s[1], s[2]]
        i = math.ceil(math.log(abs(x)) / self.log_gamma)
        if x > 0:
            return [s[0], _bump(s[1], i, d), s[2]]
        return [s[0], s[1], _bump(s[2], i, d)]

    def aggregate(self, s: list, v: Any, *_: Any) -> list:
        return self._update(s, v, 1)

    def aggregate_many(self, s: list, col: list, *_: list) -> list:
        """Batch form: the same buckets counted into one copy of each map, keys in first-seen
        order as the per-value fold inserts them (the stored state is byte-identical).

        Bucket indexes come from numpy's log over the whole run; the rare values whose
        ``log(|x|) / log(gamma)`` lies within 1e-6 of an integer (where numpy's log and
        ``math.log`` could round to different buckets) are recomputed with ``math``."""
        if len(col) < _VECTOR_MIN:
            return self._fold(s, col)
        x = np.fromiter((_NAN if v is None else float(v) for v in col), np.float64, len(col))
        x = x[~np.isnan(x)]
        if not np.isfinite(x).all():
            return self._fold(s, col)  # infinities: the per-value path says what happens
        ax = np.abs(x)
        small = ax < _MIN_ABS
        x, ax = x[~small], ax[~small]
        with np.errstate(all="ignore"):
            r = np.log(ax) / self.log_gamma
        idx = np.ceil(r)
        near = np.flatnonzero(np.abs(r - np.rint(r)) < 1e-6)
        for k in near.tolist():
            idx[k] = math.ceil(math.log(float(ax[k])) / self.log_gamma)
        idx = idx.astype(np.int64)
        positive = x > 0
        return [s[0] + int(small.sum()), _count_into(s[1], idx[positive]), _count_into(s[2], idx[~positive])]

    def _fold(self, s: list, col: list) -> list:
        zeros, pos, neg = s[0], dict(s[1]), dict(s[2])
        log, ceil, lg, isnan = math.log, math.ceil, self.log_gamma, math.isnan
        for v in col:
            if v is None:
                continue
            x = float(v)
            if isnan(x):
                continue
            ax = abs(x)
            if ax < _MIN_ABS:
                zeros += 1
                continue
            i = ceil(log(ax) / lg)
            m = pos if x > 0 else neg
            m[i] = m.get(i, 0) + 1
        return [zeros, pos, neg]

    def undo(self, s: list, v: Any, *_: Any) -> list:
        return self._update(s, v, -1)

    def merge(self, a: list, b: list) -> list:
        pos, neg = dict(a[1]), dict(a[2])
        for k, n in b[1].items():
            pos[k] = pos.get(k, 0) + n
        for k, n in b[2].items():
            neg[k] = neg.get(k, 0) + n
        return [a[0] + b[0], pos, neg]

    def _value(self, i: int) -> float:
        # the bucket's point of least relative error to both of its bounds
        return 2 * self.gamma ** i / (self.gamma + 1)

    def result(self, s: list) -> float | None:
        zeros, pos, neg = s
        n = zeros + sum(pos.values()) + sum(neg.values())
        if n <= 0:
            return None
        rank = math.floor(self.p * (n - 1))
        seen = 0
        for i in sorted(neg, key=int, reverse=True):  # most negative first
            seen += neg[i]
            if seen > rank:
                return -self._value(int(i))
        seen += zeros
        if seen > rank:
            return 0.0
        for i in sorted(pos, key=int):
            seen += pos[i]
            if seen > rank:
                return self._value(int(i))
        return None  # unreachable: the counts add up to n


def register(reg: FunctionRegistry) -> None:
    """Register PERCENTILE and APPROX_PERCENTILE (numbers of any type widen to DOUBLE)."""
    D = SqlType.DOUBLE
    reg.register_aggregate(
        "PERCENTILE", Overload([D, D], D, Percentile),
        author="mailroom", version="1", category="AGGREGATE",
        description="PERCENTILE(col, p): the exact p-th percentile (0 <= p <= 1) of the non-NULL values, "
                    "interpolated linearly between ranks (PERCENTILE_CONT); keeps every distinct value.")
    reg.register_aggregate(
        "APPROX_PERCENTILE", Overload([D, D], D, ApproxPercentile), Overload([D, D, D], D, ApproxPercentile),
        author="mailroom", version="1", category="AGGREGATE",
        description="APPROX_PERCENTILE(col, p [, accuracy]): the value of rank floor(p*(n-1)) of the non-NULL "
                    "values within relative error `accuracy` (default 0.01), in a small state (DDSketch).")
