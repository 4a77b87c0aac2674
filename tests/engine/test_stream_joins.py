"""Windowed stream-stream joins through the TestDriver: inner, left and outer; window bounds,
output timestamps, null results only once a window has closed (after grace), late records,
co-partitioning, and random inputs against a brute-force Python model."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mailroom.engine import MSGPACK, JoinWindows, TestDriver, Topology
from mailroom.engine.operators.stream_join import StreamJoinNode


def _topology(kind: str, windows: JoinWindows, *, name="j"):
    top = Topology()
    left, right = top.stream("L"), top.stream("R")
    getattr(left, kind)(right, lambda a, b: [a, b], window=windows, name=name).to("out", value_serde=MSGPACK)
    return top


def _read(d: TestDriver):
    return [(o.key, o.value, o.timestamp) for o in d.read_output("out", value_serde=MSGPACK)]


def _pipe(d, side, k, v, ts):
    d.pipe_input(side, k, v, ts)
    return _read(d)


# -- inner -----------------------------------------------------------------------------------------


def test_inner_join_matches_both_ways_with_the_later_timestamp():
    d = TestDriver(_topology("join", JoinWindows.of(10, grace_ms=100)))
    assert _pipe(d, "L", "a", "l1", 100) == []
    assert _pipe(d, "R", "a", "r1", 105) == [("a", ("l1", "r1"), 105)]
    assert _pipe(d, "R", "b", "r2", 105) == []  # other key
    assert _pipe(d, "L", "a", "l2", 104) == [("a", ("l2", "r1"), 105)]
    assert sorted(_pipe(d, "R", "a", "r3", 95)) == [("a", ("l1", "r3"), 100), ("a", ("l2", "r3"), 104)]


def test_inner_join_window_bounds_are_inclusive_and_asymmetric():
    # a left record at t joins right records in [t - 10, t + 20]
    d = TestDriver(_topology("join", JoinWindows(10, 20, 1000)))
    _pipe(d, "L", "k", "l", 100)
    assert _pipe(d, "R", "k", "r89", 89) == []
    assert _pipe(d, "R", "k", "r90", 90) == [("k", ("l", "r90"), 100)]
    assert _pipe(d, "R", "k", "r120", 120) == [("k", ("l", "r120"), 120)]
    assert _pipe(d, "R", "k", "r121", 121) == []
    # and a right record at t joins left records in [t - 20, t + 10]
    assert _pipe(d, "L", "k", "l131", 131) == [("k", ("l131", "r121"), 131)]
    assert _pipe(d, "L", "k", "l132", 132) == []
    assert sorted(_pipe(d, "L", "k", "l101", 101)) == [("k", ("l101", "r120"), 120), ("k", ("l101", "r121"), 121)]


def test_duplicates_at_the_same_timestamp_all_join():
    d = TestDriver(_topology("join", JoinWindows.of(5, grace_ms=100)))
    _pipe(d, "L", "k", "l1", 10)
    _pipe(d, "L", "k", "l2", 10)
    assert _pipe(d, "R", "k", "r", 12) == [("k", ("l1", "r"), 12), ("k", ("l2", "r"), 12)]


def test_join_node_sits_with_both_sources_and_declares_its_stores():
    top = _topology("outer_join", JoinWindows.of(10, grace_ms=0))
    (sub,) = top.subtopologies()
    assert sorted(sub.source_topics) == ["L", "R"]
    spec = top.nodes["j"]
    assert spec.stores == [("j-this-store", "window"), ("j-other-store", "window"), ("j-outer-store", "kv")]
    assert [top.nodes[p].parents for p in spec.parents] == [["SOURCE-0000000000"], ["SOURCE-0000000001"]]
    assert _topology("join", JoinWindows.of(10)).nodes["j"].stores == [("j-this-store", "window"), ("j-other-store", "window")]
    d = TestDriver(top)
    _pipe(d, "L", "a", "x", 1)
    task = d.tasks[0]
    assert isinstance(task.nodes["j"], StreamJoinNode)
    assert {"j-this-store", "j-other-store"} <= set(task.window_stores) and "j-outer-store" in task.stores


def test_a_stream_with_a_changed_key_is_repartitioned_before_the_join():
    top = Topology()
    left = top.stream("L").select_key(lambda k, v: v["user"])
    right = top.stream("R")
    left.join(right, lambda a, b: [a["n"], b], window=JoinWindows.of(10, grace_ms=0), name="j").to("out", value_serde=MSGPACK)
    assert any(t.endswith("-repartition") for t in top.internal_topics)
    join_sub = next(s for s in top.subtopologies() if "j" in s.nodes)
    assert "R" in join_sub.source_topics and any("repartition" in t for t in join_sub.source_topics)
    assert "L" not in join_sub.source_topics
    d = TestDriver(top)
    d.pipe_input("L", "whatever", {"user": "u1", "n": 7}, 100)
    d.pipe_input("R", "u1", "r", 105)
    assert _read(d) == [("u1", (7, "r"), 105)]


def test_a_join_needs_join_windows():
    top = Topology()
    with pytest.raises(TypeError):
        top.stream("L").join(top.stream("R"), lambda a, b: a)
    with pytest.raises(ValueError):
        JoinWindows(-1, 0, 0)


# -- left / outer: null results only after the window closed ----------------------------------------


def test_left_join_emits_unmatched_left_only_after_window_end_plus_grace():
    d = TestDriver(_topology("left_join", JoinWindows.of(10, grace_ms=5)))
    assert _pipe(d, "L", "a", "l1", 100) == []  # window [90, 110], closes after 115
    assert _pipe(d, "L", "b", "x", 115) == []
    assert _pipe(d, "R", "c", "r-unmatched", 115) == []  # a right record without a match: never emitted
    assert _pipe(d, "L", "b", "y", 116) == [("a", ("l1", None), 100)]  # 110 + 5 < 116
    assert _pipe(d, "L", "b", "z", 200) == [("b", ("x", None), 115), ("b", ("y", None), 116)]


def test_left_join_no_spurious_null_when_a_match_arrives_within_grace():
    d = TestDriver(_topology("left_join", JoinWindows.of(10, grace_ms=20)))
    _pipe(d, "L", "a", "l1", 100)
    _pipe(d, "L", "b", "x", 125)  # stream time 125: l1's window ended at 110, grace runs to 130
    assert _pipe(d, "R", "a", "r1", 108) == [("a", ("l1", "r1"), 108)]  # out of order, within grace
    assert _pipe(d, "L", "b", "y", 1000) == [("b", ("x", None), 125)]  # l1 matched: no (l1, None)


def test_outer_join_step_by_step():
    d = TestDriver(_topology("outer_join", JoinWindows(5, 10, 0)))
    # a left record at t joins right records in [t - 5, t + 10]; a right one, left records in [t - 10, t + 5]
    assert _pipe(d, "L", "a", "l1", 100) == []  # its window ends at 110
    assert _pipe(d, "R", "a", "r1", 200) == [("a", ("l1", None), 100)]
    assert _pipe(d, "L", "a", "l2", 201) == [("a", ("l2", "r1"), 201)]
    assert _pipe(d, "R", "b", "r2", 202) == []  # its window ends at 207
    assert _pipe(d, "R", "b", "r3", 207) == []
    assert _pipe(d, "L", "c", "l3", 208) == [("b", (None, "r2"), 202)]
    assert _pipe(d, "L", "c", "l4", 300) == [("b", (None, "r3"), 207), ("c", ("l3", None), 208)]


# -- grace and late records ------------------------------------------------------------------------


def test_inner_join_drops_records_whose_window_closed():
    d = TestDriver(_topology("join", JoinWindows.of(10, grace_ms=5)))
    _pipe(d, "R", "k", "r", 100)
    _pipe(d, "L", "x", "x", 200)  # stream time 200
    assert _pipe(d, "L", "k", "late", 184) == []  # window ends 194, + 5 < 200: late
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == 1
    (e,) = d.processing_log.entries
    assert e["operator"] == "j" and "late" in e["reason"]
    _pipe(d, "R", "k", "r2", 190)  # window ends at 200 (+5 >= 200): on time
    assert _pipe(d, "L", "k", "l", 185) == [("k", ("l", "r2"), 190)]  # window ends 195, + 5 >= 200: on time


def test_left_join_drops_right_records_that_could_contradict_an_emitted_null():
    d = TestDriver(_topology("left_join", JoinWindows.of(10, grace_ms=0)))
    _pipe(d, "L", "k", "l", 100)
    assert _pipe(d, "L", "x", "x", 111) == [("k", ("l", None), 100)]
    assert _pipe(d, "R", "k", "r", 105) == []  # would join l, whose null result is out: late
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == 1


# -- random inputs vs a brute-force model ------------------------------------------------------------


class _Model:
    """The join, brute force: every accepted record kept, every pair checked."""

    def __init__(self, kind: str, w: JoinWindows) -> None:
        self.kind, self.w = kind, w
        self.emits_null = {"L": kind in ("left_join", "outer_join"), "R": kind == "outer_join"}
        self.look = {"L": w.after_ms, "R": w.before_ms}
        self.records: list = []  # (side, key, value, ts)
        self.pending: list = []
        self.stream_time = -(1 << 62)
        self.late = 0

    def _joins(self, a, b) -> bool:
        (sa, ka, _, ta), (sb, kb, _, tb) = a, b
        if sa == sb or ka != kb:
            return False
        lt, rt = (ta, tb) if sa == "L" else (tb, ta)
        return lt - self.w.before_ms <= rt <= lt + self.w.after_ms

    def add(self, side, k, v, t) -> list:
        self.stream_time = st = max(self.stream_time, t)
        other = "R" if side == "L" else "L"
        g = self.w.grace_ms
        if t + self.look[side] + g < st or (self.emits_null[other] and t + g < st):
            self.late += 1
            return self._close()
        rec = (side, k, v, t)
        out = []
        matches = [o for o in self.records if self._joins(rec, o)]
        for o in matches:
            out.append((k, (v, o[2]) if side == "L" else (o[2], v), max(t, o[3])))
            if o in self.pending:
                self.pending.remove(o)
        if not matches and self.emits_null[side]:
            self.pending.append(rec)
        self.records.append(rec)
        return out + self._close()

    def _close(self) -> list:
        out = []
        for rec in list(self.pending):
            s, k, v, t = rec
            if t + self.look[s] + self.w.grace_ms < self.stream_time:
                self.pending.remove(rec)
                out.append((k, (v, None) if s == "L" else (None, v), t))
        return out


@pytest.mark.parametrize("caching", [False, True])
@pytest.mark.parametrize("kind", ["join", "left_join", "outer_join"])
@pytest.mark.parametrize("windows", [JoinWindows.of(50, grace_ms=100), JoinWindows(20, 80, 30), JoinWindows(0, 40, 0)])
def test_random_inputs_match_the_model(kind, windows, caching):
    rng = random.Random(len(kind) * 1000 + windows.before_ms * 7 + windows.after_ms)
    d = TestDriver(_topology(kind, windows), caching=caching)
    model = _Model(kind, windows)
    joined = nulls = 0
    for i in range(400):
        side = rng.choice("LR")
        k = rng.choice("abc")
        t = max(0, i * 10 + (rng.randint(-250, 20) if rng.random() < 0.3 else rng.randint(0, 20)))
        v = f"{side}{i}"
        expected = model.add(side, k, v, t)
        got = _pipe(d, side, k, v, t)
        assert Counter(got) == Counter(expected), (i, side, k, t)
        joined += sum(1 for _, (a, b), _ in got if a is not None and b is not None)
        nulls += sum(1 for _, (a, b), _ in got if a is None or b is None)
    assert joined > 10
    assert model.late > 0 and d.tasks[0].ctx.metrics.get("late-records-dropped", 0) == model.late
    if kind != "join":
        assert nulls > 10
    else:
        assert nulls == 0
