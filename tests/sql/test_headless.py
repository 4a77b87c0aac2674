"""`mailroom run FILE.sql`: persistent queries on the embedded log that survive a SIGKILL and a
restart, with no lost or duplicated output under exactly-once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from mailroom.log import TopicPartition, open_log

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "email_state.sql"
TYPES = ["accepted", "deferred", "delivered", "bounced"]


def events(start: int, n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(start, start + n):
        mid = f"m{(i * 7919) % 1500}"
        ev = {"type": TYPES[(i * 13) % 4], "domain": f"d{(i * 31) % 23}.example", "mta": f"mta-{i % 3}", "ts": 1_700_000_000_000 + i}
        out.append((mid.encode(), orjson.dumps(ev)))
    return out


def produce(log, evs) -> None:
    with log.producer() as p:
        p.send_batch("email-events", [v for _, v in evs], [k for k, _ in evs])
        p.flush(30)


def latest(log, topic: str) -> dict:
    parts = log.describe_topic(topic).partitions
    c = log.consumer()
    c.assign([TopicPartition(topic, p) for p in range(parts)])
    out: dict = {}
    while True:
        batches = c.poll(10_000, timeout=0.5)
        if not batches:
            break
        for b in batches:
            for k, v in zip(b.keys, b.values):
                out[k.decode()] = None if v is None else orjson.loads(v)
    c.close()
    return out


def start(url: str, state: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mailroom.cli", "run", str(SCRIPT), "--log", url, "--state-dir", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(pred, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.5)
    return False


def test_headless_queries_survive_sigkill_and_restart(tmp_path) -> None:
    url = f"embedded:{tmp_path / 'log'}"
    state = tmp_path / "state"
    log = open_log(url)
    proc = start(url, state)
    try:
        assert wait_for(lambda: "DOMAIN_OUTCOMES" in log.list_topics() and "email-events" in log.list_topics(), 60), \
            proc.stderr.read() if proc.poll() is not None else "topics not created"
        first = events(0, 6000)
        produce(log, first)
        assert wait_for(lambda: len(latest(log, "EMAIL_STATE")) >= 1000, 60), "no output before the kill"
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: later waves are still to come
        proc.wait()
        second = events(6000, 6000)
        produce(log, second)
        proc = start(url, state)
        every = first + second
        want_domains = collections.Counter(orjson.loads(v)["domain"] for _, v in every)
        want_state = {k.decode(): orjson.loads(v)["type"] for k, v in every}
        want_counts = collections.Counter(k.decode() for k, _ in every)

        def done() -> bool:
            d = latest(log, "DOMAIN_OUTCOMES")
            return {k: v["EVENTS"] for k, v in d.items() if v} == dict(want_domains)

        ok = wait_for(done, 300)
        domains = latest(log, "DOMAIN_OUTCOMES")
        assert ok, f"domain counts off (exactly-once: no event lost or counted twice): {list(domains.items())[:3]}"
        st = latest(log, "EMAIL_STATE")
        assert {k: v["STATE"] for k, v in st.items()} == want_state
        assert {k: v["EVENTS"] for k, v in st.items()} == dict(want_counts)
        delivered = collections.Counter(orjson.loads(v)["domain"] for _, v in every if orjson.loads(v)["type"] == "delivered")
        assert {k: v["DELIVERED"] for k, v in domains.items() if v["DELIVERED"]} == dict(delivered)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
