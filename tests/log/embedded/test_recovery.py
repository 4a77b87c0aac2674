"""Crash recovery and damage handling of the embedded log."""

from __future__ import annotations

import os

import pytest

from mailroom.errors import CorruptLogError
from mailroom.log import TopicPartition, open_log
from mailroom.log.embedded import EmbeddedLog

from ..test_conformance import drain


def _segment(root, topic: str, part: int = 0):
    folder = root / "topics" / topic / str(part)
    return sorted(folder.glob("*.log"))[-1]


def _values(log, topic: str) -> list[bytes]:
    c = log.consumer()
    c.assign([TopicPartition(topic, 0)])
    vals = [r.value for r in drain(c, None, timeout=3)]
    c.close()
    return vals


def test_torn_tail_is_set_aside_and_the_rest_is_served(tmp_path, caplog) -> None:
    log = open_log(str(tmp_path))
    log.create_topic("t")
    p = log.producer()
    for i in range(3):
        p.send_batch("t", [b"batch%d-%d" % (i, j) for j in range(100)], partition=0)
    log.close()
    seg = _segment(tmp_path, "t")
    size = seg.stat().st_size
    os.truncate(seg, size - 37)  # the last batch's write was cut short by a crash

    log = open_log(str(tmp_path))
    vals = _values(log, "t")
    assert vals == [b"batch%d-%d" % (i, j) for i in range(2) for j in range(100)]  # never the torn batch
    with caplog.at_level("WARNING"):
        log.producer().send_batch("t", [b"after"], partition=0)  # a writer repairs the tail
    assert "not a whole record batch" in caplog.text and str(seg) in caplog.text
    torn = seg.with_suffix(".log.torn")
    assert torn.exists() and torn.stat().st_size > 0  # the torn bytes are kept, not thrown away
    vals = _values(log, "t")
    assert vals[-1] == b"after" and len(vals) == 201
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    assert [r.offset for r in drain(c, None, timeout=3)] == list(range(201))  # offsets dense again


def test_damage_before_the_tail_is_reported_with_file_and_position(tmp_path) -> None:
    log = open_log(str(tmp_path))
    log.create_topic("t")
    p = log.producer()
    for i in range(3):
        p.send_batch("t", [b"v%d" % j for j in range(50)], partition=0)
    seg = _segment(tmp_path, "t")
    first_len = int.from_bytes(seg.read_bytes()[4:8], "little")
    assert first_len > 300  # (so byte 300 lies inside the first batch)
    with open(seg, "r+b") as f:  # flip a byte inside the first batch's values
        f.seek(300)
        b = f.read(1)
        f.seek(300)
        f.write(bytes([b[0] ^ 0xFF]))
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    with pytest.raises(CorruptLogError) as err:
        c.poll(timeout=1)
    assert str(seg) in str(err.value) and "byte 0" in str(err.value)


def test_many_small_appends_seek_through_the_index(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t", config={"index.interval.bytes": "512", "segment.bytes": "20000"})
    p = log.producer()
    for i in range(3000):
        p.send("t", b"%d" % i, partition=0)
    segs = sorted((tmp_path / "topics" / "t" / "0").glob("*.log"))
    assert len(segs) > 5  # rolled by size
    c = log.consumer()
    tp = TopicPartition("t", 0)
    c.assign([tp])
    for target in (0, 1, 999, 1500, 2999):
        c.seek(tp, target)
        r = drain(c, 1)[0]
        assert (r.offset, r.value) == (target, b"%d" % target)
    c.seek(tp, 0)
    assert [int(r.value) for r in drain(c, 3000)] == list(range(3000))
