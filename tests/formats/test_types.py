"""The SQL type model: parsing, printing, Arrow types."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mailroom.formats import Column, Schema, SqlType


def test_parse_nested_and_print() -> None:
    t = SqlType.parse("STRUCT<A INT, b ARRAY<STRING>, `c d` MAP<STRING, DECIMAL(10,2)>>")
    assert t.base == "STRUCT" and [f.name for f in t.fields] == ["A", "B", "c d"]
    assert t.fields[1].type == SqlType.array(SqlType.STRING)
    assert str(t) == "STRUCT<A INT, B ARRAY<STRING>, `c d` MAP<STRING, DECIMAL(10, 2)>>"
    assert SqlType.parse(str(t)) == t


def test_to_arrow() -> None:
    assert SqlType.INT.to_arrow() == pa.int32()
    assert SqlType.BIGINT.to_arrow() == pa.int64()
    assert SqlType.TIMESTAMP.to_arrow() == pa.timestamp("ms")
    assert SqlType.decimal(5, 2).to_arrow() == pa.decimal128(5, 2)
    assert SqlType.map(SqlType.INT).to_arrow() == pa.map_(pa.string(), pa.int32())
    t = SqlType.struct([("X", SqlType.DOUBLE), Column("Y", SqlType.array(SqlType.BYTES))])
    assert t.to_arrow() == pa.struct([("X", pa.float64()), ("Y", pa.list_(pa.binary()))])


def test_schema() -> None:
    s = Schema.parse("id BIGINT, Name varchar, `q` INTEGER")
    assert s.names == ["ID", "NAME", "q"]
    assert s.find("name") == Column("NAME", SqlType.STRING)
    assert s.find("Q") is not None and s.find("missing") is None
    assert s.to_arrow().names == ["ID", "NAME", "q"]
    with pytest.raises(ValueError, match="duplicate"):
        Schema([("A", SqlType.INT), ("A", SqlType.INT)])


@pytest.mark.parametrize(
    "text", ["FOO", "DECIMAL(80, 1)", "MAP<INT, INT>", "ARRAY<INT", "STRUCT<A>", "INT INT"]
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ValueError):
        SqlType.parse(text)


def test_a_decimal_beyond_38_digits_is_a_256_bit_arrow_decimal() -> None:
    assert SqlType.parse("DECIMAL(50, 30)").to_arrow() == pa.decimal256(50, 30)
    assert SqlType.parse("DECIMAL(38, 2)").to_arrow() == pa.decimal128(38, 2)
