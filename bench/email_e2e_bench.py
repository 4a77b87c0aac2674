"""The whole email workload on the embedded log: simulated traffic (with a provider outage) and
every pipeline (5 SQL queries: EMAIL_STATE, MTA_HEALTH_PROVIDER/NODE/HOURLY, CAMPAIGN_STATS; and
the Python STUCK_MAIL and ALERTS pipelines) under one `mailroom run` process.

    .venv/bin/python bench/email_e2e_bench.py --events 1000000

Phases are timed apart: simulate+produce, then processing until every pipeline has committed
the end of every topic it reads. Prints the figures and writes bench/results/email_e2e.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mailroom.email import pipelines
from mailroom.email.demo import pipeline_lag
from mailroom.email.simulator import Outage, SimConfig, simulate_batches
from mailroom.log import open_log

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--outage", default="gmail:10m:5m")
    ap.add_argument("--guarantee", default="exactly_once", choices=["exactly_once", "at_least_once"])
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="email-e2e-"))
    url = f"embedded:{tmp / 'log'}"
    log = open_log(url)
    log.create_topic("email-events", 4)
    cfg = SimConfig(outages=(Outage.parse(args.outage),))
    t0 = time.perf_counter()
    n = 0
    with log.producer() as p:
        for keys, values, ts in simulate_batches(messages=None, seed=11, max_events=args.events, config=cfg):
            p.send_batch("email-events", values, keys, timestamps=ts)
            n += len(keys)
        p.flush(60)
    t_sim = time.perf_counter() - t0
    console.print(f"simulated and produced {n:,} events in {t_sim:.1f}s ({n / t_sim:,.0f}/s)")

    cmd = [sys.executable, "-m", "mailroom.cli", "run", *map(str, pipelines.sql_paths()), str(pipelines.path("stuck_mail.py")),
           str(pipelines.path("alerts.py")), "--log", url, "--state-dir", str(tmp / "state"), "--guarantee", args.guarantee]
    t1 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "run.log", "wb"))
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("pipelines", total=n)
            while time.perf_counter() - t1 < args.timeout:
                if proc.poll() is not None:
                    raise SystemExit(f"mailroom run stopped: {(tmp / 'run.log').read_text()[-3000:]}")
                lag = pipeline_lag(log)
                if lag == 0:
                    break
                progress.update(task, completed=max(0, n - (lag if lag is not None else n)))
                time.sleep(1.0)
        t_run = time.perf_counter() - t1
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    result = {
        "bench": "email_e2e", "events": n, "guarantee": args.guarantee, "outage": args.outage,
        "simulate_produce_events_per_s": round(n / t_sim), "pipelines_seconds": round(t_run, 1),
        "pipelines_events_per_s": round(n / t_run), "whole_events_per_s": round(n / (t_sim + t_run)),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    console.print(f"all pipelines caught up in {t_run:.1f}s: {result['pipelines_events_per_s']:,} events/s "
                  f"(whole workload incl. simulation: {result['whole_events_per_s']:,} events/s)")
    out = ROOT / "bench" / "results" / "email_e2e.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
