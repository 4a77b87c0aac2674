"""DELIMITED format: layout, delimiters, empty fields as null, coercion, column counts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from mailroom.errors import SerdeError
from mailroom.formats import Schema, SqlType, serde_for

SCHEMA = Schema.parse("ID INT, NAME STRING, PRICE DECIMAL(6,2), OK BOOLEAN")


def test_layout_and_round_trip() -> None:
    s = serde_for("DELIMITED", SCHEMA)
    data = s.serialize({"ID": 1, "NAME": 'a,"b"', "PRICE": Decimal("2.5"), "OK": False})
    assert data == b'1,"a,""b""",2.50,false'
    assert s.deserialize(data) == {"ID": 1, "NAME": 'a,"b"', "PRICE": Decimal("2.50"), "OK": False}


def test_empty_fields_are_null() -> None:
    s = serde_for("DELIMITED", SCHEMA)
    assert s.deserialize(b"7,,,") == {"ID": 7, "NAME": None, "PRICE": None, "OK": None}
    assert s.serialize({"ID": None, "NAME": None}) == b",,,"
    assert s.serialize(None) is None and s.deserialize(None) is None


def test_custom_delimiters() -> None:
    s = serde_for("DELIMITED", SCHEMA, delimiter="|")
    assert s.serialize({"ID": 1, "NAME": "x,y"}) == b"1|x,y||"
    assert s.deserialize(b"2|a|1.25|true") == {"ID": 2, "NAME": "a", "PRICE": Decimal("1.25"), "OK": True}
    tab = serde_for("DELIMITED", SCHEMA, delimiter="TAB")
    assert tab.deserialize(b"3\tb\t\t") == {"ID": 3, "NAME": "b", "PRICE": None, "OK": None}
    with pytest.raises(SerdeError, match="delimiter"):
        serde_for("DELIMITED", SCHEMA, delimiter="ab")


def test_temporal_and_bytes_encodings() -> None:
    s = serde_for("DELIMITED", Schema.parse("TS TIMESTAMP, D DATE, T TIME, B BYTES"))
    row = {"TS": dt.datetime(1970, 1, 1, 0, 0, 1), "D": dt.date(1970, 1, 3), "T": dt.time(0, 0, 2), "B": b"hi"}
    assert s.serialize(row) == b"1000,2,2000,aGk="
    assert s.deserialize(b"1000,2,2000,aGk=") == row


def test_wrong_column_count() -> None:
    s = serde_for("DELIMITED", SCHEMA)
    with pytest.raises(SerdeError) as ei:
        s.deserialize(b"1,2", topic="prices", partition=1, offset=77)
    msg = str(ei.value)
    assert "DELIMITED" in msg and "expected 4 field(s)" in msg and "got 2" in msg
    assert "topic=prices" in msg and "partition=1" in msg and "offset=77" in msg
    with pytest.raises(SerdeError, match="got 5"):
        s.deserialize(b"1,a,1,true,extra")


def test_coercion_errors() -> None:
    s = serde_for("DELIMITED", SCHEMA)
    with pytest.raises(SerdeError, match="INT"):
        s.deserialize(b"x,a,1,true")
    with pytest.raises(SerdeError, match="out of range"):
        s.deserialize(b"9999999999,a,1,true")
    with pytest.raises(SerdeError, match="BOOLEAN"):
        s.deserialize(b"1,a,1,maybe")
    with pytest.raises(SerdeError, match="UTF-8"):
        s.deserialize(b"1,\xff,1,true")


def test_single_value_and_unsupported_types() -> None:
    s = serde_for("DELIMITED", SqlType.DOUBLE)
    assert s.serialize(1.5) == b"1.5" and s.deserialize(b"2.5") == 2.5
    with pytest.raises(SerdeError, match="ARRAY"):
        serde_for("DELIMITED", Schema.parse("A ARRAY<INT>"))


def test_batch() -> None:
    s = serde_for("DELIMITED", SCHEMA)
    table, bad = s.deserialize_batch([b"1,a,1.5,true", b"2,b", None, b"3,,,"], topic="t", offsets=[10, 11, 12, 13])
    assert [i for i, _ in bad] == [1] and "offset=11" in bad[0][1]
    assert table.column("ID").to_pylist() == [1, None, 3]
    assert table.schema.field("PRICE").type == pa.decimal128(6, 2)
    assert s.serialize_batch(table.slice(0, 1)) == [b"1,a,1.50,true"]


def test_first_field_starting_with_a_non_alphanumeric_is_quoted() -> None:
    """Commons CSV (as ksqlDB uses it) quotes a record's first field unless it starts with a letter or digit."""
    s = serde_for("DELIMITED", Schema.parse("A INT, B INT"))
    assert s.serialize({"A": -1, "B": -2}) == b'"-1",-2'
    assert s.serialize({"A": 1, "B": -2}) == b"1,-2"


def test_decimal_with_more_digits_than_pythons_default_context() -> None:
    s = serde_for("DELIMITED", Schema.parse("V DECIMAL(33, 16)"))
    assert s.deserialize(b"12345678987654321.2345678987654321") == {"V": Decimal("12345678987654321.2345678987654321")}
    assert s.deserialize(b".12") == {"V": Decimal("0.1200000000000000")}
    assert s.serialize({"V": Decimal("12345678987654321.2345678987654321")}) == b"12345678987654321.2345678987654321"
