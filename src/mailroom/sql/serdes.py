"""Engine serdes for SQL sources: the wire formats (``mailroom.formats``) over rows of columns.

A SQL record travels through the engine as (key, row): the key is the key column's value (or
a tuple of them when there are several, None when there are none), and the row is a dict of
every column by name. Keys are always "unwrapped" (a single key column is the bare value, as
ksqlDB writes it); values follow the source's WRAP_SINGLE_VALUE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ..errors import SerdeError
from ..formats import Schema, SqlType, serde_for
from ..formats.types import Column
from .metastore import DataSource, SqlError


def _format_name(fmt: str) -> str:
    f = fmt.upper()
    return "JSON" if f in ("JSON_SR",) else f


class KeySerde:
    """The key columns of a source, in its KEY_FORMAT (engine Serde protocol)."""

    def __init__(self, columns: list[Column], fmt: str, props: dict[str, Any] | None = None) -> None:
        self.columns = columns
        self.format = _format_name(fmt)
        props = dict(props or {})
        if not columns or self.format == "NONE":
            self._serde = None
        elif len(columns) == 1:
            if self.format == "KAFKA" and not columns[0].type.is_primitive:
                raise SqlError(f"The 'KAFKA' format does not support type '{columns[0].type}'")
            self._serde = serde_for(self.format, columns[0].type, column=columns[0].name, **_key_props(self.format, props))
        else:
            if self.format == "KAFKA":
                raise SqlError("The 'KAFKA' format only supports a single field. Got: " + ", ".join(c.name for c in columns))
            self._serde = serde_for(self.format, Schema(columns), **props)

    def decode(self, raw: Sequence[bytes | None]) -> tuple[list[Any], list[tuple[int, str]]]:
        out, bad = [], []
        n = len(self.columns)
        for i, b in enumerate(raw):
            if self._serde is None or b is None:
                out.append(None)
                continue
            try:
                v = self._serde.deserialize(b)
            except SerdeError as e:
                out.append(None)
                bad.append((i, f"Error deserializing key: {e}"))
                continue
            if n > 1 and isinstance(v, dict):
                v = tuple(v.get(c.name) for c in self.columns)
            out.append(v)
        return out, bad

    def encode(self, keys: list[Any]) -> list[bytes | None]:
        if self._serde is None:
            return [None] * len(keys)
        out = []
        many = len(self.columns) > 1
        for k in keys:
            if k is None:
                out.append(None)
            elif many:
                out.append(self._serde.serialize(dict(zip((c.name for c in self.columns), k))))
            else:
                out.append(self._serde.serialize(k))
        return out


def _key_props(fmt: str, props: dict[str, Any]) -> dict[str, Any]:
    # a single key column is always written bare
    return {**props, "wrapped": False} if fmt in ("JSON", "AVRO", "DELIMITED") else props


class ValueSerde:
    """The value columns of a source, in its VALUE_FORMAT, as row dicts."""

    def __init__(self, columns: list[Column], fmt: str, props: dict[str, Any] | None = None) -> None:
        self.columns = columns
        self.format = _format_name(fmt)
        props = dict(props or {})
        wrap = props.pop("wrapped", None)
        self.single = len(columns) == 1 and wrap is False
        if self.format == "NONE" or not columns:
            self._serde = None  # nothing in the value (e.g. a stream of keys only)
        elif self.single:
            self._serde = serde_for(self.format, columns[0].type, column=columns[0].name, wrapped=False, **props)
        else:
            if self.format == "KAFKA" and len(columns) != 1:
                raise SqlError(f"The 'KAFKA' format only supports a single field. Got: {', '.join(c.name for c in columns)}")
            if self.format == "KAFKA":
                self.single = True
                self._serde = serde_for("KAFKA", columns[0].type, column=columns[0].name)
            else:
                self._serde = serde_for(self.format, Schema(columns), **({} if wrap is None else {"wrapped": wrap}), **props)

    def decode_frame(self, raw: Sequence[bytes | None]) -> pl.DataFrame | None:
        """Every value of a batch as the columns of a frame, decoded at once, or None when the
        batch needs the per-record path (see :meth:`JsonSerde.fast_table`)."""
        fast = getattr(self._serde, "fast_table", None)
        if fast is None or self.single or not raw:
            return None
        table = fast(raw)
        if table is None:
            return None
        df = pl.from_arrow(table)
        return df if isinstance(df, pl.DataFrame) else None

    def decode(self, raw: Sequence[bytes | None]) -> tuple[list[Any], list[tuple[int, str]]]:
        out, bad = [], []
        for i, b in enumerate(raw):
            if b is None:
                out.append(None)
                continue
            if self._serde is None:
                out.append({})
                continue
            try:
                v = self._serde.deserialize(b)
            except SerdeError as e:
                out.append(None)
                bad.append((i, f"Error deserializing value: {e}"))
                continue
            if self.single:
                v = {self.columns[0].name: v}
            elif not isinstance(v, dict):
                out.append(None)
                bad.append((i, f"Error deserializing value: expected an object, got {type(v).__name__}"))
                continue
            out.append(v)
        return out, bad

    def encode(self, rows: Any) -> list[bytes | None]:
        if isinstance(rows, pl.DataFrame):  # columnar values (a vectorized projection)
            rows = rows.to_dicts()
        out = []
        for r in rows:
            if r is None:
                out.append(None)
            elif self._serde is None:
                out.append(None)
            elif self.single:
                out.append(self._serde.serialize(r.get(self.columns[0].name)))
            else:
                out.append(self._serde.serialize({c.name: r.get(c.name) for c in self.columns}))
        return out


def serdes_for(src: DataSource) -> tuple[KeySerde, ValueSerde]:
    """The (key, value) engine serdes of a source."""
    validate_formats(src)
    try:
        return (KeySerde(src.key_columns, src.key_format, src.key_props),
                ValueSerde(src.value_columns, src.value_format, src.value_props))
    except SerdeError as e:
        raise SqlError(str(e)) from None


def value_type_of(columns: list[Column]) -> SqlType:
    return SqlType.struct(columns)


def ksql_type(t: SqlType) -> str:
    """A type as ksqlDB prints it in messages (INT as INTEGER, struct fields back-quoted)."""
    b = t.base
    if b == "INT":
        return "INTEGER"
    if b == "DECIMAL":
        return f"DECIMAL({t.precision}, {t.scale})"
    if b == "ARRAY":
        return f"ARRAY<{ksql_type(t.element)}>"
    if b == "MAP":
        return f"MAP<STRING, {ksql_type(t.element)}>"
    if b == "STRUCT":
        return "STRUCT<" + ", ".join(f"`{f.name}` {ksql_type(f.type)}" for f in t.fields) + ">"
    return b


def _has_map(t: SqlType) -> bool:
    if t.base == "MAP":
        return True
    if t.base == "ARRAY":
        return _has_map(t.element)
    if t.base == "STRUCT":
        return any(_has_map(f.type) for f in t.fields)
    return False


def validate_formats(src: DataSource) -> None:
    """ksqlDB's checks of a source's columns against its formats, with its messages."""
    keys = src.key_columns
    for c in keys:
        if _has_map(c.type):
            raise SqlError(f"Map keys, including types that contain maps, are not supported as they may lead to unexpected "
                           f"behavior due to inconsistent serialization. Key column name: `{c.name}`. Column type: "
                           f"{ksql_type(c.type)}. See https://github.com/confluentinc/ksql/issues/6621 for more.")
    schema = "Persistence{columns=[" + ", ".join(f"`{c.name}` {ksql_type(c.type)} KEY" for c in keys) + "], features=[]}"
    kf = src.key_format
    if kf == "KAFKA" and len(keys) > 1:
        raise SqlError(f"Key format does not support schema.\nformat: KAFKA\nschema: {schema}\nreason: The 'KAFKA' format only "
                       f"supports a single field. Got: [" + ", ".join(f"`{c.name}` {ksql_type(c.type)} KEY" for c in keys) + "]")
    for c in keys:
        if kf == "KAFKA" and (not c.type.is_primitive or c.type.base in ("BOOLEAN", "DECIMAL", "TIMESTAMP", "DATE", "TIME")):
            raise SqlError(f"Key format does not support schema.\nformat: KAFKA\nschema: {schema}\nreason: The 'KAFKA' format "
                           f"does not support type '{c.type.base}'")
        if kf == "DELIMITED" and c.type.base in ("ARRAY", "MAP", "STRUCT"):
            raise SqlError(f"Key format does not support schema.\nformat: DELIMITED\nschema: {schema}\nreason: The 'DELIMITED' "
                           f"format does not support type '{c.type.base}', column: `{c.name}`")
    if src.value_format == "DELIMITED":
        for c in src.value_columns:
            if c.type.base in ("ARRAY", "MAP", "STRUCT"):
                raise SqlError(f"The 'DELIMITED' format does not support type '{c.type.base}'")


class ColumnarValueSerde(ValueSerde):
    """A :class:`ValueSerde` whose ``decode`` gives a polars frame when the whole batch decodes
    on the fast path (the SQL source rows are then built by columns); else rows as usual."""

    def decode(self, raw: Sequence[bytes | None]) -> tuple[Any, list[tuple[int, str]]]:
        df = self.decode_frame(raw)
        if df is not None:
            return df, []
        return super().decode(raw)
