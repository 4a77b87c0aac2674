"""Cached (write-back) aggregations over multi-record batches: the node's decoded-state cache
must emit exactly what the byte store holds, with the right old values, whatever the keys."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import polars as pl
import pytest

from mailroom.engine import INT64, MSGPACK, JsonColumnsSerde, TestDriver, TimeWindows, Topology
from mailroom.engine.serdes import JSON, JsonSerde


def _changes(d: TestDriver, topic: str) -> list[tuple]:
    return [(o.key, o.value) for o in d.read_output(topic, key_serde=MSGPACK, value_serde=MSGPACK)]


def _cached_equals_uncached(build, recs: list, step: int) -> dict:
    """Run the windowed topology ``build`` makes over ``recs`` (``step`` a batch, a commit each)
    without and with caching: the final values agree, and every cached change's old value is the
    previous change's new one. Returns the final values by window."""
    results = []
    for caching in (False, True):
        top = Topology()
        build(top)
        d = TestDriver(top, caching=caching)
        outs = []
        for i in range(0, len(recs), step):
            d.pipe_batch("in", recs[i : i + step])
            outs += _changes(d, "out")
        results.append(outs)
    final = [{tuple(k): v["new"] for k, v in outs} for outs in results]
    assert final[0] == final[1]
    last: dict = {}
    for k, v in results[1]:
        assert v["old"] == last.get(tuple(k))
        last[tuple(k)] = v["new"]
    return final[1]


def test_batched_count_emits_once_per_key_per_commit_with_old_values() -> None:
    top = Topology()
    top.stream("in", key_serde=MSGPACK).group_by_key().count().to_stream(with_old=True).to("out", key_serde=MSGPACK, value_serde=MSGPACK)
    d = TestDriver(top, caching=True)
    rng = random.Random(3)
    seen: Counter = Counter()
    for rnd in range(4):
        recs = [(rng.choice("abcde"), {"n": i}, rnd * 100 + i) for i in range(50)]
        d.pipe_batch("in", recs[:25], commit=False)
        d.pipe_batch("in", recs[25:])  # two batches, one commit
        before = dict(seen)
        seen.update(k for k, _, _ in recs)
        got = _changes(d, "out")
        assert [k for k, _ in got] == list(dict.fromkeys(k for k, _, _ in recs))  # first-touch order
        assert {k: v["new"] for k, v in got} == {k: seen[k] for k, _ in got}
        assert {k: v["old"] for k, v in got} == {k: before.get(k) for k, _ in got}


def test_keys_of_mixed_types_stay_apart_and_switching_type_keeps_counts() -> None:
    top = Topology()
    top.stream("in", key_serde=MSGPACK).group_by_key().count().to_stream().to("out", key_serde=MSGPACK, value_serde=INT64)
    d = TestDriver(top, caching=True)
    d.pipe_batch("in", [("a", 1, 1), ("b", 1, 2), ("a", 1, 3)], commit=False)
    d.pipe_batch("in", [(1, 1, 4), (True, 1, 5), (1.0, 1, 6), ("a", 1, 7), ((1, "x"), 1, 8)])
    out = [(type(o.key).__name__, o.key, o.value) for o in d.read_output("out", key_serde=MSGPACK, value_serde=INT64)]
    # 1 == 1.0 == True as Python dict keys, but they are different keys (encodings) in the state
    assert out == [("str", "a", 3), ("str", "b", 1), ("int", 1, 1), ("bool", True, 1), ("float", 1.0, 1),
                   ("tuple", (1, "x"), 1)]


def test_aggregate_state_comes_out_as_the_store_holds_it_and_failures_keep_no_state() -> None:
    def add(key, value, agg):
        if value["n"] < 0:
            raise ValueError("negative")
        return (agg[0] + value["n"], agg[1] + 1)  # a tuple: the store gives back a list

    seen: list = []
    top = Topology()
    (top.stream("in").group_by_key().aggregate(lambda: (0, 0), add).to_stream(with_old=True)
        .peek(lambda k, v: seen.append((k, v))).to("out", value_serde=MSGPACK))
    d = TestDriver(top, caching=True)
    d.pipe_batch("in", [("a", {"n": 2}, 1), ("x", {"n": -1}, 2), ("a", {"n": 3}, 3)])
    assert seen == [("a", {"old": None, "new": [5, 2]})]  # a list, as from the store; "x" failed: no state
    assert type(seen[0][1]["new"]) is list
    assert len(d.processing_log.entries) == 1
    seen.clear()
    d.pipe_batch("in", [("a", {"n": 1}, 4), ("x", {"n": 4}, 5)])
    assert seen == [("a", {"old": [5, 2], "new": [6, 3]}), ("x", {"old": None, "new": [4, 1]})]


def test_reduce_latest_per_key_over_batches_matches_the_uncached_result() -> None:
    rng = random.Random(5)
    recs = [(f"m{rng.randrange(40)}", {"seq": i}, 1000 + i) for i in range(400)]
    finals = []
    for caching in (False, True):
        top = Topology()
        top.stream("in").group_by_key().reduce(lambda old, new: new).to_stream().to("out")
        d = TestDriver(top, caching=caching)
        for i in range(0, len(recs), 37):
            d.pipe_batch("in", recs[i : i + 37])
        finals.append({o.key: (o.value, o.timestamp) for o in d.read_output("out")})
    assert finals[0] == finals[1]
    assert finals[1] == {k: ({"seq": i}, 1000 + i) for i, (k, _, _) in enumerate(recs)}


def test_windowed_count_over_batches_matches_the_uncached_result_with_old_values() -> None:
    schema = {"domain": pl.String, "ts": pl.Int64}
    rng = random.Random(7)
    recs = [(None, {"domain": rng.choice(["a", "b", "c"]), "ts": 60_000 * rng.randrange(5) + i}, 0) for i in range(300)]
    def build(top: Topology) -> None:
        (top.stream("in", value_serde=JsonColumnsSerde(schema), timestamp_field="ts").group_by("domain")
            .windowed_by(TimeWindows.tumbling(60_000, grace_ms=3_600_000)).count()
            .to_stream(with_old=True).to("out", key_serde=MSGPACK, value_serde=MSGPACK))

    final = _cached_equals_uncached(build, recs, 50)
    assert sum(final.values()) == len(recs)


def test_json_columns_decode_falls_back_on_a_record_with_a_newline_or_a_blank_one() -> None:
    serde = JsonColumnsSerde({"a": pl.Int64})
    df, bad = serde.decode([b'{"a":1}', b'{"a":\n2}', b"   ", b'{"a":3} {"a":4}', b'{"a":5}'])
    assert df["a"].to_list() == [1, 2, None, None, 5]
    assert [i for i, _ in bad] == [2, 3]
    df, bad = serde.decode([b'{"a":1}', b'{"a":2}'])
    assert df["a"].to_list() == [1, 2] and bad == []


def test_json_encode_of_numbers_in_one_call_equals_per_value() -> None:
    vals = [0, -5, 2**63 - 1, 1.5, -0.25, 1e300, 7]
    assert JSON.encode(vals) == [orjson.dumps(v) for v in vals]
    with pytest.raises(TypeError):  # as per value: orjson refuses ints beyond 64 bits
        JsonSerde().encode([2**70, 3])
    assert JSON.encode([1, None, True]) == [b"1", None, b"true"]


def test_a_join_reads_counts_changed_since_the_last_commit() -> None:
    """The count's state is put in its store lazily (once per commit, not per batch); a reader of
    the table in between (a stream-table join) still sees every batch's change at once."""
    top = Topology()
    counts = top.stream("clicks", key_serde=MSGPACK).group_by_key().count()
    (top.stream("views", key_serde=MSGPACK)
        .left_join(counts, lambda v, c: {"v": v, "clicks": c})
        .to("out", key_serde=MSGPACK, value_serde=MSGPACK))
    d = TestDriver(top, caching=True)
    d.pipe_batch("clicks", [("a", 1, 1), ("b", 1, 2), ("a", 1, 3)], commit=False)
    d.pipe_batch("views", [("a", 10, 4), ("b", 20, 5), ("c", 30, 6)], commit=False)
    d.pipe_batch("clicks", [("a", 1, 7)], commit=False)
    d.pipe_batch("views", [("a", 40, 8)])
    got = [(o.key, o.value) for o in d.read_output("out", key_serde=MSGPACK, value_serde=MSGPACK)]
    assert got == [("a", {"v": 10, "clicks": 2}), ("b", {"v": 20, "clicks": 1}), ("c", {"v": 30, "clicks": None}),
                   ("a", {"v": 40, "clicks": 3})]


@pytest.mark.parametrize("keep", [100_000, 3, 0])
def test_windows_kept_decoded_across_commits_give_the_uncached_result(keep: int, monkeypatch) -> None:
    """Open windows stay decoded between commits (up to KEEP_WINDOWS, the newest): a window a
    later batch goes on with, kept or read back, ends as without caching, old values included,
    also for a state that is not a scalar (a list the aggregator builds)."""
    from mailroom.engine.operators import windowed_aggregate

    monkeypatch.setattr(windowed_aggregate, "KEEP_WINDOWS", keep)
    rng = random.Random(11)
    recs = [(rng.choice("abc"), {"n": i}, 60_000 * rng.randrange(4) + i) for i in range(240)]
    def build(top: Topology) -> None:
        (top.stream("in", key_serde=MSGPACK).group_by_key()
            .windowed_by(TimeWindows.tumbling(60_000, grace_ms=3_600_000))
            .aggregate(list, lambda k, v, agg: sorted(agg + [v["n"]])[-3:])
            .to_stream(with_old=True).to("out", key_serde=MSGPACK, value_serde=MSGPACK))

    assert len(_cached_equals_uncached(build, recs, 40)) == 12


def test_a_failing_reducer_skips_its_records_the_same_with_and_without_caching() -> None:
    def add(old, new):
        if new["n"] < 0:
            raise ValueError("negative")
        return {"n": old["n"] + new["n"]}

    # "x" starts with a value that later records fail on; "y" has only a failing record after
    # its first; "z"'s first record fails in the reducer only if it has a state (it has none)
    recs = [("x", {"n": 1}, 1), ("x", {"n": -1}, 2), ("y", {"n": -5}, 3), ("x", {"n": 2}, 4),
            ("y", {"n": -1}, 5), ("z", {"n": -3}, 6), ("x", {"n": -2}, 7), ("y", {"n": 4}, 8)]
    finals, logs = [], []
    for caching in (False, True):
        top = Topology()
        top.stream("in").group_by_key().reduce(add, name="red").to_stream().to("out")
        d = TestDriver(top, caching=caching)
        for i in range(0, len(recs), 3):
            d.pipe_batch("in", recs[i : i + 3])
        finals.append({o.key: o.value for o in d.read_output("out")})
        logs.append(sorted(e["offset"] for e in d.processing_log.entries))
    assert finals[0] == finals[1] == {"x": {"n": 3}, "y": {"n": -1}, "z": {"n": -3}}
    assert logs[0] == logs[1] == [1, 4, 6]  # x's -1 and -2, y's -1 (y's -5 and z's -3 start them)
