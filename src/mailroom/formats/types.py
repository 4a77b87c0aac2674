"""A small SQL type model: the types ksqlDB's wire formats carry.

    from mailroom.formats.types import SqlType, Column, Schema
    t = SqlType.parse("STRUCT<A INT, B ARRAY<STRING>>")
    s = Schema.parse("ID BIGINT, NAME STRING, PRICE DECIMAL(10, 2)")
    s.to_arrow()        # pyarrow.Schema

Python values of each type (what serdes produce and accept):

==============  ===========================  =============================
SQL type        Python value                 Arrow type
==============  ===========================  =============================
BOOLEAN         bool                         bool
INT             int (32-bit)                 int32
BIGINT          int (64-bit)                 int64
DOUBLE          float                        float64
DECIMAL(p, s)   decimal.Decimal              decimal128(p, s) (decimal256 beyond 38 digits)
STRING          str                          string
BYTES           bytes                        binary
TIMESTAMP       datetime.datetime (naive,    timestamp("ms")
                UTC)
DATE            datetime.date                date32
TIME            datetime.time                time32("ms")
ARRAY<T>        list                         list<T>
MAP<STRING, T>  dict[str, T]                 map<string, T>
STRUCT<...>     dict[str, Any]               struct<...>
==============  ===========================  =============================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa

#: The primitive (parameterless) base types.
PRIMITIVES = ("BOOLEAN", "INT", "BIGINT", "DOUBLE", "STRING", "BYTES", "TIMESTAMP", "DATE", "TIME")
#: Every base type.
BASE_TYPES = PRIMITIVES + ("DECIMAL", "ARRAY", "MAP", "STRUCT")

_ALIASES = {"INTEGER": "INT", "VARCHAR": "STRING", "BOOL": "BOOLEAN"}


@dataclass(frozen=True)
class SqlType:
    """A SQL type. Build with the class constants and helpers, or :meth:`parse`:

    ``SqlType.INT``, ``SqlType.decimal(10, 2)``, ``SqlType.array(SqlType.STRING)``,
    ``SqlType.map(SqlType.INT)``, ``SqlType.struct([("A", SqlType.INT)])``.
    """

    base: str
    precision: int | None = None
    scale: int | None = None
    #: ARRAY element type, or MAP value type (MAP keys are always STRING).
    element: SqlType | None = None
    #: STRUCT fields, in order.
    fields: tuple[Column, ...] = ()

    BOOLEAN: ClassVar[SqlType]
    INT: ClassVar[SqlType]
    BIGINT: ClassVar[SqlType]
    DOUBLE: ClassVar[SqlType]
    STRING: ClassVar[SqlType]
    BYTES: ClassVar[SqlType]
    TIMESTAMP: ClassVar[SqlType]
    DATE: ClassVar[SqlType]
    TIME: ClassVar[SqlType]

    def __post_init__(self) -> None:
        if self.base not in BASE_TYPES:
            raise ValueError(f"unknown SQL type {self.base!r}; known: {', '.join(BASE_TYPES)}")
        if self.base == "DECIMAL":
            p, s = self.precision, self.scale
            if p is None or s is None or not (1 <= p <= 76) or not (0 <= s <= p):
                raise ValueError(f"DECIMAL needs 1 <= precision <= 76 and 0 <= scale <= precision, got ({p}, {s})")
        if self.base in ("ARRAY", "MAP") and self.element is None:
            raise ValueError(f"{self.base} needs an element type")

    # --- constructors ---------------------------------------------------------------------

    @staticmethod
    def decimal(precision: int, scale: int) -> SqlType:
        """DECIMAL(precision, scale)."""
        return SqlType("DECIMAL", precision=precision, scale=scale)

    @staticmethod
    def array(element: SqlType) -> SqlType:
        """ARRAY<element>."""
        return SqlType("ARRAY", element=element)

    @staticmethod
    def map(value: SqlType) -> SqlType:
        """MAP<STRING, value>."""
        return SqlType("MAP", element=value)

    @staticmethod
    def struct(fields: Iterable[Column | tuple[str, SqlType]]) -> SqlType:
        """STRUCT<name type, ...>."""
        return SqlType("STRUCT", fields=tuple(f if isinstance(f, Column) else Column(*f) for f in fields))

    @staticmethod
    def parse(text: str) -> SqlType:
        """Parse a type such as ``"STRUCT<A INT, B ARRAY<STRING>>"`` or ``"DECIMAL(10,2)"``.

        Unquoted field names are upper-cased; back-quoted ones are kept. Raises ValueError.
        """
        p = _Parser(text)
        t = p.type()
        p.end()
        return t

    # --- views ----------------------------------------------------------------------------

    @property
    def is_primitive(self) -> bool:
        """True for types without parameters or children (DECIMAL is not primitive)."""
        return self.base in PRIMITIVES

    def to_arrow(self) -> pa.DataType:
        """The Arrow type of this SQL type."""
        b = self.base
        if b in _ARROW_PRIMITIVES:
            return _ARROW_PRIMITIVES[b]
        if b == "DECIMAL":
            if self.precision > 38:  # (beyond 128 bits: Arrow's 256-bit decimal holds 76 digits)
                return pa.decimal256(self.precision, self.scale)  # type: ignore[arg-type]
            return pa.decimal128(self.precision, self.scale)  # type: ignore[arg-type]
        if b == "ARRAY":
            return pa.list_(self.element.to_arrow())  # type: ignore[union-attr]
        if b == "MAP":
            return pa.map_(pa.string(), self.element.to_arrow())  # type: ignore[union-attr]
        return pa.struct([pa.field(c.name, c.type.to_arrow()) for c in self.fields])

    def __str__(self) -> str:
        b = self.base
        if b == "DECIMAL":
            return f"DECIMAL({self.precision}, {self.scale})"
        if b == "ARRAY":
            return f"ARRAY<{self.element}>"
        if b == "MAP":
            return f"MAP<STRING, {self.element}>"
        if b == "STRUCT":
            return "STRUCT<" + ", ".join(f"{_quote(c.name)} {c.type}" for c in self.fields) + ">"
        return b

    def __repr__(self) -> str:
        return f"SqlType({str(self)!r})"


_ARROW_PRIMITIVES: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "STRING": pa.string(),
    "BYTES": pa.binary(),
    "TIMESTAMP": pa.timestamp("ms"),
    "DATE": pa.date32(),
    "TIME": pa.time32("ms"),
}

for _name in PRIMITIVES:
    setattr(SqlType, _name, SqlType(_name))


@dataclass(frozen=True)
class Column:
    """A named, typed column (or STRUCT field)."""

    name: str
    type: SqlType

    def __str__(self) -> str:
        return f"{_quote(self.name)} {self.type}"


@dataclass(frozen=True)
class Schema:
    """Ordered columns of a record. Column names are kept as given (ksqlDB upper-cases
    unquoted names; :meth:`parse` does the same)."""

    columns: tuple[Column, ...] = field(default_factory=tuple)

    def __init__(self, columns: Iterable[Column | tuple[str, SqlType]] = ()) -> None:
        cols = tuple(c if isinstance(c, Column) else Column(*c) for c in columns)
        seen: set[str] = set()
        for c in cols:
            if c.name in seen:
                raise ValueError(f"duplicate column name {c.name!r}")
            seen.add(c.name)
        object.__setattr__(self, "columns", cols)

    @staticmethod
    def parse(text: str) -> Schema:
        """Parse ``"ID BIGINT, NAME STRING, `lower` INT"`` (unquoted names are upper-cased)."""
        p = _Parser(text)
        cols = p.columns(end=None)
        p.end()
        return Schema(cols)

    @property
    def names(self) -> list[str]:
        """Column names, in order."""
        return [c.name for c in self.columns]

    def find(self, name: str) -> Column | None:
        """The column called ``name``: exact match first, then case-insensitive."""
        for c in self.columns:
            if c.name == name:
                return c
        up = name.upper()
        for c in self.columns:
            if c.name.upper() == up:
                return c
        return None

    def to_arrow(self) -> pa.Schema:
        """The Arrow schema (every field nullable)."""
        return pa.schema([pa.field(c.name, c.type.to_arrow()) for c in self.columns])

    def as_struct(self) -> SqlType:
        """This schema as a STRUCT type."""
        return SqlType("STRUCT", fields=self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __str__(self) -> str:
        return ", ".join(str(c) for c in self.columns)


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[A-Z_][A-Z0-9_]*", name) else f"`{name}`"


# --- parser ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(`(?:[^`]|``)*`)|(\"(?:[^\"]|\"\")*\")|([A-Za-z_][A-Za-z0-9_]*)|(\d+)|([<>(),]))")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                raise self._err(f"unexpected character {text[pos:].lstrip()[:1]!r}")
            pos = m.end()
            q1, q2, ident, num, punct = m.groups()
            if q1 or q2:
                q = q1 or q2
                self.toks.append(("QUOTED", q[1:-1].replace(q[0] * 2, q[0])))
            elif ident:
                self.toks.append(("IDENT", ident))
            elif num:
                self.toks.append(("NUM", num))
            else:
                self.toks.append(("P", punct))
        self.i = 0

    def _err(self, why: str) -> ValueError:
        return ValueError(f"cannot parse type {self.text!r}: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> tuple[str, str]:
        t = self.peek()
        if t is None:
            raise self._err("unexpected end")
        self.i += 1
        return t

    def expect(self, punct: str) -> None:
        t = self.next()
        if t != ("P", punct):
            raise self._err(f"expected {punct!r}, got {t[1]!r}")

    def end(self) -> None:
        if self.peek() is not None:
            raise self._err(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]

    def number(self) -> int:
        kind, val = self.next()
        if kind != "NUM":
            raise self._err(f"expected a number, got {val!r}")
        return int(val)

    def type(self) -> SqlType:
        kind, val = self.next()
        if kind != "IDENT":
            raise self._err(f"expected a type name, got {val!r}")
        name = _ALIASES.get(val.upper(), val.upper())
        if name in PRIMITIVES:
            return SqlType(name)
        if name == "DECIMAL":
            self.expect("(")
            p = self.number()
            self.expect(",")
            s = self.number()
            self.expect(")")
            try:
                return SqlType.decimal(p, s)
            except ValueError as e:
                raise self._err(str(e)) from None
        if name == "ARRAY":
            self.expect("<")
            el = self.type()
            self.expect(">")
            return SqlType.array(el)
        if name == "MAP":
            self.expect("<")
            k = self.type()
            if k != SqlType.STRING:
                raise self._err(f"MAP keys must be STRING, got {k}")
            self.expect(",")
            v = self.type()
            self.expect(">")
            return SqlType.map(v)
        if name == "STRUCT":
            self.expect("<")
            if self.peek() == ("P", ">"):
                self.next()
                return SqlType("STRUCT")
            cols = self.columns(end=">")
            self.expect(">")
            return SqlType("STRUCT", fields=tuple(cols))
        raise self._err(f"unknown type {val!r}; known: {', '.join(BASE_TYPES)}")

    def columns(self, end: str | None) -> list[Column]:
        cols: list[Column] = []
        while True:
            kind, val = self.next()
            if kind == "IDENT":
                name = val.upper()
            elif kind == "QUOTED":
                name = val
            else:
                raise self._err(f"expected a column name, got {val!r}")
            cols.append(Column(name, self.type()))
            t = self.peek()
            if t == ("P", ","):
                self.next()
                continue
            if t is None or (end is not None and t == ("P", end)):
                return cols
            raise self._err(f"unexpected {t[1]!r}")
