"""SQL expressions as polars expressions: the columnar twin of :mod:`.expressions`.

:class:`VectorCompiler` turns the common subset of SQL expressions over columns of the basic
types (BOOLEAN, INT, BIGINT, DOUBLE, STRING) into polars expressions with exactly the row
path's results: NULL in, NULL out; three-valued AND/OR (polars' Kleene logic); Java's integer
overflow; DOUBLE division by zero as the row path computes it. Anything else raises
:class:`Unsupported`, and the planner keeps the row path for that node.

A scalar UDF without a native form runs per value, but over whole columns (one Python call per
row of the batch, no expression tree): only on the rows where the row path would evaluate it
(``guard``: the CASE branch taken, the right side of an AND/OR that did not short-circuit,
...), so it is called, and fails into the processing log, exactly as often as on the row path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from ..formats.types import SqlType
from ..functions.typing_rules import arithmetic_type
from . import ast as A
from .expressions import ExpressionCompiler, Scope, _magic_timestamps

#: SQL base type -> polars dtype, for the types the vectorized path handles
DTYPES: dict[str, pl.DataType] = {
    "BOOLEAN": pl.Boolean(),
    "INT": pl.Int32(),
    "BIGINT": pl.Int64(),
    "DOUBLE": pl.Float64(),
    "STRING": pl.String(),
}
_INTS = ("INT", "BIGINT")


class Unsupported(Exception):
    """The expression has no vectorized form (the row path is used)."""


def dtype_of(t: SqlType | None) -> pl.DataType:
    """The polars dtype of a basic SQL type (Unsupported for the others)."""
    if t is None:
        return pl.Null()
    d = DTYPES.get(t.base)
    if d is None:
        raise Unsupported(f"type {t}")
    return d


class VExpr:
    """A compiled vectorized expression: the polars expression, its SQL type (None: an untyped
    NULL) and the row columns it reads."""

    __slots__ = ("expr", "type", "literal")

    def __init__(self, expr: pl.Expr, type_: SqlType | None, literal: Any = Ellipsis) -> None:
        self.expr = expr
        self.type = type_
        #: the Python value when the expression is a literal (Ellipsis otherwise)
        self.literal = literal

    def as_type(self, t: SqlType | None) -> pl.Expr:
        """The expression in the dtype of ``t`` (the widenings the row path's coercer does)."""
        if t is None or self.type == t:
            return self.expr
        if self.type is None:
            return pl.lit(None, dtype=dtype_of(t))
        f, to = self.type.base, t.base
        if f == to or (f in _INTS and to in _INTS + ("DOUBLE",)):
            return self.expr.cast(dtype_of(t))
        raise Unsupported(f"coercion {self.type} -> {t}")


class VectorCompiler:
    """Compiles SQL expressions to polars expressions (see the module docs)."""

    def __init__(self, rows: ExpressionCompiler) -> None:
        self.rows = rows
        self.registry = rows.registry
        self.on_error = rows.on_error
        #: the row columns read by the expressions compiled so far: name -> SQL type
        self.columns: dict[str, SqlType] = {}

    def compile(self, e: A.Expr, scope: Scope, guard: pl.Expr | None = None) -> VExpr:
        """``e`` as a polars expression; ``guard``: the rows on which the row path evaluates it."""
        method = getattr(self, "_" + type(e).__name__, None)
        if method is None:
            raise Unsupported(type(e).__name__)
        return method(e, scope, guard)

    def typed(self, e: A.Expr, scope: Scope) -> SqlType | None:
        return self.rows.compile(e, scope).type

    # -- leaves -------------------------------------------------------------------------------------
    def _Literal(self, e: A.Literal, scope: Scope, guard) -> VExpr:
        if e.value is None:
            return VExpr(pl.lit(None), None, None)
        return VExpr(pl.lit(e.value, dtype=dtype_of(e.type)), e.type, e.value)

    def _ColumnRef(self, e: A.ColumnRef, scope: Scope, guard) -> VExpr:
        if e.source is None and e.name in scope.lambda_vars:
            raise Unsupported("lambda variable")
        key, t = scope.resolve(e)
        dtype_of(t)
        self.columns[key] = t
        return VExpr(pl.col(key), t)

    # -- operators ----------------------------------------------------------------------------------
    def _UnaryOp(self, e: A.UnaryOp, scope: Scope, guard) -> VExpr:
        c = self.compile(e.operand, scope, guard)
        if e.op == "NOT":
            return VExpr(~c.as_type(SqlType.BOOLEAN), SqlType.BOOLEAN)
        if e.op == "-":
            if c.literal is not Ellipsis:
                v = None if c.literal is None else -c.literal
                return VExpr(pl.lit(v, dtype=dtype_of(c.type)), c.type, v)
            if c.type is not None and c.type.base == "DOUBLE":
                return VExpr(-c.expr, c.type)
            raise Unsupported("integer negation (the row path does not wrap it)")
        return c

    def _BinaryOp(self, e: A.BinaryOp, scope: Scope, guard) -> VExpr:
        op = e.op
        if op in ("AND", "OR"):
            left = self.compile(e.left, scope, guard)
            lb = left.as_type(SqlType.BOOLEAN)
            # the row path evaluates the right side only when the left did not decide
            rg = lb.fill_null(True) if op == "AND" else ~lb.fill_null(False)
            right = self.compile(e.right, scope, rg if guard is None else guard & rg)
            rb = right.as_type(SqlType.BOOLEAN)
            return VExpr(lb & rb if op == "AND" else lb | rb, SqlType.BOOLEAN)
        if op in ("=", "<>", "!=", "<", "<=", ">", ">="):
            le, re_ = _magic_timestamps(e.left, e.right)
            left = self.compile(le, scope, guard)
            right = self.compile(re_, scope, _and(guard, left.expr.is_not_null()))
            # ksqlDB's comparison operators are FALSE (not NULL) when a side is NULL
            return VExpr(self._compare(op, left, right).fill_null(False), SqlType.BOOLEAN)
        left = self.compile(e.left, scope, guard)
        right = self.compile(e.right, scope, _and(guard, left.expr.is_not_null()))
        if op == "||":
            parts = [self._text(left), self._text(right)]
            return VExpr(pl.when(parts[0].is_null() | parts[1].is_null()).then(None).otherwise(parts[0] + parts[1]),
                         SqlType.STRING)
        return self._arithmetic(op, left, right)

    def _text(self, c: VExpr) -> pl.Expr:
        if c.type is None:
            return pl.lit(None, dtype=pl.String)
        if c.type.base in ("STRING",) + _INTS:
            return c.expr.cast(pl.String)
        raise Unsupported(f"|| of {c.type}")

    def _compare(self, op: str, left: VExpr, right: VExpr) -> pl.Expr:
        lt, rt = left.type, right.type
        if lt is None or rt is None:
            return pl.lit(None, dtype=pl.Boolean)
        if lt.base in _INTS and rt.base in _INTS:
            a, b = left.as_type(SqlType.BIGINT), right.as_type(SqlType.BIGINT)
        elif lt.base == rt.base and lt.base in ("DOUBLE", "STRING", "BOOLEAN"):
            a, b = left.expr, right.expr
        elif {lt.base, rt.base} <= {"DOUBLE", "INT", "BIGINT"} and _small_int_literal(left if lt.base != "DOUBLE" else right):
            a, b = left.as_type(SqlType.DOUBLE), right.as_type(SqlType.DOUBLE)
        else:
            raise Unsupported(f"comparison of {lt} and {rt}")
        if op == "=":
            return a == b
        if op in ("<>", "!="):
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        return a >= b

    def _arithmetic(self, op: str, left: VExpr, right: VExpr) -> VExpr:
        lt, rt = left.type, right.type
        if lt is None and rt is None:
            return VExpr(pl.lit(None), None, None)
        lt, rt = lt or rt, rt or lt
        t = arithmetic_type(op, lt, rt)  # type: ignore[arg-type]
        if t.base == "STRING":
            a, b = left.as_type(t), right.as_type(t)
            return VExpr(pl.when(a.is_null() | b.is_null()).then(None).otherwise(a + b), t)
        a, b = left.as_type(t), right.as_type(t)
        if t.base == "DOUBLE":
            if op in ("+", "-", "*"):
                return VExpr(_binop(op, a, b), t)
            if op == "/":
                inf, nan = float("inf"), float("nan")
                zero = (pl.when(a.is_nan() | (a == 0)).then(pl.lit(nan)).when(a > 0).then(pl.lit(inf))
                        .otherwise(pl.lit(-inf)))
                return VExpr(pl.when(a.is_null() | b.is_null()).then(None).when(b == 0).then(zero).otherwise(a / b), t)
            raise Unsupported("DOUBLE %")
        if t.base not in _INTS:
            raise Unsupported(f"arithmetic on {t}")
        if op in ("+", "-", "*"):
            return VExpr(_binop(op, a, b), t)
        d = right.literal
        if not isinstance(d, int) or isinstance(d, bool) or d in (0, -1):
            raise Unsupported("integer division by a non-constant (division by zero goes to the processing log)")
        # Java's truncating division and remainder (polars' // and % floor)
        q = a // d
        r = a - q * d
        fix = (r != 0) & ((a < 0) != (d < 0))
        jq = pl.when(fix).then(q + 1).otherwise(q)
        if op == "/":
            return VExpr(jq, t)
        return VExpr(a - jq * d, t)

    # -- predicates ---------------------------------------------------------------------------------
    def _IsNull(self, e: A.IsNull, scope: Scope, guard) -> VExpr:
        c = self.compile(e.expr, scope, guard)
        return VExpr(c.expr.is_not_null() if e.negated else c.expr.is_null(), SqlType.BOOLEAN)

    def _IsDistinctFrom(self, e: A.IsDistinctFrom, scope: Scope, guard) -> VExpr:
        left, right = self.compile(e.left, scope, guard), self.compile(e.right, scope, guard)
        eq = self._compare("=", left, right) if left.type is not None and right.type is not None else pl.lit(None, pl.Boolean)
        a, b = left.expr, right.expr
        d = pl.when(a.is_null() & b.is_null()).then(False).when(a.is_null() | b.is_null()).then(True).otherwise(~eq)
        return VExpr(~d if e.negated else d, SqlType.BOOLEAN)

    def _Like(self, e: A.Like, scope: Scope, guard) -> VExpr:
        val = self.compile(e.expr, scope, guard)
        if not isinstance(e.pattern, A.Literal) or not isinstance(e.pattern.value, str):
            raise Unsupported("LIKE with a computed pattern")
        if val.type is None:
            return VExpr(pl.lit(None, dtype=pl.Boolean), SqlType.BOOLEAN)
        m = val.expr.str.contains(like_regex(e.pattern.value, e.escape))
        return VExpr(~m if e.negated else m, SqlType.BOOLEAN)

    def _Between(self, e: A.Between, scope: Scope, guard) -> VExpr:
        _, low = _magic_timestamps(e.expr, e.low)
        _, high = _magic_timestamps(e.expr, e.high)
        v = self.compile(e.expr, scope, guard)
        lo, hi = self.compile(low, scope, guard), self.compile(high, scope, guard)
        # as the row path: each comparison FALSE on a NULL, NOT BETWEEN the negation of both
        both = self._compare(">=", v, lo).fill_null(False) & self._compare("<=", v, hi).fill_null(False)
        return VExpr(~both if e.negated else both, SqlType.BOOLEAN)

    def _InList(self, e: A.InList, scope: Scope, guard) -> VExpr:
        v = self.compile(e.expr, scope, guard)
        items = [self.compile(x, scope, guard) for x in e.items]
        if not items:
            raise Unsupported("empty IN list")
        lits = [i.literal for i in items]
        if (v.type is not None and v.type.base in ("STRING",) + _INTS and all(i.type == v.type for i in items)
                and all(x is not Ellipsis and x is not None for x in lits)):
            hit = pl.when(v.expr.is_null()).then(None).otherwise(v.expr.is_in(pl.lit(pl.Series(lits, dtype=dtype_of(v.type))).implode()))
        else:
            hit = None
            for it in items:
                eq = self._compare("=", v, it)
                hit = eq if hit is None else hit | eq
        return VExpr(~hit if e.negated else hit, SqlType.BOOLEAN)

    # -- conditionals and casts ---------------------------------------------------------------------
    def _Case(self, e: A.Case, scope: Scope, guard) -> VExpr:
        t = self.typed(e, scope)
        operand = self.compile(e.operand, scope, guard) if e.operand is not None else None
        chain = None
        undecided: pl.Expr | None = None  # rows no earlier WHEN took
        for cond, res in e.whens:
            g = _and(guard, undecided)
            c = self.compile(cond, scope, g)
            ce = self._compare("=", operand, c) if operand is not None else c.as_type(SqlType.BOOLEAN)
            taken = ce.fill_null(False)
            r = self.compile(res, scope, _and(g, taken))
            rexpr = r.as_type(t)
            chain = pl.when(ce).then(rexpr) if chain is None else chain.when(ce).then(rexpr)
            undecided = ~taken if undecided is None else undecided & ~taken
        if e.else_ is not None:
            other = self.compile(e.else_, scope, _and(guard, undecided)).as_type(t)
        else:
            other = pl.lit(None, dtype=dtype_of(t))
        return VExpr(chain.otherwise(other).cast(dtype_of(t)), t)  # type: ignore[union-attr]

    def _Cast(self, e: A.Cast, scope: Scope, guard) -> VExpr:
        c = self.compile(e.expr, scope, guard)
        target = self.rows.resolve_type(e.type, e.pos)
        dtype_of(target)
        if c.type is None:
            return VExpr(pl.lit(None, dtype=dtype_of(target)), target)
        f, to = c.type.base, target.base
        if f == to:
            return VExpr(c.expr, target)
        if to == "STRING" and f in ("STRING", "BOOLEAN") + _INTS:
            return VExpr(c.expr.cast(pl.String), target)
        if to == "DOUBLE" and f in _INTS:
            return VExpr(c.expr.cast(pl.Float64), target)
        if to == "BIGINT" and f == "INT":
            return VExpr(c.expr.cast(pl.Int64), target)
        if to == "INT" and f == "BIGINT":  # Java's narrowing: the low 32 bits
            wrapped = ((c.expr + (1 << 31)) % (1 << 32)) - (1 << 31)
            return VExpr(wrapped.cast(pl.Int32), target)
        raise Unsupported(f"CAST {c.type} AS {target}")

    # -- functions ----------------------------------------------------------------------------------
    def _FunctionCall(self, e: A.FunctionCall, scope: Scope, guard) -> VExpr:
        name = e.name.upper()
        if e.star or any(isinstance(a, A.Lambda) for a in e.args) or self.registry.kind_of(name) != "SCALAR":
            raise Unsupported(f"function {name}")
        args = [self.compile(a, scope, guard) for a in e.args]
        resolved = self.registry.resolve_scalar(name, [a.type for a in args])
        rt = resolved.return_type
        if rt is None:
            raise Unsupported("untyped result")
        dt = dtype_of(rt)
        params = resolved.param_types
        native = _native(name, args, params, rt)
        if native is not None:
            return VExpr(native, rt)
        row_form = self._per_value(name, resolved.fn, args, dt, guard)
        vec = getattr(resolved, "vectorized", None)
        if vec is not None and guard is None and [a.type for a in args] == list(params):
            # a vectorized UDF (@udf(vectorized=True)): once per batch over whole Arrow columns;
            # if it raises, the operator runs the batch on the row path, so errors are reported row
            # by row as before
            return VExpr(self._whole_column(vec, args, dt), rt)
        return VExpr(row_form, rt)

    def _whole_column(self, vec: Callable[..., Any], args: list[VExpr], dt: pl.DataType) -> pl.Expr:
        """A vectorized function over its arguments' columns (pyarrow arrays in, an array or
        Series out)."""
        n = len(args)

        def run(s: pl.Series) -> pl.Series:
            frame = s.struct.unnest()
            out = vec(*(frame.to_series(i).to_arrow() for i in range(n)))
            series = out if isinstance(out, pl.Series) else pl.Series(s.name, out)
            if len(series) != len(s):
                raise ValueError(f"a vectorized function returned {len(series)} values for {len(s)} rows")
            return series.cast(dt).alias(s.name)

        fields = [a.expr.alias(f"a{i}") for i, a in enumerate(args)]
        return pl.struct(fields).map_batches(run, return_dtype=dt)

    def _per_value(self, name: str, call: Callable[..., Any], args: list[VExpr], dt: pl.DataType,
                   guard: pl.Expr | None) -> pl.Expr:
        """A Python function over the columns of its arguments: called per row where ``guard``
        holds, with the row path's error handling (NULL and a processing-log entry)."""
        onerr = self.on_error
        n = len(args)

        def run(s: pl.Series) -> pl.Series:
            frame = s.struct.unnest()
            cols = [frame.to_series(i).to_list() for i in range(n + 1)]
            out: list[Any] = []
            append = out.append
            for row in zip(*cols):
                if not row[0]:
                    append(None)
                    continue
                try:
                    append(call(*row[1:]))
                except Exception as ex:  # noqa: BLE001 - a failing function yields NULL
                    onerr(f"Error computing expression {name}: {type(ex).__name__}: {ex}")
                    append(None)
            return pl.Series(s.name, out, dtype=dt)

        g = pl.lit(True) if guard is None else guard.fill_null(False)
        fields = [g.alias("g")] + [a.expr.alias(f"a{i}") for i, a in enumerate(args)]
        return pl.struct(fields).map_batches(run, return_dtype=dt)


# -- helpers -----------------------------------------------------------------------------------------
def _and(a: pl.Expr | None, b: pl.Expr | None) -> pl.Expr | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _binop(op: str, a: pl.Expr, b: pl.Expr) -> pl.Expr:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    return a * b


def _small_int_literal(c: VExpr) -> bool:
    """An integer literal that a double represents exactly (so comparing as doubles is exact)."""
    return isinstance(c.literal, int) and not isinstance(c.literal, bool) and abs(c.literal) <= 1 << 53


def _native(name: str, args: list[VExpr], params: list[Any], rt: SqlType) -> pl.Expr | None:
    """Built-ins with an exact polars form (None: call the function per value)."""
    same = all(a.type is None or a.type == p for a, p in zip(args, params))
    if name in ("COALESCE", "IFNULL") and same and len(args) >= 1:
        return pl.coalesce([a.as_type(rt) for a in args])
    return None


def like_regex(pattern: str, escape: str | None) -> str:
    """A LIKE pattern as an anchored regex for polars (every literal character as ``\\x{..}``)."""
    out = ["^(?s:"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            out.append(_lit_char(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(_lit_char(ch))
        i += 1
    out.append(")$")
    return "".join(out)


def _lit_char(ch: str) -> str:
    return ch if ch.isalnum() and ch.isascii() else f"\\x{{{ord(ch):x}}}"

