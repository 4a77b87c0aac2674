"""TEST_UDTF and THROWING_UDTF: ksqlDB's test-only table functions, from table-functions.json.

    TEST_UDTF(INT, BIGINT, DOUBLE, BOOLEAN, STRING, DECIMAL, STRUCT<A STRING>) -> STRING
        one row per argument: the argument as Java's toString renders it
    TEST_UDTF(ARRAY<INT>, ..., ARRAY<STRUCT<A STRING>>) -> STRING   the same, per first element
    TEST_UDTF(MAP<STRING, INT>, ..., MAP<STRING, STRUCT<A STRING>>) -> STRING   per first value
    TEST_UDTF(T) -> T   for INT, BIGINT, DOUBLE, BOOLEAN, STRING, STRUCT<A STRING>: the value
    TEST_UDTF(DECIMAL) -> DECIMAL(30, 10)   the value
    THROWING_UDTF(BOOLEAN) -> BOOLEAN   raises when the argument is true, else the value
"""

import decimal
from typing import Any, Optional

from mailroom.functions.api import udtf

_DESC = "Test UDTF."
_AUTHOR = "ksqlDB QTT (ported)"
_ELEMENTS = ["INT", "BIGINT", "DOUBLE", "BOOLEAN", "STRING", "DECIMAL", "STRUCT<A STRING>"]


def java_string(v: Any) -> Optional[str]:
    """``String.valueOf`` of the Java value a SQL value maps to."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        r = repr(v)
        if "e" in r or "E" in r:
            mant, exp = r.lower().split("e")
            if "." not in mant:
                mant += ".0"
            return f"{mant}E{int(exp)}"
        return r
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, dict):
        return "Struct{" + ",".join(f"{k}={java_string(x)}" for k, x in v.items() if x is not None) + "}"
    if isinstance(v, list):
        return "[" + ", ".join("null" if x is None else java_string(x) for x in v) + "]"
    return str(v)


@udtf(name="test_udtf", sql_types=_ELEMENTS, returns="STRING", description=_DESC, author=_AUTHOR, version="1")
def list_of_strings(i: Optional[int], l: Optional[int], d: Optional[float], b: Optional[bool], s: Optional[str],
                    bd: Optional[decimal.Decimal], struct: Optional[dict]) -> list[str]:
    return [java_string(v) for v in (i, l, d, b, s, bd, struct)]


@udtf(name="test_udtf", sql_types=[f"ARRAY<{t}>" for t in _ELEMENTS], returns="STRING", description=_DESC)
def list_of_array_firsts(i: Optional[list], l: Optional[list], d: Optional[list], b: Optional[list],
                         s: Optional[list], bd: Optional[list], struct: Optional[list]) -> list[str]:
    return [java_string(a[0]) if a else None for a in (i, l, d, b, s, bd, struct)]


@udtf(name="test_udtf", sql_types=[f"MAP<STRING, {t}>" for t in _ELEMENTS], returns="STRING", description=_DESC)
def list_of_map_values(i: Optional[dict], l: Optional[dict], d: Optional[dict], b: Optional[dict],
                       s: Optional[dict], bd: Optional[dict], struct: Optional[dict]) -> list[str]:
    return [java_string(next(iter(m.values()))) if m else None for m in (i, l, d, b, s, bd, struct)]


# single-argument overloads: one row holding the argument itself
for _t, _r in (("INT", "INT"), ("BIGINT", "BIGINT"), ("DOUBLE", "DOUBLE"), ("BOOLEAN", "BOOLEAN"),
               ("STRING", "STRING"), ("DECIMAL", "DECIMAL(30, 10)"), ("STRUCT<A STRING>", "STRUCT<A STRING>")):
    def _one(v: object) -> list:  # a non-Optional hint: NULL in, no rows out
        return [v]

    _one.__name__ = f"list_{_t.split('<')[0].lower()}_return"
    udtf(_one, name="test_udtf", sql_types=[_t], returns=_r, description=_DESC)


@udtf(name="throwing_udtf", sql_types=["BOOLEAN"], returns="BOOLEAN", description="Test UDTF that throws when asked to.",
      author=_AUTHOR, version="1")
def throwing_udtf(should_throw: Optional[bool]) -> list[bool]:
    if should_throw:
        raise RuntimeError("You asked me to throw...")
    return [should_throw]
