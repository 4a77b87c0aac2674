"""Serdes compatible with ksqlDB's wire formats: KAFKA, JSON, DELIMITED, NONE, AVRO.

    from mailroom.formats import serde_for, Schema, SqlType
    value = serde_for("JSON", Schema.parse("ID BIGINT, NAME STRING"))
    value.serialize({"id": 1, "name": "a"})          # b'{"ID":1,"NAME":"a"}'
    value.deserialize(b'{"name": "b"}', topic="t", partition=0, offset=7)
    table, bad = value.deserialize_batch(records)     # pyarrow.Table + [(index, reason)]
    key = serde_for("KAFKA", SqlType.BIGINT)
    key.serialize(-1)                                 # b'\\xff' * 8

This layer imports only the standard library, third-party libraries and
:mod:`mailroom.errors`. Every malformed input raises :class:`~mailroom.errors.SerdeError`.
"""

from __future__ import annotations

from typing import Any

from mailroom.errors import SerdeError

from ._base import Serde
from .avro import AvroSerde, avro_schema_for
from .delimited import DelimitedSerde
from .json import JsonSerde
from .kafka import KafkaSerde
from .none import NoneSerde
from .types import Column, Schema, SqlType
from .windowed import (
    WindowedKey,
    decode_session_windowed,
    decode_session_windowed_batch,
    decode_time_windowed,
    decode_time_windowed_batch,
    encode_session_windowed,
    encode_session_windowed_batch,
    encode_time_windowed,
    encode_time_windowed_batch,
)

#: Serde class of each format name.
FORMATS: dict[str, type[Serde]] = {
    "AVRO": AvroSerde,
    "DELIMITED": DelimitedSerde,
    "JSON": JsonSerde,
    "KAFKA": KafkaSerde,
    "NONE": NoneSerde,
}


class UnknownFormatError(SerdeError, ValueError):
    """A format name that is not one of :data:`FORMATS`."""


def serde_for(format_name: str, schema: Schema | SqlType | None, **props: Any) -> Serde:
    """The serde of ``format_name`` (case-insensitive) for ``schema``.

    ``props`` are passed to the serde: ``wrapped`` (JSON/AVRO/DELIMITED; False is ksqlDB's
    ``WRAP_SINGLE_VALUE=false``), ``column`` (name of the single column of a bare SqlType),
    ``delimiter`` (DELIMITED), ``avro_schema``, ``confluent_framing``, ``schema_id`` (AVRO).
    A string schema is parsed with :meth:`Schema.parse`.
    """
    name = format_name.strip().upper() if isinstance(format_name, str) else format_name
    cls = FORMATS.get(name)  # type: ignore[arg-type]
    if cls is None:
        raise UnknownFormatError(
            f"unknown format {format_name!r}; known formats: {', '.join(sorted(FORMATS))}", format=str(format_name)
        )
    if isinstance(schema, str):
        schema = Schema.parse(schema)
    try:
        return cls(schema, **props)
    except TypeError as e:
        raise SerdeError(f"bad properties {sorted(props)}: {e}", format=name) from None


__all__ = [
    "FORMATS",
    "AvroSerde",
    "Column",
    "DelimitedSerde",
    "JsonSerde",
    "KafkaSerde",
    "NoneSerde",
    "Schema",
    "Serde",
    "SqlType",
    "UnknownFormatError",
    "WindowedKey",
    "avro_schema_for",
    "decode_session_windowed",
    "decode_session_windowed_batch",
    "decode_time_windowed",
    "decode_time_windowed_batch",
    "encode_session_windowed",
    "encode_session_windowed_batch",
    "encode_time_windowed",
    "encode_time_windowed_batch",
    "serde_for",
]
