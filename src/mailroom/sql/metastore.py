"""The metastore: the streams, tables and named types that statements create.

A :class:`DataSource` is a stream or table over a topic: its key columns (KEY / PRIMARY KEY),
value columns, header columns, formats, timestamp column and, for windowed sources, its window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import MailroomError
from ..formats.types import Column, SqlType

#: Pseudo-columns every source has (ksqlDB's system columns).
ROWTIME = "ROWTIME"
ROWPARTITION = "ROWPARTITION"
ROWOFFSET = "ROWOFFSET"
WINDOWSTART = "WINDOWSTART"
WINDOWEND = "WINDOWEND"
PSEUDO_COLUMNS = {ROWTIME: SqlType.BIGINT, ROWPARTITION: SqlType.INT, ROWOFFSET: SqlType.BIGINT}
WINDOW_BOUNDS = {WINDOWSTART: SqlType.BIGINT, WINDOWEND: SqlType.BIGINT}


class SqlError(MailroomError):
    """A statement that cannot be executed: says what is wrong and, when known, where (in
    ksqlDB's words for a statement's node: ``Line: 3, Col: 70: <message>``, 1-based).
    ``preparing``: found while resolving the statement's names, which ksqlDB reports as
    ``Exception while preparing statement: Line: ...``."""

    def __init__(self, message: str, pos: tuple[int, int] | None = None, *, preparing: bool = False) -> None:
        self.pos = pos if pos and pos != (0, 0) else None
        self.message = message
        text = f"Line: {self.pos[0]}, Col: {self.pos[1]}: {message}" if self.pos else message
        super().__init__(f"Exception while preparing statement: {text}" if preparing else text)


@dataclass
class HeaderColumn:
    """A HEADERS column (all headers) or HEADER('key') column (one header's bytes)."""

    name: str
    type: SqlType
    key: str | None = None  # None: all headers


@dataclass
class WindowInfo:
    """The window of a windowed source (a windowed aggregation's output)."""

    kind: str  # "TUMBLING" | "HOPPING" | "SESSION"
    size_ms: int | None = None


@dataclass
class DataSource:
    """A stream or a table."""

    kind: str  # "STREAM" | "TABLE"
    name: str
    topic: str
    key_columns: list[Column]
    value_columns: list[Column]
    key_format: str = "KAFKA"
    value_format: str = "JSON"
    key_props: dict[str, Any] = field(default_factory=dict)
    value_props: dict[str, Any] = field(default_factory=dict)
    header_columns: list[HeaderColumn] = field(default_factory=list)
    timestamp_column: str | None = None
    timestamp_format: str | None = None
    window: WindowInfo | None = None
    partitions: int = 1
    source_only: bool = False  # CREATE SOURCE: read-only, materialized for pull queries
    #: the id of the persistent query writing this source, if a CSAS/CTAS made it
    query_id: str | None = None
    sql: str = ""

    @property
    def is_table(self) -> bool:
        return self.kind == "TABLE"

    def all_columns(self) -> list[Column]:
        """Key columns, value columns and header columns, in declaration order."""
        return self.key_columns + self.value_columns + [Column(h.name, h.type) for h in self.header_columns]

    def column(self, name: str) -> Column | None:
        for c in self.all_columns():
            if c.name == name:
                return c
        return None

    def describe_schema(self) -> str:
        parts = []
        for c in self.key_columns:
            parts.append(f"`{c.name}` {c.type} {'PRIMARY KEY' if self.is_table else 'KEY'}")
        for c in self.value_columns:
            parts.append(f"`{c.name}` {c.type}")
        for h in self.header_columns:
            parts.append(f"`{h.name}` {h.type} " + (f"HEADER('{h.key}')" if h.key else "HEADERS"))
        return ", ".join(parts)


class MetaStore:
    """Sources and types by name (names are already normalized by the parser)."""

    def __init__(self) -> None:
        self.sources: dict[str, DataSource] = {}
        self.types: dict[str, SqlType] = {}

    def get(self, name: str, pos: tuple[int, int] | None = None) -> DataSource:
        src = self.sources.get(name)
        if src is None:
            raise SqlError(f"{name} does not exist.", pos)
        return src

    def find(self, name: str) -> DataSource | None:
        return self.sources.get(name)

    def alternatives(self, name: str) -> str:
        """ksqlDB's hint for a source name that exists in another case ("" when none does):
        quoted lower case where the upper-case name exists, or unquoted where only a quoted one does."""
        if name != name.upper() and name.upper() in self.sources:
            return f"\nDid you mean {name.upper()}? Hint: try removing double quotes from the source name."
        for other in self.sources:
            if other != name and other.upper() == name.upper():
                return f'\nDid you mean "{other}"? Hint: wrap the source name in double quotes to make it case-sensitive.'
        return ""

    def by_topic(self, topic: str) -> list[DataSource]:
        return [s for s in self.sources.values() if s.topic == topic]

    def add(self, src: DataSource, replace: bool = False) -> None:
        if src.name in self.sources and not replace:
            raise SqlError(f"Cannot add {src.kind.lower()} '{src.name}': A {self.sources[src.name].kind.lower()} with the same name already exists")
        self.sources[src.name] = src

    def drop(self, name: str) -> DataSource:
        return self.sources.pop(name)
