"""AVRO format: generated schemas, inline schemas, round trips, Confluent framing, errors."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import fastavro
import pytest

from mailroom.errors import SerdeError
from mailroom.formats import Schema, SqlType, avro_schema_for, serde_for

SCHEMA = Schema.parse("ID BIGINT, NAME STRING")


def test_generated_schema_shape() -> None:
    avro = avro_schema_for(Schema.parse("ID BIGINT, S STRUCT<X INT>, P DECIMAL(5,2)"))
    assert avro["type"] == "record" and avro["name"] == "KsqlDataSourceSchema"  # type: ignore[index,call-overload]
    fields = {f["name"]: f for f in avro["fields"]}  # type: ignore[index,call-overload]
    assert fields["ID"]["type"] == ["null", "long"] and fields["ID"]["default"] is None
    assert fields["S"]["type"][1]["name"] == "KsqlDataSourceSchema_S"
    assert fields["P"]["type"][1] == {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}


def test_layout_matches_fastavro_and_round_trips() -> None:
    s = serde_for("AVRO", SCHEMA)
    data = s.serialize({"id": 3, "name": "ab"})
    # union branch 1, zigzag(3)=6, union branch 1, len 2 (zigzag 4), "ab"
    assert data == b"\x02\x06\x02\x04ab"
    assert s.deserialize(data) == {"ID": 3, "NAME": "ab"}
    assert s.deserialize(s.serialize({"ID": None})) == {"ID": None, "NAME": None}


def test_rich_types() -> None:
    s = serde_for("AVRO", Schema.parse("P DECIMAL(6,2), TS TIMESTAMP, D DATE, T TIME, M MAP<STRING, INT>, A ARRAY<STRING>, B BYTES"))
    row = {
        "P": Decimal("12.34"),
        "TS": dt.datetime(2024, 5, 6, 7, 8, 9, 123000),
        "D": dt.date(2024, 5, 6),
        "T": dt.time(7, 8, 9, 123000),
        "M": {"a": 1, "b": None},
        "A": ["x", None],
        "B": b"\x00\x01",
    }
    assert s.deserialize(s.serialize(row)) == row


def test_inline_schema_as_json_text() -> None:
    avro = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "long"}, {"name": "tag", "type": "string"}]}
    s = serde_for("AVRO", Schema.parse("ID BIGINT, TAG STRING"), avro_schema=json.dumps(avro))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(avro), {"id": 5, "tag": "t"})
    # Avro field "id" fills column ID, like ksqlDB's case-insensitive matching
    assert s.deserialize(buf.getvalue()) == {"ID": 5, "TAG": "t"}
    with pytest.raises(SerdeError, match="Avro"):
        serde_for("AVRO", SCHEMA, avro_schema='{"type": "nope"}')


def test_unwrapped_value() -> None:
    s = serde_for("AVRO", SqlType.STRING)
    assert s.serialize("hi") == b"\x02\x04hi"
    assert s.deserialize(b"\x02\x04hi") == "hi"
    assert s.deserialize(b"\x00") is None


def test_confluent_framing() -> None:
    s = serde_for("AVRO", SCHEMA, confluent_framing=True, schema_id=258)
    data = s.serialize({"ID": 1, "NAME": "a"})
    assert data[:5] == b"\x00\x00\x00\x01\x02"
    assert data[5:] == serde_for("AVRO", SCHEMA).serialize({"ID": 1, "NAME": "a"})
    assert s.deserialize(data) == {"ID": 1, "NAME": "a"}
    with pytest.raises(SerdeError, match="magic byte 1") as ei:
        s.deserialize(b"\x01" + data[1:], topic="t", partition=0, offset=3)
    assert "offset=3" in str(ei.value) and "AVRO" in str(ei.value)
    with pytest.raises(SerdeError, match="at least 5 bytes"):
        s.deserialize(b"\x00\x00")
    with pytest.raises(SerdeError, match="schema id 7"):
        s.deserialize(b"\x00\x00\x00\x00\x07" + data[5:])


def test_malformed_payloads() -> None:
    s = serde_for("AVRO", SCHEMA)
    with pytest.raises(SerdeError, match="malformed Avro") as ei:
        s.deserialize(b"\x02", topic="users", partition=2, offset=99)
    assert (ei.value.topic, ei.value.partition, ei.value.offset, ei.value.format) == ("users", 2, 99, "AVRO")
    with pytest.raises(SerdeError, match="trailing"):
        s.deserialize(b"\x02\x06\x02\x04abXX")
    with pytest.raises(SerdeError, match="BIGINT"):
        s.serialize({"ID": "x"})


def test_batch() -> None:
    s = serde_for("AVRO", SCHEMA)
    good = [s.serialize({"ID": i, "NAME": str(i)}) for i in range(100)]
    vals = list(good)
    vals[40] = b"\x04"
    table, bad = s.deserialize_batch(vals, offsets=range(100))
    assert [i for i, _ in bad] == [40] and "offset=40" in bad[0][1]
    assert table.num_rows == 99 and table.column("ID").to_pylist()[40] == 41
    assert s.serialize_batch(table.slice(0, 2)) == good[:2]
