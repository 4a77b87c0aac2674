"""Typing and compiling SQL expressions into Python functions over rows.

A row is a dict of column values by name (joined rows also hold ``ALIAS.NAME`` keys). An
expression compiles to a :class:`Compiled`: its SQL type and ``fn(row) -> value`` with ksqlDB's
NULL semantics (NULL in, NULL out; three-valued AND/OR; WHERE keeps only TRUE). A function
that raises yields NULL and reports to the processing log (through ``on_error``), never
stopping the query.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..formats._values import java_double
from ..formats.types import SqlType
from ..functions.registry import FunctionError, FunctionRegistry
from ..functions.signature import LambdaType
from ..functions.typing_rules import arithmetic_type, can_widen, common_type, common_type_of, is_numeric, type_name
from . import ast as A
from .metastore import SqlError

Row = dict[str, Any]
Fn = Callable[[Row], Any]

_DEC_CTX = decimal.Context(prec=38, rounding=decimal.ROUND_HALF_UP)


@dataclass
class Compiled:
    """A typed, compiled expression."""

    type: SqlType | None  # None: an untyped NULL
    fn: Fn
    #: aggregate calls found inside (filled by the aggregate planner)
    is_constant: bool = False


@dataclass
class Scope:
    """The columns an expression may refer to.

    ``columns``: name -> (row key, type). ``qualified``: (source alias, name) -> (row key, type).
    ``lambda_vars``: lambda parameters in scope.
    """

    columns: dict[str, tuple[str, SqlType]] = field(default_factory=dict)
    qualified: dict[tuple[str, str], tuple[str, SqlType]] = field(default_factory=dict)
    ambiguous: set[str] = field(default_factory=set)
    lambda_vars: dict[str, SqlType] = field(default_factory=dict)

    def add(self, name: str, key: str, type_: SqlType, alias: str | None = None) -> None:
        if alias is not None:
            self.qualified[(alias, name)] = (key, type_)
        if name in self.columns and self.columns[name][0] != key:
            self.ambiguous.add(name)
        else:
            self.columns[name] = (key, type_)

    def resolve(self, ref: A.ColumnRef) -> tuple[str, SqlType]:
        if ref.source is not None:
            hit = self.qualified.get((ref.source, ref.name))
            if hit is None:
                known = sorted({a for a, _ in self.qualified})
                if ref.source not in known:
                    raise SqlError(f"'{ref.source}' is not a valid stream/table name or alias.", ref.pos)
                raise SqlError(f"Column '{ref.source}.{ref.name}' cannot be resolved.", ref.pos)
            return hit
        if ref.name in self.ambiguous:
            raise SqlError(f"Column '{ref.name}' is ambiguous. Could be any of: "
                           + ", ".join(f"{a}.{n}" for (a, n) in self.qualified if n == ref.name), ref.pos)
        hit = self.columns.get(ref.name)
        if hit is None:
            raise SqlError(f"Column '{ref.name}' cannot be resolved.", ref.pos)
        return hit


class ExpressionCompiler:
    """Compiles expressions against a scope, with a function registry."""

    def __init__(self, registry: FunctionRegistry, types: dict[str, SqlType] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.registry = registry
        self.types = types if types is not None else {}  # the metastore's own dict: types registered later count
        self.on_error = on_error or (lambda msg: None)

    # -- entry points -----------------------------------------------------------------------------
    def compile(self, e: A.Expr, scope: Scope) -> Compiled:
        method = getattr(self, "_" + type(e).__name__, None)
        if method is None:
            raise SqlError(f"unsupported expression: {type(e).__name__}", e.pos)
        return method(e, scope)

    def predicate(self, e: A.Expr, scope: Scope) -> Callable[[Row], bool]:
        """A WHERE/HAVING condition: True only where the expression is TRUE."""
        c = self.compile(e, scope)
        if c.type is not None and c.type.base != "BOOLEAN":
            raise SqlError(f"Type error in WHERE expression: Should evaluate to boolean but is {_expr_text(e)} ({type_name(c.type)}) instead.", e.pos)
        fn = c.fn
        return lambda row: fn(row) is True

    def resolve_type(self, t: SqlType | A.TypeRef, pos=None) -> SqlType:
        """The type with every named type (CREATE TYPE), however deeply nested, replaced."""
        if isinstance(t, A.TypeRef):
            hit = self.types.get(t.name)
            if hit is None:
                raise SqlError(f"Unknown type: {t.name}", pos or t.pos)
            return hit
        if t.base in ("ARRAY", "MAP") and t.element is not None and _has_ref(t.element):
            inner = self.resolve_type(t.element, pos)
            return SqlType.array(inner) if t.base == "ARRAY" else SqlType.map(inner)
        if t.base == "STRUCT" and any(_has_ref(f.type) for f in t.fields):
            return SqlType.struct([(f.name, self.resolve_type(f.type, pos)) for f in t.fields])
        return t

    # -- leaves -----------------------------------------------------------------------------------
    def _Literal(self, e: A.Literal, scope: Scope) -> Compiled:
        v = e.value
        return Compiled(e.type, lambda row: v, is_constant=True)

    def _ColumnRef(self, e: A.ColumnRef, scope: Scope) -> Compiled:
        if e.source is None and e.name in scope.lambda_vars:
            name = "\0" + e.name
            return Compiled(scope.lambda_vars[e.name], lambda row: row.get(name))
        key, t = scope.resolve(e)
        return Compiled(t, lambda row: row.get(key))

    def _IntervalUnit(self, e: A.IntervalUnit, scope: Scope) -> Compiled:
        if e.unit in scope.columns or e.unit in scope.lambda_vars:  # a column named SECOND, DAY, ...
            return self._ColumnRef(A.ColumnRef(e.unit, pos=e.pos), scope)
        u = e.unit
        return Compiled(SqlType.STRING, lambda row: u, is_constant=True)

    # -- structure access -------------------------------------------------------------------------
    def _Dereference(self, e: A.Dereference, scope: Scope) -> Compiled:
        base = self.compile(e.base, scope)
        if base.type is None or base.type.base != "STRUCT":
            raise SqlError(f"Expected STRUCT type, got: {type_name(base.type)}", e.pos)
        fld = next((f for f in base.type.fields if f.name == e.field), None)
        if fld is None:
            raise SqlError(f"Could not find field '{e.field}' in '{_expr_text(e.base)}'.", e.pos)
        bf, name = base.fn, fld.name

        def deref(row):
            s = bf(row)
            return None if s is None else s.get(name)

        return Compiled(fld.type, deref)

    def _Subscript(self, e: A.Subscript, scope: Scope) -> Compiled:
        base = self.compile(e.base, scope)
        idx = self.compile(e.index, scope)
        bf, xf = base.fn, idx.fn
        if base.type is not None and base.type.base == "ARRAY":
            def elem(row):
                arr, i = bf(row), xf(row)
                if arr is None or i is None:
                    return None
                i = int(i)
                if i > 0:
                    return arr[i - 1] if i <= len(arr) else None
                if i < 0:
                    return arr[i] if -i <= len(arr) else None
                return None

            return Compiled(base.type.element, elem)
        if base.type is not None and base.type.base == "MAP":
            def look(row):
                m, k = bf(row), xf(row)
                return None if m is None or k is None else m.get(k)

            return Compiled(base.type.element, look)
        raise SqlError(f"Subscript expression must be on an ARRAY or MAP, got {type_name(base.type)}", e.pos)

    # -- operators --------------------------------------------------------------------------------
    def _UnaryOp(self, e: A.UnaryOp, scope: Scope) -> Compiled:
        c = self.compile(e.operand, scope)
        f = c.fn
        if e.op == "NOT":
            if c.type is not None and c.type.base != "BOOLEAN":
                raise SqlError(f"NOT expects a BOOLEAN, got {type_name(c.type)}", e.pos)
            return Compiled(SqlType.BOOLEAN, lambda row: (None if (v := f(row)) is None else not v), c.is_constant)
        if e.op == "-":
            if c.type is not None and not is_numeric(c.type):
                raise SqlError(f"Unary minus expects a number, got {type_name(c.type)}", e.pos)
            return Compiled(c.type, lambda row: (None if (v := f(row)) is None else -v), c.is_constant)
        return c

    def _BinaryOp(self, e: A.BinaryOp, scope: Scope) -> Compiled:
        op = e.op
        if op in ("AND", "OR"):
            return self._logical(e, scope)
        if op in _CMP:
            e = A.BinaryOp(op, *_magic_timestamps(e.left, e.right), pos=e.pos)
        left, right = self.compile(e.left, scope), self.compile(e.right, scope)
        if op in ("=", "<>", "!=", "<", "<=", ">", ">="):
            return self._comparison(op, left, right, e, null_false=True)
        if op == "||":
            lf, rf = left.fn, right.fn
            return Compiled(SqlType.STRING, _null_safe(lf, rf, lambda a, b: str(a) + str(b)))
        out = self._arithmetic(op, left, right, e)
        lam_vars = [x for x in (e.left, e.right) if isinstance(x, A.ColumnRef) and x.source is None and x.name in scope.lambda_vars]
        if lam_vars and out.type is not None:
            # ksqlDB compiles a lambda to Java: arithmetic on a NULL lambda argument unboxes it and
            # fails, so the whole function call (TRANSFORM(xs, x => x + 5) over [5, NULL]) is NULL
            return Compiled(out.type, _raise_on_null_operand([self.compile(x, scope).fn for x in lam_vars], out.fn))
        return out

    def _logical(self, e: A.BinaryOp, scope: Scope) -> Compiled:
        left, right = self.compile(e.left, scope), self.compile(e.right, scope)
        for side, c in (("left", left), ("right", right)):
            if c.type is not None and c.type.base != "BOOLEAN":
                raise SqlError(f"{e.op} expects BOOLEAN operands, got {type_name(c.type)}", e.pos)
        lf, rf = left.fn, right.fn
        if e.op == "AND":
            def and_(row):
                a = lf(row)
                if a is False:
                    return False
                b = rf(row)
                if b is False:
                    return False
                return None if a is None or b is None else True

            return Compiled(SqlType.BOOLEAN, and_)

        def or_(row):
            a = lf(row)
            if a is True:
                return True
            b = rf(row)
            if b is True:
                return True
            return None if a is None or b is None else False

        return Compiled(SqlType.BOOLEAN, or_)

    def _comparison(self, op: str, left: Compiled, right: Compiled, e: A.Expr, null_false: bool = False) -> Compiled:
        """``left op right``: NULL when a side is NULL, or FALSE with ``null_false`` (ksqlDB's
        comparison operators and BETWEEN: ``(a == null || b == null) ? false : ...``)."""
        lt, rt = left.type, right.type
        if lt is not None and rt is not None and lt.base in ("ARRAY", "MAP", "STRUCT") and op not in ("=", "<>", "!="):
            from .serdes import ksql_type

            raise SqlError(f"Cannot compare {_expr_text(getattr(e, 'left', e))} ({ksql_type(lt)}) to "
                           f"{_expr_text(getattr(e, 'right', e))} ({ksql_type(rt)}) with {_OP_NAMES[op]}.", e.pos)
        if lt is not None and rt is not None and not _comparable(lt, rt):
            raise SqlError(f"Cannot compare {_expr_text(getattr(e, 'left', e))} ({type_name(lt)}) to "
                           f"{_expr_text(getattr(e, 'right', e))} ({type_name(rt)}) with {op.replace('!=', '<>')}.", e.pos)
        conv = _comparison_converter(lt, rt)
        cmp = _CMP[op]
        fn = cmp if conv is None else (lambda a, b: cmp(*conv(a, b)))
        return Compiled(SqlType.BOOLEAN, (_null_false if null_false else _null_safe)(left.fn, right.fn, fn))

    def _arithmetic(self, op: str, left: Compiled, right: Compiled, e: A.BinaryOp) -> Compiled:
        lt, rt = left.type, right.type
        if lt is None and rt is None:
            return Compiled(None, lambda row: None)
        lt, rt = lt or rt, rt or lt
        try:
            t = arithmetic_type(op, lt, rt)  # type: ignore[arg-type]
        except ValueError:
            raise SqlError(f"Error processing expression: {_expr_text(e)}. Unsupported arithmetic types. {type_name(lt)} {type_name(rt)}", e.pos) from None
        lf, rf = left.fn, right.fn
        onerr = self.on_error
        if t.base == "STRING":
            return Compiled(t, _null_safe(lf, rf, lambda a, b: a + b))
        if t.base == "DECIMAL":
            q = decimal.Decimal(1).scaleb(-t.scale)  # type: ignore[operator]
            dfn = _DEC_OPS[op]

            def dec(a, b):
                try:
                    return dfn(_to_dec(a), _to_dec(b)).quantize(q, context=_DEC_CTX)
                except (decimal.DivisionByZero, decimal.InvalidOperation, ZeroDivisionError):
                    return None

            return Compiled(t, _null_safe(lf, rf, dec))
        if t.base == "DOUBLE":
            ffn = _FLOAT_OPS[op]
            return Compiled(t, _null_safe(lf, rf, lambda a, b: ffn(float(a), float(b))))
        ifn = _INT_OPS[op]
        bits = 32 if t.base == "INT" else 64

        def integral(a, b):
            try:
                return _wrap(ifn(a, b), bits)
            except ZeroDivisionError:
                onerr(f"/ by zero in {_expr_text(e)}")
                return None

        return Compiled(t, _null_safe(lf, rf, integral))

    # -- predicates -------------------------------------------------------------------------------
    def _IsNull(self, e: A.IsNull, scope: Scope) -> Compiled:
        f = self.compile(e.expr, scope).fn
        neg = e.negated
        return Compiled(SqlType.BOOLEAN, lambda row: (f(row) is None) != neg)

    def _IsDistinctFrom(self, e: A.IsDistinctFrom, scope: Scope) -> Compiled:
        left, right = self.compile(e.left, scope), self.compile(e.right, scope)
        lf, rf = left.fn, right.fn
        conv = _comparison_converter(left.type, right.type)
        neg = e.negated

        def distinct(row):
            a, b = lf(row), rf(row)
            if a is None or b is None:
                d = not (a is None and b is None)
            else:
                if conv is not None:
                    a, b = conv(a, b)
                d = a != b
            return d != neg

        return Compiled(SqlType.BOOLEAN, distinct)

    def _Like(self, e: A.Like, scope: Scope) -> Compiled:
        val = self.compile(e.expr, scope)
        pat = self.compile(e.pattern, scope)
        if val.type is not None and val.type.base != "STRING":
            raise SqlError(f"LIKE expects a STRING, got {type_name(val.type)}", e.pos)
        vf, pf, esc, neg = val.fn, pat.fn, e.escape, e.negated
        cache: dict[str, re.Pattern] = {}

        def like(row):
            v, p = vf(row), pf(row)
            if v is None or p is None:
                return None
            rx = cache.get(p)
            if rx is None:
                rx = cache[p] = _like_regex(p, esc)
            return (rx.fullmatch(v) is not None) != neg

        return Compiled(SqlType.BOOLEAN, like)

    def _Between(self, e: A.Between, scope: Scope) -> Compiled:
        _, low = _magic_timestamps(e.expr, e.low)
        _, high = _magic_timestamps(e.expr, e.high)
        v, lo, hi = (self.compile(x, scope) for x in (e.expr, low, high))
        # ksqlDB: (v >= lo && v <= hi), each FALSE on a NULL; NOT BETWEEN negates that
        ge = self._comparison(">=", v, lo, e, null_false=True).fn
        le = self._comparison("<=", v, hi, e, null_false=True).fn
        neg = e.negated

        def between(row):
            return (ge(row) and le(row)) != neg

        return Compiled(SqlType.BOOLEAN, between)

    def _InList(self, e: A.InList, scope: Scope) -> Compiled:
        v = self.compile(e.expr, scope)
        items = [self.compile(x, scope) for x in e.items]
        eqs = [self._comparison("=", v, it, e).fn for it in items]
        neg = e.negated

        def in_(row):
            seen_null = False
            for eq in eqs:
                r = eq(row)
                if r is True:
                    return not neg
                if r is None:
                    seen_null = True
            return None if seen_null else neg

        return Compiled(SqlType.BOOLEAN, in_)

    # -- conditionals and casts -------------------------------------------------------------------
    def _Case(self, e: A.Case, scope: Scope) -> Compiled:
        results = [self.compile(r, scope) for _, r in e.whens]
        other = self.compile(e.else_, scope) if e.else_ is not None else None
        types = [r.type for r in results] + ([other.type] if other else [])
        t = common_type_of(types)
        if all(x is None for x in types):
            raise SqlError("Invalid Case expression. All case branches have NULL type", e.pos)
        if t is None and any(x is not None for x in types):
            raise SqlError("Invalid Case expression. Type for all 'THEN' clauses should be the same. "
                           + ", ".join(type_name(x) for x in types), e.pos)
        conds: list[Fn] = []
        for cond, _ in e.whens:
            if e.operand is not None:
                conds.append(self._comparison("=", self.compile(e.operand, scope), self.compile(cond, scope), e).fn)
            else:
                c = self.compile(cond, scope)
                if c.type is not None and c.type.base != "BOOLEAN":
                    raise SqlError(f"WHEN operand type should be boolean. Type for '{_expr_text(cond)}' is {type_name(c.type)}", cond.pos)
                conds.append(c.fn)
        rfs = [_coercer(r.type, t, r.fn) for r in results]
        of = _coercer(other.type, t, other.fn) if other else (lambda row: None)
        pairs = list(zip(conds, rfs))

        def case(row):
            for c, r in pairs:
                if c(row) is True:
                    return r(row)
            return of(row)

        return Compiled(t, case)

    def _Cast(self, e: A.Cast, scope: Scope) -> Compiled:
        c = self.compile(e.expr, scope)
        target = self.resolve_type(e.type, e.pos)
        conv = cast_function(c.type, target)
        if conv is None:
            raise SqlError(f"Cast of {type_name(c.type)} to {type_name(target)} is not supported", e.pos)
        f, onerr = c.fn, self.on_error

        def cast(row):
            v = f(row)
            if v is None:
                return None
            try:
                return conv(v)
            except (ValueError, ArithmeticError, TypeError) as ex:
                onerr(f"Failed to cast {v!r} to {type_name(target)}: {ex}")
                return None

        return Compiled(target, cast)

    # -- constructors -----------------------------------------------------------------------------
    def _ArrayConstructor(self, e: A.ArrayConstructor, scope: Scope) -> Compiled:
        if not e.items:
            raise SqlError("Array constructor cannot be empty. Please supply at least one element "
                           "(see https://github.com/confluentinc/ksql/issues/4239).", e.pos)
        items = [self.compile(x, scope) for x in e.items]
        if all(i.type is None for i in items):
            raise SqlError("Cannot construct an array with all NULL elements (see https://github.com/confluentinc/ksql/issues/4239). "
                           "As a workaround, you may cast a NULL value to the desired type.", e.pos)
        items = self._coerce_string_literals(e.items, items)
        t = common_type_of([i.type for i in items]) or _struct_union([i.type for i in items])
        if t is None and any(i.type is not None for i in items):
            raise SqlError("invalid input syntax for type ARRAY: elements must share a type", e.pos)
        fns = [_coercer(i.type, t, i.fn) for i in items]
        return Compiled(SqlType.array(t or SqlType.STRING), lambda row: [f(row) for f in fns])

    def _coerce_string_literals(self, nodes: list[A.Expr], items: list[Compiled]) -> list[Compiled]:
        """ksqlDB casts string literals among other elements to their type (ARRAY[1, '2'])."""
        others = [i.type for n, i in zip(nodes, items) if i.type is not None and not (isinstance(n, A.Literal) and i.type.base == "STRING")]
        target = common_type_of(others)
        if target is None or target.base == "STRING":
            return items
        out = []
        for n, i in zip(nodes, items):
            if isinstance(n, A.Literal) and i.type is not None and i.type.base == "STRING":
                conv = cast_function(SqlType.STRING, target)
                try:
                    v = conv(n.value) if conv else None
                except (ValueError, ArithmeticError):
                    v = None
                if v is None and target.base in ("INT", "BIGINT"):
                    dec_lit = _decimal_literal(n.value)  # ARRAY[1, '2e1']: the elements widen to DECIMAL
                    if dec_lit is not None:
                        out.append(Compiled(dec_lit[0], lambda row, v=dec_lit[1]: v, True))
                        continue
                if conv is None or v is None:
                    from .serdes import ksql_type

                    raise SqlError(f'invalid input syntax for type {ksql_type(target)}: "{n.value}"', n.pos)
                out.append(Compiled(target, lambda row, v=v: v, True))
            else:
                out.append(i)
        return out

    def _MapConstructor(self, e: A.MapConstructor, scope: Scope) -> Compiled:
        keys = [self.compile(k, scope) for k, _ in e.entries]
        vals = [self.compile(v, scope) for _, v in e.entries]
        vt = common_type_of([v.type for v in vals])
        kfs = [k.fn for k in keys]
        vfs = [_coercer(v.type, vt, v.fn) for v in vals]
        return Compiled(SqlType.map(vt or SqlType.STRING), lambda row: {kf(row): vf(row) for kf, vf in zip(kfs, vfs)})

    def _StructConstructor(self, e: A.StructConstructor, scope: Scope) -> Compiled:
        parts = [(n, self.compile(x, scope)) for n, x in e.fields]
        seen: dict[str, Compiled] = {}
        for n, c in parts:
            if n in seen:  # ksqlDB's SqlStruct builder rejects it (a row has one value per field)
                raise SqlError(f"Duplicate field names found in STRUCT: '{n} {type_name(seen[n].type)}' and '{n} {type_name(c.type)}'", e.pos)
            seen[n] = c
        t = SqlType.struct([(n, c.type or SqlType.STRING) for n, c in parts])
        fns = [(n, c.fn) for n, c in parts]
        return Compiled(t, lambda row: {n: f(row) for n, f in fns})

    # -- functions --------------------------------------------------------------------------------
    def _resolve_with_temporal_literals(self, name: str, e: A.FunctionCall, args: list, arg_types: list) -> Any:
        """ksqlDB reads a STRING literal as a DATE/TIME/TIMESTAMP where the other arguments are of
        that type (GREATEST(d1, d2, '2022-06-14')): retry with such literals converted, or None."""
        temporal = {t.base for t in arg_types if isinstance(t, SqlType) and t.base in ("DATE", "TIME", "TIMESTAMP")}
        lits = [i for i, a in enumerate(e.args) if isinstance(a, A.Literal) and a.type is not None and a.type.base == "STRING"]
        if len(temporal) != 1 or not lits:
            return None
        target = next(t for t in arg_types if isinstance(t, SqlType) and t.base in ("DATE", "TIME", "TIMESTAMP"))
        conv = cast_function(SqlType.STRING, target)
        try:
            vals = {i: conv(e.args[i].value) for i in lits}
        except (ValueError, TypeError):
            return None
        types = [target if i in vals else t for i, t in enumerate(arg_types)]
        try:
            resolved = self.registry.resolve_scalar(name, types)
        except FunctionError:
            return None
        for i, v in vals.items():
            args[i] = Compiled(target, lambda row, v=v: v, True)
        return resolved

    def _FunctionCall(self, e: A.FunctionCall, scope: Scope) -> Compiled:
        name = e.name.upper()
        args: list[Compiled | None] = []
        arg_types: list[Any] = []
        lambda_nodes: dict[int, A.Lambda] = {}
        for i, a in enumerate(e.args):
            if isinstance(a, A.Lambda):
                lambda_nodes[i] = a
                args.append(None)
                arg_types.append(None)
            else:
                c = self.compile(a, scope)
                args.append(c)
                arg_types.append(c.type)
        try:
            for i, lam in lambda_nodes.items():
                ptypes = self.registry.lambda_param_types(name, arg_types[:i], i)
                if len(ptypes) != len(lam.params):
                    raise SqlError(f"Number of lambda arguments don't match between schema and sql function: {name}", lam.pos)
                inner = Scope(scope.columns, scope.qualified, scope.ambiguous, {**scope.lambda_vars, **dict(zip(lam.params, ptypes))})
                body = self.compile(lam.body, inner)
                arg_types[i] = LambdaType(list(ptypes), body.type)
                args[i] = Compiled(None, _lambda_maker(lam.params, body.fn))
            try:
                resolved = self.registry.resolve_scalar(name, arg_types)
            except FunctionError:
                resolved = self._resolve_with_temporal_literals(name, e, args, arg_types)
                if resolved is None:
                    raise
        except FunctionError as ex:
            raise SqlError(str(ex), e.pos) from None
        fns = [c.fn for c in args]  # type: ignore[union-attr]
        call, onerr = resolved.fn, self.on_error

        def invoke(row):
            try:
                return call(*[f(row) for f in fns])
            except Exception as ex:  # noqa: BLE001 - a failing function yields NULL
                onerr(f"Error computing expression {name}: {type(ex).__name__}: {ex}")
                return None

        return Compiled(resolved.return_type, invoke, all(c.is_constant for c in args if c is not None) and bool(args))

    def _Lambda(self, e: A.Lambda, scope: Scope) -> Compiled:
        raise SqlError("A lambda can only be an argument of a function such as TRANSFORM, FILTER or REDUCE", e.pos)


# -- helpers ---------------------------------------------------------------------------------------
def _null_false(lf: Fn, rf: Fn, fn: Callable[[Any, Any], Any]) -> Fn:
    """``fn(left, right)`` over a row, FALSE when either side is NULL."""
    return _null_safe(lf, rf, fn, False)


def _null_safe(lf: Fn, rf: Fn, fn: Callable[[Any, Any], Any], on_null: Any = None) -> Fn:
    """``fn(left, right)`` over a row, ``on_null`` (NULL) when either side is NULL (the right
    one is not evaluated when the left is NULL)."""

    def apply(row):
        a = lf(row)
        if a is None:
            return on_null
        b = rf(row)
        if b is None:
            return on_null
        return fn(a, b)

    return apply


_TIME_COLUMNS = ("ROWTIME", "WINDOWSTART", "WINDOWEND")


def _magic_timestamps(left: A.Expr, right: A.Expr) -> tuple[A.Expr, A.Expr]:
    """ksqlDB compares ROWTIME / WINDOWSTART / WINDOWEND with a string literal as a timestamp:
    the literal ('2018-01-01T00:00:00.001', with an optional zone like +0445) becomes epoch ms."""
    def is_time(x: A.Expr) -> bool:
        return isinstance(x, A.ColumnRef) and x.name in _TIME_COLUMNS

    def as_ms(x: A.Expr) -> A.Expr:
        if isinstance(x, A.Literal) and isinstance(x.value, str):
            try:
                return A.Literal(_timestamp_text_ms(x.value), SqlType.BIGINT, pos=x.pos)
            except ValueError:
                return x
        return x

    if is_time(left):
        return left, as_ms(right)
    if is_time(right):
        return as_ms(left), right
    return left, right


def _timestamp_text_ms(text: str) -> int:
    t = text.strip()
    m = re.match(r"^(.*?)([+-]\d{2}:?\d{2}|Z)?$", t)
    body, zone = (m.group(1), m.group(2)) if m else (t, None)
    if len(body) in (4, 7):  # a year, or a year and month (ksqlDB completes partial dates)
        body += "-01-01"[len(body) - 4:]
    if len(body) == 10:
        body += "T00:00:00"
    elif len(body) == 13:
        body += ":00:00"
    elif len(body) == 16:
        body += ":00"
    when = dt.datetime.fromisoformat(body)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hh, mm = int(zone[1:3]), int(zone[-2:])
        when -= sign * dt.timedelta(hours=hh, minutes=mm)
    return int((when - dt.datetime(1970, 1, 1)).total_seconds() * 1000)


def _has_ref(t: Any) -> bool:
    if isinstance(t, A.TypeRef):
        return True
    if t.base in ("ARRAY", "MAP") and t.element is not None:
        return _has_ref(t.element)
    if t.base == "STRUCT":
        return any(_has_ref(f.type) for f in t.fields)
    return False


def _lambda_maker(params: list[str], body: Fn) -> Fn:
    keys = ["\0" + p for p in params]

    def make(row):
        def fn(*args):
            inner = dict(row)
            inner.update(zip(keys, args))
            return body(inner)

        return fn

    return make


def _wrap(v: int, bits: int) -> int:
    """Java's integer overflow."""
    lim = 1 << (bits - 1)
    if -lim <= v < lim:
        return v
    return (v + lim) % (1 << bits) - lim


def _java_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _java_mod(a: int, b: int) -> int:
    return a - b * _java_div(a, b)


def _float_div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.inf if a > 0 else -math.inf
    return a / b


def _float_mod(a: float, b: float) -> float:
    if b == 0:
        return math.nan
    return math.fmod(a, b)


_INT_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": _java_div, "%": _java_mod}
_FLOAT_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": _float_div, "%": _float_mod}
_DEC_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: _DEC_CTX.divide(a, b),
    "%": lambda a, b: _DEC_CTX.remainder(a, b),
}
_OP_NAMES = {"=": "EQUAL", "<>": "NOT_EQUAL", "!=": "NOT_EQUAL", "<": "LESS_THAN", "<=": "LESS_THAN_OR_EQUAL",
             ">": "GREATER_THAN", ">=": "GREATER_THAN_OR_EQUAL"}
_CMP = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _to_dec(v: Any) -> decimal.Decimal:
    if isinstance(v, decimal.Decimal):
        return v
    if isinstance(v, float):
        return decimal.Decimal(repr(v))
    return decimal.Decimal(v)


def _comparable(a: SqlType, b: SqlType) -> bool:
    if is_numeric(a) and is_numeric(b):
        return True
    time_like = {"TIMESTAMP", "DATE", "TIME"}
    if a.base in time_like and (b.base in time_like or b.base == "STRING"):
        return True
    if b.base in time_like and a.base == "STRING":
        return True
    if a.base != b.base:
        return False
    return a.base in ("STRING", "BOOLEAN", "BYTES", "TIMESTAMP", "DATE", "TIME", "ARRAY", "MAP", "STRUCT", "DECIMAL")


def _comparison_converter(a: SqlType | None, b: SqlType | None):
    """A function making two values comparable in Python (DECIMAL vs DOUBLE, strings vs times)."""
    if a is None or b is None:
        return None
    if is_numeric(a) and is_numeric(b):
        if "DECIMAL" in (a.base, b.base) and "DOUBLE" in (a.base, b.base):
            return lambda x, y: (float(x), float(y))
        return None
    if a.base in ("TIMESTAMP", "DATE", "TIME") and b.base == "STRING":
        conv = cast_function(SqlType.STRING, a)
        return lambda x, y: (x, conv(y))
    if b.base in ("TIMESTAMP", "DATE", "TIME") and a.base == "STRING":
        conv = cast_function(SqlType.STRING, b)
        return lambda x, y: (conv(x), y)
    if {a.base, b.base} == {"TIMESTAMP", "DATE"}:
        def both(x, y):
            tx = x if isinstance(x, dt.datetime) else dt.datetime.combine(x, dt.time())
            ty = y if isinstance(y, dt.datetime) else dt.datetime.combine(y, dt.time())
            return tx, ty
        return both
    return None


def _raise_on_null_operand(operands: list[Fn], fn: Fn) -> Fn:
    def checked(row):
        if any(f(row) is None for f in operands):
            raise TypeError("arithmetic on a NULL lambda argument")
        return fn(row)

    return checked


def _struct_union(types: list[SqlType | None]) -> SqlType | None:
    """ksqlDB's common type of STRUCT elements with different fields: every field (first-seen
    order), each of its fields' common type; a struct lacking a field holds NULL there."""
    present = [t for t in types if t is not None]
    if not present or any(t.base != "STRUCT" for t in present):
        return None
    fields: dict[str, SqlType | None] = {}
    for t in present:
        for f in t.fields:
            if f.name in fields:
                c = common_type(fields[f.name], f.type)
                if c is None:
                    return None
                fields[f.name] = c
            else:
                fields[f.name] = f.type
    return SqlType.struct([(n, ft) for n, ft in fields.items()])


def _decimal_literal(text: str) -> tuple[SqlType, decimal.Decimal] | None:
    """A numeric string as ksqlDB types it when it is not an integer (BigDecimal: '2e1' is
    DECIMAL(2, 0) holding 20, '1.5' DECIMAL(2, 1)); None if it is not a finite number."""
    try:
        d = decimal.Decimal(text.strip())
    except (decimal.InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    sign, digits, exp = d.as_tuple()
    if exp > 0:  # a negative Java scale: the digits with exp zeros, scale 0
        d = d.quantize(decimal.Decimal(1), context=decimal.Context(prec=len(digits) + exp))
        p, sc = len(digits) + exp, 0
    else:
        p, sc = max(len(digits), -exp), -exp
    if p > 38:
        return None
    return SqlType.decimal(p, sc), d


def _coercer(frm: SqlType | None, to: SqlType | None, fn: Fn) -> Fn:
    """Implicit widening of a value of ``frm`` to ``to`` (e.g. INT -> DOUBLE in a CASE)."""
    if frm is None or to is None or frm == to:
        return fn
    conv = cast_function(frm, to)
    if conv is None:
        return fn

    def coerce(row):
        v = fn(row)
        return None if v is None else conv(v)

    return coerce


def _like_regex(pattern: str, escape: str | None) -> re.Pattern:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


# -- casts -----------------------------------------------------------------------------------------
_EPOCH = dt.datetime(1970, 1, 1)


def format_double(v: float) -> str:
    """A DOUBLE as Java's Double.toString writes it (see :func:`mailroom.formats._values.java_double`)."""
    return java_double(v)


def to_string(v: Any, t: SqlType | None = None) -> str:
    """A value as ksqlDB's CAST(... AS STRING) writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format_double(v)
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}"
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return v.strftime("%H:%M:%S") if not v.microsecond else v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}"
    if isinstance(v, bytes):
        import base64

        return base64.b64encode(v).decode()
    if isinstance(v, list):
        return "[" + ", ".join("null" if x is None else to_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={'null' if x is None else to_string(x)}" for k, x in v.items()) + "}"
    return str(v)


def _parse_ts(s: str) -> dt.datetime:
    s = s.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(s.rstrip("Z"), fmt)
        except ValueError:
            continue
    return dt.datetime.fromisoformat(s).astimezone(dt.timezone.utc).replace(tzinfo=None)


def cast_function(frm: SqlType | None, to: SqlType) -> Callable[[Any], Any] | None:
    """The conversion of a CAST from ``frm`` to ``to`` (None if ksqlDB does not allow it)."""
    if frm is None:
        return lambda v: v
    f, t = frm.base, to.base
    if frm == to:
        return lambda v: v
    if t == "STRING":
        return lambda v: to_string(v, frm)
    if t in ("INT", "BIGINT"):
        bits = 32 if t == "INT" else 64
        if f in ("INT", "BIGINT"):
            return lambda v: _wrap(int(v), bits)
        if f in ("DOUBLE", "DECIMAL"):
            return lambda v: _wrap(int(v), bits)
        if f == "STRING":
            return lambda v: _wrap(int(v.strip()), bits)
        if f == "BOOLEAN":
            return None
        return None
    if t == "DOUBLE":
        if f in ("INT", "BIGINT", "DECIMAL", "DOUBLE"):
            return float
        if f == "STRING":
            return lambda v: float(v.strip())
        return None
    if t == "DECIMAL":
        q = decimal.Decimal(1).scaleb(-to.scale)  # type: ignore[operator]
        limit = decimal.Decimal(10) ** (to.precision - to.scale)  # type: ignore[operator]

        def to_dec(v):
            d = _to_dec(v.strip() if isinstance(v, str) else v).quantize(q, context=_DEC_CTX)
            if abs(d) >= limit:
                raise ArithmeticError(f"Numeric field overflow: {v} does not fit DECIMAL({to.precision}, {to.scale})")
            return d

        if f in ("INT", "BIGINT", "DECIMAL", "DOUBLE", "STRING"):
            return to_dec
        return None
    if t == "BOOLEAN":
        if f == "STRING":
            def to_bool(v):
                s = v.strip().lower()
                if s in ("true", "t", "yes", "y"):
                    return True
                if s in ("false", "f", "no", "n"):
                    return False
                raise ValueError(f"{v!r} is not a boolean")
            return to_bool
        return None
    if t == "TIMESTAMP":
        if f == "STRING":
            return _parse_ts
        if f == "DATE":
            return lambda v: dt.datetime.combine(v, dt.time())
        return None
    if t == "DATE":
        if f == "STRING":
            return lambda v: dt.date.fromisoformat(v.strip())
        if f == "TIMESTAMP":
            return lambda v: v.date()
        return None
    if t == "TIME":
        if f == "STRING":
            return lambda v: dt.time.fromisoformat(v.strip())
        if f == "TIMESTAMP":
            return lambda v: v.time()
        return None
    if t == "BYTES":
        return None
    if t == "ARRAY" and f == "ARRAY":
        inner = cast_function(frm.element, to.element)  # type: ignore[arg-type]
        if inner is None:
            return None
        return lambda v: [None if x is None else inner(x) for x in v]
    if t == "MAP" and f == "MAP":
        inner = cast_function(frm.element, to.element)  # type: ignore[arg-type]
        if inner is None:
            return None
        return lambda v: {k: None if x is None else inner(x) for k, x in v.items()}
    if t == "STRUCT" and f == "STRUCT":
        convs = {}
        for tf in to.fields:
            ff = next((x for x in frm.fields if x.name == tf.name), None)
            convs[tf.name] = (lambda v: None) if ff is None else cast_function(ff.type, tf.type)
        return lambda v: {k: (None if v.get(k) is None else c(v.get(k))) for k, c in convs.items()}
    return None


def _expr_text(e: A.Expr) -> str:
    """A compact SQL rendering of an expression, for messages and column naming."""
    return render(e)


def render(e: A.Expr) -> str:
    if isinstance(e, A.Literal):
        if e.value is None:
            return "null"
        if isinstance(e.value, str):
            return "'" + e.value.replace("'", "''") + "'"
        if isinstance(e.value, bool):
            return "true" if e.value else "false"
        return str(e.value)
    if isinstance(e, A.ColumnRef):
        return f"{e.source}.{e.name}" if e.source else e.name
    if isinstance(e, A.Dereference):
        return f"{render(e.base)}->{e.field}"
    if isinstance(e, A.Subscript):
        return f"{render(e.base)}[{render(e.index)}]"
    if isinstance(e, A.BinaryOp):
        return f"({render(e.left)} {e.op} {render(e.right)})"
    if isinstance(e, A.UnaryOp):
        return f"{e.op} {render(e.operand)}" if e.op == "NOT" else f"{e.op}{render(e.operand)}"
    if isinstance(e, A.FunctionCall):
        return f"{e.name}({'*' if e.star else ', '.join(render(a) for a in e.args)})"
    if isinstance(e, A.Cast):
        return f"CAST({render(e.expr)} AS {e.type})"
    if isinstance(e, A.IsNull):
        return f"({render(e.expr)} IS {'NOT ' if e.negated else ''}NULL)"
    if isinstance(e, A.IntervalUnit):
        return e.unit
    return repr(e)  # (CASE, LIKE, ...): the whole structure, so different expressions never look alike
