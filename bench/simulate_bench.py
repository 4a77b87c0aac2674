"""Simulator throughput (events/s generated, and into the embedded log) and alert latency.

    .venv/bin/python bench/simulate_bench.py [--events 2000000]

Prints a table and writes bench/results/simulate.json:

- ``columnar``: simulate_batches() alone (numpy generation + Arrow JSON rendering);
- ``columnar_into_log``: the same, each batch sent to a 4-partition embedded-log topic;
- ``dicts``: simulate() (one dict per event) for comparison, on a tenth of the events;
- ``alert_latency``: a gmail outage streamed live (paced) through the alerts pipeline: event time
  from outage start to the alert's window end, and wall-clock time from the first event past
  that window's end reaching the log to the ALERTS record being readable.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

from mailroom.email.simulator import Outage, SimConfig, simulate, simulate_batches
from mailroom.engine import App
from mailroom.log import open_log

RESULTS = Path(__file__).parent / "results" / "simulate.json"
START = 1_764_000_000_000


def bench_columnar(n: int) -> dict:
    t0 = time.perf_counter()
    got = sum(len(ts) for _, _, ts in simulate_batches(messages=None, max_events=n, seed=1))
    s = time.perf_counter() - t0
    return {"events": got, "seconds": round(s, 3), "events_per_s": round(got / s)}


def bench_into_log(n: int, folder: Path) -> dict:
    log = open_log(f"embedded:{folder}")
    log.create_topic("email-events", 4)
    t0 = time.perf_counter()
    got = 0
    with log.producer() as p:
        for keys, values, ts in simulate_batches(messages=None, max_events=n, seed=1):
            p.send_batch("email-events", values, keys, timestamps=ts)
            got += len(ts)
        p.flush()
    s = time.perf_counter() - t0
    log.close()
    return {"events": got, "seconds": round(s, 3), "events_per_s": round(got / s)}


def bench_dicts(n: int) -> dict:
    t0 = time.perf_counter()
    got = sum(len(b) for b in simulate(messages=None, max_events=n, seed=1))
    s = time.perf_counter() - t0
    return {"events": got, "seconds": round(s, 3), "events_per_s": round(got / s)}


def bench_alert_latency(folder: Path, rate: float = 20_000.0) -> dict:
    """Produce at ``rate`` events/s of wall time while the alerts pipeline runs; time the alert."""
    from mailroom.email.pipelines import alerts

    outage = Outage("gmail", 12 * 60_000, 10 * 60_000)
    cfg = SimConfig(rate_per_s=20, throttling=False, outages=(outage,))
    log = open_log(f"embedded:{folder}")
    log.create_topic("email-events", 4)
    log.create_topic("ALERTS", 4)
    app = App(alerts.topology(), alerts.APPLICATION_ID, log, state_dir=folder / "state", commit_interval_ms=100)
    runner = threading.Thread(target=app.run, daemon=True)
    runner.start()
    window_end = START + outage.start_ms + 60_000
    sent_past: list[float] = []
    stop = threading.Event()

    def produce() -> None:
        t0, n = time.perf_counter(), 0
        with log.producer() as p:
            for keys, values, ts in simulate_batches(messages=30_000, seed=5, batch=2000, config=cfg):
                for a in range(0, len(ts), 500):
                    if stop.is_set():
                        return
                    p.send_batch("email-events", values[a:a + 500], keys[a:a + 500], timestamps=ts[a:a + 500])
                    n += len(ts[a:a + 500])
                    if not sent_past and ts[a:a + 500][-1] >= window_end:
                        sent_past.append(time.perf_counter())
                    time.sleep(max(0.0, n / rate - (time.perf_counter() - t0)))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    c = log.consumer("latency-reader", auto_offset_reset="earliest")
    c.subscribe(["ALERTS"])
    found, deadline = None, time.monotonic() + 120
    while found is None and time.monotonic() < deadline:
        for b in c.poll(100, timeout=0.05):
            for r in b:
                v = json.loads(r.value)
                if v["SUBJECT"] == "gmail" and found is None:
                    found = (time.perf_counter(), v)
    stop.set()
    producer.join()
    app.stop()
    runner.join(timeout=30)
    c.close()
    log.close()
    if found is None or not sent_past:
        return {"error": "no alert"}
    return {
        "produce_rate_events_per_s": rate,
        "event_time_latency_ms": found[1]["TS"] - (START + outage.start_ms),
        "alert_window_start_offset_ms": found[1]["WINDOW_START"] - (START + outage.start_ms),
        "wall_latency_ms": round((found[0] - sent_past[0]) * 1000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="simbench-"))
    try:
        res = {
            "columnar": bench_columnar(args.events),
            "columnar_into_log": bench_into_log(args.events, tmp / "log"),
            "dicts": bench_dicts(args.events // 10),
            "alert_latency": bench_alert_latency(tmp / "latency"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine"] = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    for name in ("columnar", "columnar_into_log", "dicts"):
        r = res[name]
        print(f"{name:20} {r['events']:>10,} events {r['seconds']:>7.2f} s {r['events_per_s']:>10,} events/s")
    print("alert latency       ", res["alert_latency"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
