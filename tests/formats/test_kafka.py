"""KAFKA format: exact byte layouts, round trips, nulls, wrong lengths, batches."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest

from mailroom.errors import SerdeError
from mailroom.formats import Schema, SqlType, serde_for
from mailroom.formats.kafka import KafkaSerde


def test_int_layout() -> None:
    s = serde_for("KAFKA", SqlType.INT)
    assert s.serialize(1) == b"\x00\x00\x00\x01"
    assert s.serialize(-1) == b"\xff\xff\xff\xff"
    assert s.deserialize(b"\x80\x00\x00\x00") == -(2**31)


def test_bigint_layout() -> None:
    s = serde_for("KAFKA", SqlType.BIGINT)
    assert s.serialize(-1) == b"\xff" * 8
    assert s.serialize(258) == b"\x00" * 6 + b"\x01\x02"
    assert s.deserialize(b"\x7f" + b"\xff" * 7) == 2**63 - 1


def test_double_layout() -> None:
    s = serde_for("KAFKA", SqlType.DOUBLE)
    assert s.serialize(1.5) == struct.pack(">d", 1.5) == b"\x3f\xf8" + b"\x00" * 6
    assert s.deserialize(s.serialize(-2.25)) == -2.25


def test_string_and_bytes() -> None:
    st = serde_for("KAFKA", SqlType.STRING)
    assert st.serialize("héllo") == "héllo".encode()
    assert st.deserialize("héllo".encode()) == "héllo"
    assert st.deserialize(b"") == ""
    by = serde_for("KAFKA", SqlType.BYTES)
    assert by.serialize(b"\x00\x01") == b"\x00\x01"
    assert by.deserialize(b"\xff") == b"\xff"


def test_null_round_trip() -> None:
    s = serde_for("KAFKA", SqlType.INT)
    assert s.serialize(None) is None
    assert s.deserialize(None) is None


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x00\x00"])
def test_wrong_length_names_position(data: bytes) -> None:
    s = serde_for("KAFKA", SqlType.INT)
    with pytest.raises(SerdeError) as ei:
        s.deserialize(data, topic="orders", partition=3, offset=42)
    e = ei.value
    assert (e.topic, e.partition, e.offset, e.format) == ("orders", 3, 42, "KAFKA")
    msg = str(e)
    assert "KAFKA" in msg and "orders" in msg and "partition=3" in msg and "offset=42" in msg
    assert f"got {len(data)}" in msg


def test_out_of_range_and_wrong_type() -> None:
    s = serde_for("KAFKA", SqlType.INT)
    with pytest.raises(SerdeError, match="INT"):
        s.serialize(2**31, topic="t")
    with pytest.raises(SerdeError):
        s.serialize(True)
    with pytest.raises(SerdeError, match="STRING"):
        serde_for("KAFKA", SqlType.STRING).serialize(5)


def test_invalid_utf8() -> None:
    with pytest.raises(SerdeError, match="UTF-8") as ei:
        serde_for("KAFKA", SqlType.STRING).deserialize(b"\xff\xfe", offset=9)
    assert ei.value.offset == 9


def test_unsupported_types_and_shapes() -> None:
    with pytest.raises(SerdeError, match="not supported"):
        serde_for("KAFKA", SqlType.BOOLEAN)
    with pytest.raises(SerdeError, match="exactly one column"):
        serde_for("KAFKA", Schema.parse("A INT, B INT"))
    s = serde_for("KAFKA", Schema.parse("ID BIGINT"))
    assert isinstance(s, KafkaSerde) and s.unwrapped
    assert s.serialize(5) == b"\x00" * 7 + b"\x05"


def test_batch_decode_fixed_width_with_bad_and_nulls() -> None:
    s = serde_for("KAFKA", SqlType.BIGINT)
    n = 10_000
    vals: list[bytes | None] = [struct.pack(">q", i * 1000 - 7) for i in range(n)]
    vals[10] = None
    vals[20] = b"\x00\x01"
    vals[9999] = b""
    table, bad = s.deserialize_batch(vals, topic="t", partition=1, offsets=range(500, 500 + n))
    assert [i for i, _ in bad] == [20, 9999]
    assert "offset=520" in bad[0][1] and "needs 8 bytes, got 2" in bad[0][1]
    col = table.column("VALUE")
    assert col.type == pa.int64()
    assert table.num_rows == n - 2
    assert col[10].as_py() is None
    assert col[0].as_py() == -7 and col[11].as_py() == 11 * 1000 - 7
    expected = [None if i == 10 else i * 1000 - 7 for i in range(n) if i not in (20, 9999)]
    assert col.to_pylist() == expected


def test_batch_decode_all_good_int_and_double() -> None:
    ints = np.arange(-500, 500, dtype=np.int32)
    s = serde_for("KAFKA", SqlType.INT)
    table, bad = s.deserialize_batch([int(i).to_bytes(4, "big", signed=True) for i in ints])
    assert bad == [] and table.column(0).to_numpy().tolist() == ints.tolist()
    d = serde_for("KAFKA", SqlType.DOUBLE)
    table, bad = d.deserialize_batch([struct.pack(">d", x / 3) for x in range(100)])
    assert bad == [] and table.column(0).to_pylist() == [x / 3 for x in range(100)]


def test_batch_string_bad_utf8() -> None:
    s = serde_for("KAFKA", SqlType.STRING)
    table, bad = s.deserialize_batch([b"a", b"\xff", None, b"c"], topic="t")
    assert [i for i, _ in bad] == [1]
    assert table.column(0).to_pylist() == ["a", None, "c"]


def test_serialize_batch_round_trip() -> None:
    s = serde_for("KAFKA", SqlType.INT)
    table = pa.table({"value": pa.array([1, None, -1], pa.int32())})
    out = s.serialize_batch(table)
    assert out == [b"\x00\x00\x00\x01", None, b"\xff\xff\xff\xff"]
    back, bad = s.deserialize_batch(out)
    assert bad == [] and back.column(0).to_pylist() == [1, None, -1]
    with pytest.raises(SerdeError):
        s.serialize_batch(pa.table({"VALUE": pa.array([2**40], pa.int64())}))
    st = serde_for("KAFKA", SqlType.STRING)
    assert st.serialize_batch(pa.table({"VALUE": ["x", None]})) == [b"x", None]
