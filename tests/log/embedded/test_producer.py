"""The embedded producer's split of a keyed batch by partition (fixed-width and mixed columns)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mailroom.log import TopicPartition
from mailroom.log.embedded import EmbeddedLog
from mailroom.log.partitioner import partition_for


def _read_all(log: EmbeddedLog, topic: str, parts: int, n: int) -> dict[int, list[tuple[bytes, bytes]]]:
    c = log.consumer()
    c.assign([TopicPartition(topic, p) for p in range(parts)])
    out: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(parts)}
    for _ in range(10):
        for b in c.poll(100_000, timeout=0.5):
            out[b.partition] += list(zip(b.keys, b.values))
        if sum(map(len, out.values())) >= n:
            break
    c.close()
    return out


@pytest.mark.parametrize("shape", ["fixed", "mixed", "arrow slice"])
def test_keyed_batch_lands_in_kafkas_partitions_in_order(tmp_path, shape) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic("t", 5)
    n = 3000
    if shape in ("fixed", "arrow slice"):  # one width per column: gathered as rows
        keys = [b"key-%06d" % i for i in range(n)]
        values = [b"value-%08d" % (i * 7) for i in range(n)]
    else:  # widths vary: gathered record by record
        keys = [b"k%d" % i for i in range(n)]
        values = [b"v" * (i % 13) + b"%d" % i for i in range(n)]
    if shape == "arrow slice":  # Arrow input that starts inside its buffers
        keys_in = pa.array([b"pad"] * 7 + keys, pa.binary()).slice(7)
        values_in = pa.array([b"padding"] * 7 + values, pa.binary()).slice(7)
    else:
        keys_in, values_in = keys, values
    log.producer().send_batch("t", values_in, keys_in)
    got = _read_all(log, "t", 5, n)
    want: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(5)}
    for k, v in zip(keys, values):
        want[partition_for(k, 5)].append((k, v))
    assert got == want
    log.close()
