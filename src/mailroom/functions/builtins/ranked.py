"""MAX_BY / MIN_BY: the value of the row with the greatest (least) ordering value.

    MAX_BY(state, CASE type WHEN 'deferred' THEN 5 WHEN 'delivered' THEN 6 END)   -- highest-ranked state
    MAX_BY(reply, ts)                                                             -- the latest reply by event time

Rules (the same as ``LATEST_BY_OFFSET``'s where they overlap):

- a row whose ordering value is NULL is skipped;
- a row whose value is NULL is skipped too, unless the optional third argument (a BOOLEAN
  literal, "ignore nulls", default true) is false: then a NULL value can win;
- on a tie of the ordering value, the row that arrived later wins (so a repeated state keeps
  its latest details); merging two session windows' states, the second one wins a tie.

Not undoable (like MAX), so they aggregate streams, not tables. State: ``None`` or
``[by, value]`` in msgpack-friendly form.
"""

from __future__ import annotations

from typing import Any

from mailroom.formats.types import SqlType

from ..registry import FunctionRegistry, Overload
from .aggregates import _Agg, dec, enc


_PLAIN = (str, int, float, bool, type(None))


def _enc(v: Any) -> Any:
    # most values (the state names, codes, times of the email pipelines) need no tagging
    return v if type(v) in _PLAIN else enc(v)


def _dec(v: Any) -> Any:
    return v if type(v) in _PLAIN else dec(v)


class MaxBy(_Agg):
    """State: None or [by, value] (encoded)."""

    greatest = True

    def __init__(self, types: list[Any], literals: tuple) -> None:
        super().__init__(types, literals)
        self.ignore_nulls = not any(lit is False for lit in literals if isinstance(lit, bool))

    def initialize(self) -> Any:
        return None

    def _wins(self, by: Any, best: Any) -> bool:
        # ties go to the newer row
        return by >= best if self.greatest else by <= best

    def aggregate(self, s: Any, value: Any, by: Any, *_: Any) -> Any:
        if by is None or (value is None and self.ignore_nulls):
            return s
        if s is None or self._wins(by, _dec(s[0])):
            return [_enc(by), _enc(value)]
        return s

    def aggregate_many(self, s: Any, values: list, bys: list, *_: list) -> Any:
        """Batch form: the same comparisons, decoding the state and encoding the winner once."""
        ignore, greatest = self.ignore_nulls, self.greatest
        best = None if s is None else _dec(s[0])
        win = None
        for value, by in zip(values, bys):
            if by is None or (value is None and ignore):
                continue
            if (s is None and win is None) or (by >= best if greatest else by <= best):
                best, win = by, (value,)
        return s if win is None else [_enc(best), _enc(win[0])]

    def merge(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        return b if self._wins(_dec(b[0]), _dec(a[0])) else a

    def result(self, s: Any) -> Any:
        return None if s is None else _dec(s[1])


class MinBy(MaxBy):
    greatest = False


#: the ordering value's types: anything MAX can compare
_ORDERABLE = [SqlType.INT, SqlType.BIGINT, SqlType.DOUBLE, SqlType.STRING, SqlType.BYTES, SqlType.DATE, SqlType.TIME,
              SqlType.TIMESTAMP, SqlType.BOOLEAN]


def register(reg: FunctionRegistry) -> None:
    """Register MAX_BY and MIN_BY."""
    for name, cls, what in (("MAX_BY", MaxBy, "greatest"), ("MIN_BY", MinBy, "least")):
        ovs = []
        for t in _ORDERABLE:
            ovs.append(Overload(["T", t], "T", cls))
            ovs.append(Overload(["T", t, SqlType.BOOLEAN], "T", cls))
        ovs += [Overload(["T", "DECIMAL"], "T", cls), Overload(["T", "DECIMAL", SqlType.BOOLEAN], "T", cls)]
        reg.register_aggregate(
            name, *ovs, author="mailroom", version="1", category="AGGREGATE",
            description=f"{name}(value, by [, ignore_nulls]): the value of the row with the {what} `by` "
                        "(rows with a NULL `by` skipped; NULL values skipped unless ignore_nulls is false; "
                        "a tie goes to the later row).")
