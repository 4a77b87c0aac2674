"""The engine's serdes: round trips, and malformed input reported (not raised) so processing goes on."""

from __future__ import annotations

import base64
import random

import orjson
import polars as pl
import pytest

from mailroom.engine import BYTES, INT64, JSON, MSGPACK, STRING, JsonColumnsSerde, TestDriver, Topology

VALUES = [
    {"a": 1, "b": "x", "c": [1, 2], "d": {"e": None}},
    {"unicode": "é✓😀", "float": 1.5, "neg": -3, "bool": True},
    [1, "two", 3.0],
    "plain string",
    42,
    None,
]


@pytest.mark.parametrize("serde", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_structured_round_trip(serde):
    raw = serde.encode(VALUES)
    assert raw[-1] is None  # NULL stays NULL (a tombstone)
    out, bad = serde.decode(raw)
    assert bad == []
    norm = (lambda v: orjson.loads(orjson.dumps(v))) if serde is MSGPACK else (lambda v: v)
    assert [norm(v) for v in out] == VALUES


def test_string_round_trip_and_bad_utf8():
    vals = ["", "abc", "ünïcode", None]
    out, bad = STRING.decode(STRING.encode(vals))
    assert out == vals and bad == []
    out, bad = STRING.decode([b"ok", b"\xff\xfe", None])
    assert out == ["ok", None, None]
    assert [i for i, _ in bad] == [1] and "UTF-8" in bad[0][1]


def test_int64_round_trip_and_wrong_size():
    rng = random.Random(0)
    vals = [0, 1, -1, 2**63 - 1, -(2**63), None] + [rng.randint(-(2**63), 2**63 - 1) for _ in range(50)]
    raw = INT64.encode(vals)
    assert all(r is None or len(r) == 8 for r in raw)
    assert raw[1] == b"\x00" * 7 + b"\x01"  # big-endian, as Kafka's LongSerializer
    out, bad = INT64.decode(raw)
    assert out == vals and bad == []
    out, bad = INT64.decode([b"\x00" * 8, b"\x01\x02", b""])
    assert out == [0, None, None]
    assert [i for i, _ in bad] == [1, 2]


def test_bytes_are_unchanged():
    vals = [b"", b"\x00\xff", None]
    assert BYTES.decode(BYTES.encode(vals)) == (vals, [])


def test_json_invalid_records_reported_individually():
    out, bad = JSON.decode([b'{"a":1}', b"{oops", b"[1]", b"", None])
    assert out == [{"a": 1}, None, [1], None, None]
    assert [i for i, _ in bad] == [1, 3]
    assert all("invalid JSON" in r for _, r in bad)


def test_msgpack_invalid_reported():
    out, bad = MSGPACK.decode([MSGPACK.encode([1])[0], b"\xc1"])
    assert out == [1, None]
    assert [i for i, _ in bad] == [1]


SCHEMA = {"s": pl.String, "n": pl.Int64, "f": pl.Float64}


def test_json_columns_decodes_only_schema_fields_with_nulls_for_missing():
    serde = JsonColumnsSerde(SCHEMA)
    df, bad = serde.decode([b'{"s":"a","n":1,"f":1.5,"extra":true}', b'{"n":2}'])
    assert bad == []
    assert df.columns == ["s", "n", "f"]
    assert df.to_dicts() == [{"s": "a", "n": 1, "f": 1.5}, {"s": None, "n": 2, "f": None}]


def test_json_columns_round_trip():
    serde = JsonColumnsSerde(SCHEMA)
    rows = [{"s": "x", "n": i, "f": i / 2} for i in range(20)]
    df, bad = serde.decode(serde.encode(rows))
    assert bad == [] and df.to_dicts() == rows
    df2, _ = serde.decode(serde.encode(df))
    assert df2.equals(df)


@pytest.mark.parametrize(
    "raw,bad_positions",
    [
        ([b'{"n":1}', b"{not json", b'{"n":3}'], [1]),
        ([b'{"n":1}', b"[1,2]", b'{"n":3}'], [1]),  # not an object
        ([b'{"n":1}', b"", b'{"n":3}'], [1]),  # empty payload
        ([b'{"n":1}', b'{"n":2}\n{"n":9}', b'{"n":3}'], [1]),  # two documents in one record
        ([b'{"n":1}', None, b'{"n":3}'], []),  # a tombstone is not an error
    ],
    ids=["garbage", "array", "empty", "two-docs", "null"],
)
def test_json_columns_bad_records_keep_alignment(raw, bad_positions):
    """One row per record, always: the others keep their positions."""
    df, bad = JsonColumnsSerde(SCHEMA).decode(raw)
    assert len(df) == len(raw)
    assert [i for i, _ in bad] == bad_positions
    assert df["n"].to_list()[0] == 1 and df["n"].to_list()[2] == 3


def _plog_values(d):
    return [(e["topic"], e["partition"], e["offset"]) for e in d.processing_log.entries]


@pytest.mark.parametrize("serde", [JSON, JsonColumnsSerde({"n": pl.Int64})], ids=["json", "json-columns"])
def test_malformed_json_input_goes_to_processing_log_and_processing_continues(serde):
    top = Topology()
    top.stream("in", value_serde=serde, name="src").to("out")
    d = TestDriver(top)
    d.pipe_input("in", "a", {"n": 1}, 1)
    d.pipe_raw("in", b"b", b"{broken", 2)
    d.pipe_input("in", "c", {"n": 3}, 3)
    d.pipe_raw("in", b"d", b"", 4)
    d.pipe_input("in", "e", {"n": 5}, 5)
    assert [(o.key, o.value) for o in d.read_output("out")] == [("a", {"n": 1}), ("c", {"n": 3}), ("e", {"n": 5})]
    assert _plog_values(d) == [("in", 0, 1), ("in", 0, 3)]
    e = d.processing_log.entries[0]
    assert e["operator"] == "src"
    assert "invalid JSON" in e["reason"]
    assert base64.b64decode(e["key"]) == b"b"
    assert base64.b64decode(e["value"]) == b"{broken"
    assert d.tasks[0].ctx.metrics["records-in"] == 3


def test_malformed_json_in_a_multi_record_batch_skips_only_that_record():
    """A polled batch (several records at once) with one bad record: the others go on, aligned."""
    import numpy as np

    from mailroom.log import RecordBatch

    top = Topology()
    top.stream("in", value_serde=JsonColumnsSerde({"n": pl.Int64})).filter(pl.col("n") > 0).to("out")
    d = TestDriver(top)
    raw = [b'{"n":1}', b"", b'{"n":2}', b'{"n":3}\n{"n":4}', b'{"n":5}']
    keys = [f"k{i}".encode() for i in range(len(raw))]
    task = d.tasks[0]
    task.process(RecordBatch("in", 0, np.arange(len(raw), dtype=np.int64), np.arange(len(raw), dtype=np.int64) * 10, keys, raw))
    task.commit()
    out = d.read_output("out")
    assert [(o.key, o.value, o.timestamp) for o in out] == [("k0", {"n": 1}, 0), ("k2", {"n": 2}, 20), ("k4", {"n": 5}, 40)]
    assert _plog_values(d) == [("in", 0, 1), ("in", 0, 3)]


def test_bad_key_goes_to_processing_log():
    top = Topology()
    top.stream("in", key_serde=INT64).to("out", key_serde=INT64)
    d = TestDriver(top)
    d.pipe_raw("in", b"\x01", b"{}", 1)
    d.pipe_input("in", 7, {}, 2)
    assert [o.key for o in d.read_output("out", key_serde=INT64)] == [7]
    assert _plog_values(d) == [("in", 0, 0)]
    assert "BIGINT" in d.processing_log.entries[0]["reason"]


def test_bad_records_do_not_advance_stream_time():
    from mailroom.engine import TimeWindows

    top = Topology()
    top.stream("in").group_by_key().windowed_by(TimeWindows.tumbling(10, grace_ms=0)).count().to_stream().to("out", key_serde=MSGPACK)
    d = TestDriver(top)
    d.pipe_input("in", "k", {}, 5)
    d.pipe_raw("in", b"k", b"{bad", 1_000)  # must not close window [0, 10)
    d.pipe_input("in", "k", {}, 6)
    out = d.read_output("out", key_serde=MSGPACK)
    assert [(tuple(o.key), o.value) for o in out] == [(("k", 0, 10), 1), (("k", 0, 10), 2)]


def test_windowed_keys_with_msgpack_key_serde():
    from mailroom.engine import TimeWindows

    top = Topology()
    top.stream("in").group_by_key().windowed_by(TimeWindows.tumbling(10)).count().to_stream().to("out", key_serde=MSGPACK, value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("in", "k", {}, 15)
    (o,) = d.read_output("out", key_serde=MSGPACK, value_serde=INT64)
    assert o.key == ("k", 10, 20) and o.value == 1


def test_json_columns_pretty_printed_record_is_valid():
    df, bad = JsonColumnsSerde(SCHEMA).decode([b'{"n": 1}', b'{\n  "n": 2,\n  "s": "x"\n}'])
    assert bad == []
    assert df.select("n", "s").to_dicts() == [{"n": 1, "s": None}, {"n": 2, "s": "x"}]


def test_windowed_keys_reach_topics_in_kafka_streams_layout() -> None:
    """A windowed table written with the default STRING key serde: key bytes + 8-byte start
    (time windows) or + end + start (session windows), as Kafka Streams writes them."""
    import struct

    from mailroom.engine import SessionWindows, TestDriver, TimeWindows, Topology
    from mailroom.engine.serdes import BYTES, INT64, STRING, WindowedSerde

    top = Topology()
    ev = top.stream("events")
    ev.group_by_key().windowed_by(TimeWindows.tumbling(1000)).count().to_stream().to("tumbling")
    top2 = Topology()
    top2.stream("events").group_by_key().windowed_by(SessionWindows(500)).count().to_stream().to("sessions")
    d, d2 = TestDriver(top), TestDriver(top2)
    for drv in (d, d2):
        drv.pipe_input("events", "gmail.com", {"x": 1}, timestamp=1500)
        drv.pipe_input("events", "gmail.com", {"x": 1}, timestamp=1700)
    raw = d.read_output("tumbling", key_serde=BYTES, value_serde=BYTES)
    assert raw[-1].key == b"gmail.com" + struct.pack(">q", 1000)
    decoded = d2.read_output("sessions", key_serde=WindowedSerde(STRING, session=True))
    assert (decoded[-1].key.key, decoded[-1].key.start, decoded[-1].key.end) == ("gmail.com", 1500, 1700)
    assert decoded[-1].value == 2
    assert INT64.decode(INT64.encode([5]))[0] == [5]


def test_json_columns_fast_path_agrees_with_the_record_by_record_path() -> None:
    """The batch decode (msgspec, each record on its own) gives what decoding each record alone
    gives, including for records shaped to spill into their neighbours if joined."""
    schema = {"s": pl.String, "n": pl.Int64, "f": pl.Float64, "b": pl.Boolean}
    raw = [b'{"s":"a","n":1,"f":2,"b":true,"x":{"deep":[1,2]}}', b'{"n":null}', b' {"s":"b"} ',
           b'{"s":"}', b'{"}', b'{"s":"c"},{"s":"d"}', b'{"s":"\\u00e9","f":-1.5e3}']
    serde = JsonColumnsSerde(schema)
    df, bad = serde.decode(raw)
    alone = [serde.decode([r]) for r in raw]
    assert len(df) == len(raw)
    assert df.to_dicts() == [d.to_dicts()[0] for d, _ in alone]
    assert [i for i, _ in bad] == [i for i, (_, b) in enumerate(alone) if b] == [3, 4, 5]
    assert df.row(0, named=True) == {"s": "a", "n": 1, "f": 2.0, "b": True}
    assert df["s"].to_list()[6] == "é"
