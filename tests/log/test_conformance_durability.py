"""Compaction, retention and crash safety, checked on both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

from mailroom.log import Log, TopicPartition, open_log

from .test_conformance import drain


def read_all(log: Log, topic: str, partitions: int = 1) -> list:
    c = log.consumer()
    c.assign([TopicPartition(topic, p) for p in range(partitions)])
    recs = drain(c, None, timeout=15)
    c.close()
    return recs


def test_compaction_keeps_the_last_value_per_key(log: Log, topic_name: str) -> None:
    log.create_topic(
        topic_name,
        partitions=1,
        config={
            "cleanup.policy": "compact",
            "segment.ms": "300",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "3600000",
        },
    )
    with log.producer() as p:
        for version in range(5):
            p.send_batch(topic_name, [b"k%d=v%d" % (k, version) for k in range(10)], [b"k%d" % k for k in range(10)], partition=0)
        p.send(topic_name, None, b"k3", partition=0)  # a tombstone: kept (delete.retention.ms)
        p.flush(10)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with log.producer() as p:  # new records roll the old segment so it can be cleaned
            p.send(topic_name, b"tick", b"tick", partition=0)
            p.flush(10)
        log.maintain()
        recs = [r for r in read_all(log, topic_name) if r.key != b"tick"]
        if len(recs) == 10:
            break
    by_key = {r.key: r.value for r in recs}
    assert len(recs) == 10, f"expected one record per key after compaction, got {len(recs)}"
    assert by_key[b"k3"] is None
    assert all(by_key[b"k%d" % k] == b"k%d=v4" % k for k in range(10) if k != 3)
    offsets = [r.offset for r in recs]
    assert offsets == sorted(offsets) and offsets[-1] == 50  # offsets are kept, with gaps


def test_retention_deletes_old_records(log: Log, topic_name: str) -> None:
    log.create_topic(topic_name, partitions=1, config={"retention.ms": "5000", "segment.ms": "300"})
    old = int(time.time() * 1000) - 3_600_000
    tp = TopicPartition(topic_name, 0)
    with log.producer() as p:
        p.send_batch(topic_name, [b"old-%d" % i for i in range(100)], partition=0, timestamps=old)
        p.flush(10)
    deadline = time.monotonic() + 90
    c = log.consumer()
    c.assign([tp])
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with log.producer() as p:
            p.send(topic_name, b"new", partition=0)
            p.flush(10)
        log.maintain()
        low, high = c.watermarks(tp)
        if low >= 100:
            break
    assert low >= 100, f"old records still there (low watermark {low})"
    c.seek(tp, low)
    assert all(r.value == b"new" for r in drain(c, None, timeout=5))
    c.close()


WRITER = textwrap.dedent(
    """
    import sys
    from mailroom.log import open_log
    log = open_log(sys.argv[1])
    topic = sys.argv[2]
    p = log.producer()
    seq = 0
    while True:
        p.send_batch(topic, [b"%012d|" % i + b"x" * 180 for i in range(seq, seq + 2000)],
                     [b"%d" % (i % 50) for i in range(seq, seq + 2000)])
        p.flush(30)
        seq += 2000
        print(seq, flush=True)  # acknowledged up to here
    """
)


def test_sigkill_writer_loses_no_acknowledged_record(log_url: str, log: Log, topic_name: str, tmp_path) -> None:
    log.create_topic(topic_name, partitions=3)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, log_url, topic_name], stdout=subprocess.PIPE, text=True)
    acked = 0
    deadline = time.monotonic() + 60
    while acked < 40_000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked = int(line)
    time.sleep(0.013)  # land the kill somewhere inside a later batch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert acked >= 40_000, "the writer did not get going"
    log2 = open_log(log_url)
    try:
        with log2.producer() as p:  # writing again repairs any torn tail
            p.send_batch(topic_name, [b"after-restart"], partition=0)
            p.flush(10)
        recs = read_all(log2, topic_name, 3)
    finally:
        log2.close()
    seqs = []
    for r in recs:
        if r.value == b"after-restart":
            continue
        assert len(r.value) == 193 and r.value[12:13] == b"|", f"torn record at {r.partition}/{r.offset}"
        seqs.append(int(r.value[:12]))
    missing = set(range(acked)) - set(seqs)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    assert len(seqs) == len(set(seqs)), "a record was stored twice"
    for part in range(3):  # offsets stay dense after the crash
        offs = [r.offset for r in recs if r.partition == part]
        assert offs == list(range(len(offs)))


def test_killed_transaction_leaves_nothing_visible(log_url: str, log: Log, topic_name: str) -> None:
    log.create_topic(topic_name, partitions=1)
    txid = f"tx-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent(
        """
        import sys, time
        from mailroom.log import open_log
        log = open_log(sys.argv[1])
        tx = log.producer(transactional_id=sys.argv[3])
        tx.begin_transaction()
        tx.send_batch(sys.argv[2], [b"uncommitted"] * 100, partition=0)
        tx.flush(10)
        print("sent", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script, log_url, topic_name, txid], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "sent"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    tx = log.producer(transactional_id=txid)  # a new instance fences the dead one's transaction
    tx.begin_transaction()
    tx.send_batch(topic_name, [b"committed"], partition=0)
    tx.commit_transaction()
    tx.close()
    values = [r.value for r in read_all(log, topic_name)]
    assert values == [b"committed"]
