"""The syntax tree of the ksqlDB dialect: what the parser produces and the analyzer reads.

Every node carries ``pos`` = (line, column) of where it starts in the statement text (1-based),
so errors found after parsing still point at the text. Identifiers are already normalized:
unquoted ones upper-cased, back-quoted ones kept as written (ksqlDB's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..formats.types import SqlType

Pos = tuple[int, int]
NOPOS: Pos = (0, 0)


@dataclass
class Node:
    """Base of every syntax node."""

    pos: Pos = field(default=NOPOS, kw_only=True, compare=False, repr=False)


# --- expressions ---------------------------------------------------------------------------------


class Expr(Node):
    """Base of expressions."""


@dataclass
class Literal(Expr):
    """A constant. ``type`` is its SQL type (None for NULL): integers that fit 32 bits are INT,
    larger ones BIGINT; ``1.5`` is DECIMAL(2,1) (value a Decimal); ``1.5E2`` is DOUBLE."""

    value: Any
    type: SqlType | None


@dataclass
class ColumnRef(Expr):
    """A column, optionally qualified by a source name or alias (``s.col``)."""

    name: str
    source: str | None = None


@dataclass
class Dereference(Expr):
    """A struct field: ``base->field``."""

    base: Expr
    field: str


@dataclass
class Subscript(Expr):
    """``base[index]``: an array element (1-based; negative counts from the end) or a map value."""

    base: Expr
    index: Expr


@dataclass
class BinaryOp(Expr):
    """``left op right`` with op one of + - * / % = <> < <= > >= AND OR ||."""

    op: str
    left: Expr
    right: Expr


@dataclass
class UnaryOp(Expr):
    """``op operand`` with op one of NOT, -, +."""

    op: str
    operand: Expr


@dataclass
class IsNull(Expr):
    expr: Expr
    negated: bool = False


@dataclass
class IsDistinctFrom(Expr):
    left: Expr
    right: Expr
    negated: bool = False


@dataclass
class Like(Expr):
    expr: Expr
    pattern: Expr
    escape: str | None = None
    negated: bool = False


@dataclass
class Between(Expr):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass
class InList(Expr):
    expr: Expr
    items: list[Expr]
    negated: bool = False


@dataclass
class Case(Expr):
    """Searched (``operand`` None) or simple CASE."""

    operand: Expr | None
    whens: list[tuple[Expr, Expr]]
    else_: Expr | None = None


@dataclass
class Cast(Expr):
    expr: Expr
    type: SqlType | TypeRef


@dataclass
class FunctionCall(Expr):
    """``name(args)``; ``star`` for COUNT(*); ``distinct`` for e.g. COUNT(DISTINCT x)."""

    name: str
    args: list[Expr]
    star: bool = False
    distinct: bool = False


@dataclass
class Lambda(Expr):
    """``(x, y) => body`` (or ``x => body``)."""

    params: list[str]
    body: Expr


@dataclass
class ArrayConstructor(Expr):
    """``ARRAY[a, b, ...]``."""

    items: list[Expr]


@dataclass
class MapConstructor(Expr):
    """``MAP(k1 := v1, k2 := v2, ...)``."""

    entries: list[tuple[Expr, Expr]]


@dataclass
class StructConstructor(Expr):
    """``STRUCT(NAME := expr, ...)``."""

    fields: list[tuple[str, Expr]]


@dataclass
class IntervalUnit(Expr):
    """A time unit argument, e.g. the SECONDS of ``TIMESTAMPADD(SECONDS, 5, ts)``."""

    unit: str


@dataclass
class TypeRef(Node):
    """A named type (``CREATE TYPE ADDRESS AS STRUCT<...>``) used where a type is expected."""

    name: str


# --- queries -------------------------------------------------------------------------------------


@dataclass
class SelectItem(Node):
    """One projected expression and its alias (None: derived as ksqlDB does)."""

    expr: Expr
    alias: str | None = None


@dataclass
class AllColumns(Node):
    """``*`` or ``source.*``."""

    source: str | None = None


class Relation(Node):
    """Base of FROM items."""


@dataclass
class SourceRef(Relation):
    """A stream or table by name, with an optional alias."""

    name: str
    alias: str | None = None


@dataclass
class WithinClause(Node):
    """Stream-stream join window: ``WITHIN n unit`` or ``WITHIN (before, after)``, with GRACE."""

    before_ms: int
    after_ms: int
    grace_ms: int | None = None


@dataclass
class Join(Relation):
    """``left kind JOIN right [WITHIN ...] ON condition``; kind is INNER, LEFT, RIGHT or FULL."""

    left: Relation
    right: Relation
    kind: str
    on: Expr
    within: WithinClause | None = None


@dataclass
class WindowSpec(Node):
    """``WINDOW TUMBLING|HOPPING|SESSION (...)``; sizes in ms."""

    kind: str
    size_ms: int
    advance_ms: int | None = None
    retention_ms: int | None = None
    grace_ms: int | None = None


@dataclass
class Query(Node):
    """A SELECT."""

    select: list[SelectItem | AllColumns]
    from_: Relation
    where: Expr | None = None
    window: WindowSpec | None = None
    group_by: list[Expr] | None = None
    having: Expr | None = None
    partition_by: list[Expr] | None = None
    emit: str | None = None  # "CHANGES" | "FINAL" | None
    limit: int | None = None


# --- statements ----------------------------------------------------------------------------------


class Statement(Node):
    """Base of statements. ``text`` is the statement's own source text (set by the parser)."""

    text: str = ""


@dataclass
class ColumnDef(Node):
    """A column of CREATE STREAM/TABLE: KEY (stream) or PRIMARY KEY (table), HEADERS (all
    headers, ARRAY<STRUCT<KEY STRING, VALUE BYTES>>) or HEADER('k') (one header's BYTES)."""

    name: str
    type: SqlType | TypeRef
    key: bool = False
    primary_key: bool = False
    headers: bool = False
    header_key: str | None = None
    #: the MAP key types as declared, in order (``type`` keeps MAP values only: keys are STRING)
    map_keys: tuple[Any, ...] = field(default=(), kw_only=True, compare=False, repr=False)
    #: the type as declared, as ksqlDB prints it (MAP<INTEGER, DOUBLE>), when it has a MAP
    declared: str | None = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass
class CreateSource(Statement):
    """CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name (columns) WITH (props).
    ``props`` keys are upper-cased; values are Python values (str, int, bool)."""

    kind: str  # "STREAM" | "TABLE"
    name: str
    columns: list[ColumnDef]
    props: dict[str, Any]
    or_replace: bool = False
    if_not_exists: bool = False
    source: bool = False


@dataclass
class CreateAsSelect(Statement):
    """CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (props)] AS SELECT ..."""

    kind: str
    name: str
    query: Query
    props: dict[str, Any]
    or_replace: bool = False
    if_not_exists: bool = False


@dataclass
class InsertInto(Statement):
    """INSERT INTO target [WITH (props)] SELECT ..."""

    target: str
    query: Query
    props: dict[str, Any] = field(default_factory=dict)
    target_pos: Pos = field(default=NOPOS, kw_only=True, compare=False, repr=False)


@dataclass
class InsertValues(Statement):
    """INSERT INTO target [(columns)] VALUES (values)."""

    target: str
    columns: list[str] | None
    values: list[Expr]
    target_pos: Pos = field(default=NOPOS, kw_only=True, compare=False, repr=False)


@dataclass
class CreateType(Statement):
    name: str
    type: SqlType | TypeRef
    if_not_exists: bool = False


@dataclass
class DropType(Statement):
    name: str
    if_exists: bool = False


@dataclass
class AlterSource(Statement):
    """ALTER STREAM|TABLE name ADD [COLUMN] c type, ...: value columns added to a source."""

    kind: str  # "STREAM" | "TABLE"
    name: str
    columns: list[ColumnDef]


@dataclass
class DropSource(Statement):
    kind: str  # "STREAM" | "TABLE"
    name: str
    if_exists: bool = False
    delete_topic: bool = False


@dataclass
class Terminate(Statement):
    """TERMINATE query_id | TERMINATE ALL (query_id None)."""

    query_id: str | None


@dataclass
class Show(Statement):
    """SHOW | LIST  STREAMS | TABLES | TOPICS | QUERIES | PROPERTIES | FUNCTIONS | TYPES | VARIABLES."""

    what: str
    extended: bool = False


@dataclass
class Describe(Statement):
    """DESCRIBE name [EXTENDED] | DESCRIBE STREAMS|TABLES [EXTENDED] (name None, ``what`` set)."""

    name: str | None
    extended: bool = False
    what: str | None = None


@dataclass
class DescribeFunction(Statement):
    name: str


@dataclass
class Explain(Statement):
    """EXPLAIN statement | EXPLAIN query_id."""

    statement: Statement | None = None
    query_id: str | None = None


@dataclass
class SetProperty(Statement):
    name: str
    value: str


@dataclass
class UnsetProperty(Statement):
    name: str


@dataclass
class DefineVariable(Statement):
    name: str
    value: str


@dataclass
class UndefineVariable(Statement):
    name: str


@dataclass
class PrintTopic(Statement):
    topic: str
    from_beginning: bool = False
    interval: int | None = None
    limit: int | None = None


@dataclass
class RunScript(Statement):
    path: str


@dataclass
class QueryStatement(Statement):
    """A transient query: a push query (EMIT CHANGES) or a pull query."""

    query: Query
