"""ARRAY and MAP functions, including TRANSFORM / FILTER / REDUCE with lambdas."""

from __future__ import annotations

from typing import Any

from mailroom.formats.types import SqlType

from ..registry import FunctionError, FunctionRegistry
from ._util import O, scalar

I, B, S, BOOL = SqlType.INT, SqlType.BIGINT, SqlType.STRING, SqlType.BOOLEAN
CAT = "ARRAY / MAP"


def _key(v: Any) -> Any:
    # hashable form for distinct/intersect on lists/dicts
    if isinstance(v, list):
        return ("L", tuple(_key(x) for x in v))
    if isinstance(v, dict):
        return ("M", tuple((k, _key(x)) for k, x in v.items()))
    return v


def _distinct(a: list) -> list:
    seen, out = set(), []
    for x in a:
        k = _key(x)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out


def _except(a: list, b: list) -> list:
    ex = {_key(x) for x in b}
    return [x for x in _distinct(a) if _key(x) not in ex]


def _intersect(a: list, b: list) -> list:
    keep = {_key(x) for x in b}
    return [x for x in _distinct(a) if _key(x) in keep]


def _sort(a: list, direction: str = "ASC") -> list:
    d = direction.upper()
    if d not in ("ASC", "DESC"):
        return None  # type: ignore[return-value]
    vals = [x for x in a if x is not None]
    nulls = [None] * (len(a) - len(vals))
    vals.sort(reverse=d == "DESC")
    return vals + nulls


def _max(a: list) -> Any:
    v = [x for x in a if x is not None]
    return max(v) if v else None


def _min(a: list) -> Any:
    v = [x for x in a if x is not None]
    return min(v) if v else None


def _join(a: list, sep: str | None = ",") -> str:
    from .json import java_double

    def txt(x: Any) -> str:
        if x is None:
            return "null"
        if isinstance(x, bool):
            return "true" if x else "false"
        if isinstance(x, float):
            return java_double(x)
        return str(x)

    return ("" if sep is None else sep).join(txt(x) for x in a)


def _slice(a: list, start: int | None, end: int | None) -> list:
    n = len(a)
    s = 1 if start is None else start
    e = n if end is None else end
    if s < 1:
        s = 1
    return a[s - 1 : min(e, n)] if s <= e else []


def _series(start: int, end: int, step: int | None = None) -> list[int]:
    if step is None:
        step = 1 if end >= start else -1
    if step == 0:
        raise FunctionError("GENERATE_SERIES step cannot be zero")
    if (end - start) * step < 0:
        raise FunctionError("GENERATE_SERIES step has wrong sign")
    return list(range(start, end + (1 if step > 0 else -1), step))


def _as_map(keys: list, vals: list) -> dict:
    out = {}
    for k, v in zip(keys, vals):
        if k is not None:
            out[k] = v
    return out


def _entries(m: dict, sort: bool = False) -> list[dict]:
    items = sorted(m.items()) if sort else m.items()
    return [{"K": k, "V": v} for k, v in items]


def _entries_type(types: list[Any]) -> SqlType:
    return SqlType.array(SqlType.struct([("K", S), ("V", types[0].element)]))


def _map_union(*maps: dict | None) -> dict | None:
    ms = [m for m in maps if m is not None]
    if not ms:
        return None
    out: dict = {}
    for m in ms:
        out.update(m)
    return out


def _transform_array(a: list, f) -> list:
    return [f(x) for x in a]


def _transform_map(m: dict, kf, vf) -> dict:
    return {kf(k, v): vf(k, v) for k, v in m.items()}


def _reduce_array(a: list | None, state: Any, f) -> Any:
    if a is None:
        return state
    if state is None:
        return None
    for x in a:
        state = f(state, x)
    return state


def _reduce_map(m: dict | None, state: Any, f) -> Any:
    if m is None:
        return state
    if state is None:
        return None
    for k, v in m.items():
        state = f(state, k, v)
    return state


def register(reg: FunctionRegistry) -> None:
    sc = lambda name, *ovs, d="": scalar(reg, name, *ovs, description=d, category=CAT)  # noqa: E731
    sc("ARRAY_LENGTH", O(["ARRAY<T>"], I, len), d="Number of elements.")
    sc("ARRAY_CONTAINS", O(["ARRAY<T>", "T"], BOOL, lambda a, v: v in a, strict_args=[0]), d="True if the array holds the value.")
    sc("ARRAY_DISTINCT", O(["ARRAY<T>"], "ARRAY<T>", _distinct), d="Distinct elements in first-seen order.")
    sc("ARRAY_EXCEPT", O(["ARRAY<T>", "ARRAY<T>"], "ARRAY<T>", _except), d="Distinct elements of the first not in the second.")
    sc("ARRAY_INTERSECT", O(["ARRAY<T>", "ARRAY<T>"], "ARRAY<T>", _intersect), d="Distinct elements in both.")
    sc("ARRAY_UNION", O(["ARRAY<T>", "ARRAY<T>"], "ARRAY<T>", lambda a, b: _distinct(a + b)), d="Distinct elements of either.")
    sc("ARRAY_CONCAT", O(["ARRAY<T>", "ARRAY<T>"], "ARRAY<T>", lambda a, b: None if a is None and b is None else (a or []) + (b or []), strict=False),
       d="Concatenation; a NULL array counts as empty (both NULL gives NULL).")
    sc("ARRAY_JOIN", O(["ARRAY<T>"], S, _join), O(["ARRAY<T>", S], S, _join, strict_args=[0]), d="Joins elements as text (default ',').")
    sc("ARRAY_MAX", O(["ARRAY<T>"], "T", _max), d="Greatest non-NULL element.")
    sc("ARRAY_MIN", O(["ARRAY<T>"], "T", _min), d="Least non-NULL element.")
    sc("ARRAY_REMOVE", O(["ARRAY<T>", "T"], "ARRAY<T>", lambda a, v: [x for x in a if x != v], strict_args=[0]), d="Removes every element equal to the value.")
    sc("ARRAY_SORT", O(["ARRAY<T>"], "ARRAY<T>", _sort), O(["ARRAY<T>", S], "ARRAY<T>", _sort), d="Sorts ASC (default) or DESC; NULLs last.")
    sc("SLICE", O(["ARRAY<T>", I, I], "ARRAY<T>", _slice, strict_args=[0]), d="SLICE(array, from, to): 1-based, inclusive.")
    sc("AS_MAP", O(["ARRAY<STRING>", "ARRAY<T>"], "MAP<STRING, T>", _as_map), d="Map from an array of keys and an array of values.")
    sc("ENTRIES", O(["MAP<STRING, T>", BOOL], _entries_type, _entries), d="ENTRIES(map, sorted): array of STRUCT<K, V>.")
    sc("GENERATE_SERIES", O([I, I], "ARRAY<INT>", _series), O([I, I, I], "ARRAY<INT>", _series),
       O([B, B], "ARRAY<BIGINT>", _series), O([B, B, I], "ARRAY<BIGINT>", _series), d="Integers from start to end inclusive, by step.")
    sc("MAP_KEYS", O(["MAP<STRING, T>"], "ARRAY<STRING>", lambda m: list(m)), d="The keys of a map.")
    sc("MAP_VALUES", O(["MAP<STRING, T>"], "ARRAY<T>", lambda m: list(m.values())), d="The values of a map.")
    sc("MAP_UNION", O(["MAP<STRING, T>", "MAP<STRING, T>"], "MAP<STRING, T>", _map_union, strict=False), d="Union of maps; later keys win.")
    sc("TRANSFORM", O(["ARRAY<T>", "FN(T) -> U"], "ARRAY<U>", _transform_array),
       O(["MAP<STRING, V>", "FN(STRING, V) -> STRING", "FN(STRING, V) -> W"], "MAP<STRING, W>", _transform_map),
       d="Applies a lambda to each element (or key and value).")
    sc("FILTER", O(["ARRAY<T>", "FN(T) -> BOOLEAN"], "ARRAY<T>", lambda a, f: [x for x in a if f(x)]),
       O(["MAP<STRING, V>", "FN(STRING, V) -> BOOLEAN"], "MAP<STRING, V>", lambda m, f: {k: v for k, v in m.items() if f(k, v)}),
       d="Keeps the elements for which the lambda is true.")
    sc("REDUCE", O(["ARRAY<T>", "S", "FN(S, T) -> S"], "S", _reduce_array, strict=False),
       O(["MAP<STRING, V>", "S", "FN(S, STRING, V) -> S"], "S", _reduce_map, strict=False),
       d="Folds the elements into a state with a lambda.")
