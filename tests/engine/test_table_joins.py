"""Joins with tables through the TestDriver: stream-table (inner/left), table-table by key
(inner/left/outer, with deletes), and the foreign-key table-table join (FK changes, deletes on
either side), checked against brute-force references of the final state."""

from __future__ import annotations

import random

import pytest

from mailroom.engine import INT64, TestDriver, TimeWindows, Topology


def _pairs(out) -> list:
    return [(o.key, o.value) for o in out]


def _apply(state: dict, out) -> dict:
    for o in out:
        if o.value is None:
            state.pop(o.key, None)
        else:
            state[o.key] = o.value
    return state


# -- stream-table -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("left", [False, True])
def test_stream_table_join_looks_up_at_arrival(left):
    top = Topology()
    users = top.table("users")
    clicks = top.stream("clicks")
    joiner = lambda c, u: {"page": c["page"], "name": None if u is None else u["name"]}  # noqa: E731
    (clicks.left_join(users, joiner) if left else clicks.join(users, joiner)).to("out")
    assert len(top.subtopologies()) == 1  # co-partitioned: one sub-topology reads both
    d = TestDriver(top)
    d.pipe_input("clicks", "u1", {"page": "p0"}, 1)  # no user yet
    d.pipe_input("users", "u1", {"name": "Ann"}, 2)  # the table side triggers nothing
    d.pipe_input("clicks", "u1", {"page": "p1"}, 3)
    d.pipe_input("users", "u1", {"name": "Anne"}, 4)
    d.pipe_input("clicks", "u1", {"page": "p2"}, 5)
    d.pipe_input("users", "u1", None, 6)
    d.pipe_input("clicks", "u1", {"page": "p3"}, 7)
    out = d.read_output("out")
    expected = [
        ("u1", {"page": "p0", "name": None}),
        ("u1", {"page": "p1", "name": "Ann"}),
        ("u1", {"page": "p2", "name": "Anne"}),
        ("u1", {"page": "p3", "name": None}),
    ]
    assert _pairs(out) == (expected if left else expected[1:3])
    assert [o.timestamp for o in out] == ([1, 3, 5, 7] if left else [3, 5])


def test_stream_table_join_repartitions_a_rekeyed_stream_and_uses_derived_tables():
    top = Topology()
    users = top.table("users").filter(lambda k, v: v["active"]).map_values(lambda v: v["name"])
    (
        top.stream("clicks")
        .select_key("user")
        .join(users, lambda c, name: f"{name}:{c['page']}")
        .to("out")
    )
    assert any(t.endswith("-repartition") for t in top.internal_topics)
    d = TestDriver(top)
    d.pipe_input("users", "u1", {"name": "Ann", "active": True}, 1)
    d.pipe_input("users", "u2", {"name": "Bob", "active": False}, 2)
    d.pipe_input("clicks", "c1", {"user": "u1", "page": "a"}, 3)
    d.pipe_input("clicks", "c2", {"user": "u2", "page": "b"}, 4)  # filtered out of the table: no match
    d.pipe_input("clicks", "c3", {"user": None, "page": "c"}, 5)  # NULL key: dropped, reported
    assert _pairs(d.read_output("out")) == [("u1", "Ann:a")]
    assert any("NULL key" in e["reason"] for e in d.processing_log.entries)


def test_stream_join_with_an_aggregate_table():
    top = Topology()
    counts = top.stream("logins").group_by_key().count()
    top.stream("clicks").left_join(counts, lambda c, n: n or 0).to("out", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("clicks", "u1", {}, 1)
    d.pipe_input("logins", "u1", {}, 2)
    d.pipe_input("logins", "u1", {}, 3)
    d.pipe_input("clicks", "u1", {}, 4)
    assert [o.value for o in d.read_output("out", value_serde=INT64)] == [0, 2]


def test_windowed_tables_cannot_be_joined():
    top = Topology()
    w = top.stream("a").group_by_key().windowed_by(TimeWindows.tumbling(1000)).count()
    with pytest.raises(TypeError):
        top.stream("b").join(w, lambda x, y: x)


# -- table-table by key -------------------------------------------------------------------------------------
def test_table_table_joins_with_deletes():
    top = Topology()
    a, b = top.table("a"), top.table("b")
    j = lambda x, y: [x, y]  # noqa: E731
    a.join(b, j).to_stream().to("inner")
    a.left_join(b, j).to_stream().to("left")
    a.outer_join(b, j).to_stream().to("outer")
    d = TestDriver(top)
    d.pipe_input("a", "k", 1, 1)
    d.pipe_input("b", "k", 10, 2)
    d.pipe_input("a", "k", 2, 3)
    d.pipe_input("b", "k", None, 4)
    d.pipe_input("a", "k", None, 5)
    d.pipe_input("b", "k", 20, 6)
    d.pipe_input("b", "k", None, 7)
    assert _pairs(d.read_output("inner")) == [("k", [1, 10]), ("k", [2, 10]), ("k", None)]
    assert _pairs(d.read_output("left")) == [("k", [1, None]), ("k", [1, 10]), ("k", [2, 10]), ("k", [2, None]), ("k", None)]
    assert _pairs(d.read_output("outer")) == [
        ("k", [1, None]),
        ("k", [1, 10]),
        ("k", [2, 10]),
        ("k", [2, None]),
        ("k", None),
        ("k", [None, 20]),
        ("k", None),
    ]


@pytest.mark.parametrize("caching", [False, True])
@pytest.mark.parametrize("kind", ["inner", "left", "outer"])
def test_table_table_join_random_matches_reference(kind, caching):
    top = Topology()
    a, b = top.table("a", value_serde=INT64), top.table("b", value_serde=INT64)
    getattr(a, {"inner": "join", "left": "left_join", "outer": "outer_join"}[kind])(b, lambda x, y: [x, y]).to_stream().to("out")
    d = TestDriver(top, caching=caching)
    rng = random.Random({"inner": 1, "left": 2, "outer": 3}[kind] + 10 * caching)
    ta, tb = {}, {}
    state: dict = {}
    for i in range(400):
        side, t = rng.choice([("a", ta), ("b", tb)])
        k = f"k{rng.randrange(8)}"
        v = None if rng.random() < 0.3 else rng.randrange(100)
        d.pipe_input(side, k, v, i)
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
        _apply(state, d.read_output("out"))
    keys = set(ta) | set(tb)
    if kind == "inner":
        ref = {k: [ta[k], tb[k]] for k in keys if k in ta and k in tb}
    elif kind == "left":
        ref = {k: [ta[k], tb.get(k)] for k in ta}
    else:
        ref = {k: [ta.get(k), tb.get(k)] for k in keys}
    assert state == ref


def test_join_result_can_be_grouped_and_joined_again():
    top = Topology()
    a, b, c = top.table("a", value_serde=INT64), top.table("b", value_serde=INT64), top.table("c", value_serde=INT64)
    ab = a.join(b, lambda x, y: x + y)
    ab.join(c, lambda s, z: s * z).to_stream().to("abc", value_serde=INT64)
    ab.group_by(lambda k, v: v % 2).count().to_stream().to("parity", key_serde=INT64, value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("a", "k", 1, 1)
    d.pipe_input("b", "k", 2, 2)
    d.pipe_input("c", "k", 10, 3)
    d.pipe_input("b", "k", 3, 4)
    assert [o.value for o in d.read_output("abc", value_serde=INT64)] == [30, 40]
    assert [(o.key, o.value) for o in d.read_output("parity", key_serde=INT64, value_serde=INT64)] == [(1, 1), (1, 0), (0, 1)]


# -- foreign key ----------------------------------------------------------------------------------------------
def _fk_top(kind: str):
    top = Topology()
    orders, users = top.table("orders"), top.table("users")
    j = lambda o, u: {"item": o["item"], "name": None if u is None else u["name"]}  # noqa: E731
    (orders.join(users, j, foreign_key="user") if kind == "inner" else orders.left_join(users, j, foreign_key=lambda o: o["user"])).to_stream().to("out")
    return top


def test_fk_join_topology_has_subscription_and_response_topics():
    top = _fk_top("inner")
    names = list(top.internal_topics)
    assert any(n.endswith("subscription-registration-topic") for n in names)
    assert any(n.endswith("subscription-response-topic") for n in names)
    assert len(top.subtopologies()) == 2  # the left and the right table are read in different tasks
    from mailroom.engine.tables import fk_join

    with pytest.raises(ValueError):  # no outer foreign-key join (as in Kafka Streams)
        fk_join(top.table("p"), top.table("q"), lambda a, b: a, "f", "outer")


@pytest.mark.parametrize("kind", ["inner", "left"])
def test_fk_join_with_fk_change_and_deletes(kind):
    d = TestDriver(_fk_top(kind))
    left = kind == "left"
    d.pipe_input("orders", "o1", {"item": "pen", "user": "u1"}, 1)  # no user yet
    assert _pairs(d.read_output("out")) == ([("o1", {"item": "pen", "name": None})] if left else [])
    d.pipe_input("users", "u1", {"name": "Ann"}, 2)  # the right side triggers the update
    d.pipe_input("users", "u2", {"name": "Bob"}, 3)  # nobody refers to u2
    assert _pairs(d.read_output("out")) == [("o1", {"item": "pen", "name": "Ann"})]
    d.pipe_input("orders", "o1", {"item": "pen", "user": "u2"}, 4)  # FK changes
    assert _pairs(d.read_output("out")) == [("o1", {"item": "pen", "name": "Bob"})]
    d.pipe_input("users", "u1", {"name": "Ann2"}, 5)  # the old FK no longer affects o1
    assert d.read_output("out") == []
    d.pipe_input("orders", "o1", {"item": "pen", "user": "u9"}, 6)  # FK to a missing row
    assert _pairs(d.read_output("out")) == [("o1", {"item": "pen", "name": None} if left else None)]
    d.pipe_input("orders", "o1", {"item": "ink", "user": "u2"}, 7)
    d.pipe_input("users", "u2", None, 8)  # right delete
    assert _pairs(d.read_output("out")) == [
        ("o1", {"item": "ink", "name": "Bob"}),
        ("o1", {"item": "ink", "name": None} if left else None),
    ]
    d.pipe_input("users", "u2", {"name": "Bea"}, 9)
    d.pipe_input("orders", "o1", None, 10)  # left delete
    d.pipe_input("users", "u2", {"name": "Bo"}, 11)  # unsubscribed: nothing
    assert _pairs(d.read_output("out")) == [("o1", {"item": "ink", "name": "Bea"}), ("o1", None)]


@pytest.mark.parametrize("caching", [False, True])
@pytest.mark.parametrize("kind", ["inner", "left"])
def test_fk_join_random_matches_reference(kind, caching):
    d = TestDriver(_fk_top(kind), caching=caching)
    rng = random.Random(4 if kind == "inner" else 5)
    orders, users = {}, {}
    state: dict = {}
    for i in range(500):
        if rng.random() < 0.5:
            k = f"o{rng.randrange(10)}"
            v = None if rng.random() < 0.2 else {"item": f"i{rng.randrange(50)}", "user": f"u{rng.randrange(5)}"}
            d.pipe_input("orders", k, v, i)
            t = orders
        else:
            k = f"u{rng.randrange(5)}"
            v = None if rng.random() < 0.3 else {"name": f"n{rng.randrange(50)}"}
            d.pipe_input("users", k, v, i)
            t = users
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
        _apply(state, d.read_output("out"))
    ref = {}
    for ok, o in orders.items():
        u = users.get(o["user"])
        if u is not None or kind == "left":
            ref[ok] = {"item": o["item"], "name": None if u is None else u["name"]}
    assert state == ref


def test_fk_join_left_row_without_foreign_key():
    top = Topology()
    top.table("orders").left_join(top.table("users"), lambda o, u: [o["item"], u], foreign_key="user").to_stream().to("out")
    d = TestDriver(top)
    d.pipe_input("users", "u1", "Ann", 1)
    d.pipe_input("orders", "o1", {"item": "pen"}, 2)  # no FK: left join with None, no subscription
    d.pipe_input("orders", "o1", {"item": "pen", "user": "u1"}, 3)
    d.pipe_input("orders", "o1", {"item": "cap"}, 4)  # FK removed: unsubscribed
    d.pipe_input("users", "u1", "Ann2", 5)
    assert _pairs(d.read_output("out")) == [("o1", ["pen", None]), ("o1", ["pen", "Ann"]), ("o1", ["cap", None])]
