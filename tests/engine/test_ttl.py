"""State TTL on aggregations: keys not updated for ttl_ms of stream time are deleted, with a
tombstone that still carries the last value."""

from __future__ import annotations

import pytest

from mailroom.engine import TestDriver, Topology

H = 3600_000


def track(key, ev, state):
    return {**(state or {}), "last": ev["type"], "events": (state or {}).get("events", 0) + 1}


def topology(ttl_ms: int) -> Topology:
    top = Topology()
    state = top.stream("events").group_by_key().aggregate(dict, track, ttl_ms=ttl_ms)
    state.to_stream(with_old=True).to("changes")
    return top


@pytest.mark.parametrize("caching", [False, True])
def test_idle_keys_expire_with_their_last_value(caching: bool) -> None:
    d = TestDriver(topology(4 * H), caching=caching)
    d.pipe_input("events", "m1", {"type": "queued"}, timestamp=0)
    d.pipe_input("events", "m2", {"type": "queued"}, timestamp=0)
    d.pipe_input("events", "m2", {"type": "deferred"}, timestamp=3 * H)  # m2 stays alive longer
    d.read_output("changes")
    d.pipe_input("events", "m3", {"type": "queued"}, timestamp=4 * H)  # m1 idle for 4h: expires
    out = [o for o in d.read_output("changes") if o.value["new"] is None]
    assert [(o.key, o.value["old"]["last"]) for o in out] == [("m1", "queued")]
    d.pipe_input("events", "m3", {"type": "delivered"}, timestamp=7 * H)  # m2 (last at 3h) expires
    out = [o for o in d.read_output("changes") if o.value["new"] is None]
    assert [(o.key, o.value["old"]["last"], o.value["old"]["events"]) for o in out] == [("m2", "deferred", 2)]


def test_expired_key_starts_afresh() -> None:
    d = TestDriver(topology(H))
    d.pipe_input("events", "m1", {"type": "queued"}, timestamp=0)
    d.pipe_input("events", "x", {"type": "queued"}, timestamp=2 * H)  # m1 expires
    d.pipe_input("events", "m1", {"type": "opened"}, timestamp=2 * H + 1)
    last = [o for o in d.read_output("changes") if o.key == "m1"][-1]
    assert last.value == {"old": None, "new": {"last": "opened", "events": 1}}


def test_count_with_ttl_against_reference() -> None:
    """Random keys and times: what is left equals a straightforward model of the TTL."""
    import random

    rnd = random.Random(7)
    top = Topology()
    top.stream("events").group_by_key().count(ttl_ms=1000).to_stream().to("counts")
    d = TestDriver(top)
    model: dict[str, tuple[int, int]] = {}  # key -> (count, last ts)
    t = 0
    expected_deletes = 0
    for _ in range(2000):
        t += rnd.randint(0, 40)
        k = f"k{rnd.randint(0, 30)}"
        d.pipe_input("events", k, {"v": 1}, timestamp=t)
        # keys due by this record's time expire first (this record's own key too)...
        for key in [x for x, (_, lt) in model.items() if lt + 1000 <= t]:
            del model[key]
            expected_deletes += 1
        # ...then the record counts
        c, _ = model.get(k, (0, t))
        model[k] = (c + 1, t)
    final: dict[str, int | None] = {}
    deletes = 0
    for o in d.read_output("counts"):
        final[o.key] = o.value
        deletes += o.value is None
    assert {k: v for k, v in final.items() if v is not None} == {k: c for k, (c, _) in model.items()}
    assert deletes == expected_deletes
