"""Window definitions: tumbling, hopping and session windows, with grace and retention.

Times are epoch milliseconds. A window [start, end) closes when stream time reaches
``end + grace``; records for a closed window are late: dropped, counted, and logged.
The default grace is 24 hours, as ksqlDB's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

DEFAULT_GRACE_MS = 24 * 3600 * 1000


class Windowed(NamedTuple):
    """A windowed key: the key, and its window's bounds."""

    key: Any
    start: int
    end: int


class SessionWindowed(Windowed):
    """A session window's key (equal to a Windowed with the same fields; written to topics in
    Kafka Streams' session layout: key + end + start)."""

    __slots__ = ()


@dataclass(frozen=True)
class TimeWindows:
    """Fixed-size windows every ``advance`` ms (tumbling when advance == size)."""

    size: int
    advance: int
    grace: int = DEFAULT_GRACE_MS
    retention: int | None = None

    @staticmethod
    def tumbling(size_ms: int, grace_ms: int = DEFAULT_GRACE_MS, retention_ms: int | None = None) -> TimeWindows:
        return TimeWindows(size_ms, size_ms, grace_ms, retention_ms)

    @staticmethod
    def hopping(size_ms: int, advance_ms: int, grace_ms: int = DEFAULT_GRACE_MS, retention_ms: int | None = None) -> TimeWindows:
        if not 0 < advance_ms <= size_ms:
            raise ValueError(f"a hopping window's advance ({advance_ms} ms) must be > 0 and <= its size ({size_ms} ms)")
        return TimeWindows(size_ms, advance_ms, grace_ms, retention_ms)

    @property
    def retention_ms(self) -> int:
        return max(self.retention or 0, self.size + self.grace)

    def assign(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(record index, window start) of every window each timestamp falls in."""
        if self.advance == self.size:
            return np.arange(len(ts)), ts - ts % self.size
        # the earliest window holding ts starts after ts - size: the first grid point >= ts - size + 1
        # (ceiling from ts - size + advance skipped it whenever ts was off the advance grid)
        first = ts - self.size + 1
        first = np.maximum(0, -(-first // self.advance) * self.advance)  # ceil to the advance grid
        counts = (ts - first) // self.advance + 1
        idx = np.repeat(np.arange(len(ts)), counts)
        offs = np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts)
        return idx, first[idx] + offs * self.advance


@dataclass(frozen=True)
class SessionWindows:
    """Sessions of activity per key, closed after ``gap`` ms without a record."""

    gap: int
    grace: int = DEFAULT_GRACE_MS
    retention: int | None = None

    @property
    def retention_ms(self) -> int:
        return max(self.retention or 0, self.gap + self.grace)


@dataclass(frozen=True)
class JoinWindows:
    """Stream-stream join windows: a left record at ``t`` joins the right records with timestamps
    in ``[t - before_ms, t + after_ms]`` (so a right record at ``t`` joins the left ones in
    ``[t - after_ms, t + before_ms]``). A record's window closes ``grace_ms`` after its end
    (``t + after_ms`` for a left record, ``t + before_ms`` for a right one)."""

    before_ms: int
    after_ms: int
    grace_ms: int = DEFAULT_GRACE_MS

    def __post_init__(self) -> None:
        if self.before_ms < 0 or self.after_ms < 0 or self.grace_ms < 0:
            raise ValueError(f"join window bounds and grace must be >= 0: {self}")

    @staticmethod
    def of(time_difference_ms: int, grace_ms: int = DEFAULT_GRACE_MS) -> JoinWindows:
        """Records join when their timestamps differ by at most ``time_difference_ms``."""
        return JoinWindows(time_difference_ms, time_difference_ms, grace_ms)

    @property
    def retention_ms(self) -> int:
        """How long a buffered record can still find a match."""
        return self.before_ms + self.after_ms + self.grace_ms
