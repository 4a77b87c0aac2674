"""PERCENTILE (exact, interpolated) and APPROX_PERCENTILE (DDSketch, relative accuracy)."""

import math
import random
from decimal import Decimal

import msgpack
import numpy as np
import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionError


def run(agg, values):
    s = agg.initialize()
    for v in values:
        s = agg.aggregate(s, v)
    return msgpack.unpackb(msgpack.packb(s), strict_map_key=False)  # the state survives the store


def test_percentile_is_exact_and_interpolates(reg):
    p = reg.resolve_aggregate("PERCENTILE", [T.BIGINT, T.decimal(2, 2)], literal_args=(Decimal("0.95"),))
    assert p.return_type == T.DOUBLE
    vals = [random.Random(1).randint(0, 10_000) for _ in range(2001)] + [None]
    clean = [v for v in vals if v is not None]
    for q in (0.0, 0.5, 0.95, 1.0):
        agg = reg.resolve_aggregate("PERCENTILE", [T.BIGINT, T.DOUBLE], literal_args=(q,))
        assert agg.result(run(agg, vals)) == pytest.approx(float(np.quantile(clean, q)))
    assert p.result(run(p, [None])) is None
    s = run(p, [1, 2, 3, 4, 100])
    assert p.result(p.undo(s, 100)) == pytest.approx(float(np.quantile([1, 2, 3, 4], 0.95)))
    assert p.result(p.merge(run(p, [1, 2]), run(p, [3, 4]))) == pytest.approx(float(np.quantile([1, 2, 3, 4], 0.95)))


@pytest.mark.parametrize("acc", [0.01, 0.05])
def test_approx_percentile_is_within_its_relative_accuracy(reg, acc):
    rng = random.Random(7)
    vals = [rng.lognormvariate(8, 2) for _ in range(20_000)] + [0.0] * 50 + [-rng.expovariate(0.01) for _ in range(300)]
    srt = sorted(vals)
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        agg = reg.resolve_aggregate("APPROX_PERCENTILE", [T.DOUBLE, T.DOUBLE, T.DOUBLE], literal_args=(q, acc))
        st = run(agg, vals)
        exact = srt[math.floor(q * (len(srt) - 1))]
        assert abs(agg.result(st) - exact) <= acc * abs(exact) + 1e-12, (q, agg.result(st), exact)
    # the state stays small: a few hundred buckets for values over many orders of magnitude
    assert len(st[1]) + len(st[2]) < (1000 if acc == 0.01 else 250), len(st[1]) + len(st[2])


def test_approx_percentile_undo_merge_and_empty(reg):
    agg = reg.resolve_aggregate("APPROX_PERCENTILE", [T.BIGINT, T.DOUBLE], literal_args=(0.5,))
    assert agg.result(agg.initialize()) is None
    a, b = run(agg, [10, 20, 30]), run(agg, [40, 50])
    assert agg.result(agg.merge(a, b)) == pytest.approx(30, rel=0.01)
    assert agg.result(agg.undo(agg.undo(a, 30), 20)) == pytest.approx(10, rel=0.01)
    assert agg.result(run(agg, [None, None])) is None


@pytest.mark.parametrize("name", ["PERCENTILE", "APPROX_PERCENTILE"])
def test_bad_percentages_are_clear_errors(reg, name):
    with pytest.raises(FunctionError, match="between 0 and 1"):
        reg.resolve_aggregate(name, [T.BIGINT, T.DOUBLE], literal_args=(1.5,))
    with pytest.raises(FunctionError, match="constant percentage"):
        reg.resolve_aggregate(name, [T.BIGINT, T.DOUBLE], literal_args=())
