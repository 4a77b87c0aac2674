"""JSON format: ksqlDB field matching, coercions, nulls, wrapping, columnar batches."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pyarrow as pa
import pytest

from mailroom.errors import SerdeError
from mailroom.formats import Schema, SqlType, serde_for
from mailroom.formats.json import JsonSerde

SCHEMA = Schema.parse("ID BIGINT, NAME STRING, SCORE DOUBLE, OK BOOLEAN")


def test_serialize_layout_and_round_trip() -> None:
    s = serde_for("JSON", SCHEMA)
    data = s.serialize({"ID": 1, "NAME": "a", "SCORE": 0.5, "OK": True})
    assert data == b'{"ID":1,"NAME":"a","SCORE":0.5,"OK":true}'
    assert s.deserialize(data) == {"ID": 1, "NAME": "a", "SCORE": 0.5, "OK": True}


def test_case_insensitive_fields_like_ksqldb() -> None:
    s = serde_for("JSON", SCHEMA)
    row = s.deserialize(b'{"name": "bob", "Id": 7, "extra": 1}')
    assert row == {"ID": 7, "NAME": "bob", "SCORE": None, "OK": None}
    # exact match wins over a case-insensitive one
    assert s.deserialize(b'{"name": "low", "NAME": "exact"}')["NAME"] == "exact"
    # serialize accepts lower-case keys too, and writes column names
    assert s.serialize({"id": 2}) == b'{"ID":2,"NAME":null,"SCORE":null,"OK":null}'


def test_coercions() -> None:
    s = serde_for("JSON", SCHEMA)
    row = s.deserialize(b'{"ID": "12", "NAME": 3.5, "SCORE": "2.5", "OK": "TRUE"}')
    assert row == {"ID": 12, "NAME": "3.5", "SCORE": 2.5, "OK": True}
    assert s.deserialize(b'{"ID": 9.9, "NAME": true}') == {"ID": 9, "NAME": "true", "SCORE": None, "OK": None}
    assert s.deserialize(b'{"NAME": {"a": [1]}}')["NAME"] == '{"a":[1]}'
    assert s.deserialize(b'{"SCORE": 3}')["SCORE"] == 3.0


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b'{"ID": "abc"}', "BIGINT"),
        (b'{"ID": true}', "BIGINT"),
        (b'{"ID": 9223372036854775808}', "BIGINT"),
        (b'{"OK": 1}', "BOOLEAN"),
        (b'{"SCORE": [1]}', "DOUBLE"),
    ],
)
def test_type_mismatch_raises(payload: bytes, needle: str) -> None:
    s = serde_for("JSON", SCHEMA)
    with pytest.raises(SerdeError) as ei:
        s.deserialize(payload, topic="users", partition=0, offset=11)
    msg = str(ei.value)
    assert needle in msg and "JSON" in msg and "topic=users" in msg and "offset=11" in msg
    assert ei.value.partition == 0


def test_malformed_json_and_non_object() -> None:
    s = serde_for("JSON", SCHEMA)
    with pytest.raises(SerdeError, match="invalid JSON") as ei:
        s.deserialize(b'{"ID": 1', topic="t", partition=2, offset=5)
    assert (ei.value.topic, ei.value.partition, ei.value.offset) == ("t", 2, 5)
    with pytest.raises(SerdeError, match="expected a JSON object"):
        s.deserialize(b"[1, 2]")


def test_nulls() -> None:
    s = serde_for("JSON", SCHEMA)
    assert s.serialize(None) is None
    assert s.deserialize(None) is None
    assert s.deserialize(b"null") is None
    assert s.deserialize(b'{"ID": null}') == {"ID": None, "NAME": None, "SCORE": None, "OK": None}


def test_unwrapped_single_value() -> None:
    s = serde_for("JSON", Schema.parse("NAME STRING"), wrapped=False)
    assert s.serialize("x") == b'"x"'
    assert s.deserialize(b'"y"') == "y"
    assert s.deserialize(b"12") == "12"
    t = serde_for("JSON", SqlType.INT)
    assert t.serialize(5) == b"5" and t.deserialize(b"6") == 6
    wrapped = serde_for("JSON", Schema.parse("NAME STRING"))
    assert wrapped.serialize({"NAME": "x"}) == b'{"NAME":"x"}'
    with pytest.raises(SerdeError, match="wrapped=False"):
        wrapped.deserialize(b'"x"')
    with pytest.raises(SerdeError, match="exactly one column"):
        serde_for("JSON", SCHEMA, wrapped=False)


def test_rich_types_round_trip() -> None:
    schema = Schema.parse(
        "P DECIMAL(6, 2), B BYTES, TS TIMESTAMP, D DATE, T TIME, M MAP<STRING, INT>, "
        "S STRUCT<X INT, `y` ARRAY<STRING>>"
    )
    s = serde_for("JSON", schema)
    row = {
        "P": Decimal("12.50"),
        "B": b"\x00\xff",
        "TS": dt.datetime(2024, 1, 2, 3, 4, 5, 6000),
        "D": dt.date(2024, 1, 2),
        "T": dt.time(0, 0, 1, 500000),
        "M": {"k": 1},
        "S": {"X": 1, "y": ["a", None]},
    }
    data = s.serialize(row)
    obj = orjson.loads(data)
    assert obj["P"] == 12.5 and b'"P":12.50' in data  # DECIMAL is a JSON number, scale kept
    assert obj["B"] == "AP8="
    assert obj["TS"] == 1704164645006 and obj["D"] == 19724 and obj["T"] == 1500
    assert s.deserialize(data) == row
    with pytest.raises(SerdeError, match="does not fit"):
        s.serialize({"P": Decimal("123456.1")})


def _records(n: int) -> list[bytes]:
    return [
        orjson.dumps({"id": i, "name": f"n{i}", "score": i / 4, "ok": i % 2 == 0}) for i in range(n)
    ]


def test_batch_fast_path_matches_per_record() -> None:
    s = serde_for("JSON", SCHEMA)
    vals = [orjson.dumps({"ID": i, "NAME": f"n{i}", "SCORE": i / 4, "OK": i % 2 == 0}) for i in range(1000)]
    table, bad = s.deserialize_batch(vals)
    assert bad == []
    assert table.schema == SCHEMA.to_arrow()
    assert table.to_pylist() == [s.deserialize(v) for v in vals]


def test_batch_10k_with_3_corrupt() -> None:
    s = serde_for("JSON", SCHEMA)
    vals: list[bytes | None] = list(_records(10_000))
    vals[17] = b'{"id": 1,'  # truncated
    vals[4242] = b'{"id": "not a number"}'  # wrong type
    vals[9999] = b"\xff\xfe"  # not UTF-8
    vals[50] = None  # a null value is not an error
    table, bad = s.deserialize_batch(vals, topic="events", partition=4, offsets=range(1000, 11000))
    assert [i for i, _ in bad] == [17, 4242, 9999]
    assert "invalid JSON" in bad[0][1] and "offset=1017" in bad[0][1] and "topic=events" in bad[0][1]
    assert "BIGINT" in bad[1][1] and "offset=5242" in bad[1][1]
    assert "partition=4" in bad[2][1]
    assert table.num_rows == 10_000 - 3
    ids = table.column("ID").to_pylist()
    # rows are the good records in input order: input 50 (None) is row 49, after bad input 17
    assert ids[48] == 49 and ids[49] is None and ids[50] == 51
    assert ids[:3] == [0, 1, 2] and 17 not in ids and 4242 not in ids and ids[-1] == 9998
    assert table.column("NAME")[0].as_py() == "n0"


def test_batch_coercion_fallback_gives_same_rows() -> None:
    s = serde_for("JSON", SCHEMA)
    vals = [b'{"ID": "5", "NAME": 1, "SCORE": 1, "OK": "false"}', b'{"id": 6}', b'{\n"ID": 7\n}']
    table, bad = s.deserialize_batch(vals)
    assert bad == []
    assert table.to_pylist() == [
        {"ID": 5, "NAME": "1", "SCORE": 1.0, "OK": False},
        {"ID": 6, "NAME": None, "SCORE": None, "OK": None},
        {"ID": 7, "NAME": None, "SCORE": None, "OK": None},
    ]


def test_batch_never_merges_two_objects_on_one_line() -> None:
    s = serde_for("JSON", SCHEMA)
    table, bad = s.deserialize_batch([b'{"ID": 1} {"ID": 2}', b'{"ID": 3}', b"", b"null"])
    assert [i for i, _ in bad] == [0, 2]
    assert table.column("ID").to_pylist() == [3, None]


def test_batch_temporal_columns_fast_and_slow() -> None:
    s = serde_for("JSON", Schema.parse("TS TIMESTAMP, D DATE"))
    table, bad = s.deserialize_batch([b'{"TS": 1000, "D": 1}', b'{"ts": 0, "d": 0}'])
    assert bad == []
    assert table.column("TS").to_pylist() == [dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(1970, 1, 1)]
    assert table.column("D").to_pylist() == [dt.date(1970, 1, 2), dt.date(1970, 1, 1)]


def test_serialize_batch_round_trip() -> None:
    s = serde_for("JSON", SCHEMA)
    vals = _records(500)
    table, _ = s.deserialize_batch(vals)
    out = s.serialize_batch(table)
    assert len(out) == 500
    assert orjson.loads(out[3]) == {"ID": 3, "NAME": "n3", "SCORE": 0.75, "OK": False}
    back, bad = s.deserialize_batch(out)
    assert bad == [] and back.equals(table)


def test_serialize_batch_rich_types_and_unwrapped() -> None:
    s = serde_for("JSON", Schema.parse("P DECIMAL(4,1), TS TIMESTAMP, B BYTES"))
    table = pa.table(
        {
            "P": pa.array([Decimal("1.5"), None], pa.decimal128(4, 1)),
            "TS": pa.array([dt.datetime(1970, 1, 1, 0, 0, 2), None], pa.timestamp("ms")),
            "B": pa.array([b"hi", None]),
        }
    )
    assert s.serialize_batch(table) == [b'{"P":1.5,"TS":2000,"B":"aGk="}', b'{"P":null,"TS":null,"B":null}']
    u = serde_for("JSON", SqlType.BIGINT)
    assert u.serialize_batch(pa.table({"VALUE": [1, None]})) == [b"1", None]


def test_is_json_serde() -> None:
    assert isinstance(serde_for("json", SCHEMA), JsonSerde)


def test_batch_with_only_syntax_errors_stays_columnar(monkeypatch: pytest.MonkeyPatch) -> None:
    s = serde_for("JSON", SCHEMA)

    def no_per_record(self: JsonSerde, obj: object) -> object:
        raise AssertionError("per-record coercion should not run")

    monkeypatch.setattr(JsonSerde, "_convert", no_per_record)
    vals = _records(2000)
    vals[3] = b"{oops"
    vals[1500] = b"[]"
    table, bad = s.deserialize_batch(vals)
    assert [i for i, _ in bad] == [3, 1500]
    assert table.num_rows == 1998 and table.column("ID")[3].as_py() == 4


def test_decimal_written_at_its_own_scale_read_at_the_columns() -> None:
    # ksqlDB's JSON writer writes a BigDecimal as it is (GREATEST of a DECIMAL(9,2) and a
    # DECIMAL(7,6) column, typed DECIMAL(13,6), writes 1234567.89); reading pads to the scale
    s = serde_for("JSON", Schema.parse("P DECIMAL(13, 6), A ARRAY<DECIMAL(4, 2)>"))
    data = s.serialize({"P": Decimal("1234567.89"), "A": [Decimal("1.5"), 2.5]})
    assert data == b'{"P":1234567.89,"A":[1.5,2.50]}'
    assert s.deserialize(data) == {"P": Decimal("1234567.890000"), "A": [Decimal("1.50"), Decimal("2.50")]}
    # finer than the column: rounded to it; too many whole digits: an error, as before
    assert s.serialize({"P": Decimal("1.23456789"), "A": None}) == b'{"P":1.234568,"A":null}'
    with pytest.raises(SerdeError, match="does not fit"):
        s.serialize({"P": Decimal("12345678.9"), "A": None})
    unwrapped = JsonSerde(SqlType.decimal(5, 2), wrapped=False)
    assert unwrapped.serialize(Decimal("7.5")) == b"7.5"


def test_decimal_beyond_28_digits() -> None:
    s = serde_for("JSON", Schema.parse("V DECIMAL(33, 16)"))
    v = s.deserialize(b'{"V": 12345678987654321.2345678987654321}')["V"]
    assert v == Decimal("12345678987654321.2345678987654321") and v.as_tuple().exponent == -16
