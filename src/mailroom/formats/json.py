"""The JSON format, as ksqlDB reads and writes it.

* A row is a JSON object. Fields are matched to columns the ksqlDB way: exact name first, then
  the upper-cased field name (JSON ``{"name": ...}`` fills column ``NAME``). Missing fields
  are null; extra fields are ignored.
* Values are coerced like ksqlDB's JSON deserializer: INT/BIGINT from numbers (doubles are
  truncated) or numeric strings, DOUBLE from numbers or numeric strings, STRING from any
  scalar (and from objects/arrays, as their JSON text), BOOLEAN from booleans or
  ``"true"``/``"false"``, DECIMAL from numbers or strings, BYTES from base64 strings,
  TIMESTAMP from epoch milliseconds (or ISO-8601 text), DATE from epoch days, TIME from
  milliseconds of the day. Anything else is a :class:`~mailroom.errors.SerdeError`.
* Writing uses the same encodings: DECIMAL as a JSON number (at the value's own scale when it
  is no finer than the column's, as ksqlDB writes a BigDecimal), BYTES as base64,
  TIMESTAMP/DATE/TIME as integers.
* ``wrapped=False`` (ksqlDB ``WRAP_SINGLE_VALUE=false``) reads and writes the bare JSON value of
  a single column.

:meth:`JsonSerde.deserialize_batch` is columnar: the records are joined into NDJSON and read by
:func:`pyarrow.json.read_json` with an explicit schema; per-record :mod:`orjson` runs only when
that fails, to find the bad records (and to apply the coercions Arrow does not do).
"""

from __future__ import annotations

import decimal
import io
import json as _json
from collections.abc import Sequence
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from mailroom.errors import SerdeError

from ._base import BatchResult, Serde, _to_pylist
from ._values import CoercionError, coerce, coerce_fields, coerce_out, json_default
from .types import SqlType

_DUMP_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS

#: Types Arrow's JSON reader parses exactly as the per-record path does (when it parses them).
_FAST_DIRECT = {"BOOLEAN", "INT", "BIGINT", "DOUBLE", "STRING"}
#: Types read as integers by Arrow (epoch ms / epoch days), then cast.
_FAST_VIA_INT = {"TIMESTAMP": pa.int64(), "DATE": pa.int32()}


def dumps(value: Any) -> bytes:
    """JSON bytes of a Python value, with ksqlDB's encodings for DECIMAL, BYTES and times."""
    return orjson.dumps(value, default=json_default, option=_DUMP_OPTS)


def _parse_type(t: SqlType) -> pa.DataType | None:
    """The Arrow type to parse ``t`` as on the fast path, or None when there is none."""
    if t.base in _FAST_DIRECT:
        return t.to_arrow()
    if t.base in _FAST_VIA_INT:
        return _FAST_VIA_INT[t.base]
    if t.base == "ARRAY":
        el = _parse_type(t.element)  # type: ignore[arg-type]
        return pa.list_(el) if el is not None else None
    return None


class JsonSerde(Serde):
    """JSON format serde (see the module docs for the rules)."""

    format = "JSON"

    def __init__(self, schema: Any, *, wrapped: bool | None = None, column: str | None = None) -> None:
        super().__init__(schema, wrapped=wrapped, column=column)
        fields = []
        for c in self.schema.columns:
            pt = _parse_type(c.type)
            if pt is None:
                fields = None
                break
            fields.append(pa.field(c.name, pt))
        #: Arrow schema for the fast path (None: this schema always takes the per-record path).
        self._parse_schema = pa.schema(fields) if fields is not None and not self.unwrapped else None
        upper = [n.upper() for n in self.schema.names]
        # Two columns equal but for case make the ksqlDB matching order matter: no fast path.
        if len(set(upper)) != len(upper):
            self._parse_schema = None
        self._upper = set(upper)
        #: DECIMAL columns need their digits exactly: parse numbers as Decimal, not float
        self._exact = any("DECIMAL" in str(c.type) for c in self.schema.columns)

    # --- single records -------------------------------------------------------------------

    def _encode(self, value: Any) -> bytes:
        if self.unwrapped:
            return dumps(coerce_out(value, self.schema.columns[0].type))
        if not isinstance(value, dict):
            raise self.error(f"a row must be a dict keyed by column name, got {type(value).__name__}")
        return dumps(coerce_fields(value, self.schema.columns, out=True))

    def _loads(self, data: bytes) -> Any:
        if self._exact:
            try:
                return _json.loads(data, parse_float=decimal.Decimal)
            except ValueError as e:
                raise self.error(f"invalid JSON: {e}") from None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise self.error(f"invalid JSON: {e}") from None

    def _convert(self, obj: Any) -> Any:
        if self.unwrapped:
            return coerce(obj, self.schema.columns[0].type)
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise self.error(
                f"expected a JSON object for {len(self.schema)} column(s), got {_json_kind(obj)}"
                + (" (is the value unwrapped? use wrapped=False)" if len(self.schema) == 1 else "")
            )
        return coerce_fields(obj, self.schema.columns)

    def _decode(self, data: bytes) -> Any:
        return self._convert(self._loads(data))

    # --- batches --------------------------------------------------------------------------

    def deserialize_batch(
        self,
        values: Sequence[bytes | None],
        *,
        topic: str | None = None,
        partition: int | None = None,
        offsets: Sequence[int] | None = None,
    ) -> BatchResult:
        """Decode many JSON records into an Arrow table (see :meth:`Serde.deserialize_batch`).

        Fast path: one Arrow NDJSON read of all records. When it cannot be used, each record is
        parsed with orjson to find the malformed ones; the rest are read by Arrow again, or
        coerced per record when they need coercions Arrow does not do.
        """
        vals = [b"{}" if v is None else v if type(v) is bytes else bytes(v) for v in values]
        if self._parse_schema is not None and _all_objects(vals):
            table = self._fast(vals)
            if table is not None:
                return table, []

        bad: list[tuple[int, str]] = []
        good_idx: list[int] = []
        objs: list[Any] = []
        for i, v in enumerate(values):
            if v is None:
                good_idx.append(i)
                objs.append(None)
                continue
            try:
                obj = orjson.loads(v)
                if not self.unwrapped and obj is not None and not isinstance(obj, dict):
                    raise self.error(f"expected a JSON object, got {_json_kind(obj)}")
            except orjson.JSONDecodeError as e:
                bad.append((i, self._bad_reason(f"invalid JSON: {e}", i, topic, partition, offsets)))
                continue
            except SerdeError as e:
                bad.append((i, self._bad_reason(e.reason, i, topic, partition, offsets)))
                continue
            good_idx.append(i)
            objs.append(obj)

        if bad and self._parse_schema is not None:
            sub = [vals[i] for i in good_idx]
            if _all_objects(sub):
                table = self._fast(sub)
                if table is not None:
                    return table, bad

        rows: list[Any] = []
        for i, obj in zip(good_idx, objs):
            try:
                rows.append(self._convert(obj))
            except CoercionError as e:
                bad.append((i, self._bad_reason(str(e), i, topic, partition, offsets)))
            except SerdeError as e:
                bad.append((i, self._bad_reason(e.reason, i, topic, partition, offsets)))
        bad.sort()
        return self.rows_to_table(rows), bad

    def fast_table(self, values: Sequence[bytes | None]) -> pa.Table | None:
        """All records as an Arrow table in one NDJSON read, or None when any of them needs the
        per-record path (a NULL value, a non-object, a value Arrow would not coerce exactly)."""
        if self._parse_schema is None:
            return None
        vals = [v if type(v) is bytes else bytes(v) for v in values if v is not None]
        if len(vals) != len(values) or not _all_objects(vals):
            return None
        return self._fast(vals)

    def _bad_reason(
        self, reason: str, i: int, topic: str | None, partition: int | None, offsets: Sequence[int] | None
    ) -> str:
        return str(self.error(reason, topic, partition, offsets[i] if offsets is not None else None))

    def _fast(self, vals: list[bytes]) -> pa.Table | None:
        """All records read by Arrow in one go, or None if Arrow cannot read them exactly."""
        n = len(vals)
        if n == 0:
            return self.arrow_schema.empty_table()
        joined = b"\n".join(vals)
        if joined.count(b"\n") != n - 1 or b"\r" in joined:
            # raw newlines can only be whitespace between tokens in valid JSON
            vals = [v.replace(b"\n", b" ").replace(b"\r", b" ") for v in vals]
            joined = b"\n".join(vals)
        try:
            table = pajson.read_json(
                io.BytesIO(joined),
                read_options=pajson.ReadOptions(use_threads=True, block_size=max(1 << 20, len(joined) + 1)),
                parse_options=pajson.ParseOptions(
                    explicit_schema=self._parse_schema, unexpected_field_behavior="infer"
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
            return None
        if table.num_rows != n:
            return None
        expected: pa.Schema = self._parse_schema  # type: ignore[assignment]
        if not table.schema.equals(expected):
            table = self._align(table, expected)
            if table is None:
                return None
        if not expected.equals(self.arrow_schema):
            try:
                table = pa.Table.from_arrays(
                    [_cast_parsed(col, f.type) for col, f in zip(table.columns, self.arrow_schema)],
                    schema=self.arrow_schema,
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        return table

    def _align(self, table: pa.Table, expected: pa.Schema) -> pa.Table | None:
        """Columns of ``expected`` from a table read with extra (inferred) fields: unrelated
        fields are dropped; a field equal to a column but for case fills that column where the
        exact field is null (as :func:`coerce_fields` does). None when that cannot be exact."""
        names = table.schema.names
        variants: dict[str, list[str]] = {}
        for n in names:
            if expected.get_field_index(n) < 0 and n.upper() in self._upper:
                variants.setdefault(n.upper(), []).append(n)
        cols = []
        for f in expected:
            col = table.column(f.name)
            if not col.type.equals(f.type):
                return None
            alts = variants.get(f.name.upper(), [])
            if len(alts) > 1:
                return None  # several case variants: their order per record matters
            if alts:
                alt = table.column(alts[0])
                if not _safe_widening(alt.type, f.type):
                    return None
                try:
                    alt = alt.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    return None
                col = alt if col.null_count == len(col) else pc.coalesce(col, alt)
            cols.append(col)
        return pa.Table.from_arrays(cols, schema=expected)

    def serialize_batch(self, table: pa.Table | pa.RecordBatch, *, topic: str | None = None) -> list[bytes | None]:
        """Encode every row of ``table`` as JSON (one orjson call per row, no coercion: the
        table is already typed). Unwrapped: null values give None."""
        cols = []
        for col, c in zip(self.select_columns(table), self.schema.columns):
            wt = _wire_type(c.type)
            if wt is not None:  # temporal values as integers, cast in Arrow rather than per value
                try:
                    col = col.cast(c.type.to_arrow()).cast(wt)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
            cols.append(col)
        n = table.num_rows
        if not self.unwrapped and n and all(_polars_writable(col.type) for col in cols):
            # polars writes NDJSON in Rust: ~10x faster than to_pylist + orjson
            wire = pa.table(cols, names=self.schema.names)
            lines = pl.from_arrow(wire).write_ndjson().encode("utf-8").split(b"\n")  # type: ignore[union-attr]
            if len(lines) == n + 1:
                return lines[:n]  # type: ignore[return-value]
        pycols = [_to_pylist(col) for col in cols]
        if self.unwrapped:
            return [None if r is None else dumps(r) for r in pycols[0]]
        names = self.schema.names
        return [dumps(dict(zip(names, vals))) for vals in zip(*pycols)]


def _polars_writable(t: pa.DataType) -> bool:
    """Types polars writes to JSON exactly as ksqlDB does (no bytes, decimals, maps, structs)."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _polars_writable(t.value_type)
    return (
        pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_float64(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    )


_WIRE_INT = {"TIMESTAMP": pa.int64(), "DATE": pa.int32(), "TIME": pa.int32()}


def _wire_type(t: SqlType) -> pa.DataType | None:
    """``t`` in Arrow with TIMESTAMP/DATE/TIME as their integer encodings; None if ``t`` has none."""
    if t.base in _WIRE_INT:
        return _WIRE_INT[t.base]
    if t.base in ("ARRAY", "MAP"):
        el = _wire_type(t.element)  # type: ignore[arg-type]
        if el is None:
            return None
        return pa.list_(el) if t.base == "ARRAY" else pa.map_(pa.string(), el)
    if t.base == "STRUCT":
        subs = [_wire_type(f.type) for f in t.fields]
        if all(x is None for x in subs):
            return None
        return pa.struct([pa.field(f.name, x if x is not None else f.type.to_arrow()) for f, x in zip(t.fields, subs)])
    return None


def _safe_widening(inferred: pa.DataType, target: pa.DataType) -> bool:
    """True when an Arrow-inferred column converts to ``target`` exactly as coercion would."""
    if inferred.equals(target) or pa.types.is_null(inferred):
        return True
    if pa.types.is_int64(inferred):
        return pa.types.is_integer(target) or pa.types.is_float64(target)
    if pa.types.is_list(inferred) and pa.types.is_list(target):
        return _safe_widening(inferred.value_type, target.value_type)
    return False


def _cast_parsed(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    return col if col.type.equals(target) else col.cast(target)


def _all_objects(vals: list[bytes]) -> bool:
    """True when every record starts with ``{`` (Arrow's reader must never see a bare scalar)."""
    for v in vals:
        if v[:1] != b"{" and v.lstrip()[:1] != b"{":
            return False
    return True


def _json_kind(obj: Any) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, int | float):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, list):
        return "an array"
    return "an object"
