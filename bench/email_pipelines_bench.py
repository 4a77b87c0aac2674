"""Throughput of the email SQL pipelines (events, email_state, mta_health, campaign_stats) on the
embedded log: N simulated events are produced first, then `mailroom run` runs the four scripts
and the clock runs until every query has committed the end of every topic it reads.

    .venv/bin/python bench/email_pipelines_bench.py --events 200000 [--guarantee exactly_once]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailroom.email.pipelines import path
from mailroom.email.simulator import simulate_batches
from mailroom.log import TopicPartition, open_log

SCRIPTS = [path(n) for n in ("events", "email_state", "mta_health", "campaign_stats")]
GROUP_PREFIX = "_confluent-ksql-default_query_"


def lag(log, inputs: dict[str, list[str]]) -> int:
    """Records the groups have still to commit of the topics they read (own repartition topics
    included); a partition holding data with nothing committed counts whole."""
    total = 0
    topics = log.list_topics()
    for g, reads in inputs.items():
        c = log.consumer(g)
        try:
            for t in [*reads, *(t for t in topics if t.startswith(g + "-") and t.endswith("-repartition"))]:
                if t not in topics:
                    return 1 << 30
                tps = [TopicPartition(t, p) for p in range(log.describe_topic(t).partitions)]
                for tp, off in c.committed(tps).items():
                    total += max(0, c.watermarks(tp)[1] - (off or 0))
        finally:
            c.close()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--guarantee", default="exactly_once")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="email-bench-"))
    url = f"embedded:{tmp / 'log'}"
    log = open_log(url)
    log.create_topic("email-events", 4)
    n = 0
    with log.producer() as p:
        for keys, values, ts in simulate_batches(messages=None, seed=11, max_events=args.events):
            p.send_batch("email-events", values, keys, timestamps=ts)
            n += len(keys)
        p.flush(60)
    print(f"produced {n} events", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mailroom.cli", "run", *map(str, SCRIPTS), "--log", url,
                             "--state-dir", str(tmp / "state"), "--guarantee", args.guarantee],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    inputs = {f"{GROUP_PREFIX}CTAS_{q}_{i}": ["EMAIL_STATE" if q == "CAMPAIGN_STATS" else "email-events"] for i, q in enumerate(
        ["EMAIL_STATE", "MTA_HEALTH_PROVIDER", "MTA_HEALTH_NODE", "MTA_HEALTH_PROVIDER_HOURLY", "CAMPAIGN_STATS"])}
    try:
        steady = 0
        while steady < 3:  # caught up three polls in a row: CAMPAIGN_STATS reads EMAIL_STATE's output
            time.sleep(1)
            if proc.poll() is not None:
                sys.exit(f"mailroom run stopped: {proc.stderr.read()}")
            steady = steady + 1 if lag(log, inputs) == 0 else 0
        took = time.monotonic() - t0 - 2  # the two confirming polls
        print(f"{n} events through 4 scripts (5 persistent queries, {args.guarantee}) in {took:.1f} s: "
              f"{n / took:,.0f} events/s (includes start-up)")
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
