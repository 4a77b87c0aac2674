"""``mailroom demo``: the whole email-tracking application on the embedded log, on one machine.

1. a ``mailroom server`` (REST API + the live dashboard) running the SQL pipelines
   (``--queries-file``: EMAIL_EVENTS, EMAIL_STATE, MTA_HEALTH_*, CAMPAIGN_STATS, and the
   STUCK_MAIL / ALERTS streams' declarations);
2. ``mailroom run`` with the Python pipelines (STUCK_MAIL and ALERTS: timers and baselines);
3. the simulator: realistic traffic with a scripted provider outage, into ``email-events``;
4. a progress bar while the pipelines catch up, then a summary table per mailbox provider
   (from pull queries on MTA_HEALTH_PROVIDER), the alerts raised, and the dashboard's address;
5. it keeps serving the dashboard until Ctrl-C (or ``duration`` seconds).

Everything goes through the platform's public commands and REST API, as a user would run them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..log import TopicPartition, open_log
from . import pipelines
from .pipelines import alerts, stuck_mail
from .simulate_run import run_simulation

TOPIC = "email-events"
#: the SQL queries' consumer groups whose lag says whether the pipelines have caught up
_SQL_TABLES = ("EMAIL_STATE", "MTA_HEALTH_PROVIDER", "MTA_HEALTH_NODE", "CAMPAIGN_STATS")


@dataclass
class DemoProcesses:
    """The server and the pipeline runner the demo started (stopped together)."""

    procs: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def _mailroom(*args: str, log_file: Path) -> subprocess.Popen:
    out = open(log_file, "ab")  # noqa: SIM115 - kept open for the child's life
    return subprocess.Popen([sys.executable, "-m", "mailroom.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server stopped (exit {proc.returncode}); its output is in {log_file}:\n"
                               + log_file.read_text()[-2000:])
        try:
            if httpx.get(base + "/healthcheck", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout:.0f}s; see {log_file}")


def pipeline_lag(log: Any) -> int | None:
    """Records the pipelines still have to process (None: not all of them have started).

    Every group's committed offsets are compared with the ends of the topics it reads; the
    groups that read the events topic directly count it whole until they commit on it."""
    groups = [g for g in _groups(log) if "transient" not in g]
    ctas = [next((g for g in groups if re.search(f"CTAS_{t}_[0-9]+$", g)), None) for t in _SQL_TABLES]
    if None in ctas:
        return None
    direct = set(ctas[:3]) | {stuck_mail.APPLICATION_ID, alerts.APPLICATION_ID}
    topics = log.list_topics()
    total = 0
    for g in groups:
        c = log.consumer(g)
        try:
            for t in topics:
                tps = [TopicPartition(t, p) for p in range(log.describe_topic(t).partitions)]
                for tp, off in c.committed(tps).items():
                    if off is not None or (t == TOPIC and g in direct):
                        total += max(0, c.watermarks(tp)[1] - (off or 0))
        finally:
            c.close()
    return total


def _groups(log: Any) -> list[str]:
    root = getattr(log, "root", None)
    if root is None or not (Path(root) / "groups").is_dir():
        return []
    return [p.name for p in (Path(root) / "groups").iterdir()]


def _pull(base: str, sql: str) -> list[list[Any]]:
    r = httpx.post(base + "/query", json={"ksql": sql, "streamsProperties": {}}, timeout=120)
    r.raise_for_status()
    return [m["row"]["columns"] for m in orjson.loads(r.content) if isinstance(m, dict) and "row" in m]


def _read_topic(log: Any, topic: str) -> list[dict]:
    if topic not in log.list_topics():
        return []
    c = log.consumer()
    n = log.describe_topic(topic).partitions
    c.assign([TopicPartition(topic, p) for p in range(n)])
    out = []
    while True:
        batches = c.poll(10_000, timeout=0.5)
        if not batches:
            break
        out.extend(orjson.loads(v) for b in batches for v in b.values if v is not None)
    c.close()
    return out


def provider_summary(base: str, min_attempts: int = 30) -> list[dict[str, Any]]:
    """Totals per mailbox provider over every 1-minute window of MTA_HEALTH_PROVIDER, and its
    worst minute (the lowest acceptance of a window with at least ``min_attempts`` attempts)."""
    rows = _pull(base, "SELECT PROVIDER, ATTEMPTS, DELIVERED, DEFERRED, BOUNCED FROM MTA_HEALTH_PROVIDER;")
    agg: dict[str, dict[str, Any]] = {}
    for provider, attempts, delivered, deferred, bounced in rows:
        a = agg.setdefault(provider or "?", {"provider": provider or "?", "windows": 0, "attempts": 0, "delivered": 0,
                                             "deferred": 0, "bounced": 0, "worst_minute": None})
        a["windows"] += 1
        for k, v in (("attempts", attempts), ("delivered", delivered), ("deferred", deferred), ("bounced", bounced)):
            a[k] += v or 0
        if (attempts or 0) >= min_attempts:
            rate = (delivered or 0) / attempts
            a["worst_minute"] = rate if a["worst_minute"] is None else min(a["worst_minute"], rate)
    for a in agg.values():
        a["acceptance"] = a["delivered"] / a["attempts"] if a["attempts"] else 0.0
    return sorted(agg.values(), key=lambda a: -a["attempts"])


def run_demo(
    data_dir: str | Path = ".mailroom/demo",
    *,
    messages: int = 20_000,
    seed: int = 42,
    outage: str = "gmail:3m:2m",
    port: int = 8088,
    duration: float | None = None,
    catch_up_timeout: float = 900.0,
    keep: bool = False,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo (see the module docstring); returns the summary it prints."""
    console = console or Console()
    data = Path(data_dir)
    if data.exists() and not keep:
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    url = f"embedded:{data / 'log'}"
    log = open_log(url)
    log.create_topic(TOPIC, partitions=4, exist_ok=True)
    port = _free_port(port)
    base = f"http://127.0.0.1:{port}"
    procs = DemoProcesses()
    summary: dict[str, Any] = {"log": url, "dashboard": f"{base}/dashboard", "messages": messages}
    try:
        with console.status("starting the server with the SQL pipelines and the alerting pipelines..."):
            queries = [a for p in pipelines.sql_paths() for a in ("--queries-file", str(p))]
            procs.procs.append(_mailroom("server", "--log", url, "--state-dir", str(data / "server-state"), "--port", str(port),
                                         "--guarantee", "exactly_once", *queries, log_file=data / "server.log"))
            _wait_healthy(base, procs.procs[0], 120, data / "server.log")
            py = [str(pipelines.path(n)) for n in ("stuck_mail.py", "alerts.py")]
            procs.procs.append(_mailroom("run", *py, "--log", url, "--state-dir", str(data / "run-state"),
                                         log_file=data / "pipelines.log"))
        console.print(f"[bold]dashboard[/bold]: {base}/dashboard   (REST API: {base}, try `mailroom sql {base}`)")

        t0 = time.perf_counter()
        stats = run_simulation(url, messages=messages, seed=seed, outages=[outage] if outage else [], topic=TOPIC,
                               console=console)
        summary["events"] = stats.events
        summary["simulate_events_per_s"] = round(stats.events_per_s)

        t1 = time.perf_counter()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("pipelines catching up (events processed by every query)", total=stats.events)
            deadline = time.monotonic() + catch_up_timeout
            while time.monotonic() < deadline:
                for p in procs.procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"a demo process stopped (exit {p.returncode}); see {data}/*.log")
                lag = pipeline_lag(log)
                progress.update(task, completed=stats.events - min(stats.events, lag if lag is not None else stats.events))
                if lag == 0:
                    break
                time.sleep(0.5)
        caught_up = pipeline_lag(log) == 0
        seconds = time.perf_counter() - t1
        summary["caught_up"] = caught_up
        summary["pipeline_seconds"] = round(seconds, 1)
        summary["pipeline_events_per_s"] = round(stats.events / seconds) if seconds > 0 else None
        summary["total_seconds"] = round(time.perf_counter() - t0, 1)

        providers = provider_summary(base)
        summary["providers"] = providers
        table = Table(title="mailbox providers (all 1-minute windows of MTA_HEALTH_PROVIDER)")
        for col in ("provider", "windows", "attempts", "delivered", "deferred", "bounced", "acceptance", "worst minute"):
            table.add_column(col, justify="left" if col == "provider" else "right")
        for r in providers:
            worst = r["worst_minute"]
            table.add_row(r["provider"], *(f"{r[c]:,}" for c in ("windows", "attempts", "delivered", "deferred", "bounced")),
                          f"{r['acceptance']:.1%}", "" if worst is None else f"{worst:.1%}",
                          style="red" if worst is not None and worst < 0.5 else None)
        console.print(table)
        time.sleep(1.0)  # the alerting pipeline commits on its own schedule
        alerts = _read_topic(log, "ALERTS")
        stuck = _read_topic(log, "STUCK_MAIL")
        summary["alerts"] = alerts
        summary["stuck_mail"] = len(stuck)
        spikes = [a for a in alerts if a.get("KIND") != "stuck_mail"]
        for a in spikes:
            console.print(f"[bold red]ALERT[/bold red] {a.get('MESSAGE') or a}")
        if not spikes:
            console.print("no provider alerts (the outage may start after the simulated traffic ends: see --outage)")
        for a in [a for a in alerts if a.get("KIND") == "stuck_mail"][:3]:
            console.print(f"[yellow]stuck[/yellow] {a.get('MESSAGE') or a}")
        console.print(f"{len(stuck):,} stuck messages flagged")
        console.print(
            f"[bold]summary[/bold]: {stats.events:,} events of {messages:,} messages: simulated at "
            f"{summary['simulate_events_per_s']:,}/s; all pipelines caught up in {seconds:.1f}s "
            f"({summary['pipeline_events_per_s'] or 0:,} events/s through 5 SQL queries + 2 Python pipelines)"
            + ("" if caught_up else " [red](not caught up: timed out)[/red]"))
        console.print(f"[bold]dashboard[/bold]: {base}/dashboard  (Ctrl-C to stop)" if duration is None
                      else f"[bold]dashboard[/bold]: {base}/dashboard  (for {duration:.0f}s)")
        try:
            if duration is None:
                while all(p.poll() is None for p in procs.procs):
                    time.sleep(1)
            else:
                time.sleep(duration)
        except KeyboardInterrupt:
            console.print("stopping")
    finally:
        procs.stop()
        log.close()
    return summary
