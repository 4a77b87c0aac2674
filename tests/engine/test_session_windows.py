"""Session-windowed aggregation through the TestDriver: session creation, extension, merging
(with tombstones for the merged-away sessions), grace and late records, emit-final, and random
inputs against a record-at-a-time Python model of Kafka Streams' session aggregation."""

from __future__ import annotations

import random

import pytest

from mailroom.engine import MSGPACK, SessionWindows, TestDriver, Topology, Windowed
from mailroom.engine.operators.session_aggregate import SessionAggregateNode

SEC = 1000


def _topology(windows: SessionWindows, *, agg="count", emit_final=False, name="sess"):
    top = Topology()
    s = top.stream("in").group_by_key().windowed_by(windows)
    if agg == "count":
        t = s.count(emit_final=emit_final, name=name)
    elif agg == "sum":
        t = s.sum("n", emit_final=emit_final, name=name)
    elif agg == "reduce":
        t = s.reduce(lambda a, v: {"n": a["n"] + v["n"]}, emit_final=emit_final, name=name)
    else:
        t = s.aggregate(lambda: [], lambda k, v, a: [*a, v["n"]], lambda k, a, b: sorted([*a, *b]), emit_final=emit_final, name=name)
    t.to_stream().to("out", key_serde=MSGPACK, value_serde=MSGPACK)
    return top


def _read(d: TestDriver):
    return [(tuple(o.key), o.value, o.timestamp) for o in d.read_output("out", key_serde=MSGPACK, value_serde=MSGPACK)]


def _pipe(d, k, ts, n=1):
    d.pipe_input("in", k, {"n": n}, ts)
    return _read(d)


def _table(outs) -> dict:
    """The final table from a changelog of outputs (tombstones delete)."""
    t: dict = {}
    for k, v, _ in outs:
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
    return t


# -- creation, extension, merging ------------------------------------------------------------------


def test_a_record_creates_a_point_session():
    d = TestDriver(_topology(SessionWindows(10 * SEC, grace=0)))
    assert _pipe(d, "a", 5_000) == [(("a", 5_000, 5_000), 1, 5_000)]
    assert _pipe(d, "b", 5_000) == [(("b", 5_000, 5_000), 1, 5_000)]  # keys have their own sessions


def test_a_record_within_the_gap_extends_the_session_and_retracts_the_old_key():
    d = TestDriver(_topology(SessionWindows(10, grace=100)))
    _pipe(d, "a", 0)
    assert _pipe(d, "a", 10) == [(("a", 0, 0), None, 0), (("a", 0, 10), 2, 10)]  # exactly gap away: merges
    assert _pipe(d, "a", 21) == [(("a", 21, 21), 1, 21)]  # gap + 1 away: a new session
    # an out-of-order record before a session's start extends it backwards
    assert _pipe(d, "a", 15) == [(("a", 0, 10), None, 10), (("a", 21, 21), None, 21), (("a", 0, 21), 4, 21)]


def test_a_record_inside_a_session_updates_it_in_place():
    d = TestDriver(_topology(SessionWindows(10, grace=100)))
    _pipe(d, "a", 0)
    _pipe(d, "a", 8)
    assert _pipe(d, "a", 3) == [(("a", 0, 8), 3, 8)]  # same window: no tombstone


def test_a_record_bridging_two_sessions_merges_them():
    d = TestDriver(_topology(SessionWindows(10, grace=100), agg="aggregate"))
    _pipe(d, "a", 0, n=1)
    _pipe(d, "a", 5, n=2)
    _pipe(d, "a", 20, n=3)
    assert _pipe(d, "x", 40, n=0) == [(("x", 40, 40), (0,), 40)]
    # 12 is within 10 of both [0,5] and [20,20]: both are merged away, the merger combines their lists
    assert _pipe(d, "a", 12, n=4) == [
        (("a", 0, 5), None, 5),
        (("a", 20, 20), None, 20),
        (("a", 0, 20), (1, 2, 3, 4), 20),
    ]
    assert _pipe(d, "a", 30, n=5) == [(("a", 0, 20), None, 20), (("a", 0, 30), (1, 2, 3, 4, 5), 30)]
    assert _pipe(d, "a", 41, n=6) == [(("a", 41, 41), (6,), 41)]  # 11 after the session's end: a new one


def test_sum_and_reduce_merge_by_combining():
    for agg in ("sum", "reduce"):
        d = TestDriver(_topology(SessionWindows(10, grace=100), agg=agg))
        _pipe(d, "a", 0, n=1)
        _pipe(d, "a", 20, n=2)
        out = _pipe(d, "a", 10, n=4)
        expected = 7 if agg == "sum" else {"n": 7}
        assert out[-1] == (("a", 0, 20), expected, 20), agg
        assert [v for _, v, _ in out[:-1]] == [None, None]


def test_windowed_keys_are_windowed_tuples_and_old_values_are_carried():
    from mailroom.engine.node import Node
    from mailroom.engine.topology import NodeSpec

    seen = []

    class Spy(Node):
        def process(self, batch):
            seen.extend(zip(batch.keys, batch.values, batch.old_values))

    top = Topology()
    t = top.stream("in").group_by_key().windowed_by(SessionWindows(10, grace=0)).count(name="s")
    top._add(NodeSpec("spy", lambda: Spy("spy"), [t._node]))
    d = TestDriver(top)
    d.pipe_input("in", "k", {}, 100)
    d.pipe_input("in", "k", {}, 105)
    d.pipe_input("in", "k", {}, 102)
    assert seen == [
        (Windowed("k", 100, 100), 1, None),
        (Windowed("k", 100, 100), None, 1),
        (Windowed("k", 100, 105), 2, None),
        (Windowed("k", 100, 105), 3, 2),
    ]
    assert isinstance(seen[0][0], Windowed)


def test_sessions_are_kept_in_a_declared_window_store():
    top = _topology(SessionWindows(10, grace=0), emit_final=True)
    spec = top.nodes["sess"]
    assert spec.stores == [("sess-store", "window"), ("sess-store-suppress", "kv")]
    d = TestDriver(top)
    _pipe(d, "a", 1)
    task = d.tasks[0]
    assert "sess-store" in task.window_stores and "sess-store-suppress" in task.stores
    assert isinstance(task.nodes["sess"], SessionAggregateNode)
    assert len(list(task.window_stores["sess-store"].all())) == 1


# -- grace and late records ------------------------------------------------------------------------


def test_late_records_beyond_grace_are_dropped_and_logged():
    d = TestDriver(_topology(SessionWindows(10, grace=5)))
    _pipe(d, "a", 0)
    assert _pipe(d, "b", 16) == [(("b", 16, 16), 1, 16)]  # stream time 16: close time = 16 - 10 - 5 = 1
    assert _pipe(d, "a", 0) == []  # its session would end at 0 < 1: late
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == 1
    (e,) = d.processing_log.entries
    assert e["operator"] == "sess" and "late" in e["reason"]
    # a session ending at the close time is still on time (a session end is inclusive); the closed
    # session [0,0] is expired, so it is not extended
    assert _pipe(d, "a", 1) == [(("a", 1, 1), 1, 1)]
    assert _pipe(d, "a", 2) == [(("a", 1, 1), None, 1), (("a", 1, 2), 2, 2)]
    assert _pipe(d, "c", 0) == []  # a new session ending before the close time: late too
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == 2


def test_an_out_of_order_record_within_grace_merges():
    d = TestDriver(_topology(SessionWindows(10 * SEC, grace=60 * SEC)))
    _pipe(d, "a", 0)
    _pipe(d, "a", 18 * SEC)
    _pipe(d, "b", 70 * SEC)  # stream time 70s: close time 0s
    assert _pipe(d, "a", 9 * SEC) == [(("a", 0, 0), None, 0), (("a", 18 * SEC, 18 * SEC), None, 18 * SEC), (("a", 0, 18 * SEC), 3, 18 * SEC)]
    assert d.processing_log.entries == []


def test_null_keys_are_dropped_and_logged():
    d = TestDriver(_topology(SessionWindows(10, grace=0)))
    d.pipe_input("in", None, {}, 1)
    assert _pipe(d, "k", 2) == [(("k", 2, 2), 1, 2)]
    (e,) = d.processing_log.entries
    assert e["operator"] == "sess" and "NULL key" in e["reason"]


# -- emit final ------------------------------------------------------------------------------------


@pytest.mark.parametrize("caching", [False, True])
def test_emit_final_emits_each_session_once_when_closed(caching):
    d2 = TestDriver(_topology(SessionWindows(10, grace=5), emit_final=True), caching=caching)
    _pipe(d2, "a", 0)
    _pipe(d2, "a", 8)
    assert _pipe(d2, "a", 23) == []  # close time 8: [0,8] ends at 8, not before: still open
    assert _pipe(d2, "x", 24) == [(("a", 0, 8), 2, 8)]  # close time 9: closed, emitted once
    assert _pipe(d2, "x", 60) == [(("a", 23, 23), 1, 23), (("x", 24, 24), 1, 24)]
    assert _pipe(d2, "y", 1000) == [(("x", 60, 60), 1, 60)]
    assert d2.processing_log.entries == []


def test_emit_final_emits_only_the_merged_session():
    d = TestDriver(_topology(SessionWindows(10, grace=20), emit_final=True, agg="sum"))
    _pipe(d, "a", 0, n=1)
    _pipe(d, "a", 20, n=2)
    assert _pipe(d, "a", 10, n=4) == []  # merges both
    assert _pipe(d, "z", 50) == []  # close time 20: [0,20] ends there, still open
    assert _pipe(d, "z", 51) == [(("a", 0, 20), 7, 20)]  # no tombstones, no intermediate results


def test_emit_final_survives_a_large_jump_in_stream_time():
    d = TestDriver(_topology(SessionWindows(10, grace=0), emit_final=True))
    _pipe(d, "a", 3)
    _pipe(d, "a", 4)
    assert _pipe(d, "b", 10_000_000) == [(("a", 3, 4), 2, 4)]


# -- random inputs vs a Python model ----------------------------------------------------------------


class _Model:
    """Kafka Streams' session aggregation, record at a time (count), with its outputs."""

    def __init__(self, gap: int, grace: int, emit_final: bool = False) -> None:
        self.gap, self.grace, self.emit_final = gap, grace, emit_final
        self.sessions: dict = {}  # key -> {(start, end): count}
        self.stream_time = -(1 << 62)
        self.late = 0
        self.pending: set = set()

    def add(self, k, t) -> list:
        visible_from = self.stream_time - (self.gap + self.grace)  # the store's retention
        self.stream_time = max(self.stream_time, t)
        mine = self.sessions.setdefault(k, {})
        found = sorted((s, e) for s, e in mine if e >= max(t - self.gap, visible_from, 0) and s <= t + self.gap)
        start = min([t] + [s for s, _ in found])
        end = max([t] + [e for _, e in found])
        out = []
        if end + self.gap + self.grace < self.stream_time:
            self.late += 1
            return out
        total = sum(mine[w] for w in found) + 1
        for w in found:
            c = mine.pop(w)
            self.pending.discard((k, w))
            if w != (start, end) and not self.emit_final:
                out.append(((k, *w), None, w[1]))
        mine[(start, end)] = total
        self.pending.add((k, (start, end)))
        if not self.emit_final:
            out.append(((k, start, end), total, end))
        return out

    def close(self) -> list:
        closed = sorted((w[1], k, w) for k, w in self.pending if w[1] + self.gap + self.grace < self.stream_time)
        out = []
        for _, k, w in closed:
            self.pending.discard((k, w))
            out.append(((k, *w), self.sessions[k][w], w[1]))
        return out


def _random_events(n: int, seed: int):
    rng = random.Random(seed)
    events = []
    for i in range(n):
        t = max(0, i * 40 + rng.randint(-600, 50))
        events.append((rng.choice("abc"), t))
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_updates_match_the_model_record_by_record(seed):
    gap, grace = 100, 300
    d = TestDriver(_topology(SessionWindows(gap, grace=grace)))
    model = _Model(gap, grace)
    merges = 0
    for k, t in _random_events(400, seed):
        expected = model.add(k, t)
        merges += sum(1 for _, v, _ in expected if v is None)
        assert _pipe(d, k, t) == expected, (k, t)
    assert merges > 20 and model.late > 20  # the data exercises merging and the late path
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == model.late


@pytest.mark.parametrize("seed", [4, 5])
def test_cached_sessions_coalesce_to_the_model_table(seed):
    gap, grace = 100, 300
    d = TestDriver(_topology(SessionWindows(gap, grace=grace)), caching=True)
    model = _Model(gap, grace)
    outs, expected = [], []
    for k, t in _random_events(400, seed):
        expected += model.add(k, t)
        outs += _pipe(d, k, t)
    assert _table(outs) == _table(expected)
    live = {(k, s, e): c for k, ws in model.sessions.items() for (s, e), c in ws.items()}
    assert _table(outs) == live


@pytest.mark.parametrize("caching", [False, True])
def test_emit_final_matches_the_model(caching):
    gap, grace = 100, 200
    d = TestDriver(_topology(SessionWindows(gap, grace=grace), emit_final=True), caching=caching)
    model = _Model(gap, grace, emit_final=True)
    emitted = []
    for k, t in _random_events(500, 6):
        model.add(k, t)
        expected = model.close()
        got = _pipe(d, k, t)
        assert sorted(got) == sorted(expected), (k, t)
        emitted += got
    assert len(emitted) > 30
