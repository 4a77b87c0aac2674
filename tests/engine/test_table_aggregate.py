"""Grouped-table aggregation through the TestDriver: rows moving between groups, updates and
deletes subtract the old value from the old group ("undo" records) and add the new one, through
a repartition topic carrying (new, old) pairs; results are checked against a brute-force
reference of the final table state."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from mailroom.engine import INT64, JSON, MSGPACK, TestDriver, Topology

CITIES = ["paris", "rome", "oslo", "lima"]


def _ops(n: int, seed: int) -> list[tuple[str, dict | None]]:
    rng = random.Random(seed)
    ops = []
    for _ in range(n):
        k = f"u{rng.randrange(15)}"
        if rng.random() < 0.25:
            ops.append((k, None))
        else:
            ops.append((k, {"city": rng.choice(CITIES), "score": rng.randrange(-5, 50)}))
    return ops


def _final_rows(ops) -> dict:
    rows: dict = {}
    for k, v in ops:
        if v is None:
            rows.pop(k, None)
        else:
            rows[k] = v
    return rows


def _last(out) -> dict:
    return {o.key: o.value for o in out}


@pytest.mark.parametrize("caching", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_count_and_sum_match_brute_force_under_updates_and_deletes(caching, seed):
    top = Topology()
    users = top.table("users")
    users.group_by("city").count().to_stream().to("count", value_serde=INT64)
    users.group_by(lambda k, v: v["city"]).sum("score").to_stream().to("sum", value_serde=INT64)
    assert sum(1 for t in top.internal_topics if t.endswith("-repartition")) == 2
    d = TestDriver(top, caching=caching)
    ops = _ops(500, seed)
    for i, (k, v) in enumerate(ops):
        d.pipe_input("users", k, v, i)
    rows = _final_rows(ops)
    touched = {v["city"] for _, v in ops if v is not None}
    ref_count = {c: 0 for c in touched} | dict(Counter(v["city"] for v in rows.values()))
    ref_sum = {c: 0 for c in touched}
    for v in rows.values():
        ref_sum[v["city"]] += v["score"]
    assert _last(d.read_output("count", value_serde=INT64)) == ref_count
    assert _last(d.read_output("sum", value_serde=INT64)) == ref_sum


def test_moving_a_row_emits_an_undo_for_its_old_group_first():
    top = Topology()
    top.table("users").group_by("city").count().to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("users", "a", {"city": "paris"}, 1)
    d.pipe_input("users", "b", {"city": "paris"}, 2)
    assert [(o.key, o.value) for o in d.read_output("out", value_serde=INT64)] == [("paris", 1), ("paris", 2)]
    d.pipe_input("users", "a", {"city": "rome"}, 3)  # moves: paris goes down, then rome up
    assert [(o.key, o.value, o.timestamp) for o in d.read_output("out", value_serde=INT64)] == [("paris", 1, 3), ("rome", 1, 3)]
    d.pipe_input("users", "a", {"city": "rome", "x": 1}, 4)  # same group: one record (subtract + add)
    assert [(o.key, o.value) for o in d.read_output("out", value_serde=INT64)] == [("rome", 1)]
    d.pipe_input("users", "b", None, 5)  # delete: its group goes down
    assert [(o.key, o.value) for o in d.read_output("out", value_serde=INT64)] == [("paris", 0)]
    d.pipe_input("users", "zzz", None, 6)  # delete of an unknown row: nothing
    assert d.read_output("out", value_serde=INT64) == []


def test_repartition_topic_carries_new_and_old_value_pairs():
    top = Topology()
    top.table("users").group_by("city", name="by-city").count().to_stream().to("out", value_serde=INT64)
    assert "by-city-repartition" in top.internal_topics
    d = TestDriver(top)
    seen = []
    feed = d._feed

    def spy(topic, keys, values, ts, headers=None):
        if topic.endswith("by-city-repartition"):
            dec = MSGPACK.decode(keys)[0], MSGPACK.decode(values)[0]
            seen.extend(zip(*dec))
        feed(topic, keys, values, ts, headers)

    d._feed = spy
    d.pipe_input("users", "a", {"city": "paris"}, 1)
    d.pipe_input("users", "a", {"city": "rome"}, 2)
    d.pipe_input("users", "a", {"city": "rome", "v": 2}, 3)
    assert seen == [
        ("paris", ({"city": "paris"}, None)),
        ("paris", (None, {"city": "paris"})),
        ("rome", ({"city": "rome"}, None)),
        ("rome", ({"city": "rome", "v": 2}, {"city": "rome"})),
    ]


def test_aggregate_with_subtractor_keeps_the_members_of_each_group():
    top = Topology()
    (
        top.table("users")
        .group_by("city")
        .aggregate(
            lambda: [],
            lambda k, v, agg: sorted(agg + [v["name"]]),
            lambda k, v, agg: [n for n in agg if n != v["name"]],
        )
        .to_stream()
        .to("out")
    )
    d = TestDriver(top)
    rng = random.Random(5)
    ops = []
    for i in range(300):
        k = f"u{rng.randrange(10)}"
        v = None if rng.random() < 0.2 else {"city": rng.choice(CITIES), "name": k}
        ops.append((k, v))
        d.pipe_input("users", k, v, i)
    rows = _final_rows(ops)
    ref = {c: [] for c in {v["city"] for _, v in ops if v}}
    for k, v in rows.items():
        ref[v["city"]].append(k)
    assert _last(d.read_output("out")) == {c: sorted(m) for c, m in ref.items()}


@pytest.mark.parametrize("caching", [False, True])
def test_reduce_deletes_a_group_when_its_last_row_leaves(caching):
    top = Topology()
    (
        top.table("users", value_serde=JSON)
        .group_by("city")
        .reduce(lambda a, v: {**a, "score": a["score"] + v["score"]}, lambda a, v: {**a, "score": a["score"] - v["score"]})
        .map_values(lambda a: a["score"])
        .to_stream()
        .to("out", value_serde=INT64)
    )
    d = TestDriver(top, caching=caching)
    d.pipe_input("users", "a", {"city": "paris", "score": 3}, 1)
    d.pipe_input("users", "b", {"city": "paris", "score": 4}, 2)
    d.pipe_input("users", "a", {"city": "rome", "score": 3}, 3)
    d.pipe_input("users", "b", None, 4)
    out = [(o.key, o.value) for o in d.read_output("out", value_serde=INT64)]
    assert out == [("paris", 3), ("paris", 7), ("paris", 4), ("rome", 3), ("paris", None)]


def test_null_group_keys_are_reported_and_a_row_leaving_them_is_not_subtracted():
    top = Topology()
    top.table("users").group_by("city").count().to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("users", "a", {"nocity": 1}, 1)
    assert d.read_output("out", value_serde=INT64) == []
    assert any("NULL key" in e["reason"] for e in d.processing_log.entries)
    d.pipe_input("users", "a", {"city": "oslo"}, 2)
    d.pipe_input("users", "b", {"city": "oslo"}, 3)
    d.pipe_input("users", "a", None, 4)
    assert [(o.key, o.value) for o in d.read_output("out", value_serde=INT64)] == [("oslo", 1), ("oslo", 2), ("oslo", 1)]


def test_group_by_over_a_stream_aggregate_and_a_filtered_table():
    """Counts of counts: a stream count table regrouped by its value; and a filtered table
    whose rows stop matching leave their group."""
    top = Topology()
    per_user = top.stream("clicks").group_by_key().count()
    per_user.group_by(lambda k, n: n).count().to_stream().to("hist", value_serde=INT64)
    top.table("users").filter(lambda k, v: v["active"]).group_by("city").count().to_stream().to("active", value_serde=INT64)
    d = TestDriver(top)
    rng = random.Random(9)
    clicks = [f"u{rng.randrange(6)}" for _ in range(60)]
    for i, u in enumerate(clicks):
        d.pipe_input("clicks", u, {"x": 1}, i)
    hist = _last(d.read_output("hist", value_serde=INT64))
    ref = Counter(Counter(clicks).values())
    assert {int(n): c for n, c in hist.items() if c} == dict(ref)  # keys come back as text (STRING)
    assert sum(hist.values()) == len(set(clicks))
    d.pipe_input("users", "a", {"city": "lima", "active": True}, 1)
    d.pipe_input("users", "b", {"city": "lima", "active": True}, 2)
    d.pipe_input("users", "a", {"city": "lima", "active": False}, 3)
    assert [o.value for o in d.read_output("active", value_serde=INT64)] == [1, 2, 1]


def test_group_by_with_updates_and_deletes_random_membership():
    """Every output for a group is that group's exact count at that point."""
    top = Topology()
    top.table("users").group_by("city").count().to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    rows: dict = {}
    for i, (k, v) in enumerate(_ops(300, 11)):
        d.pipe_input("users", k, v, i)
        old = rows.get(k)
        if v is None:
            rows.pop(k, None)
        else:
            rows[k] = v
        counts = defaultdict(int, Counter(r["city"] for r in rows.values()))
        out = d.read_output("out", value_serde=INT64)
        expected_groups = {g for g in (old and old["city"], v and v["city"]) if g}
        assert {o.key for o in out} == expected_groups
        for o in out:
            assert o.value == counts[o.key]
