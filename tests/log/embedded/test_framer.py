"""The one-buffer encoder of fixed-width keyed batches: byte for byte the general encoder's frames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mailroom.errors import InvalidRecordError, RecordTooLargeError
from mailroom.log import TopicPartition
from mailroom.log.embedded import EmbeddedLog
from mailroom.log.embedded import frame as fr
from mailroom.log.embedded.columns import FixedColumn, column
from mailroom.log.embedded.framer import fixed_frames
from mailroom.log.embedded.producer import _by_partition
from mailroom.log.partitioner import partition_for, partitions_for


def _records(n: int, kw: int, vw: int, seed: int = 3) -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(seed)
    keys = [bytes(r) for r in rng.integers(0, 256, (n, kw), dtype=np.uint8)]
    values = [bytes(r) for r in rng.integers(0, 256, (n, vw), dtype=np.uint8)]
    return keys, values


@pytest.mark.parametrize(
    ("n", "kw", "vw", "nparts", "one_ts"),
    [
        (10_000, 10, 200, 4, True),  # the bench's shape: keys inline in polars' views, values in its buffers
        (10_000, 10, 200, 4, False),  # a timestamp a record
        (9, 10, 200, 16, True),  # most partitions empty
        (3_001, 36, 33, 3, False),  # long keys (in polars' buffers too), odd widths, 3 partitions
        (2_000, 7, 12, 5, True),  # values short enough to lie inside polars' views
        (1, 1, 1, 2, True),
        (40, 10, 200, 16, False),  # timestamps vary, but a partition of 1 or 2 records has one
        (600, 10, 20, 3, "runs"),  # ... and so do partitions whose records share one stamp
    ],
)
def test_frames_are_the_general_encoders_bytes(n, kw, vw, nparts, one_ts) -> None:
    keys, values = _records(n, kw, vw)
    kcol, vcol = column(keys), column(values, views=True)
    assert isinstance(kcol, FixedColumn) and isinstance(vcol, FixedColumn)
    parts = partitions_for(keys, nparts)
    order, ends = _by_partition(parts, nparts)
    if one_ts == "runs":  # each partition's records share a stamp, but not the batch's
        ts = 1_700_000_000_000 + parts.astype(np.int64)
        one_ts = False
    elif one_ts:
        ts = np.full(n, 1_700_000_000_123, dtype=np.int64)
    else:
        ts = 1_700_000_000_000 + np.random.default_rng(1).integers(0, 10_000, n)
    counts = np.bincount(parts, minlength=nparts).tolist()
    frames = fixed_frames(kcol, vcol, order, counts, ts, one_ts)
    a = 0
    for p, b in enumerate(ends.tolist()):
        if a == b:
            assert frames[p] is None
            continue
        idx = order[a:b]
        want = b"".join(fr.encode(0, ts[idx], [values[i] for i in idx], [keys[i] for i in idx]))
        assert bytes(frames[p]) == want, f"partition {p}"
        head = fr.parse_header(frames[p])
        fr.verify(frames[p], 0, head)  # whole and CRC-valid
        a = b


def test_a_fixed_width_batch_reads_back_in_kafkas_partitions(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t", 6)
    p = log.producer()
    batches = [_records(5_000, 10, 200, seed) for seed in range(3)]
    for keys, values in batches:
        p.send_batch("t", values, keys, timestamps=1_234)
    c = log.consumer()
    c.assign([TopicPartition("t", q) for q in range(6)])
    got: dict[int, list] = {q: [] for q in range(6)}
    offsets: dict[int, list[int]] = {q: [] for q in range(6)}
    for _ in range(20):
        for b in c.poll(100_000, timeout=0.2):
            got[b.partition] += list(zip(b.keys, b.values, b.timestamps.tolist()))
            offsets[b.partition] += b.offsets.tolist()
        if sum(map(len, got.values())) == 15_000:
            break
    c.close()
    want: dict[int, list] = {q: [] for q in range(6)}
    for keys, values in batches:
        for k, v in zip(keys, values):
            want[partition_for(k, 6)].append((k, v, 1_234))
    assert got == want
    assert all(o == list(range(len(o))) for o in offsets.values())  # dense, from 0
    log.close()


@pytest.mark.parametrize("fsync", [False, True])
def test_headers_and_fsync_logs_read_back_alike(tmp_path, fsync) -> None:
    """A batch with headers takes the general encoder, one without the framer: both read back."""
    log = EmbeddedLog(tmp_path, fsync=fsync)
    log.create_topic("t", 3)
    keys, values = _records(500, 8, 40)
    p = log.producer()
    p.send_batch("t", values, keys)  # the framer
    p.send_batch("t", values, keys, headers=[[("h", b"%d" % i)] for i in range(500)])  # general
    c = log.consumer()
    c.assign([TopicPartition("t", q) for q in range(3)])
    got: list = []
    for _ in range(20):
        for b in c.poll(10_000, timeout=0.2):
            got += list(zip(b.keys, b.values))
        if len(got) >= 1000:
            break
    c.close()
    assert sorted(got) == sorted(list(zip(keys, values)) * 2)
    log.close()


def test_the_fast_path_still_refuses_what_the_topic_refuses(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("small", 2, config={"max.message.bytes": "100"})
    keys, values = _records(100, 10, 200)
    with pytest.raises(RecordTooLargeError):
        log.producer().send_batch("small", values, keys)
    assert log.partition(TopicPartition("small", 0)).end_offset() == 0  # nothing written
    log.create_topic("compacted", 2, config={"cleanup.policy": "compact"})
    with pytest.raises(InvalidRecordError):
        log.producer().send_batch("compacted", values, None)
    log.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from mailroom.log.embedded import EmbeddedLog
    log = EmbeddedLog(sys.argv[1])
    p = log.producer()
    i = 0
    while True:
        keys = [b"k%09d" % (i * 2000 + j) for j in range(2000)]
        p.send_batch("t", [b"v" * 180 + k for k in keys], keys)
        print(i, flush=True)  # acknowledged: every record of batch i is in the log
        i += 1
    """
)


def test_a_killed_writer_loses_no_acknowledged_batch_and_leaves_nothing_torn(tmp_path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t", 4)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    acked = -1
    for line in proc.stdout:  # let it write a while, then kill it mid-stream
        acked = int(line)
        if acked >= 30:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for line in proc.stdout.read().split():  # acknowledgements it printed before dying
        acked = int(line)
    c = log.consumer()
    c.assign([TopicPartition("t", q) for q in range(4)])
    keys: set[bytes] = set()
    for _ in range(50):
        batch = c.poll(1_000_000, timeout=0.2)
        if not batch:
            break
        for b in batch:
            for k, v in zip(b.keys, b.values):
                assert v == b"v" * 180 + k  # every record served is whole
                keys.add(k)
    c.close()
    want = {b"k%09d" % i for i in range((acked + 1) * 2000)}
    assert want <= keys  # every acknowledged record survived
    # a frame cut short at the tail is set aside by the next writer: appending works and reads back
    log.producer().send_batch("t", [b"after"], [b"k-after"])
    tp = TopicPartition("t", partition_for(b"k-after", 4))
    assert log.partition(tp).end_offset() >= 1
    log.close()
