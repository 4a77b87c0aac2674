"""Date and time functions. TIMESTAMP values are naive UTC datetimes, DATE dates, TIME times."""

from __future__ import annotations

import datetime as dt
import time as _time
from typing import Any

from mailroom.formats.types import SqlType

from ..registry import FunctionError, FunctionRegistry
from . import _javatime as jt
from ._util import O, scalar

I, B, S, TS, DATE, TIME = SqlType.INT, SqlType.BIGINT, SqlType.STRING, SqlType.TIMESTAMP, SqlType.DATE, SqlType.TIME
CAT = "DATE / TIME"
EPOCH = dt.datetime(1970, 1, 1)
EPOCH_DATE = dt.date(1970, 1, 1)
UTC = dt.timezone.utc

_UNITS_MS = {
    "NANOSECONDS": 1e-6, "MICROSECONDS": 1e-3, "MILLISECONDS": 1, "SECONDS": 1000, "MINUTES": 60_000,
    "HOURS": 3_600_000, "DAYS": 86_400_000,
}


def _unit_ms(unit: str) -> float:
    u = unit.upper().strip()
    if not u.endswith("S"):
        u += "S"
    if u not in _UNITS_MS:
        raise FunctionError(f"unknown time unit {unit!r}; expected one of {', '.join(_UNITS_MS)}")
    return _UNITS_MS[u]


def ts_to_millis(v: dt.datetime) -> int:
    d = v - EPOCH
    return (d.days * 86_400 + d.seconds) * 1000 + d.microseconds // 1000


def millis_to_ts(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def time_to_millis(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def millis_to_time(ms: int) -> dt.time:
    ms %= 86_400_000
    return (dt.datetime.min + dt.timedelta(milliseconds=ms)).time()


def _wrap(f):
    """Turn pattern/zone errors into FunctionError (the engine logs it and yields NULL)."""

    def g(*a: Any) -> Any:
        try:
            return f(*a)
        except (jt.PatternError, ValueError, OverflowError) as e:
            raise FunctionError(str(e)) from None

    g.__name__ = getattr(f, "__name__", "fn")
    return g


def _format_ts(v: dt.datetime, pattern: str, tz: str | None = None) -> str:
    z = jt.zone(tz) if tz is not None else UTC
    return jt.format(v.replace(tzinfo=UTC).astimezone(z), pattern)


def _parse_ts(text: str, pattern: str, tz: str | None = None) -> dt.datetime:
    return jt.to_datetime(jt.parse(text, pattern, jt.zone(tz) if tz is not None else UTC))


def _format_date(v: dt.date, pattern: str) -> str:
    return jt.format(dt.datetime(v.year, v.month, v.day), pattern)


def _parse_date(text: str, pattern: str) -> dt.date:
    f = jt.parse(text, pattern, None)
    return dt.date(f.get("year", 1970), f.get("month", 1), f.get("day", 1))


def _format_time(v: dt.time, pattern: str) -> str:
    return jt.format(dt.datetime.combine(EPOCH_DATE, v), pattern)


def _parse_time(text: str, pattern: str) -> dt.time:
    f = jt.parse(text, pattern, None)
    return dt.time(f.get("hour", 0), f.get("minute", 0), f.get("second", 0), f.get("microsecond", 0))


def _add_ts(sign: int):
    def f(unit: str, n: int, v: dt.datetime) -> dt.datetime:
        return v + dt.timedelta(milliseconds=sign * n * _unit_ms(unit))

    return f


def _add_time(sign: int):
    def f(unit: str, n: int, v: dt.time) -> dt.time:
        return millis_to_time(int(time_to_millis(v) + sign * n * _unit_ms(unit)))

    return f


def _add_date(sign: int):
    def f(unit: str, n: int, v: dt.date) -> dt.date:
        ms = sign * n * _unit_ms(unit)
        return v + dt.timedelta(days=int(ms // 86_400_000))

    return f


def _convert_tz(v: dt.datetime, from_tz: str, to_tz: str) -> dt.datetime:
    local = v.replace(tzinfo=jt.zone(from_tz))
    return local.astimezone(jt.zone(to_tz)).replace(tzinfo=None)


def _now_ms() -> int:
    return _time.time_ns() // 1_000_000


def register(reg: FunctionRegistry) -> None:
    sc = lambda name, *ovs, d="": scalar(reg, name, *ovs, description=d, category=CAT)  # noqa: E731
    sc("UNIX_TIMESTAMP", O([], B, _now_ms), O([TS], B, ts_to_millis),
       d="Milliseconds since the epoch: now, or of a TIMESTAMP.")
    sc("UNIX_DATE", O([], I, lambda: (dt.datetime.now(UTC).date() - EPOCH_DATE).days), O([DATE], I, lambda d: (d - EPOCH_DATE).days),
       d="Days since the epoch: today, or of a DATE.")
    sc("FROM_UNIXTIME", O([B], TS, millis_to_ts), d="TIMESTAMP from milliseconds since the epoch.")
    sc("FROM_DAYS", O([I], DATE, lambda n: EPOCH_DATE + dt.timedelta(days=n)), d="DATE from days since the epoch.")
    sc("FORMAT_TIMESTAMP", O([TS, S], S, _wrap(_format_ts)), O([TS, S, S], S, _wrap(_format_ts)),
       d="FORMAT_TIMESTAMP(ts, pattern[, zone]) with a java.time pattern.")
    sc("PARSE_TIMESTAMP", O([S, S], TS, _wrap(_parse_ts)), O([S, S, S], TS, _wrap(_parse_ts)),
       d="PARSE_TIMESTAMP(text, pattern[, zone]).")
    sc("TIMESTAMPTOSTRING", O([B, S], S, _wrap(lambda ms, p, tz=None: _format_ts(millis_to_ts(ms), p, tz))),
       O([B, S, S], S, _wrap(lambda ms, p, tz=None: _format_ts(millis_to_ts(ms), p, tz))),
       d="TIMESTAMPTOSTRING(millis, pattern[, zone]).")
    sc("STRINGTOTIMESTAMP", O([S, S], B, _wrap(lambda t, p, tz=None: ts_to_millis(_parse_ts(t, p, tz)))),
       O([S, S, S], B, _wrap(lambda t, p, tz=None: ts_to_millis(_parse_ts(t, p, tz)))),
       d="STRINGTOTIMESTAMP(text, pattern[, zone]): milliseconds since the epoch.")
    sc("FORMAT_DATE", O([DATE, S], S, _wrap(_format_date)), d="FORMAT_DATE(date, pattern).")
    sc("PARSE_DATE", O([S, S], DATE, _wrap(_parse_date)), d="PARSE_DATE(text, pattern).")
    sc("FORMAT_TIME", O([TIME, S], S, _wrap(_format_time)), d="FORMAT_TIME(time, pattern).")
    sc("PARSE_TIME", O([S, S], TIME, _wrap(_parse_time)), d="PARSE_TIME(text, pattern).")
    sc("DATETOSTRING", O([I, S], S, _wrap(lambda n, p: _format_date(EPOCH_DATE + dt.timedelta(days=n), p))),
       d="DATETOSTRING(days, pattern).")
    sc("STRINGTODATE", O([S, S], I, _wrap(lambda t, p: (_parse_date(t, p) - EPOCH_DATE).days)),
       d="STRINGTODATE(text, pattern): days since the epoch.")
    for nm, sign in (("TIMESTAMPADD", 1), ("TIMESTAMPSUB", -1)):
        sc(nm, O([S, I, TS], TS, _wrap(_add_ts(sign))), O([S, B, TS], TS, _wrap(_add_ts(sign))),
           d=f"{nm}(unit, n, timestamp).")
    for nm, sign in (("TIMEADD", 1), ("TIMESUB", -1)):
        sc(nm, O([S, I, TIME], TIME, _wrap(_add_time(sign))), O([S, B, TIME], TIME, _wrap(_add_time(sign))),
           d=f"{nm}(unit, n, time), wrapping around midnight.")
    for nm, sign in (("DATEADD", 1), ("DATESUB", -1)):
        sc(nm, O([S, I, DATE], DATE, _wrap(_add_date(sign))), O([S, B, DATE], DATE, _wrap(_add_date(sign))),
           d=f"{nm}(unit, n, date).")
    sc("CONVERT_TZ", O([TS, S, S], TS, _wrap(_convert_tz)), d="CONVERT_TZ(ts, fromZone, toZone).")
