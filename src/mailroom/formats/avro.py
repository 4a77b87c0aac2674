"""The AVRO format, through fastavro.

The Avro schema is given inline (``avro_schema=`` a dict or JSON text) or generated from the
SQL schema the way ksqlDB does: a record named ``KsqlDataSourceSchema`` in namespace
``io.confluent.ksql.avro_schemas``, every field an optional union ``["null", T]`` with default
null (see :func:`avro_schema_for`).

Payloads are Avro binary without framing by default. With ``confluent_framing=True`` they use
the Confluent Schema Registry wire format: magic byte ``0``, the 4-byte big-endian schema id
(``schema_id=``), then the Avro binary. On read, the id is not looked up (no registry yet): the
payload is read with this serde's schema, and with ``schema_id`` set a different id is an error.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro
import orjson

from ._base import Serde
from ._values import coerce, coerce_fields
from .types import Schema, SqlType

DEFAULT_RECORD_NAME = "KsqlDataSourceSchema"
DEFAULT_NAMESPACE = "io.confluent.ksql.avro_schemas"
MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


def avro_type_for(t: SqlType, name: str = DEFAULT_RECORD_NAME, optional: bool = True) -> Any:
    """The Avro type of SQL type ``t`` (``["null", T]`` when ``optional``); nested records are
    named ``<name>_<FIELD>`` like ksqlDB names them."""
    b = t.base
    inner: Any
    if b == "BOOLEAN":
        inner = "boolean"
    elif b == "INT":
        inner = "int"
    elif b == "BIGINT":
        inner = "long"
    elif b == "DOUBLE":
        inner = "double"
    elif b == "STRING":
        inner = "string"
    elif b == "BYTES":
        inner = "bytes"
    elif b == "DECIMAL":
        inner = {"type": "bytes", "logicalType": "decimal", "precision": t.precision, "scale": t.scale}
    elif b == "TIMESTAMP":
        inner = {"type": "long", "logicalType": "timestamp-millis"}
    elif b == "DATE":
        inner = {"type": "int", "logicalType": "date"}
    elif b == "TIME":
        inner = {"type": "int", "logicalType": "time-millis"}
    elif b == "ARRAY":
        inner = {"type": "array", "items": avro_type_for(t.element, f"{name}_element")}  # type: ignore[arg-type]
    elif b == "MAP":
        inner = {"type": "map", "values": avro_type_for(t.element, f"{name}_value")}  # type: ignore[arg-type]
    else:  # STRUCT
        inner = {
            "type": "record",
            "name": name,
            "fields": [
                {"name": f.name, "type": avro_type_for(f.type, f"{name}_{f.name}"), "default": None} for f in t.fields
            ],
        }
    return ["null", inner] if optional else inner


def avro_schema_for(
    schema: Schema | SqlType, name: str = DEFAULT_RECORD_NAME, namespace: str = DEFAULT_NAMESPACE
) -> dict[str, Any] | list[Any]:
    """The Avro schema ksqlDB would generate: a record of optional fields for a Schema, an
    optional bare type for a SqlType (an unwrapped single value)."""
    if isinstance(schema, Schema):
        rec = avro_type_for(schema.as_struct(), name, optional=False)
        rec["namespace"] = namespace
        return rec  # type: ignore[no-any-return]
    inner = avro_type_for(schema, name, optional=True)
    if isinstance(inner[1], dict) and inner[1].get("type") == "record":
        inner[1]["namespace"] = namespace
    return inner  # type: ignore[no-any-return]


def frame(schema_id: int, payload: bytes) -> bytes:
    """Confluent wire framing: magic byte 0 + 4-byte big-endian schema id + payload."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + payload


class AvroSerde(Serde):
    """AVRO format serde (see the module docs)."""

    format = "AVRO"

    def __init__(
        self,
        schema: Schema | SqlType | None,
        *,
        avro_schema: dict[str, Any] | list[Any] | str | None = None,
        confluent_framing: bool = False,
        schema_id: int | None = None,
        wrapped: bool | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(schema, wrapped=wrapped, column=column)
        if avro_schema is None:
            avro_schema = avro_schema_for(self.schema.columns[0].type if self.unwrapped else self.schema)
        elif isinstance(avro_schema, str | bytes):
            try:
                avro_schema = orjson.loads(avro_schema)
            except orjson.JSONDecodeError as e:
                raise self.config_error(f"avro_schema is not valid JSON: {e}") from None
        try:
            self.parsed_schema = fastavro.parse_schema(avro_schema)
        except Exception as e:  # fastavro raises several types for bad schemas
            raise self.config_error(f"invalid Avro schema: {e}") from None
        #: The Avro schema (as given or generated).
        self.avro_schema = avro_schema
        self.confluent_framing = confluent_framing
        if schema_id is not None and not 0 <= schema_id < 2**32:
            raise self.config_error(f"schema_id must fit 4 unsigned bytes, got {schema_id}")
        self.schema_id = schema_id

    def _encode(self, value: Any) -> bytes:
        if self.unwrapped:
            datum = coerce(value, self.schema.columns[0].type)
        else:
            if not isinstance(value, dict):
                raise self.error(f"a row must be a dict keyed by column name, got {type(value).__name__}")
            datum = coerce_fields(value, self.schema.columns)
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, self.parsed_schema, datum)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError, struct.error) as e:
            raise self.error(f"value does not match the Avro schema: {e}") from None
        payload = buf.getvalue()
        return frame(self.schema_id or 0, payload) if self.confluent_framing else payload

    def _decode(self, data: bytes) -> Any:
        data = bytes(data)
        if self.confluent_framing:
            if len(data) < _HEADER.size:
                raise self.error(f"Confluent framing needs at least {_HEADER.size} bytes, got {len(data)}")
            magic, sid = _HEADER.unpack_from(data)
            if magic != MAGIC_BYTE:
                raise self.error(f"unknown magic byte {magic} (Confluent framing starts with 0)")
            if self.schema_id is not None and sid != self.schema_id:
                raise self.error(f"schema id {sid} is not the expected {self.schema_id}")
            data = data[_HEADER.size :]
        buf = io.BytesIO(data)
        try:
            datum = fastavro.schemaless_reader(buf, self.parsed_schema, None)
        except (EOFError, ValueError, IndexError, TypeError, UnicodeDecodeError, OverflowError, struct.error) as e:
            why = "unexpected end of data" if isinstance(e, EOFError) else f"{type(e).__name__}: {e}"
            raise self.error(f"malformed Avro payload: {why}") from None
        if buf.tell() != len(data):
            raise self.error(f"{len(data) - buf.tell()} trailing byte(s) after the Avro payload")
        if self.unwrapped:
            return coerce(datum, self.schema.columns[0].type)
        if datum is None:
            return None
        if not isinstance(datum, dict):
            raise self.error(f"Avro schema gives {type(datum).__name__}, expected a record")
        return coerce_fields(datum, self.schema.columns)
