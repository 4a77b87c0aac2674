"""Aggregate functions. State is msgpack-serializable (lists, dicts, ints, floats, str, bytes,
None): DECIMAL / TIMESTAMP / DATE / TIME values are stored tagged (see ``enc`` / ``dec``)."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import math
from typing import Any

from mailroom.formats.types import SqlType

from ..registry import FunctionError, FunctionRegistry, Overload
from ..signature import LambdaType

I, B, D, S, BOOL = SqlType.INT, SqlType.BIGINT, SqlType.DOUBLE, SqlType.STRING, SqlType.BOOLEAN
_EPOCH = dt.datetime(1970, 1, 1)
_SEQ = itertools.count(1)


#: values msgpack holds as they are (checked by exact type first: the common case costs no call chain)
_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})


def enc(v: Any) -> Any:
    """A value in msgpack-friendly form."""
    if type(v) in _PLAIN:
        return v
    if isinstance(v, decimal.Decimal):
        return {"$dec": str(v)}
    if isinstance(v, dt.datetime):
        return {"$ts": (v - _EPOCH) // dt.timedelta(microseconds=1)}
    if isinstance(v, dt.date):
        return {"$date": v.toordinal()}
    if isinstance(v, dt.time):
        return {"$time": ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond}
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, dict):
        return {k: enc(x) for k, x in v.items()}
    return v


def dec(v: Any) -> Any:
    """Inverse of enc."""
    if type(v) in _PLAIN:
        return v
    if isinstance(v, dict):
        if len(v) == 1:
            (k, x), = v.items()
            if k == "$dec":
                return decimal.Decimal(x)
            if k == "$ts":
                return _EPOCH + dt.timedelta(microseconds=x)
            if k == "$date":
                return dt.date.fromordinal(x)
            if k == "$time":
                return (dt.datetime.min + dt.timedelta(microseconds=x)).time()
        return {k: dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [dec(x) for x in v]
    return v


def _hkey(v: Any) -> Any:
    """Hashable key of an encoded value."""
    if isinstance(v, list):
        return ("L",) + tuple(_hkey(x) for x in v)
    if isinstance(v, dict):
        return ("M",) + tuple((k, _hkey(x)) for k, x in sorted(v.items()))
    return v


class _Agg:
    state_type: SqlType | None = None

    def __init__(self, types: list[Any], literals: tuple) -> None:
        self.types, self.literals = types, literals


class Count(_Agg):
    def initialize(self) -> int:
        return 0

    def aggregate(self, s: int, *v: Any) -> int:
        return s + 1 if (not v or v[0] is not None) else s

    def undo(self, s: int, *v: Any) -> int:
        return s - 1 if (not v or v[0] is not None) else s

    def aggregate_many(self, s: int, col: list, *_: list) -> int:
        """Batch form (COUNT(col)): the non-NULL values."""
        return s + len(col) - col.count(None)

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, s: int) -> int:
        return s


class CountDistinct(_Agg):
    """Exact distinct count; state is [[value, multiplicity], ...]."""

    def initialize(self) -> list:
        return []

    def _upd(self, s: list, v: Any, d: int) -> list:
        if v is None:
            return s
        e = enc(v)
        k = _hkey(e)
        out = []
        found = False
        for val, n in s:
            if _hkey(val) == k:
                found = True
                n += d
            if n > 0:
                out.append([val, n])
        if not found and d > 0:
            out.append([e, d])
        return out

    def aggregate(self, s: list, v: Any) -> list:
        return self._upd(s, v, 1)

    def undo(self, s: list, v: Any) -> list:
        return self._upd(s, v, -1)

    def merge(self, a: list, b: list) -> list:
        for val, n in b:
            for _ in range(n):
                a = self._upd(a, dec(val), 1)
        return a

    def result(self, s: list) -> int:
        return len(s)


class Sum(_Agg):
    def __init__(self, types: list[Any], literals: tuple) -> None:
        super().__init__(types, literals)
        self.kind = types[0].base if types and types[0] is not None else "BIGINT"

    def initialize(self) -> Any:
        return {"$dec": "0"} if self.kind == "DECIMAL" else (0.0 if self.kind == "DOUBLE" else 0)

    def _add(self, s: Any, v: Any, sign: int) -> Any:
        if v is None:
            return s
        if self.kind == "DECIMAL":
            return enc(dec(s) + sign * v)
        return s + sign * v

    def aggregate(self, s: Any, v: Any) -> Any:
        return self._add(s, v, 1)

    def undo(self, s: Any, v: Any) -> Any:
        return self._add(s, v, -1)

    def aggregate_many(self, s: Any, col: list) -> Any:
        """Batch form: the same left-to-right additions (floats and DECIMAL round per step)."""
        vals = [v for v in col if v is not None]
        if not vals:
            return s
        acc = dec(s) if self.kind == "DECIMAL" else s
        for v in vals:
            acc = acc + v
        return enc(acc) if self.kind == "DECIMAL" else acc

    def merge(self, a: Any, b: Any) -> Any:
        return enc(dec(a) + dec(b)) if self.kind == "DECIMAL" else a + b

    def result(self, s: Any) -> Any:
        return dec(s)


class Avg(_Agg):
    def initialize(self) -> list:
        return [0.0, 0]

    def aggregate(self, s: list, v: Any) -> list:
        return s if v is None else [s[0] + float(v), s[1] + 1]

    def undo(self, s: list, v: Any) -> list:
        return s if v is None else [s[0] - float(v), s[1] - 1]

    def merge(self, a: list, b: list) -> list:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, s: list) -> float | None:
        return s[0] / s[1] if s[1] else 0.0


class MinMax(_Agg):
    pick = min

    def initialize(self) -> Any:
        return None

    def aggregate(self, s: Any, v: Any) -> Any:
        if v is None:
            return s
        if s is None:
            return enc(v)
        return enc(type(self).pick(dec(s), v))

    def aggregate_many(self, s: Any, col: list) -> Any:
        """Batch form: ``min``/``max`` over the state and the values keeps the first of equal
        values, as the pairwise fold does."""
        vals = [v for v in col if v is not None]
        if not vals:
            return s
        if s is not None:
            vals.insert(0, dec(s))
        return enc(type(self).pick(vals))

    def merge(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        return enc(type(self).pick(dec(a), dec(b)))

    def result(self, s: Any) -> Any:
        return dec(s)


class Min(MinMax):
    pick = min


class Max(MinMax):
    pick = max


class ByOffset(_Agg):
    """LATEST_BY_OFFSET / EARLIEST_BY_OFFSET, optionally keeping n values. State: [[seq, value], ...]."""

    latest = True

    def __init__(self, types: list[Any], literals: tuple) -> None:
        super().__init__(types, literals)
        self.n = None
        self.ignore_nulls = True
        for lit in literals:
            if isinstance(lit, bool):
                self.ignore_nulls = lit
            elif isinstance(lit, int):
                self.n = lit
        if self.n is not None and self.n <= 0:
            raise FunctionError("the number of values to keep must be positive")

    def initialize(self) -> list:
        return []

    def aggregate(self, s: list, v: Any, *_: Any) -> list:
        if v is None and self.ignore_nulls:
            return s
        keep = self.n or 1
        if not self.latest and len(s) >= keep:
            return s
        s = s + [[next(_SEQ), enc(v)]]
        return s[-keep:] if self.latest else s[:keep]

    def aggregate_many(self, s: list, col: list, *_: list) -> list:
        """Batch form: only the kept values are encoded; offsets are drawn as the fold would."""
        vals = [v for v in col if v is not None] if self.ignore_nulls else col
        keep = self.n or 1
        if self.latest:
            seqs = list(itertools.islice(_SEQ, len(vals)))[-keep:]
            tail = vals[-keep:]
            return (s + [[q, enc(v)] for q, v in zip(seqs, tail)])[-keep:]
        need = keep - len(s)
        if need <= 0 or not vals:
            return s
        tail = vals[:need]
        return s + [[next(_SEQ), enc(v)] for v in tail]

    def merge(self, a: list, b: list) -> list:
        both = sorted(a + b, key=lambda e: e[0])
        keep = self.n or 1
        return both[-keep:] if self.latest else both[:keep]

    def result(self, s: list) -> Any:
        vals = [dec(e[1]) for e in s]
        if self.n is None:
            return vals[-1] if vals else None
        return vals


class Latest(ByOffset):
    latest = True


class Earliest(ByOffset):
    latest = False


class CollectList(_Agg):
    intermediate_base = "ARRAY"
    limit = 1000
    config_name = "collect_list"

    def configure(self, config: dict) -> None:
        """``ksql.functions.collect_list.limit`` (collect_set for COLLECT_SET): the most values kept."""
        v = config.get(f"ksql.functions.{self.config_name}.limit")
        if v is not None:
            try:
                self.limit = int(v)
            except (TypeError, ValueError):
                raise FunctionError(f"ksql.functions.{self.config_name}.limit must be an integer, got {v!r}") from None

    def initialize(self) -> list:
        return []

    def aggregate(self, s: list, v: Any) -> list:
        return s + [enc(v)] if len(s) < self.limit else s

    def aggregate_many(self, s: list, col: list) -> list:
        """Batch form: appends up to the limit."""
        room = self.limit - len(s)
        return s + [enc(v) for v in col[:room]] if room > 0 else s

    def undo(self, s: list, v: Any) -> list:
        e = _hkey(enc(v))
        for i, x in enumerate(s):
            if _hkey(x) == e:
                return s[:i] + s[i + 1 :]
        return s

    def merge(self, a: list, b: list) -> list:
        return (a + b)[: self.limit]

    def result(self, s: list) -> list:
        return dec(s)


class CollectSet(CollectList):
    config_name = "collect_set"
    aggregate_many = None  # type: ignore[assignment]  # dedup: the per-value fold

    def aggregate(self, s: list, v: Any) -> list:
        e = enc(v)
        if any(_hkey(x) == _hkey(e) for x in s) or len(s) >= self.limit:
            return s
        return s + [e]

    undo = None  # type: ignore[assignment]

    def merge(self, a: list, b: list) -> list:
        for x in b:
            a = self.aggregate(a, dec(x))
        return a


class TopK(_Agg):
    intermediate_base = "ARRAY"
    distinct = False

    def __init__(self, types: list[Any], literals: tuple) -> None:
        super().__init__(types, literals)
        if not literals or not isinstance(literals[0], int) or isinstance(literals[0], bool):
            raise FunctionError("TOPK needs a constant integer k, e.g. TOPK(col, 3)")
        self.k = literals[0]
        if self.k < 1:
            raise FunctionError(f"TOPK k must be positive, got {self.k}")

    def initialize(self) -> list:
        return []

    def _norm(self, vals: list) -> list:
        if self.distinct:
            seen, out = set(), []
            for x in vals:
                if _hkey(enc(x)) not in seen:
                    seen.add(_hkey(enc(x)))
                    out.append(x)
            vals = out
        vals.sort(reverse=True)
        return vals[: self.k]

    def aggregate(self, s: list, v: Any, *_: Any) -> list:
        if v is None:
            return s
        return enc(self._norm(dec(s) + [v]))

    def merge(self, a: list, b: list) -> list:
        return enc(self._norm(dec(a) + dec(b)))

    def result(self, s: list) -> list:
        return dec(s)


class TopKDistinct(TopK):
    distinct = True


class TopKStruct(TopK):
    """TOPK(sort_col, col0, col1, ..., k): the k rows with the greatest sort_col, as
    STRUCT<sort_col, col0, ...>; ties keep arrival order. State: [[sort, [cols...]], ...]."""

    def aggregate(self, s: list, v: Any, *others: Any) -> list:
        if v is None:
            return s
        rows = dec(s) + [[v, list(others)]]
        rows.sort(key=lambda r: r[0], reverse=True)  # stable: earlier rows win ties
        return enc(rows[: self.k])

    def merge(self, a: list, b: list) -> list:
        rows = dec(a) + dec(b)
        rows.sort(key=lambda r: r[0], reverse=True)
        return enc(rows[: self.k])

    def result(self, s: list) -> list:
        out = []
        for v, others in dec(s):
            row = {"sort_col": v}
            row.update({f"col{i}": x for i, x in enumerate(others)})
            out.append(row)
        return out


def _topk_struct_type(types: list[Any]) -> SqlType:
    fields = [("sort_col", types[0])] + [(f"col{i}", t or SqlType.STRING) for i, t in enumerate(types[1:-1])]
    return SqlType.array(SqlType.struct(fields))


class Histogram(_Agg):
    intermediate_base = "MAP"
    limit = 1000

    def initialize(self) -> dict:
        return {}

    def aggregate(self, s: dict, v: Any) -> dict:
        if v is None or (v not in s and len(s) >= self.limit):
            return s
        s = dict(s)
        s[v] = s.get(v, 0) + 1
        return s

    def undo(self, s: dict, v: Any) -> dict:
        if v is None or v not in s:
            return s
        s = dict(s)
        s[v] -= 1
        if s[v] <= 0:
            del s[v]
        return s

    def merge(self, a: dict, b: dict) -> dict:
        out = dict(a)
        for k, n in b.items():
            out[k] = out.get(k, 0) + n
        return out

    def result(self, s: dict) -> dict:
        return dict(s)


class Stddev(_Agg):
    sample = True

    def initialize(self) -> list:
        return [0, 0.0, 0.0]  # count, sum, sum of squares

    def aggregate(self, s: list, v: Any) -> list:
        if v is None:
            return s
        x = float(v)
        return [s[0] + 1, s[1] + x, s[2] + x * x]

    def undo(self, s: list, v: Any) -> list:
        if v is None:
            return s
        x = float(v)
        return [s[0] - 1, s[1] - x, s[2] - x * x]

    def merge(self, a: list, b: list) -> list:
        return [a[0] + b[0], a[1] + b[1], a[2] + b[2]]

    def result(self, s: list) -> float | None:
        n, sm, sq = s
        d = n - 1 if self.sample else n
        if d <= 0:
            return 0.0 if n else None
        var = (sq - sm * sm / n) / d
        return math.sqrt(max(var, 0.0))


class StddevPop(Stddev):
    sample = False


class Correlation(_Agg):
    def initialize(self) -> list:
        return [0, 0.0, 0.0, 0.0, 0.0, 0.0]  # n, sx, sy, sxx, syy, sxy

    def _upd(self, s: list, x: Any, y: Any, d: int) -> list:
        if x is None or y is None:
            return s
        x, y = float(x), float(y)
        return [s[0] + d, s[1] + d * x, s[2] + d * y, s[3] + d * x * x, s[4] + d * y * y, s[5] + d * x * y]

    def aggregate(self, s: list, x: Any, y: Any) -> list:
        return self._upd(s, x, y, 1)

    def undo(self, s: list, x: Any, y: Any) -> list:
        return self._upd(s, x, y, -1)

    def merge(self, a: list, b: list) -> list:
        return [p + q for p, q in zip(a, b)]

    def result(self, s: list) -> float | None:
        n, sx, sy, sxx, syy, sxy = s
        if n < 2:
            return math.nan
        cov = sxy - sx * sy / n
        vx, vy = sxx - sx * sx / n, syy - sy * sy / n
        if vx <= 0 or vy <= 0:
            return math.nan
        return cov / math.sqrt(vx * vy)


class Attr(_Agg):
    """ATTR(x): the value if every row has the same one, else NULL. State: [[value, count], ...]."""

    def initialize(self) -> list:
        return []

    def _upd(self, s: list, v: Any, d: int) -> list:
        e = enc(v)
        out, found = [], False
        for val, n in s:
            if _hkey(val) == _hkey(e):
                found, n = True, n + d
            if n > 0:
                out.append([val, n])
        if not found and d > 0:
            out.append([e, d])
        return out

    def aggregate(self, s: list, v: Any) -> list:
        return self._upd(s, v, 1)

    def undo(self, s: list, v: Any) -> list:
        return self._upd(s, v, -1)

    def merge(self, a: list, b: list) -> list:
        for val, n in b:
            for _ in range(n):
                a = self._upd(a, dec(val), 1)
        return a

    def result(self, s: list) -> Any:
        return dec(s[0][0]) if len(s) == 1 else None


def _first(types: list[Any]) -> Any:
    return types[0]


def register(reg: FunctionRegistry) -> None:
    def ag(name: str, *ovs: Overload, d: str = "") -> None:
        reg.register_aggregate(name, *ovs, description=d, author="mailroom", version="1", category="AGGREGATE")

    O = Overload
    nums = [I, B, D]
    ag("COUNT", O([], B, Count), O(["ANY"], B, Count), d="Number of rows (COUNT(*)) or of non-NULL values.")
    ag("COUNT_DISTINCT", O(["ANY"], B, CountDistinct), d="Number of distinct non-NULL values.")
    ag("SUM", *[O([t], t, Sum) for t in nums], O(["DECIMAL"], _first, Sum), d="Sum of the non-NULL values (0 if none).")
    ag("AVG", *[O([t], D, Avg) for t in nums], O(["DECIMAL"], D, Avg), d="Average of the non-NULL values.")
    comparable = [I, B, D, S, SqlType.BYTES, SqlType.DATE, SqlType.TIME, SqlType.TIMESTAMP, BOOL]
    ag("MIN", *[O([t], t, Min) for t in comparable], O(["DECIMAL"], _first, Min), d="Least non-NULL value.")
    ag("MAX", *[O([t], t, Max) for t in comparable], O(["DECIMAL"], _first, Max), d="Greatest non-NULL value.")
    for nm, cls in (("LATEST_BY_OFFSET", Latest), ("EARLIEST_BY_OFFSET", Earliest)):
        ag(nm, O(["T"], "T", cls), O(["T", BOOL], "T", cls), O(["T", I], "ARRAY<T>", cls), O(["T", I, BOOL], "ARRAY<T>", cls),
           d=f"The {'latest' if cls is Latest else 'earliest'} value by arrival (offset) order; "
             "(col, n) keeps n values; the BOOLEAN says whether NULLs are ignored (default true).")
    ag("COLLECT_LIST", O(["T"], "ARRAY<T>", CollectList), d="Every value (up to 1000), in arrival order.")
    ag("COLLECT_SET", O(["T"], "ARRAY<T>", CollectSet), d="Distinct values (up to 1000), in first-seen order.")
    topk_struct = [O([t] + ["ANY"] * n + [I], _topk_struct_type, TopKStruct) for n in range(1, 9) for t in (I, B, D, S)]
    ag("TOPK", O(["T", I], "ARRAY<T>", TopK), *topk_struct,
       d="TOPK(col, k): the k greatest values, descending; TOPK(col, other..., k): the k rows with the "
         "greatest col as STRUCT<sort_col, col0, ...>.")
    ag("TOPKDISTINCT", O(["T", I], "ARRAY<T>", TopKDistinct), d="TOPKDISTINCT(col, k): the k greatest distinct values.")
    ag("HISTOGRAM", O([S], "MAP<STRING, BIGINT>", Histogram), d="Count of each distinct STRING value (up to 1000).")
    for nm, cls in (("STDDEV_SAMP", Stddev), ("STDDEV_SAMPLE", Stddev), ("STDDEV_POP", StddevPop)):
        ag(nm, *[O([t], D, cls) for t in nums], O(["DECIMAL"], D, cls), d="Standard deviation (sample or population).")
    ag("CORRELATION", O([D, D], D, Correlation), d="Pearson correlation of two columns.")
    ag("ATTR", O(["T"], "T", Attr), d="The value if every row has the same one, else NULL.")
