"""Keys carried as a column (string keys decoded in one pass, a frame's key column after a
re-key or a repartition): pre-aggregation and repartitioning use the column, the key list is made
only when read, and the results equal the record-by-record ones. Also: a poll's batches of one
partition are processed as one, and ``latest()`` equals ``reduce(lambda old, new: new)``."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pytest

from mailroom.engine import BYTES, MSGPACK, Batch, JsonColumnsSerde, TestDriver, Topology
from mailroom.engine.aggregators import CountAggregator
from mailroom.engine.app import _merge_batches
from mailroom.log import RecordBatch


def _events(n: int, seed: int = 5) -> list[tuple[str, dict, int]]:
    rng = random.Random(seed)
    return [(f"m{rng.randrange(n // 3)}", {"domain": f"d{int(50 * rng.random() ** 3)}.com", "i": i}, 1000 + i)
            for i in range(n)]


@pytest.mark.parametrize("caching", [True, False])
def test_count_by_a_column_through_the_repartition_equals_a_counter(caching: bool, monkeypatch) -> None:
    calls = []
    real = CountAggregator.partial_columns
    monkeypatch.setattr(CountAggregator, "partial_columns", lambda self, *a: calls.append(1) or real(self, *a))
    top = Topology()
    (top.stream("in", value_serde=JsonColumnsSerde({"domain": pl.String}))
        .group_by("domain").count().to_stream(with_old=True).to("out", value_serde=MSGPACK))
    d = TestDriver(top, caching=caching)
    evs = _events(3000)
    seen: Counter = Counter()
    for i in range(0, len(evs), 700):
        chunk = [(k, orjson.dumps(v).decode(), t) for k, v, t in evs[i : i + 700]]
        before = dict(seen)
        d.pipe_batch("in", [(k, orjson.loads(v), t) for k, v, t in chunk])
        seen.update(orjson.loads(v)["domain"] for _, v, _ in chunk)
        out = d.read_output("out", value_serde=MSGPACK)
        last = {o.key: o.value for o in out}
        assert {k: v["new"] for k, v in last.items()} == {k: seen[k] for k in last}
        if caching:  # one change per key per commit, with the value of the previous commit as old
            assert len(out) == len(last)
            assert {k: v["old"] for k, v in last.items()} == {k: before.get(k) for k in last}
    assert not d.processing_log.entries
    assert bool(calls) == caching  # cached: pre-aggregated from the key column (uncached: per record)


def test_keys_that_are_not_utf8_are_reported_and_the_rest_counted() -> None:
    top = Topology()
    top.stream("in", value_serde=BYTES).group_by_key().count().to_stream().to("out", value_serde=MSGPACK)
    d = TestDriver(top, caching=True)
    d._feed("in", [b"a", b"\xff\xfe", b"a", b"b"], [b"1", b"2", b"3", b"4"], np.arange(4, dtype=np.int64))
    d.commit()
    assert {o.key: o.value for o in d.read_output("out", value_serde=MSGPACK)} == {"a": 2, "b": 1}
    (entry,) = d.processing_log.entries
    assert "UTF-8" in entry["reason"] and entry["offset"] == 1


@pytest.mark.parametrize("caching", [True, False])
def test_latest_equals_reduce_keeping_the_new_value(caching: bool) -> None:
    outs = []
    for form in ("latest", "reduce"):
        top = Topology()
        g = top.stream("in", value_serde=BYTES).group_by_key()
        t = g.latest() if form == "latest" else g.reduce(lambda old, new: new)
        t.to_stream().to("out", value_serde=BYTES)
        d = TestDriver(top, caching=caching)
        evs = _events(2000, seed=9)
        for i in range(0, len(evs), 300):
            d.pipe_batch("in", [(k, orjson.dumps(v), t) for k, v, t in evs[i : i + 300]])
        outs.append({o.key: (o.value, o.timestamp) for o in d.read_output("out", value_serde=BYTES)})
    assert outs[0] == outs[1]
    expected = {k: orjson.dumps(v) for k, v, _ in _events(2000, seed=9)}  # the last value per key
    assert {k: v for k, (v, _) in outs[0].items()} == expected


def test_a_batch_makes_its_key_list_from_the_column_only_when_read() -> None:
    col = pl.Series(["a", "b", None, "c"])
    b = Batch(None, [1, 2, 3, 4], np.arange(4, dtype=np.int64), key_column=col)
    assert len(b) == 4 and b._keys is None
    taken = b.take(np.array([True, False, True, True]))
    assert taken.key_series().to_list() == ["a", None, "c"] and taken._keys is None
    assert taken.keys == ["a", None, "c"] and taken.values == [1, 3, 4]
    assert b.with_values([9, 9, 9, 9]).key_series() is col  # same keys: the column goes along
    assert b.with_values([9, 9, 9, 9], ["w", "x", "y", "z"]).key_series() is None
    b.keys = ["p", "q", "r", "s"]  # assigned keys: the column no longer describes them
    assert b.key_series() is None and b.keys == ["p", "q", "r", "s"]
    with pytest.raises(ValueError):
        Batch(None, [], np.empty(0, dtype=np.int64))


def _rb(topic: str, part: int, first: int, n: int) -> RecordBatch:
    offs = np.arange(first, first + n, dtype=np.int64)
    return RecordBatch(topic, part, offs, offs * 10, [b"k%d" % o for o in offs.tolist()],
                       pa.array([b"v%d" % o for o in offs.tolist()], type=pa.binary()))


def test_a_polls_batches_of_one_partition_are_merged_in_order() -> None:
    polled = [_rb("t", 0, 0, 3), _rb("t", 1, 0, 2), _rb("t", 0, 3, 2), _rb("u", 0, 7, 1)]
    merged = _merge_batches(polled)
    assert [(b.topic, b.partition, len(b)) for b in merged] == [("t", 0, 5), ("t", 1, 2), ("u", 0, 1)]
    b = merged[0]
    assert b.offsets.tolist() == [0, 1, 2, 3, 4] and b.timestamps.tolist() == [0, 10, 20, 30, 40]
    assert b.keys == [b"k0", b"k1", b"k2", b"k3", b"k4"] and b.values[-1] == b"v4" and b.next_offset == 5
    single = [_rb("t", 0, 0, 3)]
    assert _merge_batches(single) is single
