"""The processing log: every record the engine skips is reported with where it came from and why."""

from __future__ import annotations

import base64

import orjson
import polars as pl

from mailroom.engine import INT64, MSGPACK, JsonColumnsSerde, TestDriver, TimeWindows, Topology
from mailroom.engine.processing_log import ProcessingLog

FIELDS = {"ts", "operator", "reason", "topic", "partition", "offset", "key", "value"}


class FakeProducer:
    def __init__(self):
        self.sent = []

    def send(self, topic, value, key=None, **kw):
        self.sent.append((topic, value, key))


def test_report_entry_format_and_producer():
    p = FakeProducer()
    plog = ProcessingLog(p, "app-processing-log")
    plog.report("bad thing", operator="op", topic="t", partition=3, offset=17, key=b"k", value=b"\x00v")
    (e,) = plog.entries
    assert set(e) == FIELDS
    assert (e["operator"], e["reason"], e["topic"], e["partition"], e["offset"]) == ("op", "bad thing", "t", 3, 17)
    assert base64.b64decode(e["key"]) == b"k" and base64.b64decode(e["value"]) == b"\x00v"
    assert isinstance(e["ts"], int) and e["ts"] > 0
    ((topic, value, key),) = p.sent
    assert topic == "app-processing-log"
    assert orjson.loads(value) == e
    assert key == b"t-3"


def test_report_without_origin():
    p = FakeProducer()
    plog = ProcessingLog(p, "pl")
    plog.report("late", operator="w")
    (e,) = plog.entries
    assert e["topic"] is None and e["offset"] is None and e["key"] is None and e["value"] is None
    assert p.sent[0][2] is None


def test_entries_kept_in_memory_are_bounded_but_all_are_sent():
    p = FakeProducer()
    plog = ProcessingLog(p, "pl", keep=5)
    for i in range(12):
        plog.report(f"r{i}", operator="o", topic="t", partition=0, offset=i)
    assert [e["offset"] for e in plog.entries] == [0, 1, 2, 3, 4]
    assert len(p.sent) == 12


def test_driver_processing_log_collects_failures_from_every_stage():
    """Deserialization, a user function, a NULL group-by key after repartitioning, and late
    windowed records: each is logged with its operator and origin, and the rest go on."""
    top = Topology()
    s = top.stream("in", value_serde=JsonColumnsSerde({"d": pl.String, "n": pl.Int64}), name="src")
    s.map_values(lambda v: {"d": v["d"], "inv": 100 // v["n"]}, name="inv").group_by("d").count(name="cnt").to_stream().to("counts", value_serde=INT64)
    s.group_by_key().windowed_by(TimeWindows.tumbling(10, grace_ms=0)).count(name="win").to_stream().to("wins", key_serde=MSGPACK, value_serde=INT64)
    d = TestDriver(top, application_id="plapp")
    d.pipe_input("in", "a", {"d": "x", "n": 1}, 1)  # offset 0: fine
    d.pipe_raw("in", b"b", b"nope", 2)  # offset 1: bad JSON
    d.pipe_input("in", "c", {"d": "x", "n": 0}, 3)  # offset 2: ZeroDivisionError in map_values
    d.pipe_input("in", "a", {"d": None, "n": 2}, 20)  # offset 3: NULL group-by key
    d.pipe_input("in", "a", {"d": "y", "n": 5}, 4)  # offset 4: late for the window
    ops = [(e["operator"], e["topic"], e["offset"]) for e in d.processing_log.entries]
    (suffix,) = top.internal_topics
    assert ops[0] == ("src", "in", 1)
    assert ops[1] == ("inv", "in", 2)
    assert ops[2] == ("cnt", "plapp-" + suffix, 1)  # 2nd record on the repartition topic
    assert ops[3][0] == "win" and "late" in d.processing_log.entries[3]["reason"]
    assert len(ops) == 4
    assert [(o.key, o.value) for o in d.read_output("counts", value_serde=INT64)] == [("x", 1), ("y", 1)]
    wins = [(tuple(o.key), o.value) for o in d.read_output("wins", key_serde=MSGPACK, value_serde=INT64)]
    assert wins == [(("a", 0, 10), 1), (("c", 0, 10), 1), (("a", 20, 30), 1)]
    # every entry is JSON, as it would be on the topic
    for e in d.processing_log.entries:
        assert orjson.loads(orjson.dumps(e)) == e


def test_processing_log_topic_name_follows_application_id():
    top = Topology()
    top.stream("in").to("out")
    assert TestDriver(top, application_id="myapp").processing_log.topic == "myapp-processing-log"


def test_user_function_failure_reports_offset_of_the_failing_record_among_many():
    top = Topology()
    top.stream("in").filter(lambda k, v: v["ok"], name="f").to("out")
    d = TestDriver(top)
    bad = {3, 7, 8}
    for i in range(10):
        d.pipe_input("in", str(i), {} if i in bad else {"ok": True}, i)
    assert sorted(e["offset"] for e in d.processing_log.entries) == sorted(bad)
    assert [o.key for o in d.read_output("out")] == [str(i) for i in range(10) if i not in bad]
