"""Implicit widening, common types and arithmetic result types (ksqlDB's rules).

Numeric widening order: INT -> BIGINT -> DECIMAL -> DOUBLE. An INT fits DECIMAL(10, 0), a BIGINT
DECIMAL(19, 0). DECIMAL arithmetic follows ksqlDB's documented precision/scale rules, capped at 38.
"""

from __future__ import annotations

from mailroom.formats.types import SqlType

_NUM_RANK = {"INT": 0, "BIGINT": 1, "DECIMAL": 2, "DOUBLE": 3}
MAX_PRECISION = 38


def is_numeric(t: SqlType | None) -> bool:
    return t is not None and t.base in _NUM_RANK


def as_decimal(t: SqlType) -> SqlType:
    """The DECIMAL an integral or decimal type fits in (INT -> DECIMAL(10,0), BIGINT -> DECIMAL(19,0))."""
    if t.base == "INT":
        return SqlType.decimal(10, 0)
    if t.base == "BIGINT":
        return SqlType.decimal(19, 0)
    if t.base == "DECIMAL":
        return t
    raise ValueError(f"{t} has no DECIMAL form")


def can_widen(from_: SqlType | None, to: SqlType) -> bool:
    """True if a value of ``from_`` may be used where ``to`` is expected without an explicit CAST.

    ``from_`` None stands for an untyped NULL, which fits anything.
    """
    if from_ is None or from_ == to:
        return True
    fb, tb = from_.base, to.base
    if fb in _NUM_RANK and tb in _NUM_RANK:
        if _NUM_RANK[fb] > _NUM_RANK[tb]:
            return False
        if tb == "DECIMAL":
            d = as_decimal(from_)
            return (to.precision - to.scale) >= (d.precision - d.scale) and to.scale >= d.scale  # type: ignore[operator]
        return True
    if fb != tb:
        return False
    if fb in ("ARRAY", "MAP"):
        return can_widen(from_.element, to.element)  # type: ignore[arg-type]
    if fb == "STRUCT":
        if len(from_.fields) != len(to.fields):
            return False
        return all(a.name == b.name and can_widen(a.type, b.type) for a, b in zip(from_.fields, to.fields))
    return False


def _common_decimal(a: SqlType, b: SqlType) -> SqlType:
    a, b = as_decimal(a), as_decimal(b)
    s = max(a.scale, b.scale)  # type: ignore[type-var]
    ints = max(a.precision - a.scale, b.precision - b.scale)  # type: ignore[operator]
    return SqlType.decimal(min(ints + s, MAX_PRECISION), s)


def common_type(a: SqlType | None, b: SqlType | None) -> SqlType | None:
    """The narrowest type both ``a`` and ``b`` widen to, or None if there is none.

    None (an untyped NULL) yields the other type. INT+BIGINT=BIGINT, INT+DOUBLE=DOUBLE,
    DECIMAL(5,2)+DECIMAL(4,3)=DECIMAL(6,3), INT+DECIMAL(5,2)=DECIMAL(12,2).
    """
    if a is None:
        return b
    if b is None or a == b:
        return a
    if a.base in _NUM_RANK and b.base in _NUM_RANK:
        top = a if _NUM_RANK[a.base] >= _NUM_RANK[b.base] else b
        if top.base == "DECIMAL":
            return _common_decimal(a, b)
        return top
    if a.base != b.base:
        return None
    if a.base == "ARRAY":
        e = common_type(a.element, b.element)
        return None if e is None else SqlType.array(e)
    if a.base == "MAP":
        e = common_type(a.element, b.element)
        return None if e is None else SqlType.map(e)
    if a.base == "STRUCT":
        if [f.name for f in a.fields] != [f.name for f in b.fields]:
            return None
        fields = []
        for fa, fb in zip(a.fields, b.fields):
            t = common_type(fa.type, fb.type)
            if t is None:
                return None
            fields.append((fa.name, t))
        return SqlType.struct(fields)
    if a.base == "DECIMAL":
        return _common_decimal(a, b)
    return None


def common_type_of(types: list[SqlType | None]) -> SqlType | None:
    """common_type folded over a list (None if incompatible or all NULL)."""
    out: SqlType | None = None
    for t in types:
        if t is None:
            continue
        if out is None:
            out = t
            continue
        out = common_type(out, t)
        if out is None:
            return None
    return out


def _cap(p: int, s: int) -> SqlType:
    if p > MAX_PRECISION:
        s = max(s - (p - MAX_PRECISION), min(s, 6))
        p = MAX_PRECISION
    return SqlType.decimal(p, min(s, p))


def decimal_arithmetic(op: str, a: SqlType, b: SqlType) -> SqlType:
    """Result DECIMAL of ``a op b`` (op in + - * / %), per ksqlDB's documented rules."""
    a, b = as_decimal(a), as_decimal(b)
    p1, s1, p2, s2 = a.precision, a.scale, b.precision, b.scale
    assert p1 is not None and s1 is not None and p2 is not None and s2 is not None
    if op in ("+", "-"):
        s = max(s1, s2)
        return _cap(max(p1 - s1, p2 - s2) + s + 1, s)
    if op == "*":
        return _cap(p1 + p2 + 1, s1 + s2)
    if op == "/":
        s = max(6, s1 + p2 + 1)
        return _cap(p1 - s1 + s2 + s, s)
    if op == "%":
        s = max(s1, s2)
        return _cap(min(p1 - s1, p2 - s2) + s, s)
    raise ValueError(f"unknown arithmetic operator {op!r}")


def arithmetic_type(op: str, a: SqlType, b: SqlType) -> SqlType:
    """Result type of a binary arithmetic expression: INT+BIGINT=BIGINT, INT+DOUBLE=DOUBLE,
    DECIMAL rules for DECIMAL (with INT/BIGINT operands as DECIMAL(10,0)/(19,0)), STRING+STRING=STRING."""
    if a.base == "STRING" and b.base == "STRING" and op == "+":
        return SqlType.STRING
    if not (is_numeric(a) and is_numeric(b)):
        raise ValueError(f"cannot apply {op} to {a} and {b}")
    if "DOUBLE" in (a.base, b.base):
        return SqlType.DOUBLE
    if "DECIMAL" in (a.base, b.base):
        return decimal_arithmetic(op, a, b)
    return SqlType.BIGINT if "BIGINT" in (a.base, b.base) else SqlType.INT


def type_name(t: SqlType | None) -> str:
    """The type as ksqlDB prints it in messages (INT as INTEGER, NULL as null)."""
    if t is None:
        return "null"
    if t.base == "INT":
        return "INTEGER"
    if t.base == "ARRAY":
        return f"ARRAY<{type_name(t.element)}>"
    if t.base == "MAP":
        return f"MAP<STRING, {type_name(t.element)}>"
    if t.base == "STRUCT":
        return "STRUCT<" + ", ".join(f"{f.name} {type_name(f.type)}" for f in t.fields) + ">"
    return str(t)
