"""serde_for: format names, props, errors, and the Serde interface shared by every format."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mailroom.errors import SerdeError
from mailroom.formats import (
    FORMATS,
    AvroSerde,
    DelimitedSerde,
    JsonSerde,
    KafkaSerde,
    NoneSerde,
    Schema,
    SqlType,
    UnknownFormatError,
    serde_for,
)


@pytest.mark.parametrize(
    "name, schema, cls",
    [
        ("kafka", SqlType.INT, KafkaSerde),
        ("Json", Schema.parse("A INT"), JsonSerde),
        ("DELIMITED", Schema.parse("A INT"), DelimitedSerde),
        ("none", None, NoneSerde),
        ("avro", Schema.parse("A INT"), AvroSerde),
    ],
)
def test_names_are_case_insensitive(name: str, schema: object, cls: type) -> None:
    assert type(serde_for(name, schema)) is cls  # type: ignore[arg-type]


def test_unknown_format_lists_known() -> None:
    with pytest.raises(UnknownFormatError) as ei:
        serde_for("PROTOBUF", None)
    msg = str(ei.value)
    assert "PROTOBUF" in msg
    for known in ("AVRO", "DELIMITED", "JSON", "KAFKA", "NONE"):
        assert known in msg
    assert isinstance(ei.value, SerdeError) and isinstance(ei.value, ValueError)
    assert sorted(FORMATS) == ["AVRO", "DELIMITED", "JSON", "KAFKA", "NONE"]


def test_bad_props_and_missing_schema() -> None:
    with pytest.raises(SerdeError, match="bad properties"):
        serde_for("JSON", Schema.parse("A INT"), delimiter=";")
    with pytest.raises(SerdeError, match="needs a schema"):
        serde_for("JSON", None)
    with pytest.raises(SerdeError, match="NONE"):
        serde_for("NONE", Schema.parse("A INT"))


def test_string_schema_is_parsed() -> None:
    s = serde_for("JSON", "id BIGINT, `name` STRING")  # type: ignore[arg-type]
    assert s.schema.names == ["ID", "name"]
    assert s.serialize({"ID": 1, "name": "x"}) == b'{"ID":1,"name":"x"}'


def test_none_format() -> None:
    s = serde_for("NONE", None)
    assert s.serialize({"anything": 1}) is None
    assert s.deserialize(b"\x00garbage") is None
    table, bad = s.deserialize_batch([b"x", None, b"y"])
    assert (table.num_rows, table.num_columns, bad) == (3, 0, [])
    assert s.serialize_batch(pa.table({"a": [1, 2]})) == [None, None]


@pytest.mark.parametrize("fmt", ["JSON", "DELIMITED", "AVRO"])
def test_same_rows_through_every_row_format(fmt: str) -> None:
    schema = Schema.parse("ID BIGINT, NAME STRING, SCORE DOUBLE")
    s = serde_for(fmt, schema)
    rows = [{"ID": i, "NAME": f"n{i}", "SCORE": i / 2} for i in range(50)] + [{"ID": None, "NAME": None, "SCORE": None}]
    encoded = [s.serialize(r) for r in rows]
    assert all(isinstance(e, bytes) for e in encoded)
    assert [s.deserialize(e) for e in encoded] == rows
    table, bad = s.deserialize_batch(encoded)
    assert bad == [] and table.to_pylist() == rows and table.schema == schema.to_arrow()
    assert s.serialize_batch(table) == encoded


@pytest.mark.parametrize("fmt", ["KAFKA", "JSON", "DELIMITED", "AVRO"])
def test_error_carries_position_for_every_format(fmt: str) -> None:
    s = serde_for(fmt, SqlType.INT)
    garbage = {"KAFKA": b"\x01", "JSON": b"{", "DELIMITED": b"x", "AVRO": b""}[fmt]
    with pytest.raises(SerdeError) as ei:
        s.deserialize(garbage, topic="tp", partition=7, offset=123)
    e = ei.value
    assert (e.format, e.topic, e.partition, e.offset) == (fmt, "tp", 7, 123)
    assert str(e).startswith(f"{fmt} serde error (topic=tp, partition=7, offset=123): ")
