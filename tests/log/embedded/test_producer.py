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


def test_nulls_hidden_in_a_one_width_batch_are_kept(tmp_path) -> None:
    """Null keys and values where a quick look at a batch sees one width (first, middle and
    last records): keyed records go to Kafka's partitions, null-keyed ones stick to one."""
    log = EmbeddedLog(tmp_path)
    log.create_topic("t", 4)
    n = 2001
    keys = [None if i % 100 == 7 else b"key-%06d" % i for i in range(n)]
    values = [None if i % 50 == 3 else b"value-%08d" % i for i in range(n)]
    log.producer().send_batch("t", values, keys)
    got = _read_all(log, "t", 4, n)
    assert sum(map(len, got.values())) == n
    sticky = {p for p, recs in got.items() for k, _ in recs if k is None}
    assert len(sticky) == 1
    for p, recs in got.items():
        assert all(k is None or partition_for(k, 4) == p for k, _ in recs)
    want = {(k, v) for k, v in zip(keys, values)}
    assert {r for recs in got.values() for r in recs} == want
    log.close()


def test_a_big_fixed_width_batch_round_trips_exactly(tmp_path) -> None:
    """20k values of 200 B: polars spreads them over several buffers, gathered by partition."""
    log = EmbeddedLog(tmp_path)
    log.create_topic("t", 3)
    n = 20_000
    keys = [b"%010d" % (i * 7919) for i in range(n)]
    values = [(b"%08d" % i) * 25 for i in range(n)]
    log.producer().send_batch("t", values, keys)
    got = _read_all(log, "t", 3, n)
    want: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(3)}
    for k, v in zip(keys, values):
        want[partition_for(k, 3)].append((k, v))
    assert got == want
    log.close()


def _varying(n: int) -> tuple[list[bytes], list[bytes | None]]:
    """Fixed-width keys and values of varying widths: mostly 190..210 B (polars' data buffers),
    some empty, some up to 12 B (inside their views), some null."""
    keys = [b"%010d" % (i * 7919) for i in range(n)]
    values: list[bytes | None] = []
    for i in range(n):
        if i % 97 == 5:
            values.append(None)
        elif i % 89 == 3:
            values.append(b"")
        elif i % 83 == 1:
            values.append(b"s%d" % (i % 1000))
        else:
            values.append((b"%08d" % i) * 30)
            values[-1] = values[-1][: 190 + i % 21]
    return keys, values


def test_varying_width_values_round_trip_in_order_as_the_general_path_wrote_them(tmp_path, monkeypatch) -> None:
    """Values of varying widths (with nulls, empty and inline ones) gathered from polars' views:
    each partition gets its records in order, in frames byte for byte the same as the general
    path (views cast to Arrow binary, then taken) writes."""
    from mailroom.log.embedded import producer as producer_module

    from mailroom.log.embedded.columns import ViewColumn, column

    log = EmbeddedLog(tmp_path)
    n = 20_000  # (several of polars' data buffers)
    keys, values = _varying(n)
    assert isinstance(column(values, views=True), ViewColumn)  # (the path under test)
    log.create_topic("new", 4)
    log.create_topic("old", 4)
    log.producer().send_batch("new", values, keys, timestamps=1_700_000_000_000)
    general = producer_module.column
    with monkeypatch.context() as m:  # the previous path: no views
        m.setattr(producer_module, "column", lambda col, views=False: general(col))
        log.producer().send_batch("old", values, keys, timestamps=1_700_000_000_000)
    got = _read_all(log, "new", 4, n)
    want: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(4)}
    for k, v in zip(keys, values):
        want[partition_for(k, 4)].append((k, v))
    assert got == want
    assert got == _read_all(log, "old", 4, n)
    for p in range(4):
        new, old = log.partition(TopicPartition("new", p)), log.partition(TopicPartition("old", p))
        assert new.segments() == old.segments() == [0]
        assert new.segment_path(0).read_bytes() == old.segment_path(0).read_bytes()
    log.close()
