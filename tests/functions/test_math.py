import math
from decimal import Decimal

import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionError


def test_abs_round_ceil_floor(reg, call):
    assert call("ABS", (T.DOUBLE, -1.5)) == 1.5
    assert call("ABS", (T.decimal(4, 2), Decimal("-1.25"))) == Decimal("1.25")
    assert reg.resolve_scalar("ROUND", [T.DOUBLE]).return_type == T.BIGINT
    assert call("ROUND", (T.DOUBLE, 2.5)) == 3 and call("ROUND", (T.DOUBLE, -2.5)) == -2
    assert call("ROUND", (T.DOUBLE, 1.2345), (T.INT, 2)) == 1.23
    assert call("ROUND", (T.decimal(5, 3), Decimal("1.235")), (T.INT, 2)) == Decimal("1.240")
    assert call("CEIL", (T.DOUBLE, 1.1)) == 2.0 and call("FLOOR", (T.DOUBLE, -1.1)) == -2.0
    assert call("SIGN", (T.INT, -5)) == -1 and call("SIGN", (T.DOUBLE, None)) is None


def test_sqrt_exp_ln_log_power(call):
    assert call("SQRT", (T.INT, 16)) == 4.0
    assert math.isnan(call("SQRT", (T.DOUBLE, -1.0)))
    assert call("EXP", (T.INT, 0)) == 1.0
    assert call("LN", (T.DOUBLE, math.e)) == pytest.approx(1.0)
    assert call("LOG", (T.INT, 2), (T.INT, 8)) == pytest.approx(3.0)
    assert call("POWER", (T.INT, 2), (T.INT, 10)) == 1024.0


def test_greatest_least(reg, call):
    assert call("GREATEST", (T.INT, 1), (T.INT, None), (T.INT, 5)) == 5
    assert call("LEAST", (T.STRING, "b"), (T.STRING, "a"), (None, None)) == "a"
    r = reg.resolve_scalar("GREATEST", [T.decimal(9, 2), T.decimal(7, 6)])
    assert r.return_type == T.decimal(13, 6)
    assert r.fn(Decimal("1234567.89"), Decimal("1.000001")) == Decimal("1234567.89")
    r = reg.resolve_scalar("GREATEST", [T.INT, T.BIGINT, T.decimal(30, 18), T.DOUBLE, None])
    out = r.fn(1, 1000000000000, Decimal("1.5"), 2.0, None)
    assert out == 1000000000000.0 and isinstance(out, float)
    with pytest.raises(FunctionError, match="ambiguous"):
        reg.resolve_scalar("GREATEST", [None, None, None, None])
    with pytest.raises(FunctionError, match="does not accept parameters \\(STRING, INTEGER\\)"):
        reg.resolve_scalar("GREATEST", [T.STRING, T.INT])


def test_geo_distance(call):
    d = [(T.DOUBLE, x) for x in (37.4439, -122.1663, 51.5257, -0.1122)]
    assert call("GEO_DISTANCE", *d) == pytest.approx(8634.659796579544, rel=1e-12)
    assert call("GEO_DISTANCE", *d, (T.STRING, "MI")) == pytest.approx(5365.659729188262, rel=1e-12)
    ld = [(T.DOUBLE, x) for x in (51.5257, -0.1122, -33.9323, 18.4197)]
    assert call("GEO_DISTANCE", *ld) == 9673.40421197142
