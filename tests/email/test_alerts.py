"""ALERTS and STUCK_MAIL end to end: simulated mail with a provider outage, through the embedded log
and the alerting pipelines, checked against the outage script and a reference computation."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import orjson
import pytest

from mailroom.engine import App, TestDriver
from mailroom.email.events import ENGAGEMENT_TYPES, FINAL_TYPES
from mailroom.email.pipelines import alerts, stuck_mail
from mailroom.email.simulator import Outage, SimConfig, simulate, simulate_batches
from mailroom.log import open_log, partitions_for

START = 1_764_000_000_000
MIN = 60_000
PARTS = 4
STUCK_AFTER = 90 * MIN  # above the longest retry backoff (60 min +10%): only stranded mail is stuck
OUTAGE = Outage("gmail", 15 * MIN, 10 * MIN)
CFG = SimConfig(rate_per_s=20, throttling=False, outages=(OUTAGE,))
MESSAGES = 45_000  # ~110k events, about 38 minutes of arrivals and hours of retries and opens


def _read_all(log, topic: str) -> list[tuple[str, dict]]:
    c = log.consumer(f"check-{topic}-{time.time_ns()}", auto_offset_reset="earliest")
    c.subscribe([topic])
    out, idle = [], 0
    while idle < 3:
        batches = c.poll(100_000, timeout=0.3)
        idle = 0 if batches else idle + 1
        out += [(r.key.decode(), orjson.loads(r.value)) for b in batches for r in b]
    c.close()
    return out


def reference_stuck(events: list[dict], after_ms: int) -> Counter:
    """Idle spells per message, straight from the definition: within each partition (whose stream
    time is its largest event time so far), a message not yet final whose next delivery event
    comes ``after_ms`` or more after its last one, or never comes while its partition's time
    moves that far past it."""
    ids = sorted({e["message_id"] for e in events})
    part_of = dict(zip(ids, partitions_for([i.encode() for i in ids], PARTS).tolist()))
    end: dict[int, int] = defaultdict(lambda: -1)
    life: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        end[part_of[e["message_id"]]] = max(end[part_of[e["message_id"]]], e["ts"])
        if e["type"] not in ENGAGEMENT_TYPES:
            life[e["message_id"]].append(e)
    stuck: Counter = Counter()
    for mid, evs in life.items():
        for a, b in zip(evs, evs[1:] + [None]):
            if a["type"] in FINAL_TYPES:
                break
            moved_to = b["ts"] if b is not None else end[part_of[mid]]  # no next event: the partition's end
            if moved_to - a["ts"] >= after_ms:
                stuck[mid] += 1
    return stuck


@pytest.mark.slow
def test_outage_alerts_its_provider_only_and_stuck_mail_matches_reference(tmp_path) -> None:
    log = open_log(f"embedded:{tmp_path / 'log'}")
    log.create_topic("email-events", PARTS)
    for t in ("STUCK_MAIL", "ALERTS"):
        log.create_topic(t, PARTS)
    with log.producer() as p:
        for keys, values, ts in simulate_batches(messages=MESSAGES, seed=21, batch=5000, config=CFG):
            p.send_batch("email-events", values, keys, timestamps=ts)
    for mod, params in ((alerts, {}), (stuck_mail, {"stuck_after_ms": STUCK_AFTER})):
        app = App(mod.topology(**params), mod.APPLICATION_ID, log, state_dir=tmp_path / "state")
        app.run(idle_timeout=1.5)

    found = _read_all(log, "ALERTS")
    spikes = [v for _, v in found if v["KIND"] != "stuck_mail"]
    outage_start = START + OUTAGE.start_ms
    # the outage provider alerts, within 2 windows of the outage's start, and nobody else does
    assert {v["SUBJECT"] for v in spikes} == {"gmail"}, spikes
    first = min(spikes, key=lambda v: v["WINDOW_START"])
    assert first["KIND"] == "deferral_spike"
    assert outage_start <= first["WINDOW_START"] < outage_start + 2 * MIN
    assert first["TS"] <= outage_start + 2 * MIN and first["VALUE"] > 0.9 and first["BASELINE"] < 0.1
    assert "gmail" in first["MESSAGE"]

    events = [e for b in simulate(messages=MESSAGES, seed=21, batch=5000, config=CFG) for e in b]
    expected = reference_stuck(events, STUCK_AFTER)
    rows = _read_all(log, "STUCK_MAIL")
    assert Counter(k for k, _ in rows) == expected
    assert 20 < len(expected) < 0.01 * MESSAGES
    last_of = {}
    for e in events:
        if e["type"] not in ENGAGEMENT_TYPES:
            last_of[e["message_id"]] = e
    for mid, row in rows:
        assert row["LAST_TS"] == last_of[mid]["ts"] and row["STATE"] == last_of[mid]["type"]
        assert row["AGE_MS"] >= STUCK_AFTER and row["PROVIDER"] == last_of[mid]["provider"]
    stuck_alerts = {v["SUBJECT"] for _, v in found if v["KIND"] == "stuck_mail"}
    assert stuck_alerts == set(expected)


def test_stuck_mail_semantics() -> None:
    d = TestDriver(stuck_mail.topology(stuck_after_ms=100))

    def ev(mid: str, typ: str, ts: int) -> None:
        d.pipe_input("email-events", mid, {"type": typ, "message_id": mid, "provider": "gmail"}, timestamp=ts)

    ev("a", "injected", 0)
    ev("b", "injected", 0)
    ev("b", "delivered", 50)
    ev("c", "deferred", 60)
    ev("b", "opened", 500)  # stream time 500: a (idle since 0) and c (since 60) are stuck
    assert sorted((o.key, o.value["LAST_TS"], o.value["DETECTED_TS"]) for o in d.read_output("STUCK_MAIL")) == [
        ("a", 0, 500), ("c", 60, 500)]
    assert sorted(o.value["KIND"] for o in d.read_output("ALERTS")) == ["stuck_mail", "stuck_mail"]
    ev("c", "deferred", 550)  # c moves again: a new idle spell may be reported
    ev("a", "delivered", 560)  # a finishes: never reported again
    ev("a", "deferred", 570)  # a late non-final event does not reopen it
    ev("z", "injected", 700)
    assert [(o.key, o.value["STATE"]) for o in d.read_output("STUCK_MAIL")] == [("c", "deferred")]
    ev("z", "injected", 5000)
    assert [o.key for o in d.read_output("STUCK_MAIL")] == ["z"]  # only z's idle spell 700 -> 5000


def test_spike_needs_baseline_floor_and_volume() -> None:
    d = TestDriver(alerts.topology(min_attempts=10, baseline_windows=3, min_history=2))

    def minute(m: int, n: int, deferred: int, provider: str = "yahoo") -> None:
        for i in range(n):
            typ = "deferred" if i < deferred else "delivered"
            d.pipe_input("email-events", f"{provider}{m}-{i}", {"type": typ, "provider": provider}, timestamp=m * MIN + i)

    minute(0, 50, 10)
    minute(1, 50, 12)  # baseline about 22%
    minute(2, 50, 30)  # 60%: below 3x the baseline
    minute(3, 5, 5)  # 100% of too few attempts
    minute(4, 50, 2)
    minute(5, 50, 2)
    minute(6, 50, 1)  # baseline now (4% + 4% + 2%) / 3
    minute(7, 50, 20)  # 40% > 3x and above the floor: alert
    minute(8, 50, 25)  # still spiking: the same episode, no new alert
    minute(9, 50, 1)
    out = [o.value for o in d.read_output("ALERTS")]
    assert [(v["KIND"], v["SUBJECT"], v["WINDOW_START"]) for v in out] == [("deferral_spike", "yahoo", 7 * MIN)]
    assert out[0]["VALUE"] == 0.4 and abs(out[0]["BASELINE"] - 0.0333) < 1e-3


@pytest.mark.slow
def test_cli_simulate_then_run_sql_and_python_pipelines(tmp_path) -> None:
    """`mailroom simulate --outage` then `mailroom run` of the SQL files and the Python pipelines."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import mailroom.email.pipelines as pkg

    url = f"embedded:{tmp_path / 'log'}"
    mailroom = [sys.executable, "-m", "mailroom.cli"]
    sim = subprocess.run(mailroom + ["simulate", "--messages", "20000", "--message-rate", "20", "--no-throttling", "--seed", "4",
                                     "--outage", "gmail:8m:5m", "--log", url], capture_output=True, text=True, timeout=60)
    assert sim.returncode == 0, sim.stderr
    assert "events into email-events" in sim.stderr
    folder = Path(pkg.__file__).parent
    files = [str(folder / f) for f in ("alerts.sql", "stuck_mail.sql", "alerts.py", "stuck_mail.py", "__init__.py")]
    proc = subprocess.Popen(mailroom + ["run", *files, "--param", "stuck_after_ms=5400000", "--log", url,
                                        "--state-dir", str(tmp_path / "state"), "--guarantee", "at_least_once"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = open_log(url)
        deadline, spikes = time.monotonic() + 45, []
        while time.monotonic() < deadline and not spikes:
            time.sleep(1)
            if "ALERTS" in log.list_topics():
                spikes = [v for _, v in _read_all(log, "ALERTS") if v["KIND"] == "deferral_spike"]
        assert proc.poll() is None, proc.communicate()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert [(v["SUBJECT"], v["WINDOW_START"]) for v in spikes] == [("gmail", START + 8 * MIN)], (out, err)
    assert "started Python pipeline email-stuck-mail" in out and "started Python pipeline email-alerts" in out
    assert proc.returncode == 0, err
    assert os.path.isdir(tmp_path / "state" / "email-alerts")
