"""EMIT FINAL as ksqlDB gives it (``final_within_retention``): Kafka Streams reads closed
windows back from its window store, so a window that a jump in stream time took past the
store's retention (size + grace) at the record that closed it gets no final result."""

from __future__ import annotations

import random

import pytest

from mailroom.engine import MSGPACK, TestDriver, TimeWindows, Topology
from mailroom.engine.aggregators import CountAggregator


def _topology(windows: TimeWindows, *, within_retention: bool = True) -> Topology:
    top = Topology()
    s = top.stream("in").group_by_key().windowed_by(windows)
    t = s._aggregate("WINDOW-COUNT", CountAggregator(), "wagg", True, final_within_retention=within_retention)
    t.to_stream().to("out", key_serde=MSGPACK, value_serde=MSGPACK)
    return top


def _run(top: Topology, records: list[tuple[str, int]], *, batched: bool, caching: bool) -> list:
    d = TestDriver(top, caching=caching)
    if batched:  # as the runtime polls them: one batch, then a commit
        d.pipe_batch("in", [(k, {}, ts) for k, ts in records])
    else:
        for k, ts in records:
            d.pipe_input("in", k, {}, ts)
    return [(tuple(o.key), o.value, o.timestamp) for o in d.read_output("out", key_serde=MSGPACK, value_serde=MSGPACK)]


MODES = [(False, False), (False, True), (True, False), (True, True)]


@pytest.mark.parametrize("batched,caching", MODES)
def test_a_window_closed_by_a_jump_past_its_retention_has_no_final_result(batched, caching):
    # size 2, grace 1 (retention 3): at 5 the store's latest window start is 4, so [0,2) is gone
    # and [2,4) is not (ksqlDB's suppress.json "should support final results for tumbling windows")
    records = [("k", 0), ("k", 1), ("k", 2), ("k", 1), ("k", 0), ("k", 5)]
    out = _run(_topology(TimeWindows.tumbling(2, grace_ms=1)), records, batched=batched, caching=caching)
    assert out == [(("k", 2, 4), 1, 2)]


@pytest.mark.parametrize("batched,caching", MODES)
def test_hopping_windows_keep_those_within_retention_of_the_closing_record(batched, caching):
    # ksqlDB's "should support final results for hopping windows": [2,7) is lost at 10 (store
    # time 10, retention 6), [0,5) was emitted at 6 and [4,9) still within the retention at 10
    records = [("k", 0), ("k", 1), ("k", 2), ("k", 1), ("k", 6), ("k", 5), ("k", 10)]
    out = _run(_topology(TimeWindows.hopping(5, 2, grace_ms=1)), records, batched=batched, caching=caching)
    assert out == [(("k", 0, 5), 4, 2), (("k", 4, 9), 2, 6)]


@pytest.mark.parametrize("batched,caching", MODES)
def test_a_window_closed_before_a_jump_in_the_same_batch_keeps_its_result(batched, caching):
    # [0,2) closes at 3 (store time 2, within retention); [2,4) only at the jump to 100
    records = [("a", 0), ("b", 1), ("a", 2), ("a", 3), ("b", 100)]
    out = _run(_topology(TimeWindows.tumbling(2, grace_ms=1)), records, batched=batched, caching=caching)
    assert out == [(("a", 0, 2), 1, 0), (("b", 0, 2), 1, 1)]


def test_a_dropped_final_result_is_counted():
    d = TestDriver(_topology(TimeWindows.tumbling(2, grace_ms=1)))
    for ts in (0, 1, 2, 5):
        d.pipe_input("in", "k", {}, ts)
    assert [o.value for o in d.read_output("out", key_serde=MSGPACK, value_serde=MSGPACK)] == [1]
    assert sum(t.ctx.metrics.get("final-results-expired", 0) for t in d.tasks) == 1


def test_an_explicit_retention_keeps_windows_a_jump_would_drop():
    records = [("k", 0), ("k", 1), ("k", 5)]
    assert _run(_topology(TimeWindows.tumbling(2, grace_ms=1)), records, batched=False, caching=False) == []
    kept = _run(_topology(TimeWindows.tumbling(2, grace_ms=1, retention_ms=10)), records, batched=False, caching=False)
    assert kept == [(("k", 0, 2), 2, 1)]


def test_without_the_flag_every_window_gets_its_final_result():
    records = [("k", 0), ("k", 1), ("k", 2), ("k", 5)]
    out = _run(_topology(TimeWindows.tumbling(2, grace_ms=1), within_retention=False), records, batched=False, caching=False)
    assert out == [(("k", 0, 2), 2, 1), (("k", 2, 4), 1, 2)]


def _kafka_streams_model(records, size, advance, grace, cut=True):
    """Kafka Streams' emit-on-window-close, record by record: a range fetch of the closed windows
    from a store that has dropped those older than size + grace before its latest window start."""
    st, last_emit, store_time = None, None, None
    store: dict = {}
    out = []
    for k, t in records:
        st = t if st is None else max(st, t)
        close = st - grace
        for s in range(max(0, (t - size) // advance * advance), t + 1, advance):
            if s <= t < s + size and s + size > close:
                n, ts0 = store.get((k, s), (0, t))
                store[(k, s)] = (n + 1, max(ts0, t))
                store_time = s if store_time is None else max(store_time, s)
        if (last_emit is None or last_emit < close) and close - size >= 0:
            lower = 0 if last_emit is None else max(0, last_emit - size) + 1
            if cut:
                lower = max(lower, store_time - (size + grace))
            for (key, s) in sorted(store, key=lambda w: (w[1], w[0])):
                if lower <= s <= close - size:
                    n, ts0 = store[(key, s)]
                    out.append(((key, s, s + size), n, ts0))
            last_emit = close
    return out


@pytest.mark.parametrize("caching", [False, True])
@pytest.mark.parametrize("size,advance", [(10, 10), (10, 4)])
def test_matches_a_record_by_record_model_of_kafka_streams_in_any_batching(caching, size, advance):
    rng = random.Random(size * 31 + advance)
    grace, t, records = 3, 0, []
    for _ in range(400):  # mostly small steps and some out of order, now and then a jump
        t += rng.choice([0, 1, 2, 3, 5, 8]) if rng.random() > 0.04 else rng.randint(15, 40)
        records.append((rng.choice("abc"), max(0, t - rng.randint(0, 12) if rng.random() < 0.3 else t)))
    want = _kafka_streams_model(records, size, advance, grace)
    assert 20 < len(want) and len({w for w, _, _ in want}) == len(want)
    assert len(_kafka_streams_model(records, size, advance, grace, cut=False)) > len(want) + 3  # (the jumps drop some)
    top = _topology(TimeWindows.hopping(size, advance, grace_ms=grace))
    assert _run(top, records, batched=False, caching=caching) == want
    d = TestDriver(_topology(TimeWindows.hopping(size, advance, grace_ms=grace)), caching=caching)
    i = 0
    while i < len(records):  # polled batches of any size, each committed
        n = rng.randint(1, 40)
        d.pipe_batch("in", [(k, {}, ts) for k, ts in records[i:i + n]])
        i += n
    got = [(tuple(o.key), o.value, o.timestamp) for o in d.read_output("out", key_serde=MSGPACK, value_serde=MSGPACK)]
    assert got == want
