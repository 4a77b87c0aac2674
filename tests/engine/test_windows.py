"""Windowed aggregation through the TestDriver: tumbling and hopping window assignment,
windowed keys, grace and late records, emit-final (suppress)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import polars as pl
import pytest

from mailroom.engine import INT64, MSGPACK, JsonColumnsSerde, TestDriver, TimeWindows, Topology, Windowed

SEC = 1000


def _windows_of(ts: int, size: int, advance: int) -> list[int]:
    """Every window start s (a multiple of advance, s >= 0) with s <= ts < s + size."""
    return [s for s in range(0, ts + 1, advance) if s <= ts < s + size]


def _topology(windows: TimeWindows, *, emit_final=False, agg="count", value_serde=None, timestamp_field=None, name="wagg"):
    top = Topology()
    kw = {} if value_serde is None else {"value_serde": value_serde}
    s = top.stream("in", timestamp_field=timestamp_field, **kw).group_by_key().windowed_by(windows)
    if agg == "count":
        t = s.count(emit_final=emit_final, name=name)
    elif agg == "sum":
        t = s.sum("n", emit_final=emit_final, name=name)
    else:
        t = s.aggregate(lambda: [], lambda k, v, a: [*a, v["n"]], emit_final=emit_final, name=name)
    t.to_stream().to("out", key_serde=MSGPACK, value_serde=MSGPACK)
    return top


def _read(d: TestDriver):
    return [(tuple(o.key), o.value, o.timestamp) for o in d.read_output("out", key_serde=MSGPACK, value_serde=MSGPACK)]


def _last(outs) -> dict:
    return {k: v for k, v, _ in outs}


# -- assignment ------------------------------------------------------------------------------------


def test_time_windows_assign_tumbling_boundaries():
    w = TimeWindows.tumbling(10)
    idx, starts = w.assign(np.array([0, 9, 10, 19, 20, 1234], dtype=np.int64))
    assert idx.tolist() == [0, 1, 2, 3, 4, 5]
    assert starts.tolist() == [0, 0, 10, 10, 20, 1230]


@pytest.mark.parametrize("size,advance", [(10, 5), (10, 3), (10, 10), (7, 2), (60, 15), (5, 1)])
def test_time_windows_assign_hopping_matches_brute_force(size, advance):
    w = TimeWindows.hopping(size, advance)
    ts = np.arange(0, 80, dtype=np.int64)
    idx, starts = w.assign(ts)
    got: dict = {}
    for i, s in zip(idx.tolist(), starts.tolist()):
        got.setdefault(int(ts[i]), []).append(s)
    for t in ts.tolist():
        assert got.get(t, []) == _windows_of(t, size, advance), f"ts={t}"


def test_hopping_advance_must_fit_size():
    with pytest.raises(ValueError):
        TimeWindows.hopping(10, 11)
    with pytest.raises(ValueError):
        TimeWindows.hopping(10, 0)


def test_tumbling_window_boundaries_in_windowed_key():
    d = TestDriver(_topology(TimeWindows.tumbling(10 * SEC)))
    for ts in (0, 9_999, 10_000, 19_999, 20_000):
        d.pipe_input("in", "k", {"n": 1}, ts)
    assert _read(d) == [
        (("k", 0, 10_000), 1, 0),
        (("k", 0, 10_000), 2, 9_999),
        (("k", 10_000, 20_000), 1, 10_000),
        (("k", 10_000, 20_000), 2, 19_999),
        (("k", 20_000, 30_000), 1, 20_000),
    ]


def test_hopping_window_boundaries_in_windowed_key():
    d = TestDriver(_topology(TimeWindows.hopping(10 * SEC, 5 * SEC)))
    d.pipe_input("in", "k", {"n": 1}, 11_000)  # in [5s, 15s) and [10s, 20s)
    assert sorted(k for k, _, _ in _read(d)) == [("k", 5_000, 15_000), ("k", 10_000, 20_000)]
    d.pipe_input("in", "k", {"n": 1}, 15_000)  # in [10s, 20s) and [15s, 25s), not [5s, 15s)
    assert sorted((k, v) for k, v, _ in _read(d)) == [(("k", 10_000, 20_000), 2), (("k", 15_000, 25_000), 1)]
    d.pipe_input("in", "k", {"n": 1}, 14_999)  # in [5s, 15s) and [10s, 20s)
    assert sorted((k, v) for k, v, _ in _read(d)) == [(("k", 5_000, 15_000), 2), (("k", 10_000, 20_000), 3)]


def test_windowed_key_is_a_windowed_tuple_before_the_sink():
    from mailroom.engine.node import Node
    from mailroom.engine.topology import NodeSpec

    seen = []

    class Spy(Node):
        def process(self, batch):
            seen.extend(batch.keys)

    top = Topology()
    t = top.stream("in").group_by_key().windowed_by(TimeWindows.tumbling(100)).count()
    top._add(NodeSpec("spy", lambda: Spy("spy"), [t._node]))
    d = TestDriver(top)
    d.pipe_input("in", "k", {}, 250)
    assert seen == [Windowed("k", 200, 300)]
    assert (seen[0].key, seen[0].start, seen[0].end) == ("k", 200, 300)


# -- aggregation vs Python -------------------------------------------------------------------------


def _random_events(n, seed, max_ts=100 * SEC):
    rng = random.Random(seed)
    ts = sorted(rng.randrange(0, max_ts) for _ in range(n))
    return [(rng.choice("abcd"), {"n": rng.randint(1, 9)}, t) for t in ts]


@pytest.mark.parametrize("caching", [False, True])
@pytest.mark.parametrize("size,advance", [(10 * SEC, 10 * SEC), (10 * SEC, 3 * SEC), (7 * SEC, 7 * SEC)])
def test_windowed_count_matches_python(size, advance, caching):
    d = TestDriver(_topology(TimeWindows.hopping(size, advance)), caching=caching)
    events = _random_events(300, seed=size + advance)
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    expected = Counter((k, s, s + size) for k, _, ts in events for s in _windows_of(ts, size, advance))
    assert _last(_read(d)) == dict(expected)


def test_windowed_sum_and_aggregate_match_python():
    events = _random_events(200, seed=42)
    size, adv = 10 * SEC, 5 * SEC
    d = TestDriver(_topology(TimeWindows.hopping(size, adv), agg="sum"))
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    sums: Counter = Counter()
    lists: dict = {}
    for k, v, ts in events:
        for s in _windows_of(ts, size, adv):
            sums[(k, s, s + size)] += v["n"]
            lists.setdefault((k, s, s + size), []).append(v["n"])
    assert _last(_read(d)) == dict(sums)
    d = TestDriver(_topology(TimeWindows.hopping(size, adv), agg="aggregate"))
    for k, v, ts in events:
        d.pipe_input("in", k, v, ts)
    assert {k: list(v) for k, v in _last(_read(d)).items()} == lists


def test_windowed_sum_with_columnar_values():
    top = _topology(TimeWindows.tumbling(SEC), agg="sum", value_serde=JsonColumnsSerde({"n": pl.Int64}))
    for caching in (False, True):
        d = TestDriver(top, caching=caching)
        d.pipe_input("in", "a", {"n": 2}, 100)
        d.pipe_input("in", "a", {"n": 3}, 900)
        d.pipe_input("in", "a", {"n": 4}, 1000)
        assert _last(_read(d)) == {("a", 0, 1000): 5, ("a", 1000, 2000): 4}


# -- grace and late records ------------------------------------------------------------------------


def test_grace_within_counts_beyond_drops_and_logs():
    d = TestDriver(_topology(TimeWindows.tumbling(10 * SEC, grace_ms=5 * SEC)))
    d.pipe_input("in", "k", {}, 1_000)
    d.pipe_input("in", "k", {}, 12_000)  # stream time 12s: window [0,10s) closes at 15s
    d.pipe_input("in", "k", {}, 9_000)  # late but within grace: counted
    assert _read(d)[-1] == (("k", 0, 10_000), 2, 9_000)
    assert d.processing_log.entries == []
    d.pipe_input("in", "k", {}, 14_999)  # stream time 14.999s: still open
    d.pipe_input("in", "k", {}, 9_500)
    assert _read(d)[-1] == (("k", 0, 10_000), 3, 9_500)
    d.pipe_input("in", "k", {}, 15_000)  # stream time 15s = end + grace: closed
    _read(d)
    d.pipe_input("in", "k", {}, 9_999)  # beyond grace: dropped
    d.pipe_input("in", "k", {}, 0)
    assert _read(d) == []
    assert len(d.processing_log.entries) == 2
    e = d.processing_log.entries[0]
    assert e["operator"] == "wagg" and "late" in e["reason"]
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == 2
    d.pipe_input("in", "k", {}, 10_000)  # the next window is still open
    assert _read(d) == [(("k", 10_000, 20_000), 4, 10_000)]  # 12s, 14.999s, 15s and 10s


def test_zero_grace_closes_at_window_end():
    d = TestDriver(_topology(TimeWindows.tumbling(10, grace_ms=0)))
    d.pipe_input("in", "k", {}, 5)
    d.pipe_input("in", "k", {}, 10)
    d.pipe_input("in", "k", {}, 9)  # window [0,10) closed at stream time 10
    assert [(k, v) for k, v, _ in _read(d)] == [(("k", 0, 10), 1), (("k", 10, 20), 1)]
    assert len(d.processing_log.entries) == 1


def test_hopping_late_record_still_counts_in_its_open_windows():
    d = TestDriver(_topology(TimeWindows.hopping(10, 5, grace_ms=0)))
    d.pipe_input("in", "k", {}, 12)  # stream time 12: [0,10) closed; [5,15) open
    _read(d)
    d.pipe_input("in", "k", {}, 7)  # windows [0,10) (closed) and [5,15) (open)
    assert [(k, v) for k, v, _ in _read(d)] == [(("k", 5, 15), 2)]
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == 1


def test_late_drops_match_python_model():
    rng = random.Random(3)
    size, grace = 10 * SEC, 3 * SEC
    d = TestDriver(_topology(TimeWindows.tumbling(size, grace_ms=grace)))
    stream_time = -1
    expected: Counter = Counter()
    dropped = 0
    for i in range(400):
        ts = max(0, i * 200 + rng.randint(-8 * SEC, 1 * SEC))
        k = rng.choice("xy")
        stream_time = max(stream_time, ts)
        s = ts - ts % size
        if s + size + grace <= stream_time:
            dropped += 1
        else:
            expected[(k, s, s + size)] += 1
        d.pipe_input("in", k, {}, ts)
    assert dropped > 10  # the data exercises the late path
    assert _last(_read(d)) == dict(expected)
    assert d.tasks[0].ctx.metrics["late-records-dropped"] == dropped


def test_windowed_null_keys_dropped_and_logged():
    d = TestDriver(_topology(TimeWindows.tumbling(10)))
    d.pipe_input("in", None, {}, 1)
    d.pipe_input("in", "k", {}, 2)
    assert [(k, v) for k, v, _ in _read(d)] == [(("k", 0, 10), 1)]
    (e,) = d.processing_log.entries
    assert e["operator"] == "wagg" and e["offset"] == 0


# -- emit final ------------------------------------------------------------------------------------


@pytest.mark.parametrize("caching", [False, True])
def test_emit_final_once_per_window_after_end_plus_grace(caching):
    d = TestDriver(_topology(TimeWindows.tumbling(10 * SEC, grace_ms=2 * SEC), emit_final=True), caching=caching)
    d.pipe_input("in", "a", {}, 1_000)
    d.pipe_input("in", "b", {}, 2_000)
    d.pipe_input("in", "a", {}, 9_999)
    d.pipe_input("in", "a", {}, 10_500)  # next window; [0,10s) is within grace
    d.pipe_input("in", "b", {}, 8_000)  # within grace: counted in the final result
    assert _read(d) == []
    d.pipe_input("in", "a", {}, 11_999)
    assert _read(d) == []
    d.pipe_input("in", "c", {}, 12_000)  # stream time = end + grace: [0,10s) closes
    assert sorted((k, v) for k, v, _ in _read(d)) == [(("a", 0, 10_000), 2), (("b", 0, 10_000), 2)]
    d.pipe_input("in", "a", {}, 13_000)
    d.pipe_input("in", "b", {}, 5_000)  # late: dropped, no new result
    assert _read(d) == []
    d.pipe_input("in", "z", {}, 22_000)
    assert sorted((k, v) for k, v, _ in _read(d)) == [(("a", 10_000, 20_000), 3), (("c", 10_000, 20_000), 1)]


def test_emit_final_with_default_grace_waits_a_day():
    """With the default 24h grace, small timestamps must not close any window."""
    d = TestDriver(_topology(TimeWindows.tumbling(10 * SEC), emit_final=True))
    for ts in (1_000, 15_000, 3_600_000):
        d.pipe_input("in", "k", {}, ts)
    assert _read(d) == []
    d.pipe_input("in", "k", {}, 10_000 + 24 * 3600 * SEC)
    assert [(k, v) for k, v, _ in _read(d)] == [(("k", 0, 10_000), 1)]  # [10s, 20s) has 10s more to go
    d.pipe_input("in", "k", {}, 20_000 + 24 * 3600 * SEC)
    assert [(k, v) for k, v, _ in _read(d)] == [(("k", 10_000, 20_000), 1)]


def test_emit_final_survives_a_large_jump_in_stream_time():
    """The final result must be emitted even when stream time jumps past the window's retention."""
    d = TestDriver(_topology(TimeWindows.tumbling(10, grace_ms=0), emit_final=True))
    d.pipe_input("in", "k", {}, 3)
    d.pipe_input("in", "k", {}, 4)
    d.pipe_input("in", "k", {}, 10_000_000)
    assert [(k, v) for k, v, _ in _read(d)] == [(("k", 0, 10), 2)]


@pytest.mark.parametrize("caching", [False, True])
def test_emit_final_matches_python_model(caching):
    size, adv, grace = 10 * SEC, 5 * SEC, 2 * SEC
    rng = random.Random(8)
    d = TestDriver(_topology(TimeWindows.hopping(size, adv, grace_ms=grace), emit_final=True, agg="sum"), caching=caching)
    events = []
    for i in range(300):
        events.append((rng.choice("pqr"), {"n": rng.randint(1, 5)}, max(0, i * 300 + rng.randint(-4 * SEC, 0))))
    stream_time = -1
    sums: Counter = Counter()
    outputs = []
    for k, v, ts in events:
        stream_time = max(stream_time, ts)
        for s in _windows_of(ts, size, adv):
            if s + size + grace > stream_time:
                sums[(k, s, s + size)] += v["n"]
        d.pipe_input("in", k, v, ts)
        outputs += _read(d)
    keys = [k for k, _, _ in outputs]
    assert len(keys) == len(set(keys))  # exactly one result per window
    closed = {w: n for w, n in sums.items() if w[2] + grace <= stream_time}
    assert {k: v for k, v, _ in outputs} == closed
    assert len(closed) > 20


def test_event_time_from_a_value_field_drives_windows_and_stream_time():
    """With timestamp_field, windows, lateness and emit-final all use the value's event time."""
    top = _topology(TimeWindows.tumbling(10 * SEC, grace_ms=0), emit_final=True, timestamp_field="at")
    d = TestDriver(top)
    log_ts = 999_999_999  # the log's timestamps are all far ahead of event time
    d.pipe_input("in", "k", {"at": 1_000}, log_ts)
    d.pipe_input("in", "k", {"at": 2_000}, log_ts)
    assert _read(d) == []
    d.pipe_input("in", "k", {"at": 10_000}, log_ts)
    assert [(k, v) for k, v, _ in _read(d)] == [(("k", 0, 10_000), 2)]
    assert d.processing_log.entries == []
