"""Math functions: ABS, CEIL, FLOOR, ROUND, SIGN, SQRT, CBRT, EXP, LN, LOG, POWER, RANDOM,
GREATEST, LEAST, GEO_DISTANCE, trigonometry, PI, TRUNC."""

from __future__ import annotations

import decimal
import math
import random
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from mailroom.formats.types import SqlType

from ..registry import FunctionError, FunctionRegistry
from ..typing_rules import common_type_of
from ._util import O, same_type, scalar

I, B, D, S = SqlType.INT, SqlType.BIGINT, SqlType.DOUBLE, SqlType.STRING
CAT = "MATHEMATICAL"
_CTX = decimal.Context(prec=38)


def _dec_int_type(types: list[SqlType]) -> SqlType:
    t = types[0]
    p, s = t.precision or 1, t.scale or 0
    return SqlType.decimal(max(1, min(38, p - s + (1 if s > 0 else 0))), 0)


def _java_round_double(x: float) -> int:
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return (1 << 63) - 1 if x > 0 else -(1 << 63)
    return math.floor(x + 0.5)


def _round_double_places(x: float, places: int) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=_CTX)) if places >= -300 else 0.0


def _round_dec(x: Decimal) -> Decimal:
    return x.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_CTX)


def _round_dec_places(x: Decimal, places: int) -> Decimal:
    scale = -x.as_tuple().exponent if isinstance(x.as_tuple().exponent, int) else 0
    r = x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=_CTX)
    return r.quantize(Decimal(1).scaleb(-scale), context=_CTX) if scale >= 0 else r


def _round_int_places(x: int, places: int) -> int:
    if places >= 0:
        return x
    return int(Decimal(x).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=_CTX))


def _sign(x: Any) -> int:
    if isinstance(x, float) and math.isnan(x):
        return 0
    return (x > 0) - (x < 0)


def _ln(x: float) -> float:
    if x == 0:
        return -math.inf
    if x < 0 or math.isnan(x):
        return math.nan
    return math.log(x)


def _log(base: float, x: float | None = None) -> float:
    if x is None:
        return _ln(base)
    lb = _ln(base)
    return _ln(x) / lb if lb not in (0.0,) else (math.nan if _ln(x) == 0 else math.copysign(math.inf, _ln(x)))


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else math.nan


def _power(b: float, e: float) -> float:
    try:
        return math.pow(b, e)
    except (ValueError, OverflowError):
        return math.nan if b < 0 else math.inf


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _cbrt(x: float) -> float:
    return math.copysign(abs(x) ** (1.0 / 3.0), x)


def _extreme(pick):
    def f(*args: Any) -> Any:
        vals = [a for a in args if a is not None]
        return pick(vals) if vals else None

    return f


_RADIUS = {"KM": 6371.0, "KILOMETER": 6371.0, "KILOMETERS": 6371.0, "KILOMETRE": 6371.0, "KILOMETRES": 6371.0,
           "MI": 3959.0, "MILE": 3959.0, "MILES": 3959.0}


def _geo_distance(lat1: float, lon1: float, lat2: float, lon2: float, unit: str | None = "KM") -> float:
    if unit is None:
        unit = "KM"
    r = _RADIUS.get(unit.upper())
    if r is None:
        raise FunctionError("GEO_DISTANCE: radius must be one of KM, KILOMETERS, MI, MILES; got " + repr(unit))
    for v, lim, what in ((lat1, 90, "latitude"), (lat2, 90, "latitude"), (lon1, 180, "longitude"), (lon2, 180, "longitude")):
        if not -lim <= v <= lim:
            raise FunctionError(f"GEO_DISTANCE: {what} must be between -{lim} and {lim}, got {v}")
    la1, la2 = math.radians(lat1), math.radians(lat2)
    dlat, dlon = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    a = math.pow(math.sin(dlat / 2), 2) + math.pow(math.sin(dlon / 2), 2) * math.cos(la1) * math.cos(la2)
    return r * 2 * math.asin(math.sqrt(a))


def _common(types: list[Any]) -> SqlType:
    t = common_type_of([x for x in types if x is not None])
    if t is None:
        raise FunctionError("cannot infer the result type: every argument is NULL")
    return t


def _trunc_double(x: float, places: int = 0) -> float:
    q = Decimal(repr(x)).quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_DOWN, context=_CTX)
    return float(q)


def register(reg: FunctionRegistry) -> None:
    sc = lambda name, *ovs, d="": scalar(reg, name, *ovs, description=d, category=CAT)  # noqa: E731
    sc("ABS", O([I], I, abs), O([B], B, abs), O([D], D, abs), O(["DECIMAL"], same_type, abs), d="Absolute value.")
    sc("CEIL", O([I], I, lambda x: x), O([B], B, lambda x: x), O([D], D, lambda x: float(math.ceil(x)) if math.isfinite(x) else x),
       O(["DECIMAL"], _dec_int_type, lambda x: x.to_integral_value(rounding=ROUND_CEILING)), d="Rounds up to an integral value.")
    sc("FLOOR", O([I], I, lambda x: x), O([B], B, lambda x: x), O([D], D, lambda x: float(math.floor(x)) if math.isfinite(x) else x),
       O(["DECIMAL"], _dec_int_type, lambda x: x.to_integral_value(rounding=ROUND_FLOOR)), d="Rounds down to an integral value.")
    sc("ROUND",
       O([I], I, lambda x: x), O([B], B, lambda x: x), O([D], B, _java_round_double),
       O(["DECIMAL"], _dec_int_type, _round_dec),
       O([I, I], I, _round_int_places), O([B, I], B, _round_int_places), O([D, I], D, _round_double_places),
       O(["DECIMAL", I], same_type, _round_dec_places),
       d="Rounds half up; ROUND(x, places) keeps the type (DOUBLE for DOUBLE, same DECIMAL scale).")
    sc("TRUNC", O([D], B, lambda x: int(x)), O([D, I], D, _trunc_double), d="Truncates toward zero.")
    sc("SIGN", O([I], I, _sign), O([B], I, _sign), O([D], I, _sign), O(["DECIMAL"], I, _sign), d="-1, 0 or 1.")
    sc("SQRT", O([I], D, _sqrt), O([B], D, _sqrt), O([D], D, _sqrt), O(["DECIMAL"], D, lambda x: _sqrt(float(x))), d="Square root.")
    sc("CBRT", O([D], D, _cbrt), d="Cube root.")
    sc("EXP", O([I], D, _exp), O([B], D, _exp), O([D], D, _exp), d="e to the power of x.")
    sc("LN", O([I], D, _ln), O([B], D, _ln), O([D], D, _ln), d="Natural logarithm.")
    sc("LOG", O([I], D, _log), O([B], D, _log), O([D], D, _log), O([I, I], D, _log), O([B, B], D, _log), O([D, D], D, _log),
       d="LOG(x): natural logarithm; LOG(base, x): logarithm in a base.")
    sc("POWER", O([I, I], D, _power), O([B, B], D, _power), O([D, D], D, _power), d="POWER(base, exponent).")
    sc("RANDOM", O([], D, random.random), d="A random DOUBLE in [0, 1).")
    sc("PI", O([], D, lambda: math.pi), d="The constant pi.")
    for nm, f in (("SIN", math.sin), ("COS", math.cos), ("TAN", math.tan), ("SINH", math.sinh), ("COSH", math.cosh), ("TANH", math.tanh)):
        sc(nm, O([D], D, f), d=f"{nm.lower()}(x), x in radians.")
    for nm, f in (("ASIN", math.asin), ("ACOS", math.acos), ("ATAN", math.atan)):
        sc(nm, O([D], D, lambda x, f=f: f(x) if -1 <= x <= 1 or f is math.atan else math.nan), d=f"{nm.lower()}(x) in radians.")
    sc("ATAN2", O([D, D], D, math.atan2), d="atan2(y, x).")
    sc("COT", O([D], D, lambda x: 1.0 / math.tan(x) if math.tan(x) != 0 else math.inf), d="Cotangent.")
    sc("DEGREES", O([D], D, math.degrees), d="Radians to degrees.")
    sc("RADIANS", O([D], D, math.radians), d="Degrees to radians.")
    for nm, pick in (("GREATEST", max), ("LEAST", min)):
        f = _extreme(pick)
        ovs = [O([t, t], t, f, variadic=1, strict=False) for t in (I, B, D, S, SqlType.BYTES, SqlType.DATE, SqlType.TIME, SqlType.TIMESTAMP)]
        ovs.insert(3, O(["DECIMAL", "DECIMAL"], _common, f, variadic=1, strict=False))
        sc(nm, *ovs, d=f"The {'highest' if pick is max else 'lowest'} non-NULL argument.")
    sc("GEO_DISTANCE", O([D, D, D, D], D, _geo_distance), O([D, D, D, D, S], D, _geo_distance, strict_args=[0, 1, 2, 3]),
       d="Great-circle distance between two lat/lon points, in KM (default) or MI.")
