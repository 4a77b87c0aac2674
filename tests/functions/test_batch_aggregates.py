"""The batch form of the built-in aggregates (``aggregate_many``) gives the per-value fold's
states and results, on random data with NULLs, split into random runs."""

import datetime as dt
import decimal
import random

import msgpack
import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions.api import udaf
from mailroom.functions.registry import FunctionRegistry
from mailroom.sql.columnar import SqlAggregator


def _nullable(rnd, gen, p=0.2):
    return lambda: None if rnd.random() < p else gen()


def _columns(rnd, gens, n):
    return [[g() for _ in range(n)] for g in gens]


def _runs(rnd, n):
    """Random run boundaries over n rows (some empty runs)."""
    cuts = sorted(rnd.randint(0, n) for _ in range(rnd.randint(0, 6)))
    bounds = [0] + cuts + [n]
    return list(zip(bounds, bounds[1:]))


def _strip_seq(name, s):
    # LATEST/EARLIEST_BY_OFFSET state entries carry a global arrival sequence number
    return [e[1] for e in s] if "OFFSET" in name else s


def _store(s):
    return msgpack.unpackb(msgpack.packb(s), strict_map_key=False)


def _check(agg, name, cols, seed):
    rnd = random.Random(seed)
    assert agg.aggregate_many is not None, f"{name} has no batch form"
    per_value = batch = agg.initialize()
    for lo, hi in _runs(rnd, len(cols[0])):
        for i in range(lo, hi):
            per_value = agg.aggregate(per_value, *[c[i] for c in cols])
        batch = agg.aggregate_many(batch, *[c[lo:hi] for c in cols])
        per_value, batch = _store(per_value), _store(batch)  # both survive the state store
        # bytes / repr: NaN and -0.0 must match too
        assert msgpack.packb(_strip_seq(name, batch)) == msgpack.packb(_strip_seq(name, per_value)), name
        assert repr(agg.result(batch)) == repr(agg.result(per_value)), name


def _rnd_float(rnd):
    return lambda: rnd.choice([0.0, -0.0, 1e-12, float("nan"), -rnd.expovariate(0.01), rnd.expovariate(0.001),
                               rnd.uniform(-1e6, 1e6), 5.0])


def _gens(rnd, t):
    if t == T.BIGINT or t == T.INT:
        return _nullable(rnd, lambda: rnd.randint(-5, 5) * 10**rnd.randint(0, 12))
    if t == T.DOUBLE:
        return _nullable(rnd, _rnd_float(rnd))
    if t == T.STRING:
        return _nullable(rnd, lambda: rnd.choice(["a", "b", "delivered", "bounced", ""]))
    if t == T.TIMESTAMP:
        return _nullable(rnd, lambda: dt.datetime(2026, 1, 1) + dt.timedelta(seconds=rnd.randint(0, 50)))
    if t.base == "DECIMAL":
        return _nullable(rnd, lambda: decimal.Decimal(rnd.randint(-10**6, 10**6)).scaleb(-3))
    raise AssertionError(t)


CASES = [
    ("COUNT", [T.STRING], ()),
    ("COUNT", [T.DOUBLE], ()),
    ("SUM", [T.DOUBLE], ()),
    ("SUM", [T.BIGINT], ()),
    ("MIN", [T.DOUBLE], ()),
    ("MAX", [T.BIGINT], ()),
    ("MIN", [T.STRING], ()),
    ("MAX", [T.TIMESTAMP], ()),
    ("LATEST_BY_OFFSET", [T.STRING], ()),
    ("LATEST_BY_OFFSET", [T.BIGINT, T.INT], (3,)),
    ("LATEST_BY_OFFSET", [T.STRING, T.BOOLEAN], (False,)),
    ("EARLIEST_BY_OFFSET", [T.STRING], ()),
    ("EARLIEST_BY_OFFSET", [T.DOUBLE, T.INT], (4,)),
    ("EARLIEST_BY_OFFSET", [T.TIMESTAMP, T.BOOLEAN], (False,)),
    ("MAX_BY", [T.STRING, T.BIGINT], ()),
    ("MIN_BY", [T.STRING, T.BIGINT], ()),
    ("MAX_BY", [T.BIGINT, T.STRING, T.BOOLEAN], (False,)),
    ("MIN_BY", [T.TIMESTAMP, T.TIMESTAMP], ()),
    ("APPROX_PERCENTILE", [T.DOUBLE, T.DOUBLE], (0.95,)),
    ("APPROX_PERCENTILE", [T.DOUBLE, T.DOUBLE, T.DOUBLE], (0.5, 0.005)),
    ("COLLECT_LIST", [T.STRING], ()),
    ("COLLECT_LIST", [T.TIMESTAMP], ()),
]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("name,types,literals", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_batch_form_matches_the_per_value_fold(reg, name, types, literals, seed):
    rnd = random.Random(hash((name, seed, len(types))) & 0xFFFF)
    agg = reg.resolve_aggregate(name, types, literals)
    # the literal parameters are columns of one constant value in the SQL layer
    gens = [_gens(rnd, t) for t in types[: len(types) - len(literals)]]
    n = rnd.choice([0, 1, 7, 300])
    cols = _columns(rnd, gens, n) + [[lit] * n for lit in literals]
    _check(agg, name, cols, seed)


def test_decimal_sum_and_min(reg):
    rnd = random.Random(3)
    dec_t = T.decimal(10, 3)
    gen = _gens(rnd, dec_t)
    for name in ("SUM", "MIN", "MAX"):
        agg = reg.resolve_aggregate(name, [dec_t])
        _check(agg, name, [[gen() for _ in range(200)]], 1)


def test_collect_list_batch_stops_at_the_limit(reg):
    agg = reg.resolve_aggregate("COLLECT_LIST", [T.BIGINT])
    s = agg.aggregate_many(agg.initialize(), list(range(1500)))
    assert agg.result(agg.aggregate_many(s, [1, 2])) == list(range(1000))


def test_collect_set_has_no_batch_form(reg):
    assert reg.resolve_aggregate("COLLECT_SET", [T.BIGINT]).aggregate_many is None


def _user_registry(fail_batch: bool):
    reg = FunctionRegistry()

    @udaf(name="SUM_POS", registry=reg)
    class SumPos:
        """Sum of the positive values (with a batch form)."""

        def initialize(self) -> int:
            return 0

        def aggregate(self, s: int, v: int) -> int:
            if v < 0:
                raise ValueError("negative")
            return s + v

        def aggregate_many(self, s: int, col: list) -> int:
            if fail_batch or any(v < 0 for v in col):
                raise ValueError("negative in batch")
            return s + sum(col)

        def merge(self, a: int, b: int) -> int:
            return a + b

        def map(self, s: int) -> int:
            return s

    return reg


def test_sql_aggregator_uses_a_user_batch_form_and_falls_back_to_the_fold():
    for fail in (False, True):
        agg = _user_registry(fail).resolve_aggregate("SUM_POS", [T.BIGINT])
        assert agg.aggregate_many is not None
        errors: list[str] = []
        sql = SqlAggregator([agg], [["a"]], errors.append)
        col = [3, 4, 5, 3, -1, 5]  # a key's argument run is col[lo:hi]
        out = sql.merge(sql.initial(), ([[col]], 0, 3))
        assert out == [12] and errors == []
        # a failing value: the batch form raises, the fold skips that value and reports it
        out = sql.merge(out, ([[col]], 3, 6))
        assert out == [20]
        assert len(errors) == 1 and "SUM_POS" in errors[0] and "negative" in errors[0]


def test_sql_aggregator_partial_with_count_star_only_and_repeated_keys(reg):
    """COUNT(*) alone has no argument columns: the batch's keys still group into runs."""
    import numpy as np
    import polars as pl

    from mailroom.engine.batch import Batch

    count = reg.resolve_aggregate("COUNT", [])
    sql = SqlAggregator([count], [[]], lambda m: None)
    keys = ["a", "b", "a", "a"]
    batch = Batch(keys, pl.DataFrame({"X": [1, 2, 3, 4]}), np.zeros(4, dtype=np.int64))
    parts = sql.partial(keys, batch)
    assert {k: sql.merge(sql.initial(), p) for k, p in parts.items()} == {"a": [3], "b": [1]}
