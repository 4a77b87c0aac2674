"""The email simulator: deterministic, realistic in the ways the pipelines rely on, two equal paths."""

from __future__ import annotations

from collections import Counter, defaultdict

import orjson
import pytest

from mailroom.email.events import FINAL_TYPES, from_dict
from mailroom.email.simulator import PROVIDERS, Outage, SimConfig, parse_duration, simulate, simulate_batches

START = 1_764_000_000_000
MIN = 60_000


def _bytes(**kw) -> list[tuple[list[bytes], list[bytes], list[int]]]:
    return [(k.to_pylist(), v.to_pylist(), ts.tolist()) for k, v, ts in simulate_batches(**kw)]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = _bytes(messages=4000, seed=11, batch=1000)
    assert a == _bytes(messages=4000, seed=11, batch=1000)
    assert a != _bytes(messages=4000, seed=12, batch=1000)
    assert sum(len(b[1]) for b in a) > 8000


def test_columnar_path_equals_dict_path() -> None:
    cfg = SimConfig(outages=(Outage("yahoo", 2 * MIN, 3 * MIN),))
    dicts = [e for b in simulate(messages=5000, seed=4, batch=800, config=cfg) for e in b]
    cols = [(k, orjson.loads(v), t) for ks, vs, ts in _bytes(messages=5000, seed=4, batch=800, config=cfg)
            for k, v, t in zip(ks, vs, ts)]
    assert len(dicts) == len(cols)
    assert [c[1] for c in cols] == dicts
    assert all(k == e["message_id"].encode() and t == e["ts"] for (k, e, t) in cols)
    assert {e["type"] for e in dicts} >= {"injected", "delivered", "deferred", "bounced", "opened", "clicked"}
    for e in dicts[:2000]:
        from_dict(e)  # every event fits the canonical schema


def test_events_come_in_time_order_and_messages_end() -> None:
    events = [e for b in simulate(messages=20_000, seed=2) for e in b]
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts)
    by_msg: dict[str, list[str]] = defaultdict(list)
    for e in events:
        by_msg[e["message_id"]].append(e["type"])
    assert len(by_msg) == 20_000
    assert all(types[0] == "injected" for types in by_msg.values())
    unfinished = [m for m, types in by_msg.items() if not FINAL_TYPES & set(types)]
    assert 0 < len(unfinished) < 0.005 * 20_000  # a few stuck in a queue, no more
    finals = Counter(next(t for t in types if t in FINAL_TYPES) for types in by_msg.values() if FINAL_TYPES & set(types))
    assert finals["delivered"] > 0.95 * 20_000 and finals["bounced"] > 50 and finals["dropped"] > 20


def test_provider_shares_within_tolerance() -> None:
    n = 30_000
    injected = [e for b in simulate(messages=n, seed=9) for e in b if e["type"] == "injected"]
    got = Counter(e["provider"] for e in injected)
    total = sum(p.share for p in PROVIDERS)
    for p in PROVIDERS:
        assert abs(got[p.name] / n - p.share / total) < 0.01, (p.name, got[p.name] / n)
    assert all(e["domain"] in next(p.domains for p in PROVIDERS if p.name == e["provider"]) for e in injected[:5000])


def test_outage_defers_every_attempt_then_retries_deliver() -> None:
    cfg = SimConfig(rate_per_s=30, throttling=False, outages=(Outage("gmail", 10 * MIN, 5 * MIN),))
    events = [e for b in simulate(messages=30_000, seed=5, config=cfg) for e in b]
    o_start, o_end = START + 10 * MIN, START + 15 * MIN
    attempts = [e for e in events if e["type"] in ("delivered", "deferred", "bounced")]
    # an attempt's event comes after its session; one that started in the outage is deferred
    during = [e for e in attempts if e["provider"] == "gmail" and o_start + 31_000 <= e["ts"] < o_end]
    assert len(during) > 1000 and all(e["type"] == "deferred" for e in during)
    replies = Counter(e["enhanced_code"] for e in during)
    assert set(replies) == {"4.4.1", "4.4.2", "4.3.2"}  # timeouts, lost connections, 421s
    assert all(e.get("smtp_code") is None for e in during if e["enhanced_code"] == "4.4.1")
    before = [e for e in attempts if e["provider"] == "gmail" and e["ts"] < o_start]
    assert sum(e["type"] == "deferred" for e in before) < 0.1 * len(before)
    others = [e for e in attempts if e["provider"] != "gmail" and o_start <= e["ts"] < o_end]
    assert sum(e["type"] == "deferred" for e in others) < 0.2 * len(others)
    # the mail deferred in the outage is retried with backoff and delivered afterwards
    deferred_ids = {e["message_id"] for e in during}
    later = {e["message_id"] for e in attempts if e["message_id"] in deferred_ids and e["type"] == "delivered"}
    assert len(later) > 0.9 * len(deferred_ids)
    retry = [e for e in attempts if e["message_id"] in deferred_ids and e["type"] == "delivered"]
    assert min(e["attempt"] for e in retry) >= 2 and min(e["ts"] for e in retry) >= o_end


def test_greylisting_throttling_and_expiry() -> None:
    cfg = SimConfig(throttle_every_ms=20 * MIN, max_attempts=3)
    events = [e for b in simulate(messages=20_000, seed=8, config=cfg) for e in b]
    grey = {e["message_id"] for e in events if e.get("enhanced_code") == "4.7.1" and e["attempt"] == 1}
    assert len(grey) > 100
    assert all(e["provider"] == "corporate" for e in events if e["message_id"] in grey and e["type"] == "injected")
    accepted_on_retry = {e["message_id"] for e in events if e["message_id"] in grey and e["type"] == "delivered" and e["attempt"] >= 2}
    assert len(accepted_on_retry) > 0.8 * len(grey)
    throttled = Counter(e["enhanced_code"] for e in events if e.get("bounce_class") == "throttle")
    assert throttled["4.7.28"] + throttled["4.7.0"] > 50
    expired = [e for e in events if e["type"] == "expired"]
    assert expired and all(e["attempt"] == 3 and e["bounce_class"] == "expired" for e in expired)


def test_max_events_cuts_the_stream_exactly() -> None:
    n = sum(len(ts) for _, _, ts in simulate_batches(messages=None, max_events=12_345, seed=1, batch=2000))
    assert n == 12_345


def test_outage_spec_and_durations() -> None:
    assert Outage.parse("gmail:15m:10m") == Outage("gmail", 15 * MIN, 10 * MIN)
    assert parse_duration("90s") == 90_000 and parse_duration("2h") == 7_200_000 and parse_duration("250") == 250
    with pytest.raises(ValueError, match="unknown provider"):
        Outage.parse("hotmail:1m:1m")
    with pytest.raises(ValueError, match="PROVIDER:START:DURATION"):
        Outage.parse("gmail:1m")
