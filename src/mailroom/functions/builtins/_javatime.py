"""Java DateTimeFormatter patterns (the subset ksqlDB users write) in Python:
format and parse datetimes with patterns such as ``yyyy-MM-dd'T'HH:mm:ss.SSSXXX``."""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

#: short zone names Java resolves to a region (so DST applies, as in ksqlDB)
_SHORT_ZONES = {
    "PST": "America/Los_Angeles", "PDT": "America/Los_Angeles", "PT": "America/Los_Angeles",
    "MST": "America/Denver", "MDT": "America/Denver", "CST": "America/Chicago", "CDT": "America/Chicago",
    "EST": "America/New_York", "EDT": "America/New_York", "BST": "Europe/London", "GMT": "UTC", "UTC": "UTC",
    "Z": "UTC", "CET": "Europe/Paris", "CEST": "Europe/Paris", "IST": "Asia/Kolkata", "JST": "Asia/Tokyo",
    "AEST": "Australia/Sydney", "AEDT": "Australia/Sydney", "HST": "Pacific/Honolulu", "AKST": "America/Anchorage",
}


class PatternError(ValueError):
    pass


def zone(name: str) -> dt.tzinfo:
    """A time zone from a Java ZoneId text: region ids, UTC/GMT/Z, offsets like +0200 / -05:00 / GMT+2."""
    return _zone(name.strip())


@lru_cache(maxsize=256)
def _zone(name: str) -> dt.tzinfo:
    m = re.fullmatch(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?", name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        off = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0), seconds=int(m.group(4) or 0))
        return dt.timezone(sign * off)
    if name.upper() in ("Z", "UTC", "GMT", "UT"):
        return dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name.upper() in _SHORT_ZONES:
            return ZoneInfo(_SHORT_ZONES[name.upper()])
        raise PatternError(f"Unknown time-zone ID: {name}") from None


@lru_cache(maxsize=512)
def tokenize(pattern: str) -> tuple[tuple[str, int | str], ...]:
    """[(letter, count) | ("'", literal)]"""
    out: list[tuple[str, int | str]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            j = i + 1
            lit = []
            while j < n:
                if pattern[j] == "'":
                    if j + 1 < n and pattern[j + 1] == "'":
                        lit.append("'")
                        j += 2
                        continue
                    break
                lit.append(pattern[j])
                j += 1
            out.append(("'", "".join(lit) if j > i + 1 else "'"))
            i = j + 1
        elif c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            if c not in "yuMLdHhkKmsSaEzZXxVDGnAe":
                raise PatternError(f"Unknown pattern letter: {c}")
            out.append((c, j - i))
            i = j
        elif c in "[]":
            i += 1  # optional sections: treated as always present
        else:
            out.append(("'", c))
            i += 1
    return tuple(out)


def _offset_text(off: dt.timedelta | None, count: int, letter: str) -> str:
    secs = int(off.total_seconds()) if off is not None else 0
    if letter == "X" and secs == 0:
        return "Z"
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    hh, mm = secs // 3600, secs % 3600 // 60
    if letter == "Z":
        return f"{sign}{hh:02d}{mm:02d}" if count < 4 else ("GMT" if secs == 0 else f"GMT{sign}{hh:02d}:{mm:02d}")
    if count == 1:
        return f"{sign}{hh:02d}" + (f"{mm:02d}" if mm else "")
    if count in (2, 4):
        return f"{sign}{hh:02d}{mm:02d}"
    return f"{sign}{hh:02d}:{mm:02d}"


def format(value: dt.datetime | dt.date | dt.time, pattern: str) -> str:
    """Format like java.time DateTimeFormatter.ofPattern(pattern).format(value)."""
    out = []
    for letter, cnt in tokenize(pattern):
        if letter == "'":
            out.append(str(cnt))
            continue
        assert isinstance(cnt, int)
        try:
            out.append(_field(value, letter, cnt))
        except AttributeError:
            raise PatternError(f"Unsupported field for pattern letter {letter!r} on a {type(value).__name__}") from None
    return "".join(out)


def _field(v, letter: str, cnt: int) -> str:
    if letter in "yu":
        y = v.year
        return f"{y % 100:02d}" if cnt == 2 else f"{y:0{cnt}d}"
    if letter in "ML":
        m = v.month
        return str(m) if cnt == 1 else f"{m:02d}" if cnt == 2 else _MONTHS[m - 1][:3] if cnt == 3 else _MONTHS[m - 1]
    if letter == "d":
        return f"{v.day:0{cnt}d}"
    if letter == "D":
        return f"{v.timetuple().tm_yday:0{cnt}d}"
    if letter == "E" or letter == "e":
        name = _DAYS[v.weekday()]
        return name if cnt >= 4 else name[:3]
    if letter == "H":
        return f"{v.hour:0{cnt}d}"
    if letter == "k":
        return f"{v.hour or 24:0{cnt}d}"
    if letter == "h":
        return f"{(v.hour % 12) or 12:0{cnt}d}"
    if letter == "K":
        return f"{v.hour % 12:0{cnt}d}"
    if letter == "m":
        return f"{v.minute:0{cnt}d}"
    if letter == "s":
        return f"{v.second:0{cnt}d}"
    if letter == "S":
        return f"{v.microsecond:06d}{'0' * max(0, cnt - 6)}"[:cnt]
    if letter == "n":
        return str(v.microsecond * 1000)
    if letter == "A":
        return str((v.hour * 3600 + v.minute * 60 + v.second) * 1000 + v.microsecond // 1000)
    if letter == "a":
        return "AM" if v.hour < 12 else "PM"
    if letter == "G":
        return "AD"
    if letter == "z":
        tz = v.tzinfo
        if tz is None:
            raise PatternError("Unable to extract ZoneId from a value without a time zone")
        if cnt >= 4:
            return getattr(tz, "key", None) or v.tzname() or ""
        return v.tzname() or ""
    if letter == "V":
        tz = v.tzinfo
        return getattr(tz, "key", None) or v.tzname() or ""
    if letter in "XxZ":
        if v.tzinfo is None:
            raise PatternError("Unable to extract offset from a value without a time zone")
        return _offset_text(v.utcoffset(), cnt, letter)
    raise PatternError(f"Unsupported pattern letter {letter!r}")


@lru_cache(maxsize=512)
def _parser(pattern: str) -> tuple[re.Pattern, tuple[tuple[str, int], ...]]:
    rx, fields = [], []
    for letter, cnt in tokenize(pattern):
        if letter == "'":
            rx.append(re.escape(str(cnt)))
            continue
        assert isinstance(cnt, int)
        g = f"(?P<f{len(fields)}>"
        if letter in "yu":
            rx.append(g + (r"\d{2})" if cnt == 2 else r"[+-]?\d{%d,9})" % cnt))
        elif letter in "ML" and cnt >= 3:
            rx.append(g + r"[A-Za-z]+)")
        elif letter == "E":
            rx.append(g + r"[A-Za-z]+)")
        elif letter == "S":
            rx.append(g + r"\d{%d})" % cnt)
        elif letter == "a":
            rx.append(g + r"[AaPp][Mm])")
        elif letter in "zV":
            rx.append(g + r"[A-Za-z][A-Za-z0-9_/+\-]*)")
        elif letter in "XxZ":
            rx.append(g + r"Z|z|[+-]\d{2}(?::?\d{2})?)")
        elif letter == "G":
            rx.append(g + r"AD|BC)")
        else:
            rx.append(g + (r"\d{%d})" % cnt if cnt >= 2 else r"\d{1,9})"))
        fields.append((letter, cnt))
    return re.compile("".join(rx)), tuple(fields)


def parse(text: str, pattern: str, default_zone: dt.tzinfo | None = None) -> dict:
    """Parse ``text``; returns the fields found: year, month, day, hour, minute, second,
    microsecond, tz (tzinfo or None). Raises PatternError if the text does not fit."""
    rx, fields = _parser(pattern)
    m = rx.fullmatch(text)
    if not m:
        raise PatternError(f"Text '{text}' could not be parsed with pattern '{pattern}'")
    out: dict = {"tz": None}
    pm = None
    hour12 = None
    for i, (letter, cnt) in enumerate(fields):
        s = m.group(f"f{i}")
        if letter in "yu":
            y = int(s)
            out["year"] = 2000 + y if cnt == 2 else y
        elif letter in "ML":
            if cnt >= 3:
                names = [n[: 3] if cnt == 3 else n for n in _MONTHS]
                low = [n.lower() for n in names]
                if s.lower() not in low:
                    raise PatternError(f"Text '{text}' could not be parsed: unknown month {s!r}")
                out["month"] = low.index(s.lower()) + 1
            else:
                out["month"] = int(s)
        elif letter == "d":
            out["day"] = int(s)
        elif letter == "D":
            out["yday"] = int(s)
        elif letter in "Hk":
            out["hour"] = int(s) % 24
        elif letter in "hK":
            hour12 = int(s) % 12
        elif letter == "m":
            out["minute"] = int(s)
        elif letter == "s":
            out["second"] = int(s)
        elif letter == "S":
            out["microsecond"] = int((s + "000000")[:6])
        elif letter == "a":
            pm = s.upper() == "PM"
        elif letter in "zV":
            out["tz"] = zone(s)
        elif letter in "XxZ":
            out["tz"] = dt.timezone.utc if s in ("Z", "z") else zone(s)
    if hour12 is not None:
        out["hour"] = hour12 + (12 if pm else 0)
    if out["tz"] is None:
        out["tz"] = default_zone
    return out


def to_datetime(fields: dict) -> dt.datetime:
    """Naive UTC datetime from parsed fields (missing date parts default to 1970-01-01)."""
    d = dt.datetime(fields.get("year", 1970), fields.get("month", 1), fields.get("day", 1),
                    fields.get("hour", 0), fields.get("minute", 0), fields.get("second", 0), fields.get("microsecond", 0))
    if "yday" in fields:
        d = d.replace(month=1, day=1) + dt.timedelta(days=fields["yday"] - 1)
    tz = fields.get("tz")
    if tz is not None:
        d = d.replace(tzinfo=tz).astimezone(dt.timezone.utc).replace(tzinfo=None)
    return d
