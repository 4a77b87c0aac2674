"""The parser of mailroom's ksqlDB dialect: SQL text in, :mod:`mailroom.sql.ast` nodes out.

    from mailroom.sql.parser import parse, parse_expression, SqlSyntaxError
    stmts = parse("CREATE STREAM S (ID INT KEY, V STRING) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');")
    expr = parse_expression("a + 1 > 2 AND b IS NOT NULL")

The grammar (``grammar.lark`` next to this file) is LALR(1) and is parsed by lark with its
contextual lexer, so a keyword is only a keyword where the grammar can accept it; anywhere else
the same word is an identifier (columns named KEY, VALUE, SIZE, TIMESTAMP, ... just work).

Rules applied while building the tree (ksqlDB's):

* unquoted identifiers are upper-cased; back-quoted (and double-quoted) ones are kept as written;
* integer literals are INT if they fit 32 bits, else BIGINT (beyond 64 bits: a syntax error);
  ``1.5`` is DECIMAL(2, 1) with a :class:`~decimal.Decimal` value; ``1.5E2`` is DOUBLE;
  a minus sign directly before a number literal is folded into the literal (``-1`` is
  ``Literal(-1, INT)``, and ``-2147483648`` is INT), as ksqlDB's grammar does;
* an unquoted, unqualified function argument that is a time unit (``SECONDS``, ``DAY``, ...)
  becomes :class:`~mailroom.sql.ast.IntervalUnit` (``TIMESTAMPADD(SECONDS, 5, ts)``);
* ``WITH (...)`` property keys are upper-cased, values are str / int / float / bool / None;
* window and WITHIN durations are converted to milliseconds;
* ``${name}`` is replaced by the value of variable ``name`` (case-insensitive) before parsing,
  from ``variables`` and from the script's own ``DEFINE`` statements (unknown ones are left).

Every node gets ``pos`` = (line, column), 1-based, in the (substituted) script text, and every
statement its own source text (``Statement.text``, including the terminating ``;``).
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_right
from dataclasses import fields, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import MailroomError
from ..formats.types import PRIMITIVES, SqlType
from . import ast as A

__all__ = ["SqlSyntaxError", "parse", "parse_expression", "substitute_variables", "split_statements"]


class SqlSyntaxError(MailroomError):
    """A statement that is not valid SQL of the dialect.

    ``line`` and ``column`` (1-based) say where; ``reason`` is the message without the position.
    The message reads like ksqlDB's: ``line 1:10: mismatched input 'FORM' expecting {',', 'FROM'}``.
    ``prepare`` marks an error found while building the statement from well-formed text (a
    numeric literal out of range): ksqlDB words those ``Failed to prepare statement: line 2:40:
    Invalid numeric literal: ...``, its column one past the 1-based one (its node locations are
    1-based and its exception adds one again); ``column`` stays the true 1-based column.
    """

    def __init__(self, reason: str, line: int | None = None, column: int | None = None, statement: str | None = None,
                 *, prepare: bool = False) -> None:
        self.reason, self.line, self.column, self.statement = reason, line, column, statement
        self.prepare = prepare
        super().__init__(self._compose())

    def _compose(self) -> str:
        if self.prepare:
            where = f"line {self.line}:{(self.column or 0) + 1}: " if self.line is not None else ""
            return f"Failed to prepare statement: {where}{self.reason}"
        # ksqlDB's form: "line 1:32: Syntax Error\nExpecting {...}\nStatement: <the statement>"
        detail = self.reason
        if detail.startswith(("mismatched input", "extraneous input")) and " expecting " in detail:
            detail = "Expecting " + detail.split(" expecting ", 1)[1]
        msg = f"Syntax Error\n{detail}"
        if self.statement:
            msg += f"\nStatement: {self.statement}"
        m = re.match(r"(?:mismatched|extraneous) input ('.*?') expecting", self.reason)
        if m:
            msg += f"\nFound: {m.group(1)}"  # what stood there (ksqlDB leaves it out; users want it)
        return f"line {self.line}:{self.column}: {msg}" if self.line is not None else msg

    def with_statement(self, statement: str) -> SqlSyntaxError:
        """The same error, naming the statement it is in."""
        self.statement = statement
        self.args = (self._compose(),)
        return self


# --- constants -----------------------------------------------------------------------------------

#: Milliseconds per time unit (window sizes, WITHIN, GRACE PERIOD, ...).
UNIT_MS = {
    "MILLISECOND": 1, "MILLISECONDS": 1,
    "SECOND": 1_000, "SECONDS": 1_000,
    "MINUTE": 60_000, "MINUTES": 60_000,
    "HOUR": 3_600_000, "HOURS": 3_600_000,
    "DAY": 86_400_000, "DAYS": 86_400_000,
}  # fmt: skip

#: Words that are never identifiers unless quoted (ksqlDB's reserved words). Other keywords
#: (KEY, SIZE, SOURCE, EMIT, ...) are identifiers wherever the grammar cannot take the keyword.
RESERVED = frozenset(
    "ALL AND AS BETWEEN BY CASE CAST CREATE DISTINCT DROP ELSE END EXISTS FALSE FROM FULL GROUP "
    "HAVING IN INNER INSERT INTO IS JOIN LEFT LIKE LIMIT NOT NULL ON OR OUTER RIGHT SELECT STREAM "
    "TABLE THEN TRUE VALUES WHEN WHERE WINDOW WITH WITHIN".split()
)

_TYPE_ALIASES = {"INTEGER": "INT", "VARCHAR": "STRING", "BOOL": "BOOLEAN"}
_INT_MAX, _BIGINT_MAX = 2**31 - 1, 2**63 - 1
_GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Display names of the grammar's regexp terminals in error messages.
_TERMINAL_NAMES = {
    "IDENTIFIER": "IDENTIFIER",
    "QUOTED_IDENTIFIER": "IDENTIFIER",
    "BACKQUOTED_IDENTIFIER": "IDENTIFIER",
    "STRING_LIT": "STRING",
    "INTEGER_VALUE": "INTEGER_VALUE",
    "DECIMAL_VALUE": "DECIMAL_VALUE",
    "FLOAT_VALUE": "FLOATING_POINT_VALUE",
    "$END": "<EOF>",
}


# --- the lark parser (built once) ----------------------------------------------------------------

_lark: Lark | None = None
_lark_lock = threading.Lock()


def _reserved_check(tok: Token) -> Token:
    """An unquoted reserved word where only an identifier fits: make it the keyword, so the
    parser reports it (``SELECT a, FROM s`` fails at FROM, not later)."""
    word = tok.upper()
    if word in RESERVED:
        tok.type = word
    return tok


def _parser() -> Lark:
    global _lark
    if _lark is None:
        with _lark_lock:
            if _lark is None:
                _lark = Lark(
                    _GRAMMAR_PATH.read_text(encoding="utf-8"),
                    parser="lalr",
                    lexer="contextual",
                    start=["start", "expression_only"],
                    maybe_placeholders=True,
                    propagate_positions=False,
                    lexer_callbacks={"IDENTIFIER": _reserved_check},
                )
    return _lark


# --- private helper values used while building -----------------------------------------------


class _Ident:
    """An identifier: ``name`` normalized (upper-cased unless quoted), ``raw`` as written."""

    __slots__ = ("name", "raw", "quoted", "pos")

    def __init__(self, name: str, raw: str, quoted: bool, pos: A.Pos) -> None:
        self.name, self.raw, self.quoted, self.pos = name, raw, quoted, pos


class _Row(A.Expr):
    """``(a, b, ...)``: only valid as lambda parameters or a parenthesized GROUP/PARTITION BY."""

    def __init__(self, items: list[A.Expr], pos: A.Pos, comma: A.Pos) -> None:
        self.items, self.pos, self.comma = items, pos, comma


class _Else:
    __slots__ = ("expr",)

    def __init__(self, expr: A.Expr) -> None:
        self.expr = expr


def _pos(x: Any) -> A.Pos:
    if isinstance(x, Token):
        return (x.line, x.column)
    return x.pos


def _unquote(tok: str, q: str) -> str:
    return tok[1:-1].replace(q + q, q)


def _decimal_type(value: Decimal) -> SqlType:
    """ksqlDB's DecimalUtil.fromValue: precision/scale of a decimal literal."""
    sign, digits, exponent = value.as_tuple()
    scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    precision = scale + 1 if abs(value) < 1 else len(digits) + max(0, exponent if isinstance(exponent, int) else 0)
    return SqlType.decimal(max(precision, 1), scale)


def _int_literal(value: int, pos: A.Pos, text: str | None = None) -> A.Literal:
    if -_INT_MAX - 1 <= value <= _INT_MAX:
        return A.Literal(value, SqlType.INT, pos=pos)
    if -_BIGINT_MAX - 1 <= value <= _BIGINT_MAX:
        return A.Literal(value, SqlType.BIGINT, pos=pos)
    raise SqlSyntaxError(f"Invalid numeric literal: {text or value}", *pos, prepare=True)


# --- the tree builder ----------------------------------------------------------------------------


class _Builder(Transformer):
    """Turns lark's parse tree into ast nodes (one instance per parse)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.quoted_refs: set[int] = set()  # id() of ColumnRefs written back-quoted
        self.map_keys: dict[int, Any] = {}  # id() of a MAP type -> its declared key type
        #: id() of a numeric literal out of range as written -> (literal, its text): an error
        #: unless a minus in front brings it into range (-9223372036854775808); the minus also
        #: belongs in the message (ksqlDB's literals take their sign)
        self.overflow: dict[int, tuple[A.Literal, str]] = {}

    def offset(self, pos: A.Pos) -> int:
        return self.line_starts[pos[0] - 1] + pos[1] - 1

    # --- script -------------------------------------------------------------------------

    def start(self, c: list) -> list[A.Statement]:
        out = []
        for item in c:
            if item is None:
                continue
            if isinstance(item, tuple):
                stmt, semi = item
                if stmt is None:
                    continue
                end = semi.end_pos
            else:
                stmt, end = item, len(self.text.rstrip())
            self._set_text(stmt, end)
            out.append(stmt)
        return out

    def _set_text(self, stmt: A.Statement, end: int) -> None:
        stmt.text = self.text[self.offset(stmt.pos) : end]
        if isinstance(stmt, A.Explain) and stmt.statement is not None:
            self._set_text(stmt.statement, end)

    def stmt_item(self, c: list) -> tuple:
        return (c[0], c[1])

    def expression_only(self, c: list) -> A.Expr:
        return c[0]

    # --- identifiers ----------------------------------------------------------------------

    def identifier(self, c: list) -> _Ident:
        tok: Token = c[0]
        pos = (tok.line, tok.column)
        if tok.type == "BACKQUOTED_IDENTIFIER":
            name = _unquote(tok, "`")
            return _Ident(name, name, True, pos)
        if tok.type == "QUOTED_IDENTIFIER":
            name = _unquote(tok, '"')
            return _Ident(name, name, True, pos)
        return _Ident(str(tok).upper(), str(tok), False, pos)

    # --- DDL ------------------------------------------------------------------------------

    def create(self, c: list) -> A.Statement:
        create, or_replace, source, kind, if_not_exists, name, columns, props, query = c
        pos = _pos(create)
        if query is not None:
            if columns is not None:
                raise SqlSyntaxError(
                    f"CREATE {kind} ... AS SELECT cannot declare columns: they come from the query", *pos
                )
            if source is not None:
                raise SqlSyntaxError(f"CREATE SOURCE {kind} cannot be created AS SELECT", *_pos(source))
            return A.CreateAsSelect(
                kind, name.name, query, props or {}, or_replace=bool(or_replace),
                if_not_exists=bool(if_not_exists), pos=pos,
            )  # fmt: skip
        return A.CreateSource(
            kind, name.name, columns or [], props or {}, or_replace=bool(or_replace),
            if_not_exists=bool(if_not_exists), source=source is not None, pos=pos,
        )  # fmt: skip

    def or_replace(self, c: list) -> bool:
        return True

    def if_not_exists(self, c: list) -> bool:
        return True

    def if_exists(self, c: list) -> bool:
        return True

    def delete_topic(self, c: list) -> bool:
        return True

    def source_kind(self, c: list) -> str:
        return str(c[0]).upper()

    def as_query(self, c: list) -> A.Query:
        return c[1]

    def column_defs(self, c: list) -> list[A.ColumnDef]:
        return list(c)

    def column_def(self, c: list) -> A.ColumnDef:
        name, type_, constraint = c
        keys: list[Any] = []
        declared = self._declared(type_, keys)
        return A.ColumnDef(name.name, type_, **(constraint or {}), pos=name.pos,
                           map_keys=tuple(keys), declared=declared if keys else None)

    def _declared(self, t: Any, keys: list[Any]) -> str:
        """``t`` as ksqlDB prints it, with the MAP key types as declared (collected in ``keys``)."""
        if isinstance(t, A.TypeRef):
            return t.name
        if t.base == "MAP":
            k = self.map_keys.get(id(t), SqlType.STRING)
            keys.append(k)
            return f"MAP<{self._declared(k, [])}, {self._declared(t.element, keys)}>"
        if t.base == "ARRAY":
            return f"ARRAY<{self._declared(t.element, keys)}>"
        if t.base == "STRUCT":
            return "STRUCT<" + ", ".join(f"`{f.name}` {self._declared(f.type, keys)}" for f in t.fields) + ">"
        if t.base == "DECIMAL":
            return f"DECIMAL({t.precision}, {t.scale})"
        return "INTEGER" if t.base == "INT" else t.base

    def key_constraint(self, c: list) -> dict:
        return {"key": True}

    def primary_key_constraint(self, c: list) -> dict:
        return {"primary_key": True}

    def headers_constraint(self, c: list) -> dict:
        return {"headers": True}

    def header_constraint(self, c: list) -> dict:
        return {"header_key": _unquote(c[1], "'")}

    def with_props(self, c: list) -> dict[str, Any]:
        return dict(p for p in c[1:] if p is not None)

    def prop(self, c: list) -> tuple[str, Any]:
        key, value = c
        name = _unquote(key, "'") if isinstance(key, Token) else key.raw
        return (name.upper(), value)

    def pv_string(self, c: list) -> str:
        return _unquote(c[0], "'")

    def pv_integer(self, c: list) -> int:
        v = int(c[1])
        return -v if c[0] is not None else v

    def pv_float(self, c: list) -> float:
        v = float(c[1])
        return -v if c[0] is not None else v

    def pv_true(self, c: list) -> bool:
        return True

    def pv_false(self, c: list) -> bool:
        return False

    def pv_null(self, c: list) -> None:
        return None

    def pv_identifier(self, c: list) -> str:
        return c[0].raw

    def create_type(self, c: list) -> A.CreateType:
        create, _type, if_not_exists, name, _as, type_ = c
        return A.CreateType(name.name, type_, if_not_exists=bool(if_not_exists), pos=_pos(create))

    def drop_type(self, c: list) -> A.DropType:
        drop, _type, if_exists, name = c
        return A.DropType(name.name, if_exists=bool(if_exists), pos=_pos(drop))

    def alter_source(self, c: list) -> A.AlterSource:
        alter, kind, name, *options = c
        return A.AlterSource(kind, name.name, list(options), pos=_pos(alter))

    def alter_option(self, c: list) -> A.ColumnDef:
        _add, _column, name, type_ = c
        return A.ColumnDef(name.name, type_, pos=name.pos)

    def drop_source(self, c: list) -> A.DropSource:
        drop, kind, if_exists, name, delete_topic = c
        return A.DropSource(
            kind, name.name, if_exists=bool(if_exists), delete_topic=bool(delete_topic), pos=_pos(drop)
        )

    def insert_select(self, c: list) -> A.InsertInto:
        insert, _into, name, props, query = c
        return A.InsertInto(name.name, query, props or {}, pos=_pos(insert), target_pos=name.pos)

    def insert_values(self, c: list) -> A.InsertValues:
        insert, _into, name, columns = c[:4]
        values = [v for v in c[5:] if v is not None]
        return A.InsertValues(name.name, columns, values, pos=_pos(insert), target_pos=name.pos)

    def insert_columns(self, c: list) -> list[str]:
        return [i.name for i in c]

    # --- other statements -------------------------------------------------------------------

    def terminate(self, c: list) -> A.Terminate:
        target = c[1]
        return A.Terminate(None if isinstance(target, Token) else target.name, pos=_pos(c[0]))

    def show(self, c: list) -> A.Show:
        return A.Show(c[1], extended=c[2] is not None, pos=_pos(c[0]))

    def show_what(self, c: list) -> str:
        return str(c[0]).upper()

    def describe_source(self, c: list) -> A.Describe:
        return A.Describe(c[1].name, extended=c[2] is not None, pos=_pos(c[0]))

    def describe_all(self, c: list) -> A.Describe:
        return A.Describe(None, extended=c[2] is not None, what=str(c[1]).upper(), pos=_pos(c[0]))

    def describe_function(self, c: list) -> A.DescribeFunction:
        return A.DescribeFunction(c[2].name, pos=_pos(c[0]))

    def explain_statement(self, c: list) -> A.Explain:
        return A.Explain(statement=c[1], pos=_pos(c[0]))

    def explain_query_id(self, c: list) -> A.Explain:
        return A.Explain(query_id=c[1].name, pos=_pos(c[0]))

    def set_property(self, c: list) -> A.SetProperty:
        return A.SetProperty(_unquote(c[1], "'"), _unquote(c[2], "'"), pos=_pos(c[0]))

    def unset_property(self, c: list) -> A.UnsetProperty:
        return A.UnsetProperty(_unquote(c[1], "'"), pos=_pos(c[0]))

    def define(self, c: list) -> A.DefineVariable:
        return A.DefineVariable(c[1].raw, _unquote(c[2], "'"), pos=_pos(c[0]))

    def undefine(self, c: list) -> A.UndefineVariable:
        return A.UndefineVariable(c[1].raw, pos=_pos(c[0]))

    def print_topic(self, c: list) -> A.PrintTopic:
        target = c[1]
        topic = _unquote(target, "'") if isinstance(target, Token) else target.raw
        stmt = A.PrintTopic(topic, pos=_pos(c[0]))
        for key, value in c[2:]:
            setattr(stmt, key, value)
        return stmt

    def print_from_beginning(self, c: list) -> tuple[str, Any]:
        return ("from_beginning", True)

    def print_interval(self, c: list) -> tuple[str, Any]:
        return ("interval", int(c[1]))

    def print_limit(self, c: list) -> tuple[str, Any]:
        return ("limit", int(c[1]))

    def run_script(self, c: list) -> A.RunScript:
        return A.RunScript(_unquote(c[2], "'"), pos=_pos(c[0]))

    def query_statement(self, c: list) -> A.QueryStatement:
        return A.QueryStatement(c[0], pos=c[0].pos)

    # --- queries --------------------------------------------------------------------------

    def query(self, c: list) -> A.Query:
        select_tok = c[0]
        i = next(i for i, x in enumerate(c) if isinstance(x, Token) and x.type == "FROM")
        items, relation, clauses = c[1:i], c[i + 1], c[i + 2 :]
        q = A.Query(items, relation, pos=_pos(select_tok))
        seen: set[str] = set()
        for attr, value, pos, label in clauses:
            if attr in seen:
                raise SqlSyntaxError(f"duplicate {label} clause", *pos)
            seen.add(attr)
            setattr(q, attr, value)
        return q

    def select_expr(self, c: list) -> A.SelectItem:
        return A.SelectItem(c[0], None, pos=c[0].pos)

    def select_alias(self, c: list) -> A.SelectItem:
        expr, _as, alias = c
        return A.SelectItem(expr, alias.name, pos=expr.pos)

    def select_all_of(self, c: list) -> A.AllColumns:
        return A.AllColumns(c[0].name, pos=c[0].pos)

    def select_all(self, c: list) -> A.AllColumns:
        return A.AllColumns(None, pos=_pos(c[0]))

    def aliased_relation(self, c: list) -> A.SourceRef:
        idents = [x for x in c if isinstance(x, _Ident)]
        alias = idents[1].name if len(idents) > 1 else None
        return A.SourceRef(idents[0].name, alias, pos=idents[0].pos)

    def join(self, c: list) -> A.Join:
        left, kind, right, within, _on, cond = c
        return A.Join(left, right, kind, cond, within, pos=left.pos)

    def join_inner(self, c: list) -> str:
        return "INNER"

    def join_left(self, c: list) -> str:
        return "LEFT"

    def join_right(self, c: list) -> str:
        return "RIGHT"

    def join_full(self, c: list) -> str:
        return "FULL"

    def within_one(self, c: list) -> A.WithinClause:
        within, ms, grace = c
        return A.WithinClause(ms, ms, grace, pos=_pos(within))

    def within_two(self, c: list) -> A.WithinClause:
        within, before, after, grace = c
        return A.WithinClause(before, after, grace, pos=_pos(within))

    def grace(self, c: list) -> int:
        return c[2]

    def duration(self, c: list) -> int:
        return int(c[0]) * c[1]

    def time_unit(self, c: list) -> int:
        return UNIT_MS[str(c[0]).upper()]

    def where_clause(self, c: list) -> tuple:
        return ("where", c[1], _pos(c[0]), "WHERE")

    def group_by_clause(self, c: list) -> tuple:
        return ("group_by", c[2], _pos(c[0]), "GROUP BY")

    def partition_by_clause(self, c: list) -> tuple:
        return ("partition_by", c[2], _pos(c[0]), "PARTITION BY")

    def having_clause(self, c: list) -> tuple:
        return ("having", c[1], _pos(c[0]), "HAVING")

    def emit_clause(self, c: list) -> tuple:
        return ("emit", str(c[1]).upper(), _pos(c[0]), "EMIT")

    def limit_clause(self, c: list) -> tuple:
        return ("limit", int(c[1]), _pos(c[0]), "LIMIT")

    def value_list(self, c: list) -> list[A.Expr]:
        if len(c) == 1 and isinstance(c[0], _Row):
            return list(c[0].items)  # GROUP BY (a, b)
        return list(c)

    def window_clause(self, c: list) -> tuple:
        window, kind, parts = c[0], c[1], c[2:]
        pos = _pos(window)
        found: dict[str, int] = {}
        for name, ms, ppos in parts:
            if name in found:
                raise SqlSyntaxError(f"duplicate {name} in {kind} window", *ppos)
            found[name] = ms
        allowed = {
            "TUMBLING": {"SIZE", "RETENTION", "GRACE PERIOD"},
            "HOPPING": {"SIZE", "ADVANCE BY", "RETENTION", "GRACE PERIOD"},
            "SESSION": {"", "RETENTION", "GRACE PERIOD"},
        }[kind]
        for name, _ms, ppos in parts:
            if name not in allowed:
                what = "a bare duration" if name == "" else name
                raise SqlSyntaxError(f"{kind} window does not take {what}", *ppos)
        size_key = "" if kind == "SESSION" else "SIZE"
        if size_key not in found:
            raise SqlSyntaxError(f"{kind} window needs a {'size' if kind == 'SESSION' else 'SIZE'}", *pos)
        if kind == "HOPPING" and "ADVANCE BY" not in found:
            raise SqlSyntaxError("HOPPING window needs ADVANCE BY", *pos)
        spec = A.WindowSpec(
            kind, found[size_key], advance_ms=found.get("ADVANCE BY"),
            retention_ms=found.get("RETENTION"), grace_ms=found.get("GRACE PERIOD"), pos=pos,
        )  # fmt: skip
        return ("window", spec, pos, "WINDOW")

    def window_kind(self, c: list) -> str:
        return str(c[0]).upper()

    def wp_size(self, c: list) -> tuple:
        return ("SIZE", c[1], _pos(c[0]))

    def wp_advance(self, c: list) -> tuple:
        return ("ADVANCE BY", c[2], _pos(c[0]))

    def wp_retention(self, c: list) -> tuple:
        return ("RETENTION", c[1], _pos(c[0]))

    def wp_grace(self, c: list) -> tuple:
        return ("GRACE PERIOD", c[2], _pos(c[0]))

    def wp_bare(self, c: list) -> tuple:
        return ("", c[0], (0, 0))

    # --- expressions ----------------------------------------------------------------------

    def or_op(self, c: list) -> A.BinaryOp:
        return A.BinaryOp("OR", c[0], c[2], pos=c[0].pos)

    def and_op(self, c: list) -> A.BinaryOp:
        return A.BinaryOp("AND", c[0], c[2], pos=c[0].pos)

    def not_op(self, c: list) -> A.UnaryOp:
        return A.UnaryOp("NOT", c[1], pos=_pos(c[0]))

    def comparison(self, c: list) -> A.BinaryOp:
        return A.BinaryOp(c[1], c[0], c[2], pos=c[0].pos)

    def comp_op(self, c: list) -> str:
        op = str(c[0])
        return "<>" if op == "!=" else op

    def between(self, c: list) -> A.Between:
        expr, neg, _between, low, _and, high = c
        return A.Between(expr, low, high, negated=neg is not None, pos=expr.pos)

    def in_list(self, c: list) -> A.InList:
        expr, neg, _in, *items = c
        return A.InList(expr, items, negated=neg is not None, pos=expr.pos)

    def like(self, c: list) -> A.Like:
        expr, neg, _like, pattern, _escape, esc = c
        escape = _unquote(esc, "'") if esc is not None else None
        if escape is not None and len(escape) != 1:
            raise SqlSyntaxError(f"ESCAPE must be a single character, got '{escape}'", *_pos(esc))
        return A.Like(expr, pattern, escape, negated=neg is not None, pos=expr.pos)

    def is_null(self, c: list) -> A.IsNull:
        expr, _is, neg, _null = c
        return A.IsNull(expr, negated=neg is not None, pos=expr.pos)

    def is_distinct(self, c: list) -> A.IsDistinctFrom:
        left, _is, neg, _distinct, _from, right = c
        return A.IsDistinctFrom(left, right, negated=neg is not None, pos=left.pos)

    def binary(self, c: list) -> A.BinaryOp:
        return A.BinaryOp(str(c[1]), c[0], c[2], pos=c[0].pos)

    def unary_op(self, c: list) -> A.Expr:
        op, operand = c
        pos = _pos(op)
        if str(op) == "-" and isinstance(operand, A.Literal) and operand.type is not None:
            base = operand.type.base
            over = self.overflow.pop(id(operand), None)
            if over is not None and base == "DOUBLE":
                raise SqlSyntaxError(f"Number overflows DOUBLE: -{over[1]}", *pos, prepare=True)
            if base in ("INT", "BIGINT"):
                return _int_literal(-operand.value, pos, None if over is None else f"-{over[1]}")
            if base == "DECIMAL":
                return A.Literal(-operand.value, operand.type, pos=pos)
            if base == "DOUBLE":
                return A.Literal(-operand.value, operand.type, pos=pos)
        return A.UnaryOp(str(op), operand, pos=pos)

    def subscript(self, c: list) -> A.Subscript:
        return A.Subscript(c[0], c[1], pos=c[0].pos)

    def dereference(self, c: list) -> A.Dereference:
        return A.Dereference(c[0], c[2].name, pos=c[0].pos)

    def column_ref(self, c: list) -> A.ColumnRef:
        ref = A.ColumnRef(c[0].name, pos=c[0].pos)
        if c[0].quoted:
            self.quoted_refs.add(id(ref))
        return ref

    def keyword_column_ref(self, c: list) -> A.ColumnRef:
        return A.ColumnRef(str(c[0]).upper(), pos=_pos(c[0]))

    def qualified_ref(self, c: list) -> A.ColumnRef:
        return A.ColumnRef(c[1].name, c[0].name, pos=c[0].pos)

    def count_star(self, c: list) -> A.FunctionCall:
        return A.FunctionCall(c[0].name, [], star=True, pos=c[0].pos)

    def function_call(self, c: list) -> A.FunctionCall:
        name, distinct, args = c
        args = [self._unit_arg(a) for a in (args or [])]
        return A.FunctionCall(name.name, args, distinct=distinct is not None, pos=name.pos)

    def _unit_arg(self, a: A.Expr) -> A.Expr:
        if (
            type(a) is A.ColumnRef
            and a.source is None
            and a.name in UNIT_MS
            and id(a) not in self.quoted_refs
        ):
            return A.IntervalUnit(a.name, pos=a.pos)
        return a

    def function_args(self, c: list) -> list[A.Expr]:
        return list(c)

    def lambda_(self, c: list) -> A.Lambda:
        params_expr, body = c
        items = params_expr.items if isinstance(params_expr, _Row) else [params_expr]
        params = []
        for p in items:
            if type(p) is not A.ColumnRef or p.source is not None:
                raise SqlSyntaxError("lambda parameters must be simple names", *p.pos)
            params.append(p.name)
        return A.Lambda(params, body, pos=params_expr.pos)

    def row(self, c: list) -> _Row:
        items = [x for x in c if not isinstance(x, Token)]
        return _Row(items, items[0].pos, _pos(c[1]))

    def when_clause(self, c: list) -> tuple[A.Expr, A.Expr]:
        return (c[1], c[3])

    def else_clause(self, c: list) -> _Else:
        return _Else(c[1])

    def _case(self, case: Token, operand: A.Expr | None, rest: list) -> A.Case:
        whens = [x for x in rest if isinstance(x, tuple)]
        else_ = next((x.expr for x in rest if isinstance(x, _Else)), None)
        return A.Case(operand, whens, else_, pos=_pos(case))

    def simple_case(self, c: list) -> A.Case:
        return self._case(c[0], c[1], c[2:])

    def searched_case(self, c: list) -> A.Case:
        return self._case(c[0], None, c[1:])

    def cast(self, c: list) -> A.Cast:
        return A.Cast(c[1], c[3], pos=_pos(c[0]))

    def array_constructor(self, c: list) -> A.ArrayConstructor:
        return A.ArrayConstructor([x for x in c[1:] if x is not None], pos=_pos(c[0]))

    def map_constructor(self, c: list) -> A.MapConstructor:
        return A.MapConstructor([x for x in c[1:] if x is not None], pos=_pos(c[0]))

    def map_entry(self, c: list) -> tuple[A.Expr, A.Expr]:
        return (c[0], c[1])

    def struct_constructor(self, c: list) -> A.StructConstructor:
        return A.StructConstructor([x for x in c[1:] if x is not None], pos=_pos(c[0]))

    def struct_entry(self, c: list) -> tuple[str, A.Expr]:
        return (c[0].name, c[1])

    # --- literals -------------------------------------------------------------------------

    def string(self, c: list) -> A.Literal:
        return A.Literal(_unquote(c[0], "'"), SqlType.STRING, pos=_pos(c[0]))

    def integer(self, c: list) -> A.Literal:
        tok = c[0]
        value = int(tok)
        if value > _BIGINT_MAX:  # valid only negated (-9223372036854775808): decided by unary_op
            lit = A.Literal(value, SqlType.BIGINT, pos=_pos(tok))
            self.overflow[id(lit)] = (lit, str(tok))
            return lit
        return _int_literal(value, _pos(tok), str(tok))

    def decimal(self, c: list) -> A.Literal:
        value = Decimal(str(c[0]))
        try:
            return A.Literal(value, _decimal_type(value), pos=_pos(c[0]))
        except ValueError:  # more than 38 digits: no DECIMAL holds it, keep it as a DOUBLE
            return A.Literal(float(value), SqlType.DOUBLE, pos=_pos(c[0]))

    def double(self, c: list) -> A.Literal:
        value = float(c[0])
        lit = A.Literal(value, SqlType.DOUBLE, pos=_pos(c[0]))
        if math.isinf(value):  # an error either way; a minus in front belongs in the message
            self.overflow[id(lit)] = (lit, str(c[0]))
        return lit

    def true(self, c: list) -> A.Literal:
        return A.Literal(True, SqlType.BOOLEAN, pos=_pos(c[0]))

    def false(self, c: list) -> A.Literal:
        return A.Literal(False, SqlType.BOOLEAN, pos=_pos(c[0]))

    def null(self, c: list) -> A.Literal:
        return A.Literal(None, None, pos=_pos(c[0]))

    # --- types ----------------------------------------------------------------------------

    def array_type(self, c: list) -> SqlType:
        return SqlType.array(c[1])

    def map_type(self, c: list) -> SqlType:
        t = SqlType.map(c[2])  # the key type is dropped: MAP keys are STRING ...
        self.map_keys[id(t)] = c[1]  # ... but a column definition says what was declared
        return t

    def struct_type(self, c: list) -> SqlType:
        fields_ = [f for f in c[1:] if f is not None]
        names = [n for n, _ in fields_]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise SqlSyntaxError(f"Duplicate field names found in STRUCT: {dup}", *_pos(c[0]))
        return SqlType.struct(fields_)

    def struct_field(self, c: list) -> tuple[str, SqlType]:
        return (c[0].name, c[1])

    def decimal_type(self, c: list) -> SqlType:
        p, s = int(c[1]), int(c[2])
        try:
            return SqlType.decimal(p, s)
        except ValueError as e:
            raise SqlSyntaxError(str(e), *_pos(c[0])) from None

    def named_type(self, c: list) -> SqlType | A.TypeRef:
        ident: _Ident = c[0]  # type parameters (VARCHAR(STRING), ...) are accepted and ignored
        if not ident.quoted:
            base = _TYPE_ALIASES.get(ident.name, ident.name)
            if base in PRIMITIVES:
                return SqlType(base)
        return A.TypeRef(ident.name, pos=ident.pos)


# --- checks after building -----------------------------------------------------------------------


def _check_tree(node: Any) -> None:
    """Reject ``(a, b)`` rows left where only an expression can be."""
    if isinstance(node, _Row):
        raise SqlSyntaxError("missing ')' at ','", *node.comma)
    if isinstance(node, (list, tuple)):
        for x in node:
            _check_tree(x)
    elif is_dataclass(node) and not isinstance(node, SqlType):
        for f in fields(node):
            _check_tree(getattr(node, f.name))


# --- errors --------------------------------------------------------------------------------------


def _display(lark: Lark, name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return f"'{pattern.value.upper()}'"
    return name


#: ANTLR numbers ksqlDB's punctuation tokens in the order its grammar first uses them, and lists
#: expected tokens by number
_PUNCTUATION_ORDER = {"';'": 0, "','": 1, "'('": 2, "')'": 3}
#: a column definition's optional constraint: ANTLR skips the optional block when the next token
#: cannot start it, so its keywords are not among what it says it expected there
_COLUMN_CONSTRAINTS = {"'KEY'", "'PRIMARY'", "'HEADER'", "'HEADERS'"}


def _expecting(lark: Lark, names: set[str] | frozenset[str] | None) -> str:
    shown = {_display(lark, n) for n in names or ()}
    if {"','", "')'"} <= shown and shown & _COLUMN_CONSTRAINTS:
        shown -= _COLUMN_CONSTRAINTS
    ordered = sorted(shown, key=lambda s: (not s.startswith("'"), _PUNCTUATION_ORDER.get(s, len(_PUNCTUATION_ORDER)), s))
    return "{" + ", ".join(ordered) + "}"


def _end_pos(text: str) -> A.Pos:
    body = text.rstrip()
    line = body.count("\n") + 1
    return (line, len(body) - (body.rfind("\n") + 1) + 1)


def _accepted(lark: Lark, text: str, start: str, error_at: int) -> set[str] | None:
    """The terminals the parser could really take where the error is.

    LALR may reduce on a lookahead it merged in from another context before it notices the
    error (``a b``: reduced all the way to the end of the expression), so the expected set of
    the exception can be too small. Re-run up to the offending token and ask the parser state
    from *before* it, which simulates every candidate terminal."""
    ip = lark.parse_interactive(text, start=start)
    try:
        for tok in ip.iter_parse():  # yields each token before feeding it
            if tok.start_pos >= error_at:
                break
    except UnexpectedInput:
        pass  # raised by the lexer: the state is still the one before the bad input
    except Exception:  # pragma: no cover - only a better message is at stake
        return None
    try:
        return set(ip.accepts())
    except Exception:  # pragma: no cover
        return None


def _syntax_error(lark: Lark, e: UnexpectedInput, text: str, start: str) -> SqlSyntaxError:
    if isinstance(e, UnexpectedToken):
        tok = e.token
        at_end = tok.type == "$END"
        accepted = _accepted(lark, text, start, len(text) + 1 if at_end else tok.start_pos)
        expected = _expecting(lark, accepted or getattr(e, "accepts", None) or e.expected)
        if at_end:
            line, col = _end_pos(text)
            return SqlSyntaxError(f"mismatched input '<EOF>' expecting {expected}", line, col)
        return SqlSyntaxError(f"mismatched input '{tok}' expecting {expected}", tok.line, tok.column)
    if isinstance(e, UnexpectedCharacters):
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "<EOF>"
        if char == "'":
            return SqlSyntaxError("unterminated string literal", e.line, e.column)
        if char == "`":
            return SqlSyntaxError("unterminated quoted identifier", e.line, e.column)
        m = _VARIABLE.match(text, e.pos_in_stream)
        if m:
            return SqlSyntaxError(f"variable '{m.group(1)}' is not defined: DEFINE it or pass it", e.line, e.column)
        accepted = _accepted(lark, text, start, e.pos_in_stream)
        expected = _expecting(lark, accepted or e.allowed)
        return SqlSyntaxError(f"extraneous input '{char}' expecting {expected}", e.line, e.column)
    return SqlSyntaxError(f"syntax error: {e}", getattr(e, "line", None), getattr(e, "column", None))


# --- variables and statement splitting -------------------------------------------------------


def substitute_variables(text: str, variables: dict[str, str] | None) -> str:
    """Replace ``${name}`` by the variable's value (names are case-insensitive; unknown ones stay)."""
    if not variables or "${" not in text:
        return text
    lookup = {k.upper(): v for k, v in variables.items()}
    return _VARIABLE.sub(lambda m: lookup.get(m.group(1).upper(), m.group(0)), text)


def _statement_at(text: str, line: int, column: int) -> str:
    """The text of the statement holding (line, column)."""
    lines = text.split("\n")
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + column - 1
    for start, chunk in split_statements(text):
        if start <= offset < start + len(chunk):
            return chunk.strip()
    return text.strip()


def split_statements(text: str) -> list[tuple[int, str]]:
    """Split a script at the ``;`` that end statements (not those in strings, quoted names or
    comments): (offset, chunk) pairs, each chunk including its ``;``."""
    out: list[tuple[int, str]] = []
    i, n, start = 0, len(text), 0
    while i < n:
        ch = text[i]
        if ch in "'`\"":
            j = i + 1
            while j < n:
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif ch == ";":
            out.append((start, text[start : i + 1]))
            start = i = i + 1
        else:
            i += 1
    if text[start:].strip():
        out.append((start, text[start:]))
    return out


# --- API -----------------------------------------------------------------------------------------


def _parse_text(text: str, start: str) -> Any:
    lark = _parser()
    try:
        tree = lark.parse(text, start=start)
    except UnexpectedInput as e:
        err = _syntax_error(lark, e, text, start)
        if start == "start" and err.line is not None:
            err.with_statement(_statement_at(text, err.line, err.column or 1))
        raise err from None
    builder = _Builder(text)
    try:
        result = builder.transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SqlSyntaxError):
            raise e.orig_exc from None
        raise
    if builder.overflow:
        lit, text = next(iter(builder.overflow.values()))
        what = "Number overflows DOUBLE" if lit.type == SqlType.DOUBLE else "Invalid numeric literal"
        raise SqlSyntaxError(f"{what}: {text}", *lit.pos, prepare=True)
    _check_tree(result)
    return result


def parse(text: str, variables: dict[str, str] | None = None) -> list[A.Statement]:
    """Parse a script of ``;``-terminated statements (the last ``;`` may be left out).

    ``variables`` are substituted for ``${name}`` first; DEFINE / UNDEFINE statements of the
    script change the variables for the statements after them. Raises SqlSyntaxError.
    """
    if "${" not in text:
        return _parse_text(text, "start")
    # Substitute statement by statement, so DEFINEs take effect for the statements after them.
    vars_ = {k.upper(): v for k, v in (variables or {}).items()}
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    out: list[A.Statement] = []
    for offset, chunk in split_statements(text):
        line = bisect_right(line_starts, offset)
        col = offset - line_starts[line - 1]
        padded = "\n" * (line - 1) + " " * col + substitute_variables(chunk, vars_)
        for stmt in _parse_text(padded, "start"):
            out.append(stmt)
            if isinstance(stmt, A.DefineVariable):
                vars_[stmt.name.upper()] = stmt.value
            elif isinstance(stmt, A.UndefineVariable):
                vars_.pop(stmt.name.upper(), None)
    return out


def parse_expression(text: str, variables: dict[str, str] | None = None) -> A.Expr:
    """Parse one expression, e.g. ``"a + 1 > 2"``. Raises SqlSyntaxError."""
    return _parse_text(substitute_variables(text, variables), "expression_only")
