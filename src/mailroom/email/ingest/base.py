"""What the log parsers share: the error record, counters, time stamps."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..events import EmailEvent

MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


@dataclass(frozen=True)
class ParseError:
    """A line that did not parse: where, why, and the line itself (for the processing log)."""

    line_no: int
    reason: str
    line: str
    source: str = ""

    def to_dict(self) -> dict:
        return {"source": self.source, "line_no": self.line_no, "reason": self.reason, "line": self.line}

    def __str__(self) -> str:
        return f"{self.source} line {self.line_no}: {self.reason}: {self.line[:200]!r}"


class LogParser:
    """Base of the incremental parsers."""

    source = ""

    def __init__(self, *, max_errors: int = 10_000) -> None:
        self.errors: list[ParseError] = []
        self.counts: Counter[str] = Counter()
        self.max_errors = max_errors
        self._line_no = 0

    def feed(self, line: str, line_no: int | None = None) -> list[EmailEvent]:
        """The events completed by one line (a trailing newline is fine)."""
        self._line_no = line_no if line_no is not None else self._line_no + 1
        line = line.rstrip("\r\n")
        if not line.strip():
            self.counts["blank"] += 1
            return []
        try:
            return self._feed(line, self._line_no)
        except Exception as e:  # noqa: BLE001 - a parser bug on one line must not stop the stream
            self.error(self._line_no, f"internal error: {type(e).__name__}: {e}", line)
            return []

    def feed_lines(self, lines: Iterable[str], first_line_no: int = 1) -> list[EmailEvent]:
        out: list[EmailEvent] = []
        for i, line in enumerate(lines, first_line_no):
            out.extend(self.feed(line, i))
        return out

    def flush(self) -> list[EmailEvent]:
        """Events still held at the end of input (none for most parsers)."""
        return []

    def take_errors(self) -> list[ParseError]:
        """The errors recorded since the last call."""
        errs, self.errors = self.errors, []
        return errs

    def error(self, line_no: int, reason: str, line: str) -> None:
        self.counts["errors"] += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(ParseError(line_no, reason, line, self.source))

    def _feed(self, line: str, line_no: int) -> list[EmailEvent]:  # pragma: no cover - abstract
        raise NotImplementedError

    # state that must survive a restart (the ingest command saves it with the file offset)
    def snapshot(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        pass


# --- time stamps -------------------------------------------------------------------------------

_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s?(Z|[+-]\d\d:?\d\d)?$")


def iso_ms(text: str, default_tz: dt.tzinfo = dt.timezone.utc) -> int:
    """Epoch ms of an ISO-8601-ish time stamp (``2024-01-12T10:15:02.123+01:00``, ``2024-01-12 10:15:02 -0500``)."""
    m = _ISO.match(text.strip())
    if not m:
        raise ValueError(f"not an ISO time stamp: {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tzinfo = default_tz
    if tz:
        if tz == "Z":
            tzinfo = dt.timezone.utc
        else:
            sign = 1 if tz[0] == "+" else -1
            tz = tz[1:].replace(":", "")
            tzinfo = dt.timezone(sign * dt.timedelta(hours=int(tz[:2]), minutes=int(tz[2:])))
    t = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tzinfo)
    return int(t.timestamp() * 1000)


class SyslogClock:
    """Epoch ms of syslog time stamps (``Jan 12 10:15:02``), which have no year: the year is
    given, or the current one, and advances when the month goes back (December -> January)."""

    def __init__(self, year: int | None = None, tz: dt.tzinfo = dt.timezone.utc) -> None:
        self.year = year or dt.datetime.now(tz).year
        self.tz = tz
        self._last_month = 0

    def ms(self, mon: str, day: int, h: int, m: int, s: int, micro: int = 0) -> int:
        month = MONTHS[mon]
        if self._last_month and month < self._last_month - 6:
            self.year += 1
        self._last_month = month
        return int(dt.datetime(self.year, month, day, h, m, s, micro, tzinfo=self.tz).timestamp() * 1000)
