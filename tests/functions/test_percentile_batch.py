"""APPROX_PERCENTILE's numpy batch form puts every value in the bucket the per-value fold
(``math.log``) chooses, also at bucket boundaries, and stores byte-identical state."""

import math
import random

import msgpack
import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import builtin_registry


@pytest.mark.parametrize("accuracy", [0.01, 0.005, 0.05])
def test_boundaries_and_big_values_match_the_fold(accuracy):
    agg = builtin_registry().resolve_aggregate("APPROX_PERCENTILE", [T.DOUBLE, T.DOUBLE, T.DOUBLE], (0.9, accuracy))
    g = (1 + accuracy) / (1 - accuracy)
    rnd = random.Random(7)
    col = []
    for k in range(-800, 800, 3):  # exact powers of gamma and their float neighbours
        b = g ** k
        col += [b, math.nextafter(b, 0), math.nextafter(b, math.inf), -b]
    col += [rnd.randint(1, 10**18) for _ in range(500)] + [None, float("nan"), 0, -0.0, 1e-10] * 20
    rnd.shuffle(col)
    per_value = agg.initialize()
    for v in col:
        per_value = agg.aggregate(per_value, v)
    batch = agg.aggregate_many(agg.initialize(), col)
    assert msgpack.packb(batch) == msgpack.packb(per_value)
    assert agg.result(batch) == agg.result(per_value)
    assert sum(batch[1].values()) + sum(batch[2].values()) + batch[0] == len(col) - 40  # NULL and NaN skipped
