"""The :class:`Serde` interface every format implements (internal module; re-exported by
:mod:`mailroom.formats`)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import pyarrow as pa

from mailroom.errors import SerdeError

from ._values import CoercionError
from .types import Column, Schema, SqlType

#: Column name given to a serde built from a bare :class:`SqlType`.
DEFAULT_COLUMN = "VALUE"

BatchResult = tuple[pa.Table, list[tuple[int, str]]]


class Serde(abc.ABC):
    """Serializer/deserializer of one format for one schema.

    A *row* is a dict keyed by column name, or a single value when the serde is
    :attr:`unwrapped` (built from a bare :class:`SqlType`, ``wrapped=False``, or the KAFKA
    format). ``None`` serializes to ``None`` (a tombstone) and ``None`` deserializes to ``None``.
    Every malformed input raises :class:`~mailroom.errors.SerdeError` naming the format, the
    reason and the record's topic/partition/offset when given.
    """

    #: Format name, e.g. "JSON".
    format: ClassVar[str] = ""

    def __init__(self, schema: Schema | SqlType | None, *, wrapped: bool | None = None, column: str | None = None) -> None:
        if schema is None:
            raise self.config_error("needs a schema (a Schema or a SqlType)")
        if isinstance(schema, SqlType):
            if wrapped:
                raise self.config_error("wrapped=True needs a Schema, not a bare SqlType")
            self.schema = Schema([Column(column or DEFAULT_COLUMN, schema)])
            self.unwrapped = True
        elif isinstance(schema, Schema):
            self.schema = schema
            self.unwrapped = wrapped is False
            if self.unwrapped and len(schema) != 1:
                raise self.config_error(
                    f"wrapped=False (WRAP_SINGLE_VALUE=false) needs exactly one column, schema has {len(schema)}"
                )
        else:
            raise self.config_error(f"schema must be a Schema or a SqlType, not {type(schema).__name__}")
        if len(self.schema) == 0:
            raise self.config_error("schema has no columns")
        self.arrow_schema: pa.Schema = self.schema.to_arrow()

    # --- errors ---------------------------------------------------------------------------

    @classmethod
    def config_error(cls, reason: str) -> SerdeError:
        """A SerdeError for a serde that cannot be built as asked."""
        return SerdeError(reason, format=cls.format or None)

    def error(
        self, reason: str, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> SerdeError:
        """A SerdeError of this format."""
        return SerdeError(reason, topic=topic, partition=partition, offset=offset, format=self.format)

    @property
    def value_type(self) -> SqlType:
        """The type of the single value of an unwrapped serde (or the row as a STRUCT)."""
        return self.schema.columns[0].type if self.unwrapped else self.schema.as_struct()

    # --- the interface --------------------------------------------------------------------

    @abc.abstractmethod
    def _encode(self, value: Any) -> bytes:
        """Serialize a non-None row; may raise CoercionError or SerdeError."""

    @abc.abstractmethod
    def _decode(self, data: bytes) -> Any:
        """Deserialize non-None bytes; may raise CoercionError or SerdeError."""

    def serialize(self, value: Any, *, topic: str | None = None) -> bytes | None:
        """The bytes of ``value`` (a row dict, or a single value when unwrapped); None -> None."""
        if value is None:
            return None
        try:
            return self._encode(value)
        except CoercionError as e:
            raise self.error(str(e), topic) from None
        except SerdeError as e:
            raise e.at(topic, None, None) from None

    def deserialize(
        self, data: bytes | None, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> Any:
        """The row in ``data`` (a dict, or a single value when unwrapped); None -> None."""
        if data is None:
            return None
        try:
            return self._decode(data)
        except CoercionError as e:
            raise self.error(str(e), topic, partition, offset) from None
        except SerdeError as e:
            raise e.at(topic, partition, offset) from None

    def deserialize_batch(
        self,
        values: Sequence[bytes | None],
        *,
        topic: str | None = None,
        partition: int | None = None,
        offsets: Sequence[int] | None = None,
    ) -> BatchResult:
        """Decode many records into an Arrow table with the schema's columns.

        Malformed records are not fatal: returns ``(table, bad)`` where ``table`` holds one row
        per good record, in input order, and ``bad`` lists ``(index, reason)`` of the others
        (``reason`` is the SerdeError message, naming topic/partition/offset). A None value
        gives a row of nulls.
        """
        rows: list[Any] = []
        bad: list[tuple[int, str]] = []
        for i, data in enumerate(values):
            if data is None:
                rows.append(None)
                continue
            try:
                rows.append(self._decode(data))
            except (CoercionError, SerdeError) as e:
                off = offsets[i] if offsets is not None else None
                err = self.error(str(e), topic, partition, off) if isinstance(e, CoercionError) else e.at(topic, partition, off)
                bad.append((i, str(err)))
        return self.rows_to_table(rows), bad

    def serialize_batch(self, table: pa.Table | pa.RecordBatch, *, topic: str | None = None) -> list[bytes | None]:
        """Encode every row of ``table`` (columns matched by name, case-insensitively).

        In unwrapped mode a null value gives None; otherwise every row gives bytes.
        """
        return [self.serialize(r, topic=topic) for r in self.table_to_rows(table)]

    # --- helpers --------------------------------------------------------------------------

    def rows_to_table(self, rows: Sequence[Any]) -> pa.Table:
        """An Arrow table of rows as :meth:`deserialize` returns them (None rows -> nulls)."""
        if self.unwrapped:
            f = self.arrow_schema.field(0)
            return pa.table({f.name: pa.array(list(rows), type=f.type)}, schema=self.arrow_schema)
        return pa.Table.from_pylist([r if r is not None else {} for r in rows], schema=self.arrow_schema)

    def select_columns(self, table: pa.Table | pa.RecordBatch) -> list[pa.ChunkedArray | pa.Array]:
        """The columns of ``table`` for this schema, matched by exact then case-insensitive name."""
        names = table.schema.names
        upper = {}
        for i, n in enumerate(names):
            upper.setdefault(n.upper(), i)
        cols = []
        for c in self.schema.columns:
            if c.name in names:
                idx = names.index(c.name)
            elif c.name.upper() in upper:
                idx = upper[c.name.upper()]
            else:
                raise self.error(f"table has no column {c.name!r} (columns: {', '.join(names)})")
            cols.append(table.column(idx))
        return cols

    def table_to_rows(self, table: pa.Table | pa.RecordBatch) -> list[Any]:
        """Rows (dicts, or values when unwrapped) of ``table``."""
        cols = self.select_columns(table)
        pyc = [_to_pylist(c) for c in cols]
        if self.unwrapped:
            return pyc[0]
        names = self.schema.names
        return [dict(zip(names, vals)) for vals in zip(*pyc)]


def _to_pylist(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    try:
        return col.to_pylist(maps_as_pydicts="strict")
    except TypeError:  # pyarrow < 19: maps come as lists of pairs (coerce() accepts those)
        return col.to_pylist()
