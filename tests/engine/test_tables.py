"""Source tables and stateless table operations through the TestDriver: upserts, tombstones,
old values, NULL keys, filter (tombstones for rows that stop matching), map_values, to_stream."""

from __future__ import annotations

import random

import polars as pl
import pytest

from mailroom.engine import INT64, JSON, JsonColumnsSerde, TestDriver, Topology
from mailroom.engine.batch import Batch
from mailroom.engine.node import Node
from mailroom.engine.topology import NodeSpec

SEEN: dict[str, list] = {}


class Recorder(Node):
    """Records the (key, new, old) changes a table emits."""

    def process(self, batch: Batch) -> None:
        olds = batch.old_values if batch.old_values is not None else [None] * len(batch)
        SEEN.setdefault(self.name, []).extend(zip(batch.keys, batch.rows(), olds))


def _record(table, name: str) -> list:
    SEEN[name] = []
    table._top._add(NodeSpec(name, lambda: Recorder(name), [table._node]))
    return SEEN[name]


def _changes(out) -> list:
    return [(o.key, o.value) for o in out]


def test_upserts_and_tombstones_emit_changes_with_old_values():
    top = Topology()
    t = top.table("users")
    t.to_stream().to("out")
    seen = _record(t, "rec1")
    d = TestDriver(top)
    d.pipe_input("users", "u1", {"n": 1}, 1)
    d.pipe_input("users", "u2", {"n": 2}, 2)
    d.pipe_input("users", "u1", {"n": 3}, 3)
    d.pipe_input("users", "u1", None, 4)  # tombstone
    d.pipe_input("users", "u9", None, 5)  # tombstone of a key that is not there: no change
    d.pipe_input("users", "u1", {"n": 4}, 6)
    out = d.read_output("out")
    assert _changes(out) == [("u1", {"n": 1}), ("u2", {"n": 2}), ("u1", {"n": 3}), ("u1", None), ("u1", {"n": 4})]
    assert [o.timestamp for o in out] == [1, 2, 3, 4, 6]
    assert seen == [
        ("u1", {"n": 1}, None),
        ("u2", {"n": 2}, None),
        ("u1", {"n": 3}, {"n": 1}),
        ("u1", None, {"n": 3}),
        ("u1", {"n": 4}, None),
    ]


def test_null_keys_are_dropped_to_the_processing_log():
    top = Topology()
    top.table("users").to_stream().to("out")
    d = TestDriver(top)
    d.pipe_input("users", None, {"n": 1}, 1)
    d.pipe_input("users", "u1", {"n": 2}, 2)
    assert _changes(d.read_output("out")) == [("u1", {"n": 2})]
    (entry,) = d.processing_log.entries
    assert "NULL key" in entry["reason"] and entry["topic"] == "users" and entry["offset"] == 0


def test_undecodable_values_are_dropped_to_the_processing_log():
    top = Topology()
    top.table("users").to_stream().to("out")
    d = TestDriver(top)
    d.pipe_raw("users", b"u1", b"{not json", 1)
    d.pipe_raw("users", b"u2", b'{"n": 1}', 2)
    assert _changes(d.read_output("out")) == [("u2", {"n": 1})]
    assert len(d.processing_log.entries) == 1 and "invalid JSON" in d.processing_log.entries[0]["reason"]


def test_columnar_value_serde_keeps_tombstones():
    top = Topology()
    top.table("users", value_serde=JsonColumnsSerde({"n": pl.Int64})).to_stream().to("out")
    d = TestDriver(top)
    d.pipe_input("users", "u1", {"n": 1}, 1)
    d.pipe_input("users", "u1", None, 2)
    assert _changes(d.read_output("out")) == [("u1", {"n": 1}), ("u1", None)]


@pytest.mark.parametrize("caching", [False, True])
def test_random_upserts_and_deletes_match_a_dict(caching):
    top = Topology()
    t = top.table("t", value_serde=INT64)
    t.to_stream().to("out", value_serde=INT64)
    d = TestDriver(top, caching=caching)
    rng = random.Random(7)
    ref: dict = {}
    state: dict = {}
    for i in range(400):
        k = f"k{rng.randrange(12)}"
        v = None if rng.random() < 0.3 else rng.randrange(100)
        d.pipe_input("t", k, v, i)
        if v is None:
            ref.pop(k, None)
        else:
            ref[k] = v
    for o in d.read_output("out", value_serde=INT64):
        if o.value is None:
            assert o.key in state  # a tombstone only for a key that was there
            del state[o.key]
        else:
            state[o.key] = o.value
    assert state == ref


def test_the_same_topic_cannot_be_a_table_twice():
    top = Topology()
    top.table("t")
    with pytest.raises(ValueError):
        top.table("t")
    with pytest.raises(ValueError):
        top.stream("t")


def test_filter_emits_tombstones_only_for_rows_that_matched():
    top = Topology()
    t = top.table("users").filter(lambda k, v: v["age"] >= 18)
    t.to_stream().to("adults")
    seen = _record(t, "rec2")
    d = TestDriver(top)
    d.pipe_input("users", "a", {"age": 20}, 1)  # matches
    d.pipe_input("users", "a", {"age": 30}, 2)  # still matches: an update
    d.pipe_input("users", "a", {"age": 10}, 3)  # stops matching: tombstone
    d.pipe_input("users", "a", {"age": 11}, 4)  # still not matching: nothing
    d.pipe_input("users", "b", {"age": 5}, 5)  # never matched: nothing
    d.pipe_input("users", "b", None, 6)  # deleted, never matched: nothing
    d.pipe_input("users", "c", {"age": 40}, 7)
    d.pipe_input("users", "c", None, 8)  # deleted while matching: tombstone
    assert _changes(d.read_output("adults")) == [
        ("a", {"age": 20}),
        ("a", {"age": 30}),
        ("a", None),
        ("c", {"age": 40}),
        ("c", None),
    ]
    assert seen[2] == ("a", None, {"age": 30})  # the retraction carries the old matching row
    assert seen[1] == ("a", {"age": 30}, {"age": 20})


def test_filter_with_an_expression_and_a_failing_predicate():
    top = Topology()
    src = top.table("users")
    src.filter(pl.col("age") >= 18).to_stream().to("expr")
    src.filter(lambda k, v: v["age"] >= 18).to_stream().to("fn")
    d = TestDriver(top)
    d.pipe_input("users", "a", {"age": 20}, 1)
    d.pipe_input("users", "b", {"age": 3}, 2)
    d.pipe_input("users", "a", {"name": "no age"}, 3)  # fails the function: counts as not matching
    assert _changes(d.read_output("expr")) == [("a", {"age": 20}), ("a", None)]
    assert _changes(d.read_output("fn")) == [("a", {"age": 20}), ("a", None)]
    assert any("KeyError" in e["reason"] for e in d.processing_log.entries)


def test_map_values_keeps_deletes_and_maps_old_values():
    top = Topology()
    t = top.table("users").map_values(lambda v: v["age"] * 2)
    t.to_stream().to("out", value_serde=INT64)
    seen = _record(t, "rec3")
    d = TestDriver(top)
    d.pipe_input("users", "a", {"age": 20}, 1)
    d.pipe_input("users", "a", {"age": 21}, 2)
    d.pipe_input("users", "a", None, 3)
    assert _changes(d.read_output("out", value_serde=INT64)) == [("a", 40), ("a", 42), ("a", None)]
    assert seen == [("a", 40, None), ("a", 42, 40), ("a", None, 42)]
    with pytest.raises(TypeError):
        top.table("x").map_values([pl.col("age")])


def test_to_stream_turns_aggregate_and_filter_deletes_into_null_values():
    top = Topology()
    top.table("t").filter(lambda k, v: v > 0).to_stream().filter(lambda k, v: v is None).to("nulls")
    d = TestDriver(top)
    d.pipe_input("t", "a", 5, 1)
    d.pipe_input("t", "a", -5, 2)
    (o,) = d.read_output("nulls", value_serde=JSON)
    assert (o.key, o.value, o.timestamp) == ("a", None, 2)
