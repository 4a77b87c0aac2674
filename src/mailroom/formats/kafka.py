"""The KAFKA format: Kafka's own primitive serializers, as ksqlDB uses them.

=======  ==========================================
INT      4 bytes, big-endian, signed
BIGINT   8 bytes, big-endian, signed
DOUBLE   8 bytes, IEEE-754 big-endian
STRING   UTF-8
BYTES    the bytes themselves
=======  ==========================================

A null value is a null record (None). The format holds a single value, so a KAFKA serde is
always *unwrapped*. Batches decode without per-record Python for fixed-width types: the values
are joined and read with :func:`numpy.frombuffer`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mailroom.errors import SerdeError

from ._base import BatchResult, Serde
from ._values import BIGINT_MAX, BIGINT_MIN, INT_MAX, INT_MIN
from .types import Schema, SqlType

#: SQL types the KAFKA format supports, with their fixed width (None = variable).
SUPPORTED: dict[str, int | None] = {"INT": 4, "BIGINT": 8, "DOUBLE": 8, "STRING": None, "BYTES": None}
_NP = {"INT": ">i4", "BIGINT": ">i8", "DOUBLE": ">f8"}
_STRUCT = {"INT": struct.Struct(">i"), "BIGINT": struct.Struct(">q"), "DOUBLE": struct.Struct(">d")}


def encode_int(value: int) -> bytes:
    """INT as 4 big-endian bytes (SerdeError when out of range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not INT_MIN <= value <= INT_MAX:
        raise SerdeError(f"INT needs an int in [{INT_MIN}, {INT_MAX}], got {value!r}", format="KAFKA")
    return _STRUCT["INT"].pack(value)


def encode_bigint(value: int) -> bytes:
    """BIGINT as 8 big-endian bytes (SerdeError when out of range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not BIGINT_MIN <= value <= BIGINT_MAX:
        raise SerdeError(f"BIGINT needs an int in [{BIGINT_MIN}, {BIGINT_MAX}], got {value!r}", format="KAFKA")
    return _STRUCT["BIGINT"].pack(value)


def encode_double(value: float) -> bytes:
    """DOUBLE as 8 IEEE-754 big-endian bytes."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SerdeError(f"DOUBLE needs a float, got {value!r}", format="KAFKA")
    return _STRUCT["DOUBLE"].pack(float(value))


class KafkaSerde(Serde):
    """KAFKA format serde of one INT, BIGINT, DOUBLE, STRING or BYTES value."""

    format = "KAFKA"

    def __init__(self, schema: Schema | SqlType | None, *, wrapped: bool | None = None, column: str | None = None) -> None:
        if wrapped:
            raise self.config_error("the KAFKA format holds a single value and cannot be wrapped")
        if isinstance(schema, Schema) and len(schema) != 1:
            raise self.config_error(f"the KAFKA format holds exactly one column, schema has {len(schema)}")
        super().__init__(schema, wrapped=False, column=column)
        self.type = self.schema.columns[0].type
        if self.type.base not in SUPPORTED:
            raise self.config_error(
                f"type {self.type} is not supported (supported: {', '.join(SUPPORTED)})"
            )
        self.base = self.type.base
        self.width = SUPPORTED[self.base]

    def _encode(self, value: Any) -> bytes:
        b = self.base
        if b == "INT":
            return encode_int(value)
        if b == "BIGINT":
            return encode_bigint(value)
        if b == "DOUBLE":
            return encode_double(value)
        if b == "STRING":
            if not isinstance(value, str):
                raise self.error(f"STRING needs a str, got {type(value).__name__}")
            return value.encode("utf-8")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise self.error(f"BYTES needs bytes, got {type(value).__name__}")
        return bytes(value)

    def _decode(self, data: bytes) -> Any:
        b = self.base
        if self.width is not None:
            if len(data) != self.width:
                raise self.error(f"{b} needs {self.width} bytes, got {len(data)}")
            return _STRUCT[b].unpack(data)[0]
        if b == "STRING":
            try:
                return bytes(data).decode("utf-8")
            except UnicodeDecodeError as e:
                raise self.error(f"STRING is not valid UTF-8: {e.reason} at byte {e.start}") from None
        return bytes(data)

    def deserialize_batch(
        self,
        values: Sequence[bytes | None],
        *,
        topic: str | None = None,
        partition: int | None = None,
        offsets: Sequence[int] | None = None,
    ) -> BatchResult:
        """Decode many values at once (numpy for fixed widths, one Arrow cast for STRING)."""
        name = self.schema.columns[0].name

        def bad_entry(i: int, reason: str) -> tuple[int, str]:
            off = offsets[i] if offsets is not None else None
            return i, str(self.error(reason, topic, partition, off))

        n = len(values)
        if self.width is not None:
            w = self.width
            lens = np.fromiter((-1 if v is None else len(v) for v in values), dtype=np.int64, count=n)
            nulls = lens == -1
            wrong = ~nulls & (lens != w)
            bad = [bad_entry(int(i), f"{self.base} needs {w} bytes, got {int(lens[i])}") for i in np.flatnonzero(wrong)]
            keep = ~wrong
            good = values if not bad else [v for v, k in zip(values, keep) if k]
            good_nulls = nulls[keep]
            if good_nulls.any():
                buf = b"".join(v if v is not None else b"\x00" * w for v in good)
            else:
                buf = b"".join(good)  # type: ignore[arg-type]
            arr = np.frombuffer(buf, dtype=_NP[self.base]).astype(_NP[self.base].replace(">", "="))
            out = pa.array(arr, mask=good_nulls if good_nulls.any() else None, type=self.type.to_arrow())
            return pa.table({name: out}, schema=self.arrow_schema), bad
        raw = pa.array(values, type=pa.binary())
        if self.base == "BYTES":
            return pa.table({name: raw}, schema=self.arrow_schema), []
        try:
            return pa.table({name: raw.cast(pa.string())}, schema=self.arrow_schema), []
        except pa.ArrowInvalid:
            pass
        bad = []
        good_idx = []
        for i, v in enumerate(values):
            if v is None:
                good_idx.append(i)
                continue
            try:
                bytes(v).decode("utf-8")
                good_idx.append(i)
            except UnicodeDecodeError as e:
                bad.append(bad_entry(i, f"STRING is not valid UTF-8: {e.reason} at byte {e.start}"))
        out = raw.take(pa.array(good_idx, type=pa.int64())).cast(pa.string())
        return pa.table({name: out}, schema=self.arrow_schema), bad

    def serialize_batch(self, table: pa.Table | pa.RecordBatch, *, topic: str | None = None) -> list[bytes | None]:
        """Encode a column at once (numpy for fixed widths); nulls give None."""
        col = self.select_columns(table)[0]
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        n = len(col)
        if self.width is None:
            if self.base == "STRING" and not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
                raise self.error(f"STRING needs a string column, got {col.type}", topic)
            if self.base == "STRING":
                col = col.cast(pa.binary())
            return col.to_pylist()
        w = self.width
        try:
            target = self.type.to_arrow()
            if self.base != "DOUBLE" and pa.types.is_floating(col.type):
                raise pa.ArrowInvalid(f"float column {col.type} for {self.base}")
            col = col.cast(target)  # safe cast: range-checked
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise self.error(f"column of {col.type} cannot be written as {self.base}: {e}", topic) from None
        filled = pc.fill_null(col, 0) if col.null_count else col
        buf = filled.to_numpy(zero_copy_only=False).astype(_NP[self.base]).tobytes()
        out: list[bytes | None] = [buf[i * w : (i + 1) * w] for i in range(n)]
        if col.null_count:
            for i in np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False)):
                out[i] = None
        return out

