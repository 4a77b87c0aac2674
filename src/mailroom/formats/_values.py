"""Value coercion shared by the formats (internal).

:func:`coerce` turns a decoded value (from JSON, a CSV field, Avro, or the caller) into the
Python value of a :class:`SqlType`, the way ksqlDB's deserializers do: numbers from numeric
strings, strings from any scalar, ... It raises :class:`CoercionError` (a ValueError) with a
reason; the serdes wrap it in a :class:`~mailroom.errors.SerdeError` with the record's position.

:func:`to_wire` turns a Python value into what ksqlDB puts on the wire for text formats:
TIMESTAMP as epoch milliseconds, DATE as epoch days, TIME as milliseconds of the day, BYTES as
base64, DECIMAL as a number.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

import orjson

from .types import SqlType

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

EPOCH = dt.datetime(1970, 1, 1)
EPOCH_DATE = dt.date(1970, 1, 1)
MS_PER_DAY = 86_400_000


#: DECIMAL precision is not capped at the default context's 28 digits (DECIMAL(33, 16) and up)
_WIDE = Context(prec=1000)


class CoercionError(ValueError):
    """A value does not fit a SQL type; the message is the reason."""


def _desc(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _fail(value: Any, t: SqlType, path: str) -> CoercionError:
    where = f"field {path}: " if path else ""
    return CoercionError(f"{where}cannot convert {_desc(value)} to {t}")


def coerce(value: Any, t: SqlType, path: str = "") -> Any:
    """``value`` as the Python value of ``t`` (None stays None); CoercionError if it cannot be."""
    if value is None:
        return None
    fn = _COERCERS[t.base]
    return fn(value, t, path)


def coerce_out(value: Any, t: SqlType, path: str = "") -> Any:
    """Like :func:`coerce`, for writing: a DECIMAL value keeps its own scale when it is no finer
    than the column's (ksqlDB's JSON writer writes a BigDecimal as it is, so GREATEST of a
    DECIMAL(9,2) and a DECIMAL(7,6) writes 1234567.89, not 1234567.890000)."""
    if value is None:
        return None
    return _OUT_COERCERS[t.base](value, t, path)


def _boolean(v: Any, t: SqlType, path: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "false"):
            return low == "true"
    raise _fail(v, t, path)


def _integer(v: Any, t: SqlType, path: str) -> int:
    lo, hi = (INT_MIN, INT_MAX) if t.base == "INT" else (BIGINT_MIN, BIGINT_MAX)
    if isinstance(v, bool):
        raise _fail(v, t, path)
    if isinstance(v, int):
        out = v
    elif isinstance(v, float | Decimal):
        if not math.isfinite(v):
            raise _fail(v, t, path)
        out = int(v)  # truncates toward zero, like Java's intValue()/longValue()
    elif isinstance(v, str):
        try:
            out = int(v.strip())
        except ValueError:
            raise _fail(v, t, path) from None
    else:
        raise _fail(v, t, path)
    if not lo <= out <= hi:
        where = f"field {path}: " if path else ""
        raise CoercionError(f"{where}{out} is out of range for {t}")
    return out


def _double(v: Any, t: SqlType, path: str) -> float:
    if isinstance(v, bool):
        raise _fail(v, t, path)
    if isinstance(v, int | float | Decimal):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            raise _fail(v, t, path) from None
    raise _fail(v, t, path)


def _string(v: Any, t: SqlType, path: str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | Decimal):
        return str(v)
    if isinstance(v, dict | list):
        try:
            return orjson.dumps(v, default=json_default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
        except TypeError:
            raise _fail(v, t, path) from None
    raise _fail(v, t, path)


def _decimal(v: Any, t: SqlType, path: str) -> Decimal:
    if isinstance(v, bool):
        raise _fail(v, t, path)
    try:
        if isinstance(v, Decimal):
            d = v
        elif isinstance(v, int):
            d = Decimal(v)
        elif isinstance(v, float):
            d = Decimal(repr(v))
        elif isinstance(v, str):
            d = Decimal(v.strip())
        else:
            raise _fail(v, t, path)
        if not d.is_finite():
            raise _fail(v, t, path)
        q = d.quantize(Decimal(1).scaleb(-t.scale), rounding=ROUND_HALF_UP, context=_WIDE)  # type: ignore[arg-type]
    except InvalidOperation:
        raise _fail(v, t, path) from None
    if len(q.as_tuple().digits) > t.precision and q != 0:  # type: ignore[operator]
        where = f"field {path}: " if path else ""
        raise CoercionError(f"{where}{d} does not fit {t}")
    return q


def _decimal_out(v: Any, t: SqlType, path: str) -> Decimal:
    if isinstance(v, Decimal) and v.is_finite():
        exp = v.as_tuple().exponent
        # no finer than the column and fits its whole digits (ksqlDB's ensureMax): kept as is
        if -t.scale <= exp <= 0 and v.copy_abs() < Decimal(1).scaleb(t.precision - t.scale):  # type: ignore[operator]
            return v
    return _decimal(v, t, path)


def _bytes(v: Any, t: SqlType, path: str) -> bytes:
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            where = f"field {path}: " if path else ""
            raise CoercionError(f"{where}not valid base64 for BYTES: {_desc(v)}") from None
    raise _fail(v, t, path)


def _int_of(v: Any) -> int | None:
    """An integral value from an int or a string of digits, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s.lstrip("-").isdigit():
            return int(s)
    return None


def _timestamp(v: Any, t: SqlType, path: str) -> dt.datetime:
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return v
    n = _int_of(v)
    try:
        if n is not None:
            return EPOCH + dt.timedelta(milliseconds=n)
        if isinstance(v, str):
            return _timestamp(dt.datetime.fromisoformat(v.strip()), t, path)
    except (ValueError, OverflowError):
        pass
    raise _fail(v, t, path)


def _date(v: Any, t: SqlType, path: str) -> dt.date:
    if isinstance(v, dt.datetime):
        raise _fail(v, t, path)
    if isinstance(v, dt.date):
        return v
    n = _int_of(v)
    try:
        if n is not None:
            return EPOCH_DATE + dt.timedelta(days=n)
        if isinstance(v, str):
            return dt.date.fromisoformat(v.strip())
    except (ValueError, OverflowError):
        pass
    raise _fail(v, t, path)


def _time(v: Any, t: SqlType, path: str) -> dt.time:
    if isinstance(v, dt.time):
        return v.replace(microsecond=v.microsecond // 1000 * 1000)
    n = _int_of(v)
    try:
        if n is not None:
            if not 0 <= n < MS_PER_DAY:
                raise ValueError
            return (EPOCH + dt.timedelta(milliseconds=n)).time()
        if isinstance(v, str):
            return _time(dt.time.fromisoformat(v.strip()), t, path)
    except ValueError:
        pass
    raise _fail(v, t, path)


def _array(v: Any, t: SqlType, path: str, co: Any = coerce) -> list[Any]:
    if not isinstance(v, list | tuple):
        raise _fail(v, t, path)
    el = t.element
    return [co(x, el, f"{path}[{i}]") for i, x in enumerate(v)]  # type: ignore[arg-type]


def _map(v: Any, t: SqlType, path: str, co: Any = coerce) -> dict[str, Any]:
    if isinstance(v, list):  # Arrow gives maps as lists of (key, value) pairs
        try:
            v = dict(v)
        except (TypeError, ValueError):
            raise _fail(v, t, path) from None
    if not isinstance(v, dict):
        raise _fail(v, t, path)
    el = t.element
    out = {}
    for k, x in v.items():
        if not isinstance(k, str):
            raise CoercionError(f"field {path}: MAP key {_desc(k)} is not a STRING")
        out[k] = co(x, el, f"{path}[{k!r}]")  # type: ignore[arg-type]
    return out


def _struct(v: Any, t: SqlType, path: str, out: bool = False) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(v, t, path)
    return coerce_fields(v, t.fields, path, out=out)


#: per column tuple: (the tuple itself, its names, (name, type, coercer) per column); cached by
#: identity (schemas hold their columns in tuples for life), bounded so transient ones cannot pile up
_PLANS: dict[int, tuple[Any, frozenset[str], tuple[tuple[str, SqlType, Any], ...]]] = {}
_OUT_PLANS: dict[int, tuple[Any, frozenset[str], tuple[tuple[str, SqlType, Any], ...]]] = {}


def _plan(columns: Any, out: bool = False) -> tuple[Any, frozenset[str], tuple[tuple[str, SqlType, Any], ...]]:
    plans, table = (_OUT_PLANS, _OUT_COERCERS) if out else (_PLANS, _COERCERS)
    p = plans.get(id(columns))
    if p is None or p[0] is not columns:
        if len(plans) >= 1024:
            plans.clear()
        cols = tuple((c.name, c.type, table[c.type.base]) for c in columns)
        p = (columns, frozenset(c[0] for c in cols), cols)
        if isinstance(columns, tuple):
            plans[id(columns)] = p
    return p


def coerce_fields(obj: dict[str, Any], columns: Any, path: str = "", *, out: bool = False) -> dict[str, Any]:
    """The fields of ``obj`` matched to ``columns`` the ksqlDB way: by exact name first, then by
    the upper-cased key (so JSON field ``name`` fills column ``NAME``). A field that is present
    but null does not hide a case variant with a value. Missing fields are None. ``out``: for
    writing (see :func:`coerce_out`)."""
    _, names, cols = _plan(columns, out)
    out: dict[str, Any] = {}
    # every field named exactly as a column (the usual case): no case variant to look for
    exact = obj.keys() <= names
    upper: dict[str, Any] | None = None
    for name, t, fn in cols:
        raw = obj.get(name)
        if raw is None:
            if exact:
                out[name] = None
                continue
            if upper is None:
                upper = {}
                for k, x in obj.items():
                    if x is not None and isinstance(k, str):
                        upper.setdefault(k.upper(), x)
            raw = upper.get(name.upper())
            if raw is None:
                out[name] = None
                continue
        # the common exact-type cases without a call (same results as the coercers)
        tr = type(raw)
        if tr is str and fn is _string or tr is float and fn is _double or tr is bool and fn is _boolean:
            out[name] = raw
        elif tr is int and fn is _integer and t.base == "BIGINT" and BIGINT_MIN <= raw <= BIGINT_MAX:
            out[name] = raw
        else:
            out[name] = fn(raw, t, f"{path}.{name}" if path else name)
    return out


_COERCERS = {
    "BOOLEAN": _boolean,
    "INT": _integer,
    "BIGINT": _integer,
    "DOUBLE": _double,
    "STRING": _string,
    "DECIMAL": _decimal,
    "BYTES": _bytes,
    "TIMESTAMP": _timestamp,
    "DATE": _date,
    "TIME": _time,
    "ARRAY": _array,
    "MAP": _map,
    "STRUCT": _struct,
}

#: the writing coercers: DECIMAL keeps a value's own scale, containers recurse with them
_OUT_COERCERS = {
    **_COERCERS,
    "DECIMAL": _decimal_out,
    "ARRAY": lambda v, t, path: _array(v, t, path, coerce_out),
    "MAP": lambda v, t, path: _map(v, t, path, coerce_out),
    "STRUCT": lambda v, t, path: _struct(v, t, path, out=True),
}


# --- to the wire ----------------------------------------------------------------------------


def timestamp_ms(v: dt.datetime) -> int:
    """Epoch milliseconds of a datetime (naive = UTC)."""
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    delta = v - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def json_default(v: Any) -> Any:
    """orjson ``default`` hook: the ksqlDB JSON encoding of non-JSON Python values."""
    if isinstance(v, Decimal):
        return orjson.Fragment(format(v, "f"))
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, dt.datetime):
        return timestamp_ms(v)
    if isinstance(v, dt.date):
        return (v - EPOCH_DATE).days
    if isinstance(v, dt.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1000 + v.microsecond // 1000
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"{type(v).__name__} is not serializable")


def java_double(v: float) -> str:
    """A DOUBLE as Java's Double.toString writes it (1.0, 1.0E10, 4.9E-324, NaN, Infinity), as
    ksqlDB's formats and CAST(... AS STRING) show doubles."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "-0.0" if math.copysign(1, v) < 0 else "0.0"
    d = Decimal(repr(v))  # the shortest digits that round-trip (Java prints 4.9E-324 for the
    if v in (5e-324, -5e-324):  # smallest subnormal, one digit more than the shortest)
        d = Decimal("-4.9E-324") if v < 0 else Decimal("4.9E-324")
    if 1e-3 <= abs(v) < 1e7:
        text = format(d, "f")
        return text if "." in text else text + ".0"
    sign, digits, exp = d.as_tuple()
    e10 = len(digits) - 1 + exp
    frac = "".join(map(str, digits[1:])).rstrip("0") or "0"
    return ("-" if sign else "") + f"{digits[0]}.{frac}E{e10}"


def to_text(v: Any) -> str:
    """A scalar as a DELIMITED field (None is handled by the caller)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return java_double(v)
    if isinstance(v, int):
        return str(v)
    return str(json_default(v)) if not isinstance(v, Decimal) else format(v, "f")
