"""The partition reader's batching: whole frames per poll, pooled buffers, a tail that shrinks."""

from __future__ import annotations

import os

import numpy as np

from mailroom.log import TopicPartition
from mailroom.log.embedded import EmbeddedLog
from mailroom.log.embedded import reader as rd


def _frames(log: EmbeddedLog, topic: str, sizes: list[int], width: int = 300) -> int:
    """One frame per size in partition 0 (values numbered from 0); returns the record count."""
    p = log.producer()
    start = 0
    for n in sizes:
        p.send_batch(topic, [b"%08d" % i + b"." * (width - 8) for i in range(start, start + n)], partition=0)
        start += n
    return start


def test_a_poll_takes_whole_frames_once_it_has_records_and_splits_only_the_first(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    total = _frames(log, "t", [2000, 2000, 2000, 2000, 5000, 30, 30])  # big frames (> OWN_READ_BYTES)
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    sizes, offsets = [], []
    while len(offsets) < total:
        got = c.poll(4500, timeout=1)
        assert got, "a poll with records left returned nothing"
        sizes.append(sum(len(b) for b in got))
        for b in got:
            offsets += b.offsets.tolist()
            assert [int(v[:8]) for v in b.value_array.to_pylist()] == b.offsets.tolist()
    assert offsets == list(range(total))
    # 2000 + 2000 fit, the third frame would not: left whole for the next poll (no 500-record
    # piece); the 5000-record frame is first in its poll, so it is split to fit
    assert sizes[:3] == [4000, 4000, 4500], sizes
    assert sizes[3:] == [500 + 30 + 30], sizes
    c.close()
    log.close()


def test_held_frames_do_not_pin_pool_buffers(tmp_path) -> None:
    """Four partitions read in turn by polls that stop between frames: the pool's buffers are
    reused within a short rotation (each one pinned only by batches still referenced)."""
    log = EmbeddedLog(tmp_path)
    log.create_topic("t", 4)
    p = log.producer()
    for i in range(12):
        for part in range(4):
            p.send_batch("t", [b"%d-%d-%d" % (part, i, j) + b"." * 290 for j in range(1000)], partition=part)
    c = log.consumer()
    c.assign([TopicPartition("t", part) for part in range(4)])
    used: set[int] = set()
    real = rd._free_buffer

    def spy():
        b = real()
        used.add(id(b.obj))
        return b

    rd._free_buffer = spy
    try:
        got = 0
        while got < 48_000:
            got += sum(len(b.value_array) for b in c.poll(2500, timeout=1))
    finally:
        rd._free_buffer = real
    assert got == 48_000
    assert len(used) <= 4, len(used)  # (a held, split frame per partition used to pin 4 more)
    c.close()
    log.close()


def test_a_tail_set_aside_under_a_reader_does_not_stall_it(tmp_path) -> None:
    """The reader remembers how big its segment was; after a writer truncated a torn tail the
    reader must look again rather than wait for bytes that will never come."""
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    total = _frames(log, "t", [1500])
    c = log.consumer()
    tp = TopicPartition("t", 0)
    c.assign([tp])
    assert sum(len(b) for b in c.poll(10_000, timeout=1)) == total
    seg = sorted((tmp_path / "topics" / "t" / "0").glob("*.log"))[-1]
    from mailroom.log.embedded import frame as fr

    whole = b"".join(fr.encode(total, np.zeros(2000, np.int64), [os.urandom(300) for _ in range(2000)]))
    with open(seg, "ab") as f:  # a writer killed mid-frame: a header and part of a body
        f.write(whole[: len(whole) * 2 // 3])
    assert c.poll(10_000, timeout=0.2) == []  # a frame still being written: not served
    other = EmbeddedLog(tmp_path)  # the next writer sets the torn tail aside and appends
    other.producer().send_batch("t", [b"after"] * 10, partition=0)
    other.close()
    got = []
    for _ in range(5):
        got += [v for b in c.poll(10_000, timeout=0.5) for v in b.value_array.to_pylist()]
        if got:
            break
    assert got == [b"after"] * 10
    assert c.position(tp) == total + 10
    c.close()
    log.close()


def test_one_stamp_batches_store_it_once_and_mixed_stamps_keep_theirs(tmp_path) -> None:
    """A batch stamped once (the send time, or one given timestamp) is encoded without a
    timestamp column; per-record timestamps survive a keyed split by partition."""
    from mailroom.log.embedded import frame as fr
    from mailroom.log.embedded.segment import iter_headers

    log = EmbeddedLog(tmp_path)
    log.create_topic("t", 3)
    p = log.producer()
    keys = [b"k%04d" % i for i in range(300)]
    p.send_batch("t", [b"a"] * 300, keys, timestamps=1234)
    p.send_batch("t", [b"b"] * 300, keys)
    p.send_batch("t", [b"c"] * 300, keys, timestamps=np.arange(300) + 10)
    c = log.consumer()
    c.assign([TopicPartition("t", part) for part in range(3)])
    stamps: dict[bytes, dict[bytes, int]] = {b"a": {}, b"b": {}, b"c": {}}
    while sum(map(len, stamps.values())) < 900:
        for b in c.poll(10_000, timeout=1):
            for k, v, ts in zip(b.key_array.to_pylist(), b.value_array.to_pylist(), b.timestamps.tolist()):
                stamps[v][k] = ts
    assert set(stamps[b"a"].values()) == {1234}
    assert len(set(stamps[b"b"].values())) == 1 and next(iter(stamps[b"b"].values())) > 1_600_000_000_000
    assert stamps[b"c"] == {k: i + 10 for i, k in enumerate(keys)}
    for part in range(3):
        seg = sorted((tmp_path / "topics" / "t" / str(part)).glob("*.log"))[0]
        fd = os.open(seg, os.O_RDONLY)
        heads = [h for _, h in iter_headers(fd, 0, os.fstat(fd).st_size)]
        os.close(fd)
        assert [bool(h.flags & fr.FLAG_ONE_TIMESTAMP) for h in heads] == [True, True, False]
    c.close()
    log.close()
