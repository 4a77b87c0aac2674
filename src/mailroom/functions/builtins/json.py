"""JSON functions: EXTRACTJSONFIELD, IS_JSON_STRING, JSON_ARRAY_LENGTH, JSON_ARRAY_CONTAINS,
JSON_CONCAT, JSON_ITEMS, JSON_KEYS, JSON_RECORDS, TO_JSON_STRING."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
from typing import Any

from mailroom.formats.types import SqlType

from ..registry import FunctionRegistry
from ._util import O, scalar

S, I, BOOL = SqlType.STRING, SqlType.INT, SqlType.BOOLEAN
CAT = "JSON"
_BAD = object()


def java_double(x: float) -> str:
    """A double as Java's Double.toString prints it (1.0, 1.0E10, 1.0E-5)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        r = repr(x)
        return r if ("." in r or "e" in r) else r + ".0"
    mant, exp = f"{x:.17e}".split("e")
    # shortest repr digits
    digits = repr(abs(x)).replace(".", "").split("e")[0].lstrip("0")
    r = repr(x)
    if "e" in r:
        m, e = r.split("e")
        if "." not in m:
            m += ".0"
        return f"{m}E{int(e)}"
    # large number printed without exponent by Python: normalise
    sign = "-" if x < 0 else ""
    e = len(r.lstrip("-").split(".")[0]) - 1
    digits = r.lstrip("-").replace(".", "").rstrip("0") or "0"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{e}"


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_float=decimal.Decimal)
    except (ValueError, TypeError):
        return _BAD


def dumps(v: Any) -> str:
    """Compact JSON as Jackson writes it (numbers kept as parsed, DOUBLE as Java prints it)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return java_double(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (bytes, bytearray)):
        return json.dumps(base64.b64encode(bytes(v)).decode("ascii"))
    if isinstance(v, dt.datetime):
        return '"' + v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}" + '"'
    if isinstance(v, dt.date):
        return f'"{v.isoformat()}"'
    if isinstance(v, dt.time):
        return '"' + v.strftime("%H:%M:%S") + (f".{v.microsecond // 1000:03d}" if v.microsecond else "") + '"'
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(dumps(x) for x in v) + "]"
    return json.dumps(str(v))


_PATH_TOK = re.compile(r"\.([^.\[\]]+)|\[\s*(\d+)\s*\]|\[\s*'((?:[^'\\]|\\.)*)'\s*\]|\[\s*\"((?:[^\"\\]|\\.)*)\"\s*\]")


def _path(p: str) -> list[Any] | None:
    p = p.strip()
    if not p.startswith("$"):
        return None
    out: list[Any] = []
    i = 1
    while i < len(p):
        m = _PATH_TOK.match(p, i)
        if not m:
            return None
        name, idx, q1, q2 = m.groups()
        out.append(int(idx) if idx is not None else (name if name is not None else (q1 if q1 is not None else q2)))
        i = m.end()
    return out


def extract_json_field(text: str, path: str) -> str | None:
    v = _loads(text)
    if v is _BAD:
        return None
    steps = _path(path)
    if steps is None:
        return None
    for s in steps:
        if isinstance(s, int) and isinstance(v, list):
            if s >= len(v):
                return None
            v = v[s]
        elif isinstance(v, dict) and str(s) in v:
            v = v[str(s)]
        else:
            return None
    if v is None:
        return None
    if isinstance(v, str):
        return v
    return dumps(v)


def _array_length(text: str) -> int | None:
    v = _loads(text)
    return len(v) if isinstance(v, list) else None


def _json_concat(*texts: str | None) -> str | None:
    vals = []
    for t in texts:
        if t is None:
            return None
        v = _loads(t)
        if v is _BAD:
            return None
        vals.append(v)
    if all(isinstance(v, dict) for v in vals):
        out: dict = {}
        for v in vals:
            out.update(v)
        return dumps(out)
    arr: list = []
    for v in vals:
        if isinstance(v, list):
            arr.extend(v)
        else:
            arr.append(v)
    return dumps(arr)


def _items(text: str) -> list[str] | None:
    v = _loads(text)
    return [dumps(x) for x in v] if isinstance(v, list) else None


def _keys(text: str) -> list[str] | None:
    v = _loads(text)
    return list(v) if isinstance(v, dict) else None


def _records(text: str) -> dict[str, str] | None:
    v = _loads(text)
    return {k: dumps(x) for k, x in v.items()} if isinstance(v, dict) else None


def _array_contains(text: str, value: Any) -> bool:
    v = _loads(text)
    if not isinstance(v, list):
        return False
    for x in v:
        if isinstance(x, (dict, list)):
            continue
        if x == value and (isinstance(x, bool) == isinstance(value, bool)) and (isinstance(x, str) == isinstance(value, str)):
            return True
    return False


def register(reg: FunctionRegistry) -> None:
    sc = lambda name, *ovs, d="": scalar(reg, name, *ovs, description=d, category=CAT)  # noqa: E731
    sc("EXTRACTJSONFIELD", O([S, S], S, extract_json_field), d="EXTRACTJSONFIELD(json, '$.path'): the value as text.")
    sc("IS_JSON_STRING", O([S], BOOL, lambda t: _loads(t) is not _BAD and t.strip() != "", strict=False), d="True if the text is valid JSON.")
    sc("JSON_ARRAY_LENGTH", O([S], I, _array_length), d="Length of a JSON array, NULL if not an array.")
    sc("JSON_ARRAY_CONTAINS", O([S, "ANY"], BOOL, _array_contains, strict_args=[0]), d="True if a JSON array holds a value.")
    sc("JSON_CONCAT", O([S], S, _json_concat, variadic=0, strict=False), d="Merges JSON objects or concatenates JSON arrays.")
    sc("JSON_ITEMS", O([S], "ARRAY<STRING>", _items), d="The elements of a JSON array, as JSON texts.")
    sc("JSON_KEYS", O([S], "ARRAY<STRING>", _keys), d="The keys of a JSON object.")
    sc("JSON_RECORDS", O([S], "MAP<STRING, STRING>", _records), d="The entries of a JSON object, values as JSON texts.")
    sc("TO_JSON_STRING", O(["ANY"], S, dumps, strict=False), d="Any value as a JSON text.")
