"""The reader's fast path for big frames: several frames a read, a frame cut short by the read
finished in place, tails still being written, damage among frames read together, and reads
landing in the buffer at the file's alignment."""

from __future__ import annotations

import os

import pytest

from mailroom.errors import CorruptLogError
from mailroom.log import TopicPartition
from mailroom.log.embedded import EmbeddedLog
from mailroom.log.embedded import frame as fr
from mailroom.log.embedded import reader as rd
from mailroom.log.embedded.segment import iter_headers

WIDTH = 300  # bytes a value: frames of 500+ records are big (> OWN_READ_BYTES)


def _produce(log: EmbeddedLog, sizes: list[int], start: int = 0) -> int:
    """One frame per size in partition 0 of "t", values numbered from ``start``."""
    p = log.producer()
    for n in sizes:
        p.send_batch("t", [b"%08d" % i + b"." * (WIDTH - 8) for i in range(start, start + n)], partition=0)
        start += n
    return start


def _segment(tmp_path):
    return sorted((tmp_path / "topics" / "t" / "0").glob("*.log"))[0]


def _frames(tmp_path) -> list[tuple[int, fr.FrameHeader]]:
    fd = os.open(_segment(tmp_path), os.O_RDONLY)
    try:
        return list(iter_headers(fd, 0, os.fstat(fd).st_size))
    finally:
        os.close(fd)


def _numbers(batches) -> list[int]:
    return [int(v[:8]) for b in batches for v in b.value_array.to_pylist()]


class _CountReads:
    """Counts preadv calls and bytes of the reader module (monkeypatched over its ``os``)."""

    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def preadv(self, fd, bufs, pos):
        n = os.preadv(fd, bufs, pos)
        self.calls += 1
        self.bytes += n
        return n


def test_big_frames_of_varying_sizes_are_read_several_at_a_time_each_byte_once(tmp_path, monkeypatch) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    sizes = [1000, 1300, 800, 1100, 1000, 1250, 900, 1000, 1400, 700, 1000, 1000]  # guesses too long and too short
    total = _produce(log, sizes)
    counter = _CountReads()
    monkeypatch.setattr(rd, "os", counter)
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    got, polls = [], 0
    while len(got) < total:
        batches = c.poll(4000, timeout=1)
        assert batches, "a poll with records left returned nothing"
        assert sum(len(b) for b in batches) <= 4000
        got += _numbers(batches)
        polls += 1
    assert got == list(range(total))
    # about one read a poll (frames read one at a time took 7 here), and next to no byte read
    # twice: only the part of a frame a read took past the last frame wanted is read again
    assert counter.calls <= polls + 1, (counter.calls, polls)
    assert counter.bytes < os.path.getsize(_segment(tmp_path)) * 1.1
    c.close()
    log.close()


def test_a_frame_a_read_cuts_short_is_finished_in_place(tmp_path, monkeypatch) -> None:
    """Frames read together are sized by the first one's length: a longer one after it is cut
    by the read and finished by a second read into the same buffer, after the bytes it has."""
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    # 7 frames fill the first 2 MB chunk (the 7th cut: its length is then known); then 6 frames'
    # worth of bytes are read at once, which ends inside the 5th frame after it (the 1600s are longer)
    sizes = [1000] * 7 + [1000, 1000, 1600, 1600, 1600, 1600, 1000, 1000]
    total = _produce(log, sizes)
    counter = _CountReads()
    monkeypatch.setattr(rd, "os", counter)
    preads: list[int] = []
    pread = rd.PartitionReader._pread
    monkeypatch.setattr(rd.PartitionReader, "_pread", lambda self, n: preads.append(n) or pread(self, n))
    r = rd.PartitionReader(log.partition(TopicPartition("t", 0)))
    got = []
    while len(got) < total:
        frames = r.read(10_000)
        assert frames
        got += [int(v[:8]) for f in frames for v in f.values.to_pylist()]
    assert got == list(range(total))
    assert counter.calls > len(preads)  # a read that was not a new buffer's: one finished in place
    # (what is read twice: the cut end of the first chunk, and frames guessed to fit a budget that did not)
    assert counter.bytes < os.path.getsize(_segment(tmp_path)) * 1.25
    r.close()
    log.close()


def test_a_frame_still_being_written_after_big_ones_is_served_once_whole(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    total = _produce(log, [1000, 1000])
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    assert _numbers(c.poll(10_000, timeout=1)) == list(range(total))
    # the next frame written by hand in two parts, as a writer is seen mid-writev
    import numpy as np

    values = [b"%08d" % i + b"." * (WIDTH - 8) for i in range(total, total + 1500)]
    whole = b"".join(fr.encode(total, np.zeros(1500, np.int64), values))
    seg = _segment(tmp_path)
    with open(seg, "ab") as f:
        f.write(whole[: len(whole) // 2])
    assert c.poll(10_000, timeout=0.1) == []  # cut short: not there yet
    with open(seg, "ab") as f:
        f.write(whole[len(whole) // 2 :])
    assert _numbers(c.poll(10_000, timeout=1)) == list(range(total, total + 1500))
    c.close()
    log.close()


def test_damage_among_frames_read_together_is_raised_after_the_frames_before_it(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    _produce(log, [1000, 1000, 1000, 1000])
    heads = _frames(tmp_path)
    bad_pos, bad = heads[2]
    with open(_segment(tmp_path), "r+b") as f:  # one flipped byte in the third frame's values
        f.seek(bad_pos + bad.length - 100)
        byte = f.read(1)
        f.seek(bad_pos + bad.length - 100)
        f.write(bytes([byte[0] ^ 1]))
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    first = c.poll(1000, timeout=1)  # (the next frame's header comes with it: a big-frame read follows)
    rest = c.poll(10_000, timeout=1)  # the second frame and the third, damaged, in one read
    assert _numbers(first + rest) == list(range(2000))
    with pytest.raises(CorruptLogError, match="CRC") as e:
        c.poll(10_000, timeout=1)
    assert str(bad_pos) in str(e.value)
    with pytest.raises(CorruptLogError):  # and it stays there
        c.poll(10_000, timeout=1)
    c.close()
    log.close()


def test_reads_land_in_the_buffer_at_the_files_alignment(tmp_path) -> None:
    """The kernel copies page cache to a buffer misaligned to it at up to half speed: each
    frame's columns sit at the same address modulo ALIGN as the frame's bytes in the file."""
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    _produce(log, [1000, 37, 1000, 999, 1001, 5, 1000])  # frames at positions of every alignment mod 64
    where = {h.base_offset: pos for pos, h in _frames(tmp_path)}
    assert len({pos % rd.ALIGN for pos in where.values()}) > 1
    r = rd.PartitionReader(log.partition(TopicPartition("t", 0)))
    seen = 0
    for _ in range(10):
        for f in r.read(2500):
            pos = where[f.header.base_offset]
            if f.header.length > rd.SMALL_READ:  # (a small read gets a buffer of its own size)
                assert f.header.flags & fr.FLAG_ONE_TIMESTAMP and not f.header.flags & fr.FLAG_KEYS
                value_offsets = f.values.buffers()[1]  # right after the 48-byte header (no keys, one stamp)
                assert value_offsets.address % rd.ALIGN == (pos + fr.HEADER_SIZE) % rd.ALIGN
                seen += 1
    assert seen == sum(h.length > rd.SMALL_READ for _, h in _frames(tmp_path))
    r.close()
    log.close()
