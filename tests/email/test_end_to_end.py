"""The email application end to end, as a user runs it: simulated traffic with a provider outage
into the embedded log, every pipeline under `mailroom run` (a real process), EMAIL_STATE and
ALERTS indexed into a real OpenSearch by the sink, then checks against straightforward reference
computations: the outage dips MTA_HEALTH, ALERTS fires within 2 windows, EMAIL_STATE is right for
every message, and the search index holds the same documents.

MAILROOM_E2E_MESSAGES sets the size: 400,000 messages (about 1M events, the issue's acceptance
run) by default; `bench/email_e2e_bench.py` measures the same workload's throughput."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from opensearchpy import OpenSearch, helpers

from mailroom.connect.opensearch import OpenSearchSink
from mailroom.email import pipelines
from mailroom.email.demo import pipeline_lag
from mailroom.email.simulator import Outage, SimConfig, simulate
from mailroom.log import open_log

from .test_pipelines import produce, ref_email_state, table

ROOT = Path(__file__).resolve().parents[2]
MIN = 60_000
MESSAGES = int(os.environ.get("MAILROOM_E2E_MESSAGES", "400000"))
START = 1_764_000_000_000
OUTAGE = "gmail:4m:2m"


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_email_application_end_to_end(tmp_path, opensearch_url) -> None:
    cfg = SimConfig(outages=(Outage.parse(OUTAGE),), throttling=False)  # no random throttling: only the outage may alert
    # one chunk: the simulator merges events in time order within a chunk of messages
    events = [e for batch in simulate(messages=MESSAGES, seed=3, batch=MESSAGES, start_ms=START, config=cfg) for e in batch]
    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    log.create_topic("email-events", 4)
    run = subprocess.Popen(
        [sys.executable, "-m", "mailroom.cli", "run", *map(str, pipelines.sql_paths()),
         str(pipelines.path("stuck_mail.py")), str(pipelines.path("alerts.py")),
         "--log", url, "--state-dir", str(tmp_path / "state")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "run.log", "wb"))
    sinks = [OpenSearchSink(log, topic, index, opensearch_url, group=f"e2e-{index}", refresh=True)
             for topic, index in (("EMAIL_STATE", "email-state-e2e"), ("ALERTS", "alerts-e2e"))]
    threads: list[threading.Thread] = []
    try:
        produce(log, events)
        deadline = time.monotonic() + 1800
        while (lag := pipeline_lag(log)) != 0 and time.monotonic() < deadline:
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.5)
        assert lag == 0, f"pipelines not caught up: {lag} records behind"
        for s in sinks:  # the sinks start after the pipelines and catch up from their topics
            threads.append(threading.Thread(target=s.run, kwargs={"idle_timeout": 3.0}, daemon=True))
            threads[-1].start()

        # EMAIL_STATE equals the reference for every message
        want = ref_email_state(events)
        got = table(log, "EMAIL_STATE")
        assert set(got) == set(want)
        bad = {k: (got[k], w) for k, w in want.items() if got[k] != w}
        assert not bad, f"{len(bad)} EMAIL_STATE rows differ, e.g. {next(iter(bad.items()))}"

        # MTA_HEALTH dips for gmail during the outage, not for the others
        outage_start = START + 4 * MIN
        health = table(log, "MTA_HEALTH_PROVIDER", windowed=True)
        in_outage = {p: v for (p, ws), v in health.items() if outage_start <= ws < outage_start + 2 * MIN}
        assert in_outage["gmail"]["ACCEPT_RATE"] < 0.2
        assert all(v["ACCEPT_RATE"] > 0.5 for p, v in in_outage.items() if p != "gmail" and v["ATTEMPTS"] >= 30)

        # ALERTS fires for gmail within 2 windows of the outage start, for no healthy provider
        alerts = list(table(log, "ALERTS").values())
        spikes = [a for a in alerts if a["KIND"] != "stuck_mail"]
        assert {a["SUBJECT"] for a in spikes} == {"gmail"}, (len(alerts), alerts[:3])
        first = min(a["WINDOW_START"] for a in spikes)
        assert outage_start <= first < outage_start + 2 * MIN

        # the search index holds the same documents
        for t in threads:
            t.join(600)
        client = OpenSearch(opensearch_url)
        docs = {h["_id"]: h["_source"] for h in helpers.scan(client, index="email-state-e2e")}
        assert docs == got
        assert client.count(index="alerts-e2e")["count"] == len(alerts)
    finally:
        for s in sinks:
            s.stop()
        run.terminate()
        run.wait(30)
        log.close()
