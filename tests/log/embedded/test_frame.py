"""The embedded log's frame format and its read path: checksums, timestamps, big frames."""

from __future__ import annotations

import os

import crc32c
import numpy as np
import pyarrow as pa
import pytest

from mailroom.log import TopicPartition
from mailroom.log.embedded import EmbeddedLog
from mailroom.log.embedded import frame as fr
from mailroom.log.embedded import reader as rd


def test_fast_crc_is_the_same_crc32c_as_the_reference() -> None:
    data = os.urandom(100_003)
    for lo, hi in [(0, 0), (0, 1), (3, 17), (5, 4096), (1, 100_003)]:
        part = memoryview(data)[lo:hi]
        assert fr.crc32c_of(part) == crc32c.crc32c(part)
        # continued from a previous value, as a frame's CRC is built piece by piece
        assert fr.crc32c_of(part, 0xDEADBEEF) == crc32c.crc32c(part, 0xDEADBEEF)


def _frame(ts: np.ndarray, values: list[bytes], keys: list[bytes]) -> bytes:
    return b"".join(fr.encode(0, ts, values, keys))


def test_one_timestamp_frames_drop_the_column_and_decode_alike() -> None:
    values, keys = [b"v%d" % i for i in range(100)], [b"k%d" % i for i in range(100)]
    same = _frame(np.full(100, 1_700_000_000_123), values, keys)
    varied = _frame(np.arange(100) + 1_700_000_000_000, values, keys)
    assert len(varied) - len(same) >= 8 * 100 - 8  # no timestamp column (up to padding)
    for buf, want in [(same, [1_700_000_000_123] * 100), (varied, list(range(1_700_000_000_000, 1_700_000_000_100)))]:
        head = fr.parse_header(buf)
        fr.verify(buf, 0, head)
        dec = fr.decode(buf, 0, head)
        assert dec.timestamps.tolist() == want
        assert dec.values.to_pylist() == values and dec.keys.to_pylist() == keys
        assert head.max_timestamp == max(want)
    assert fr.parse_header(same).flags & fr.FLAG_ONE_TIMESTAMP
    assert not fr.parse_header(varied).flags & fr.FLAG_ONE_TIMESTAMP


def test_a_flipped_byte_in_a_one_timestamp_frame_fails_its_crc() -> None:
    buf = bytearray(_frame(np.full(10, 5), [b"x" * 20] * 10, [b"k"] * 10))
    head = fr.parse_header(buf)
    buf[fr.HEADER_SIZE + 3] ^= 1
    with pytest.raises(fr.FrameError, match="CRC"):
        fr.verify(buf, 0, head)


def test_big_frames_read_one_at_a_time_in_small_polls(tmp_path, monkeypatch) -> None:
    """Frames above OWN_READ_BYTES are read exactly (with the next header); polls that take
    part of a frame, seeks into the middle and a frame appended meanwhile all still work."""
    reads: list[int] = []
    pread = rd.PartitionReader._pread
    monkeypatch.setattr(rd.PartitionReader, "_pread", lambda self, n: reads.append(n) or pread(self, n))
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    p = log.producer()
    value = b"x" * 300
    sizes = [1000, 3, 700, 1, 1200, 2000, 2000, 2000, 5]  # ~300-600 KB frames beside tiny ones: > READ_CHUNK
    start = 0
    for n in sizes:
        p.send_batch("t", [value[:-8] + b"%08d" % i for i in range(start, start + n)], partition=0,
                     timestamps=list(range(start, start + n)))
        start += n
    total = start
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    got: list[bytes] = []
    offsets: list[int] = []
    for take in [10, 990, 250, 600, 1, 5000, 2000, 1000, 10_000]:
        for b in c.poll(take, timeout=1):
            got += b.value_array.to_pylist()
            offsets += b.offsets.tolist()
            assert b.timestamps.tolist() == b.offsets.tolist()
        if len(got) == total:
            break
    p.send_batch("t", [b"late"] * 2000, partition=0)  # a frame appended after the reader caught up
    for _ in range(5):
        for b in c.poll(10_000, timeout=1):
            got += b.value_array.to_pylist()
            offsets += b.offsets.tolist()
        if len(offsets) >= total + 2000:
            break
    assert offsets == list(range(total + 2000))
    assert [int(v[-8:]) for v in got[:total]] == list(range(total))
    assert got[total:] == [b"late"] * 2000
    frame_lengths = {h.length for _, h in _headers(tmp_path / "topics" / "t" / "0")}
    assert any(n - fr.HEADER_SIZE in frame_lengths and n > rd.OWN_READ_BYTES for n in reads)  # exact reads
    c.seek(TopicPartition("t", 0), 1500)  # into the middle of a big frame
    b = c.poll(5, timeout=1)[0]
    assert b.offsets.tolist() == list(range(1500, 1505)) and int(b.value_array[0].as_py()[-8:]) == 1500
    c.close()
    log.close()


def _headers(folder):
    from mailroom.log.embedded.segment import iter_headers

    seg = sorted(folder.glob("*.log"))[0]
    fd = os.open(seg, os.O_RDONLY)
    try:
        return list(iter_headers(fd, 0, os.fstat(fd).st_size))
    finally:
        os.close(fd)


def test_read_buffers_are_reused_only_once_no_batch_holds_them(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t")
    p = log.producer()
    for i in range(30):
        p.send_batch("t", [b"%d-%d" % (i, j) + b"." * 200 for j in range(1000)], partition=0)
    c = log.consumer()
    c.assign([TopicPartition("t", 0)])
    held = []  # keep every batch: its bytes must never be overwritten by a later read
    while sum(len(b) for b in held) < 30_000:
        held += c.poll(1000, timeout=1)
    assert len(rd._pool) <= rd.POOL_BUFFERS
    expect = [b"%d-%d" % (i, j) + b"." * 200 for i in range(30) for j in range(1000)]
    assert pa.concat_arrays([b.value_array for b in held]).to_pylist() == expect
    c.close()
    log.close()
