"""The log's promises, checked on both backends (embedded and Apache Kafka) by the same tests."""

from __future__ import annotations

import time
import uuid

import pytest

from mailroom.errors import RecordTooLargeError, TopicExistsError, UnknownTopicError
from mailroom.log import OFFSET_BEGINNING, OFFSET_END, Log, TopicPartition, partitions_for

# Record timestamps near now: Kafka deletes records older than the retention (7 days by default)
# at once, so a timestamp like 1000 (1970) would be gone before it is read.
T0 = int(time.time() * 1000) // 1000 * 1000


def drain(consumer, expect: int | None = None, timeout: float = 20.0, max_records: int = 10_000) -> list:
    """Poll until ``expect`` records came (or, with None, until a poll comes back empty)."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batches = consumer.poll(max_records, timeout=0.5 if expect is None else 1.0)
        for b in batches:
            out.extend(b)
        if expect is None and not batches and out:
            break
        if expect is not None and len(out) >= expect:
            break
    return out


def test_topic_admin(log: Log, topic_name: str) -> None:
    spec = log.create_topic(topic_name, partitions=3, config={"retention.ms": "3600000"})
    assert spec.partitions == 3
    got = log.describe_topic(topic_name)
    assert got.partitions == 3 and got.config.get("retention.ms") == "3600000"
    assert topic_name in log.list_topics()
    with pytest.raises(TopicExistsError):
        log.create_topic(topic_name, partitions=3)
    assert log.create_topic(topic_name, partitions=3, exist_ok=True).partitions == 3
    log.delete_topic(topic_name)
    deadline = time.monotonic() + 10
    while topic_name in log.list_topics() and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(UnknownTopicError):
        log.describe_topic(topic_name)


def test_unknown_topic_is_a_clear_error(log: Log, topic_name: str) -> None:
    with pytest.raises(UnknownTopicError, match=topic_name):
        log.describe_topic(topic_name)
    with log.producer() as p, pytest.raises(UnknownTopicError, match=topic_name):
        p.send_batch(topic_name, [b"x"])
        p.flush(10)


def test_order_and_offsets_per_partition(log: Log, topic_name: str) -> None:
    log.create_topic(topic_name, partitions=4)
    n = 20_000
    keys = [b"key-%d" % (i % 97) for i in range(n)]
    values = [b"%d" % i for i in range(n)]
    with log.producer() as p:
        for start in range(0, n, 5000):  # several batches: order must hold across them too
            p.send_batch(topic_name, values[start : start + 5000], keys[start : start + 5000], timestamps=T0)
        p.flush(30)
    c = log.consumer()
    c.assign([TopicPartition(topic_name, i) for i in range(4)])
    records = drain(c, n)
    c.close()
    assert len(records) == n
    by_part: dict[int, list] = {}
    for r in records:
        by_part.setdefault(r.partition, []).append(r)
    for part, recs in by_part.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"offsets of partition {part} not dense"
        seqs = [int(r.value) for r in recs]
        assert seqs == sorted(seqs), f"partition {part} out of order"
        assert all(r.timestamp == T0 for r in recs)
    # every key lives in exactly one partition: the one Kafka's partitioner picks
    expect = dict(zip(keys, partitions_for(keys, 4).tolist()))
    assert all(expect[r.key] == r.partition for r in records)


def test_poll_respects_max_records_and_returns_columns(log: Log, topic_name: str) -> None:
    log.create_topic(topic_name, partitions=1)
    with log.producer() as p:
        p.send_batch(topic_name, [b"v%d" % i for i in range(3000)], partition=0, timestamps=T0 + 7)
        p.flush(30)
    c = log.consumer()
    c.assign([TopicPartition(topic_name, 0)])
    got = 0
    deadline = time.monotonic() + 20
    while got < 3000 and time.monotonic() < deadline:
        batches = c.poll(max_records=700, timeout=1.0)
        assert sum(len(b) for b in batches) <= 700
        for b in batches:
            assert b.values[0] == b"v%d" % b.offsets[0]
            assert b.value_array.to_pylist() == b.values
            assert b.next_offset == b.offsets[-1] + 1
            got += len(b)
    assert got == 3000
    assert c.position(TopicPartition(topic_name, 0)) == 3000
    c.close()


def test_nulls_timestamps_and_headers_round_trip(log: Log, topic_name: str) -> None:
    log.create_topic(topic_name, partitions=1)
    with log.producer() as p:
        p.send(topic_name, None, b"k", timestamp=T0 + 123, headers=[("h1", b"a"), ("h2", None)])
        p.send(topic_name, b"v", None, timestamp=T0 + 456)
        p.send_batch(topic_name, [b"x", None], [None, b"kk"], timestamps=[T0 + 1, T0 + 2])
        p.flush(10)
    c = log.consumer()
    c.assign([TopicPartition(topic_name, 0)])
    recs = drain(c, 4)
    c.close()
    assert [(r.key, r.value, r.timestamp) for r in recs] == [
        (b"k", None, T0 + 123),
        (None, b"v", T0 + 456),
        (None, b"x", T0 + 1),
        (b"kk", None, T0 + 2),
    ]
    assert recs[0].headers == [("h1", b"a"), ("h2", None)]
    assert not recs[1].headers


def test_seek_and_watermarks(log: Log, topic_name: str) -> None:
    log.create_topic(topic_name, partitions=1)
    tp = TopicPartition(topic_name, 0)
    with log.producer() as p:
        for i in range(10):
            p.send_batch(topic_name, [b"%d" % (i * 100 + j) for j in range(100)], partition=0)
        p.flush(10)
    c = log.consumer()
    c.assign([tp])
    assert c.watermarks(tp) == (0, 1000)
    c.seek(tp, 555)
    first = drain(c, 1)[0]
    assert first.offset == 555 and first.value == b"555"
    c.seek(tp, OFFSET_END)
    assert c.poll(timeout=0.3) == []
    c.seek(tp, OFFSET_BEGINNING)
    assert drain(c, 1)[0].offset == 0
    c.close()


def test_group_commit_and_resume(log: Log, topic_name: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    log.create_topic(topic_name, partitions=2)
    with log.producer() as p:
        p.send_batch(topic_name, [b"%d" % i for i in range(1000)], [b"%d" % i for i in range(1000)])
        p.flush(10)
    tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
    c = log.consumer(group)
    c.subscribe([topic_name])
    first = drain(c, 1000)
    assert len(first) == 1000
    # commit only what was read of partition 0 up to offset 100 and partition 1 fully
    end1 = max(r.offset for r in first if r.partition == 1) + 1
    c.commit({tps[0]: 100, tps[1]: end1})
    assert c.committed(tps) == {tps[0]: 100, tps[1]: end1}
    c.close()
    c2 = log.consumer(group)
    c2.subscribe([topic_name])
    rest = drain(c2, sum(1 for r in first if r.partition == 0) - 100)
    c2.close()
    assert rest and all(r.partition == 0 for r in rest)
    assert min(r.offset for r in rest) == 100


def test_two_consumers_in_a_group_split_partitions(log: Log, topic_name: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    log.create_topic(topic_name, partitions=4)
    a, b = log.consumer(group), log.consumer(group)
    a.subscribe([topic_name])
    b.subscribe([topic_name])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        a.poll(timeout=0.2)
        b.poll(timeout=0.2)
        sa, sb = set(a.assignment()), set(b.assignment())
        if sa and sb and len(sa | sb) == 4 and not (sa & sb):
            break
    assert sa and sb, "both members must own partitions"
    assert not (sa & sb), "no partition may be owned twice"
    assert sa | sb == {TopicPartition(topic_name, i) for i in range(4)}
    # a member leaves: the other one takes over everything
    b.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(a.assignment()) < 4:
        a.poll(timeout=0.2)
    assert set(a.assignment()) == {TopicPartition(topic_name, i) for i in range(4)}
    a.close()


def test_record_too_large(log: Log, topic_name: str) -> None:
    log.create_topic(topic_name, partitions=1)
    with log.producer() as p:
        with pytest.raises(RecordTooLargeError, match=topic_name):
            p.send_batch(topic_name, [b"x" * (3 * 1024 * 1024)])
            p.flush(10)
        p.send_batch(topic_name, [b"small"])  # the producer is still usable
        p.flush(10)
    c = log.consumer()
    c.assign([TopicPartition(topic_name, 0)])
    assert [r.value for r in drain(c, 1)] == [b"small"]
    c.close()


def test_atomic_output_and_offset_commit(log: Log, topic_name: str) -> None:
    """Outputs and input offsets become visible together, or (aborted) not at all."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    src, out = topic_name + "-in", topic_name + "-out"
    log.create_topic(src, partitions=1)
    log.create_topic(out, partitions=1)
    with log.producer() as p:
        p.send_batch(src, [b"%d" % i for i in range(10)], partition=0)
        p.flush(10)
    c = log.consumer(group)
    c.subscribe([src])
    recs = drain(c, 10)
    assert len(recs) == 10
    tp = TopicPartition(src, 0)
    tx = log.producer(transactional_id=f"tx-{uuid.uuid4().hex[:8]}")
    tx.begin_transaction()
    tx.send_batch(out, [b"aborted-%d" % i for i in range(5)], partition=0)
    tx.abort_transaction()
    assert c.committed([tp]) == {tp: None}
    tx.begin_transaction()
    tx.send_batch(out, [b"done-%d" % i for i in range(5)], partition=0)
    tx.commit_transaction({tp: 10}, c)
    assert c.committed([tp]) == {tp: 10}
    reader = log.consumer()
    reader.assign([TopicPartition(out, 0)])
    values = [r.value for r in drain(reader, 5)]
    assert reader.poll(timeout=1.0) == []  # nothing more: the aborted records never show
    assert values == [b"done-%d" % i for i in range(5)]
    reader.close()
    tx.close()
    c.close()
