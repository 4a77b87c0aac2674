"""Stateless operators through the TestDriver: filter, map_values, map, flat_map, select_key,
peek, merge, branching."""

from __future__ import annotations

import random

import polars as pl
import pytest

from mailroom.engine import INT64, JSON, MSGPACK, STRING, JsonColumnsSerde, TestDriver, Topology

SCHEMA = {"domain": pl.String, "type": pl.String, "size": pl.Int64}


def _events(n: int, seed: int = 7) -> list[tuple[str, dict, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            (
                f"m{i}",
                {"domain": rng.choice(["a.com", "b.com", "c.org"]), "type": rng.choice(["delivered", "bounced"]), "size": rng.randint(0, 100)},
                1000 + i,
            )
        )
    return out


def _pipe(driver: TestDriver, topic: str, events) -> None:
    for k, v, ts in events:
        driver.pipe_input(topic, k, v, ts)


@pytest.mark.parametrize("serde", [JSON, JsonColumnsSerde(SCHEMA)], ids=["json-rows", "json-columns"])
def test_filter_with_polars_expression(serde):
    top = Topology()
    top.stream("in", value_serde=serde).filter((pl.col("type") == "delivered") & (pl.col("size") >= 50)).to("out")
    d = TestDriver(top)
    events = _events(200)
    _pipe(d, "in", events)
    out = d.read_output("out")
    expected = [(k, v, ts) for k, v, ts in events if v["type"] == "delivered" and v["size"] >= 50]
    assert [(o.key, o.value, o.timestamp) for o in out] == expected
    assert expected  # the data exercises both sides of the predicate
    assert len(expected) < len(events)


def test_filter_expression_null_counts_as_false():
    top = Topology()
    top.stream("in", value_serde=JsonColumnsSerde(SCHEMA)).filter(pl.col("size") > 10).to("out")
    d = TestDriver(top)
    d.pipe_input("in", "k1", {"domain": "a", "size": None}, 1)
    d.pipe_input("in", "k2", {"domain": "a"}, 2)  # missing field: NULL
    d.pipe_input("in", "k3", {"domain": "a", "size": 11}, 3)
    assert [o.key for o in d.read_output("out")] == ["k3"]


def test_filter_with_python_predicate_sees_key_and_value():
    top = Topology()
    top.stream("in").filter(lambda k, v: k.endswith("1") or v["size"] == 0).to("out")
    d = TestDriver(top)
    events = _events(100)
    _pipe(d, "in", events)
    got = [o.key for o in d.read_output("out")]
    assert got == [k for k, v, _ in events if k.endswith("1") or v["size"] == 0]


def test_filter_predicate_error_goes_to_processing_log_and_processing_continues():
    top = Topology()
    top.stream("in").filter(lambda k, v: 10 / v["n"] > 1, name="div").to("out")
    d = TestDriver(top)
    d.pipe_input("in", "a", {"n": 2}, 1)
    d.pipe_input("in", "b", {"n": 0}, 2)  # ZeroDivisionError
    d.pipe_input("in", "c", {"n": 20}, 3)  # predicate false
    d.pipe_input("in", "d", {"n": 5}, 4)
    assert [o.key for o in d.read_output("out")] == ["a", "d"]
    (entry,) = d.processing_log.entries
    assert entry["operator"] == "div"
    assert "ZeroDivisionError" in entry["reason"]
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("in", 0, 1)


def test_map_values_with_function():
    top = Topology()
    top.stream("in").map_values(lambda v: {"domain": v["domain"].upper(), "double": v["size"] * 2}).to("out")
    d = TestDriver(top)
    events = _events(50)
    _pipe(d, "in", events)
    out = d.read_output("out")
    assert [(o.key, o.value, o.timestamp) for o in out] == [
        (k, {"domain": v["domain"].upper(), "double": v["size"] * 2}, ts) for k, v, ts in events
    ]


@pytest.mark.parametrize("as_dict", [False, True])
def test_map_values_with_expressions(as_dict):
    exprs = (
        {"domain": pl.col("domain"), "kb": pl.col("size") * 1024}
        if as_dict
        else [pl.col("domain"), (pl.col("size") * 1024).alias("kb")]
    )
    top = Topology()
    top.stream("in", value_serde=JsonColumnsSerde(SCHEMA)).map_values(exprs).to("out")
    d = TestDriver(top)
    events = _events(30)
    _pipe(d, "in", events)
    assert [o.value for o in d.read_output("out")] == [{"domain": v["domain"], "kb": v["size"] * 1024} for _, v, _ in events]


def test_map_values_error_skips_only_that_record():
    top = Topology()
    top.stream("in").map_values(lambda v: {"x": v["x"] + 1}).to("out")
    d = TestDriver(top)
    d.pipe_input("in", "a", {"x": 1}, 1)
    d.pipe_input("in", "b", {"y": 1}, 2)  # KeyError
    d.pipe_input("in", "c", {"x": 5}, 3)
    assert [(o.key, o.value) for o in d.read_output("out")] == [("a", {"x": 2}), ("c", {"x": 6})]
    assert len(d.processing_log.entries) == 1
    assert "KeyError" in d.processing_log.entries[0]["reason"]
    assert d.processing_log.entries[0]["offset"] == 1


def test_map_changes_key_and_value():
    top = Topology()
    top.stream("in").map(lambda k, v: (v["domain"], {"from": k, "size": v["size"]})).to("out")
    d = TestDriver(top)
    events = _events(40)
    _pipe(d, "in", events)
    assert [(o.key, o.value, o.timestamp) for o in d.read_output("out")] == [
        (v["domain"], {"from": k, "size": v["size"]}, ts) for k, v, ts in events
    ]


def test_map_bad_return_is_reported():
    top = Topology()
    top.stream("in").map(lambda k, v: v["pair"]).to("out")  # must return a 2-tuple
    d = TestDriver(top)
    d.pipe_input("in", "a", {"pair": ["k", 1]}, 1)
    d.pipe_input("in", "b", {"pair": [1, 2, 3]}, 2)
    assert [(o.key, o.value) for o in d.read_output("out")] == [("k", 1)]
    assert len(d.processing_log.entries) == 1


def test_flat_map_zero_one_or_many_outputs_keep_timestamps():
    top = Topology()
    top.stream("in").flat_map(lambda k, v: [(f"{k}-{i}", {"i": i}) for i in range(v["n"])]).to("out")
    d = TestDriver(top)
    ns = [0, 1, 3, 0, 2]
    for i, n in enumerate(ns):
        d.pipe_input("in", f"r{i}", {"n": n}, 100 + i)
    out = d.read_output("out")
    expected = [(f"r{r}-{i}", {"i": i}, 100 + r) for r, n in enumerate(ns) for i in range(n)]
    assert [(o.key, o.value, o.timestamp) for o in out] == expected


def test_flat_map_error_is_reported():
    top = Topology()
    top.stream("in").flat_map(lambda k, v: [(k, x) for x in v["xs"]]).to("out")
    d = TestDriver(top)
    d.pipe_input("in", "a", {"xs": [1, 2]}, 1)
    d.pipe_input("in", "b", {"xs": None}, 2)  # TypeError
    d.pipe_input("in", "c", {"xs": [3]}, 3)
    assert [(o.key, o.value) for o in d.read_output("out")] == [("a", 1), ("a", 2), ("c", 3)]
    assert len(d.processing_log.entries) == 1


@pytest.mark.parametrize(
    "key",
    [
        "domain",
        pl.col("domain"),
        lambda k, v: v["domain"],
    ],
    ids=["column", "expression", "function"],
)
@pytest.mark.parametrize("serde", [JSON, JsonColumnsSerde(SCHEMA)], ids=["json-rows", "json-columns"])
def test_select_key(key, serde):
    top = Topology()
    top.stream("in", value_serde=serde).select_key(key).to("out")
    d = TestDriver(top)
    events = _events(30)
    _pipe(d, "in", events)
    out = d.read_output("out")
    assert [(o.key, o.value["size"], o.timestamp) for o in out] == [(v["domain"], v["size"], ts) for _, v, ts in events]


def test_select_key_expression_can_compute():
    top = Topology()
    top.stream("in", value_serde=JsonColumnsSerde(SCHEMA)).select_key(pl.col("domain") + ":" + pl.col("type")).to("out")
    d = TestDriver(top)
    d.pipe_input("in", "k", {"domain": "a.com", "type": "bounced", "size": 1}, 5)
    (o,) = d.read_output("out")
    assert o.key == "a.com:bounced"


def test_peek_sees_every_record_and_passes_it_on():
    seen = []
    top = Topology()
    top.stream("in").peek(lambda k, v: seen.append((k, v))).filter(lambda k, v: v["size"] > 50).to("out")
    d = TestDriver(top)
    events = _events(60)
    _pipe(d, "in", events)
    assert seen == [(k, v) for k, v, _ in events]
    assert [o.key for o in d.read_output("out")] == [k for k, v, _ in events if v["size"] > 50]


def test_merge_two_sources_preserves_arrival_order():
    top = Topology()
    a = top.stream("a")
    b = top.stream("b").map_values(lambda v: {**v, "src": "b"})
    a.merge(b).to("out")
    d = TestDriver(top)
    d.pipe_input("a", "1", {"n": 1}, 1)
    d.pipe_input("b", "2", {"n": 2}, 2)
    d.pipe_input("a", "3", {"n": 3}, 3)
    out = d.read_output("out")
    assert [(o.key, o.value) for o in out] == [("1", {"n": 1}), ("2", {"n": 2, "src": "b"}), ("3", {"n": 3})]


def test_merge_of_a_stream_with_its_own_branch():
    top = Topology()
    s = top.stream("in")
    s.filter(lambda k, v: v["n"] % 2 == 0).merge(s.filter(lambda k, v: v["n"] % 3 == 0)).to("out")
    d = TestDriver(top)
    for n in range(12):
        d.pipe_input("in", str(n), {"n": n}, n)
    got = sorted(int(o.key) for o in d.read_output("out"))
    expected = sorted([n for n in range(12) if n % 2 == 0] + [n for n in range(12) if n % 3 == 0])
    assert got == expected  # 0 and 6 appear twice


@pytest.mark.parametrize("serde", [JSON, JsonColumnsSerde(SCHEMA)], ids=["json-rows", "json-columns"])
def test_branching_each_branch_sees_every_record(serde):
    top = Topology()
    s = top.stream("in", value_serde=serde)
    s.filter(pl.col("type") == "delivered").to("delivered")
    s.filter(lambda k, v: v["type"] == "bounced").to("bounced")
    s.map_values(lambda v: {"size": v["size"]}).to("sizes")
    s.select_key("domain").to("by-domain")
    d = TestDriver(top)
    events = _events(80)
    _pipe(d, "in", events)
    assert [o.key for o in d.read_output("delivered")] == [k for k, v, _ in events if v["type"] == "delivered"]
    assert [o.key for o in d.read_output("bounced")] == [k for k, v, _ in events if v["type"] == "bounced"]
    assert [o.value for o in d.read_output("sizes")] == [{"size": v["size"]} for _, v, _ in events]
    assert [o.key for o in d.read_output("by-domain")] == [v["domain"] for _, v, _ in events]


def test_chain_of_operators_matches_python():
    top = Topology()
    (
        top.stream("in", value_serde=JsonColumnsSerde(SCHEMA))
        .filter(pl.col("size") > 20)
        .map_values({"domain": pl.col("domain"), "size": pl.col("size")})
        .flat_map(lambda k, v: [(v["domain"], v["size"])] * (2 if v["size"] > 80 else 1))
        .map(lambda k, v: (k.split(".")[0], v * 10))
        .to("out", value_serde=INT64)
    )
    d = TestDriver(top)
    events = _events(150)
    _pipe(d, "in", events)
    expected = []
    for _, v, ts in events:
        if v["size"] > 20:
            for _ in range(2 if v["size"] > 80 else 1):
                expected.append((v["domain"].split(".")[0], v["size"] * 10, ts))
    out = d.read_output("out", value_serde=INT64)
    assert [(o.key, o.value, o.timestamp) for o in out] == expected


def test_sink_serdes_and_read_output_clears():
    top = Topology()
    top.stream("in", key_serde=INT64, value_serde=MSGPACK).to("out", key_serde=INT64, value_serde=MSGPACK)
    d = TestDriver(top)
    d.pipe_input("in", 42, {"a": [1, 2]}, 9)
    out = d.read_output("out", key_serde=INT64, value_serde=MSGPACK)
    assert [(o.key, o.value, o.timestamp) for o in out] == [(42, {"a": (1, 2)}, 9)]
    assert d.read_output("out") == []
    assert d.output_topics() == []


def test_headers_pass_through():
    top = Topology()
    top.stream("in").filter(lambda k, v: True).to("out")
    d = TestDriver(top)
    d.pipe_input("in", "k", {"a": 1}, 1, headers=[("h", b"v")])
    (o,) = d.read_output("out", STRING, JSON)
    assert o.headers == [("h", b"v")]


def test_duplicate_source_topic_rejected():
    top = Topology()
    top.stream("in")
    with pytest.raises(ValueError):
        top.stream("in")


def test_unknown_input_topic_raises():
    top = Topology()
    top.stream("in").to("out")
    d = TestDriver(top)
    with pytest.raises(KeyError):
        d.pipe_input("nope", "k", {}, 0)


def test_expression_filter_on_schemaless_json_skips_bad_records_instead_of_failing():
    """A record without the column (or not an object at all) must not crash the task."""
    top = Topology()
    top.stream("in").filter(pl.col("size") > 10, name="f").to("out")
    d = TestDriver(top)
    d.pipe_input("in", "a", {"domain": "x"}, 1)  # no "size"
    d.pipe_input("in", "b", None, 2)  # tombstone
    d.pipe_input("in", "c", 5, 3)  # not an object
    d.pipe_input("in", "d", {"size": 11}, 4)
    d.pipe_input("in", "e", {"size": 3}, 5)
    assert [o.key for o in d.read_output("out")] == ["d"]
    assert [(e["operator"], e["offset"]) for e in d.processing_log.entries] == [("f", 0), ("f", 1), ("f", 2)]


def test_expression_map_values_and_select_key_on_schemaless_json_skip_bad_records():
    top = Topology()
    s = top.stream("in")
    s.map_values([(pl.col("n") * 2).alias("n2")]).to("mapped")
    s.select_key(pl.col("name")).to("keyed")
    d = TestDriver(top)
    d.pipe_input("in", "a", {"n": 1, "name": "x"}, 1)
    d.pipe_input("in", "b", {"other": 1}, 2)
    d.pipe_input("in", "c", {"n": 4, "name": "y"}, 3)
    assert [(o.key, o.value) for o in d.read_output("mapped")] == [("a", {"n2": 2}), ("c", {"n2": 8})]
    assert [o.key for o in d.read_output("keyed")] == ["x", "y"]
    assert len(d.processing_log.entries) == 2
    assert {e["offset"] for e in d.processing_log.entries} == {1}


def test_peek_failure_is_reported_and_record_still_passes():
    def boom(k, v):
        if k == "b":
            raise RuntimeError("side effect failed")

    top = Topology()
    top.stream("in").peek(boom, name="p").to("out")
    d = TestDriver(top)
    for i, k in enumerate("abc"):
        d.pipe_input("in", k, {"i": i}, i)
    assert [o.key for o in d.read_output("out")] == ["a", "b", "c"]
    (e,) = d.processing_log.entries
    assert e["operator"] == "p" and "RuntimeError" in e["reason"] and e["offset"] == 1
