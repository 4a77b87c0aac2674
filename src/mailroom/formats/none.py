"""The NONE format: no data (ksqlDB ``KEY_FORMAT='NONE'`` for streams without keys).

Every value serializes to None and every record deserializes to None, whatever its bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ._base import BatchResult, Serde
from .types import Schema, SqlType


class NoneSerde(Serde):
    """NONE format serde: always None, no columns."""

    format = "NONE"

    def __init__(self, schema: Schema | SqlType | None = None, **_props: Any) -> None:
        if schema is not None and not (isinstance(schema, Schema) and len(schema) == 0):
            raise self.config_error("the NONE format holds no columns; pass schema=None")
        self.schema = Schema()
        self.unwrapped = True
        self.arrow_schema = pa.schema([])

    def _encode(self, value: Any) -> bytes:  # pragma: no cover - serialize never calls it
        raise NotImplementedError

    def _decode(self, data: bytes) -> Any:  # pragma: no cover - deserialize never calls it
        raise NotImplementedError

    def serialize(self, value: Any, *, topic: str | None = None) -> None:
        """Always None."""
        return None

    def deserialize(
        self, data: bytes | None, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> None:
        """Always None (the bytes are ignored)."""
        return None

    def deserialize_batch(
        self,
        values: Sequence[bytes | None],
        *,
        topic: str | None = None,
        partition: int | None = None,
        offsets: Sequence[int] | None = None,
    ) -> BatchResult:
        """A table with no columns and one row per value; nothing is ever bad."""
        return pa.table({"_": pa.nulls(len(values))}).drop_columns(["_"]), []

    def serialize_batch(self, table: pa.Table | pa.RecordBatch, *, topic: str | None = None) -> list[bytes | None]:
        """None for every row."""
        return [None] * table.num_rows

