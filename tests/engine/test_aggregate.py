"""Stream aggregations into tables through the TestDriver: count, sum, aggregate, reduce per key,
re-keying through the repartition topic, table update semantics and NULL keys."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import polars as pl
import pytest

from mailroom.engine import INT64, MSGPACK, JsonColumnsSerde, TestDriver, Topology

SCHEMA = {"domain": pl.String, "type": pl.String, "size": pl.Int64}
DOMAINS = ["a.com", "b.com", "c.org", "d.net"]


def _events(n: int, seed: int = 1) -> list[tuple[str, dict, int]]:
    rng = random.Random(seed)
    return [
        (
            rng.choice(DOMAINS),
            {"domain": rng.choice(DOMAINS), "type": rng.choice(["delivered", "bounced", "deferred"]), "size": rng.randint(1, 1000)},
            10_000 + i * 7,
        )
        for i in range(n)
    ]


def _last_per_key(outputs) -> dict:
    return {o.key: o.value for o in outputs}


@pytest.mark.parametrize("caching", [False, True])
def test_count_by_key_matches_counter(caching):
    top = Topology()
    top.stream("in").group_by_key().count().to_stream().to("out", value_serde=INT64)
    d = TestDriver(top, caching=caching)
    events = _events(300)
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    out = d.read_output("out", value_serde=INT64)
    assert _last_per_key(out) == dict(Counter(k for k, _, _ in events))


def test_count_emits_the_new_count_for_each_input_record():
    top = Topology()
    top.stream("in").group_by_key().count().to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    events = _events(100)
    running: Counter = Counter()
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
        running[k] += 1
        out = d.read_output("out", value_serde=INT64)
        assert [(o.key, o.value, o.timestamp) for o in out] == [(k, running[k], ts)]


@pytest.mark.parametrize("serde", [None, JsonColumnsSerde(SCHEMA)], ids=["json-rows", "json-columns"])
@pytest.mark.parametrize("caching", [False, True])
def test_group_by_column_repartitions_and_counts(serde, caching):
    top = Topology()
    kw = {} if serde is None else {"value_serde": serde}
    top.stream("in", **kw).filter(pl.col("type") == "delivered").group_by("domain").count().to_stream().to("out", value_serde=INT64)
    assert any("repartition" in t for t in top.internal_topics)
    assert len(top.subtopologies()) == 2
    d = TestDriver(top, caching=caching)
    events = _events(400, seed=3)
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    out = d.read_output("out", value_serde=INT64)
    expected = Counter(v["domain"] for _, v, _ in events if v["type"] == "delivered")
    assert _last_per_key(out) == dict(expected)
    if not caching:
        assert len(out) == sum(expected.values())  # one update per input record


def test_group_by_function_and_expression():
    for key in (lambda k, v: v["domain"].split(".")[1], pl.col("domain").str.split(".").list.get(1)):
        top = Topology()
        top.stream("in").group_by(key).count().to_stream().to("out", value_serde=INT64)
        d = TestDriver(top)
        events = _events(200, seed=5)
        for k, v, ts in events:
            d.pipe_input("in", k, v, ts)
        out = d.read_output("out", value_serde=INT64)
        assert _last_per_key(out) == dict(Counter(v["domain"].split(".")[1] for _, v, _ in events))


def test_repartition_topic_carries_rekeyed_records():
    top = Topology()
    top.stream("in").select_key("domain").group_by_key().count(name="cnt").to_stream().to("out", value_serde=INT64)
    d = TestDriver(top, application_id="app1")
    subs = top.subtopologies()
    assert len(subs) == 2
    (rep,) = [t for t in subs[1].source_topics]
    assert rep.startswith("{app}-") and rep.endswith("-repartition")
    assert any(t == d.topic(rep) for task in d.tasks for t in task.sources)
    d.pipe_input("in", "m1", {"domain": "x.com"}, 1)
    d.pipe_input("in", "m2", {"domain": "x.com"}, 2)
    d.pipe_input("in", "m3", {"domain": "y.com"}, 3)
    out = d.read_output("out", value_serde=INT64)
    assert [(o.key, o.value) for o in out] == [("x.com", 1), ("x.com", 2), ("y.com", 1)]
    assert "Sub-topology 1" in top.describe() and "cnt-store" in top.describe()


def test_group_by_key_without_key_change_does_not_repartition():
    top = Topology()
    top.stream("in").filter(lambda k, v: True).group_by_key().count()
    assert top.internal_topics == {}
    assert len(top.subtopologies()) == 1


def test_map_then_group_by_key_repartitions():
    top = Topology()
    top.stream("in").map(lambda k, v: (v["domain"], v)).group_by_key().count().to_stream().to("out", value_serde=INT64)
    assert len(top.internal_topics) == 1
    d = TestDriver(top)
    events = _events(50)
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    assert _last_per_key(d.read_output("out", value_serde=INT64)) == dict(Counter(v["domain"] for _, v, _ in events))


@pytest.mark.parametrize("serde", [None, JsonColumnsSerde(SCHEMA)], ids=["json-rows", "json-columns"])
@pytest.mark.parametrize("caching", [False, True])
def test_sum_per_key(serde, caching):
    top = Topology()
    kw = {} if serde is None else {"value_serde": serde}
    top.stream("in", **kw).group_by("domain").sum("size").to_stream().to("out", value_serde=INT64)
    d = TestDriver(top, caching=caching)
    events = _events(300, seed=11)
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    expected: dict = defaultdict(int)
    for _, v, _ in events:
        expected[v["domain"]] += v["size"]
    assert _last_per_key(d.read_output("out", value_serde=INT64)) == dict(expected)


def test_sum_skips_null_fields():
    top = Topology()
    top.stream("in").group_by_key().sum("n").to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("in", "k", {"n": 5}, 1)
    d.pipe_input("in", "k", {"n": None}, 2)
    d.pipe_input("in", "k", {}, 3)
    d.pipe_input("in", "k", {"n": 2}, 4)
    assert [o.value for o in d.read_output("out", value_serde=INT64)] == [5, 5, 5, 7]


@pytest.mark.parametrize("caching", [False, True])
def test_aggregate_with_functions(caching):
    top = Topology()
    (
        top.stream("in")
        .group_by("domain")
        .aggregate(lambda: {"n": 0, "max": 0, "types": []}, lambda k, v, a: {"n": a["n"] + 1, "max": max(a["max"], v["size"]), "types": sorted(set(a["types"]) | {v["type"]})})
        .to_stream()
        .to("out")
    )
    d = TestDriver(top, caching=caching)
    events = _events(250, seed=2)
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    expected: dict = {}
    for _, v, _ in events:
        a = expected.get(v["domain"], {"n": 0, "max": 0, "types": []})
        expected[v["domain"]] = {"n": a["n"] + 1, "max": max(a["max"], v["size"]), "types": sorted(set(a["types"]) | {v["type"]})}
    assert _last_per_key(d.read_output("out")) == expected


def test_reduce_first_value_starts_it():
    top = Topology()
    top.stream("in").group_by_key().reduce(lambda a, v: {"size": a["size"] + v["size"], "last": v["type"]}).to_stream().to("out")
    d = TestDriver(top)
    d.pipe_input("in", "k", {"size": 3, "type": "x"}, 1)
    d.pipe_input("in", "k", {"size": 4, "type": "y"}, 2)
    d.pipe_input("in", "j", {"size": 1, "type": "z"}, 3)
    out = d.read_output("out")
    assert [(o.key, o.value) for o in out] == [
        ("k", {"size": 3, "type": "x"}),
        ("k", {"size": 7, "last": "y"}),
        ("j", {"size": 1, "type": "z"}),
    ]


def test_reduce_matches_python_max():
    top = Topology()
    top.stream("in", value_serde=MSGPACK).group_by_key().reduce(max).to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    rng = random.Random(4)
    data = [(rng.choice("abcde"), rng.randint(-1000, 1000)) for _ in range(200)]
    for i, (k, v) in enumerate(data):
        d.pipe_input("in", k, v, i)
    expected: dict = {}
    for k, v in data:
        expected[k] = v if k not in expected else max(expected[k], v)
    assert _last_per_key(d.read_output("out", value_serde=INT64)) == expected


def test_table_update_timestamps_are_the_input_records():
    top = Topology()
    top.stream("in").group_by_key().count().to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("in", "k", {}, 50)
    d.pipe_input("in", "k", {}, 20)  # out of order: still counted
    out = d.read_output("out", value_serde=INT64)
    assert [(o.value, o.timestamp) for o in out] == [(1, 50), (2, 20)]


def test_table_changes_carry_old_values_downstream():
    """Below to_stream the old value is dropped, but the aggregate node emits it."""
    from mailroom.engine.node import Node

    seen = []

    class Spy(Node):
        def process(self, batch):
            seen.append((list(batch.keys), list(batch.values), batch.old_values))

    top = Topology()
    t = top.stream("in").group_by_key().count(name="c")
    from mailroom.engine.topology import NodeSpec

    top._add(NodeSpec("spy", lambda: Spy("spy"), [t._node]))
    d = TestDriver(top)
    d.pipe_input("in", "k", {}, 1)
    d.pipe_input("in", "k", {}, 2)
    assert seen == [(["k"], [1], [None]), (["k"], [2], [1])]


def test_aggregate_error_goes_to_processing_log():
    top = Topology()
    top.stream("in").group_by_key().aggregate(lambda: 0, lambda k, v, a: a + v["n"], name="agg").to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("in", "k", {"n": 2}, 1)
    d.pipe_input("in", "k", {"n": "x"}, 2)  # TypeError
    d.pipe_input("in", "k", {"n": 3}, 3)
    assert [o.value for o in d.read_output("out", value_serde=INT64)] == [2, 5]
    (e,) = d.processing_log.entries
    assert e["operator"] == "agg" and "TypeError" in e["reason"]
    assert (e["topic"], e["offset"]) == ("in", 1)


@pytest.mark.parametrize("caching", [False, True])
def test_null_keys_are_dropped_and_logged(caching):
    top = Topology()
    top.stream("in").group_by_key().count(name="cnt").to_stream().to("out", value_serde=INT64)
    d = TestDriver(top, caching=caching)
    d.pipe_input("in", "k", {}, 1)
    d.pipe_input("in", None, {}, 2)
    d.pipe_input("in", "k", {}, 3)
    assert _last_per_key(d.read_output("out", value_serde=INT64)) == {"k": 2}
    (e,) = d.processing_log.entries
    assert e["operator"] == "cnt"
    assert "null" in e["reason"].lower()
    assert (e["topic"], e["partition"], e["offset"]) == ("in", 0, 1)
    assert d.tasks[0].ctx.metrics["null-key-records-skipped"] == 1


def test_null_group_by_key_after_repartition_is_dropped_and_logged():
    top = Topology()
    top.stream("in").group_by("domain").count(name="cnt").to_stream().to("out", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("in", "m1", {"domain": "a"}, 1)
    d.pipe_input("in", "m2", {"domain": None}, 2)
    d.pipe_input("in", "m3", {"other": 1}, 3)
    d.pipe_input("in", "m4", {"domain": "a"}, 4)
    assert [(o.key, o.value) for o in d.read_output("out", value_serde=INT64)] == [("a", 1), ("a", 2)]
    assert len(d.processing_log.entries) == 2
    assert all(e["operator"] == "cnt" for e in d.processing_log.entries)


def test_caching_coalesces_updates_per_commit_but_agrees_on_final_values():
    top = Topology()
    top.stream("in").group_by("domain").count().to_stream().to("out", value_serde=INT64)
    events = _events(200, seed=9)
    results = []
    for caching in (False, True):
        d = TestDriver(top, caching=caching)
        for k, v, ts in events:
            d.pipe_input("in", k, v, ts)
        results.append(_last_per_key(d.read_output("out", value_serde=INT64)))
    assert results[0] == results[1] == dict(Counter(v["domain"] for _, v, _ in events))


def test_state_is_per_aggregation():
    top = Topology()
    s = top.stream("in")
    s.group_by_key().count().to_stream().to("counts", value_serde=INT64)
    s.group_by_key().sum("n").to_stream().to("sums", value_serde=INT64)
    d = TestDriver(top)
    for i, k in enumerate("aabab"):
        d.pipe_input("in", k, {"n": i}, i)
    assert _last_per_key(d.read_output("counts", value_serde=INT64)) == {"a": 3, "b": 2}
    assert _last_per_key(d.read_output("sums", value_serde=INT64)) == {"a": 0 + 1 + 3, "b": 2 + 4}
