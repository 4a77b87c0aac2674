"""Engine throughput: mailroom's stream engine end to end, beside Kafka Streams, Quix Streams and Faust.

    make bench-engine                                     # or:
    .venv/bin/python bench/engine_bench.py [--events 1000000] [--repeat 1] [--no-peers] [--no-kafka]
    .venv/bin/python bench/engine_bench.py --events 10000000   # the full size (takes far longer)
    .venv/bin/python bench/engine_bench.py --events 200000     # a quick run

Input: generated email events (~200-byte JSON values: message id, recipient domain, event type
among delivered/deferred/bounced/opened/clicked/complained, event timestamp, ...; keyed by message
id; record timestamp = event timestamp), 1M distinct message ids (fewer below 2M events: half the
event count), 5k recipient domains (skewed), written once to an input topic with 4 partitions, on
the embedded log and on Kafka.

Workloads, each end to end (consume, process, state with changelog, produce results to an output
topic), at-least-once, commit every second:

- count:  events per recipient domain (re-keyed through a repartition topic)
- window: per domain, 1-minute tumbling window counts of delivered/deferred/bounced (by event time)
- latest: the latest event per message id (a table of 1M keys; ``reduce(lambda old, new: new)``
  as the peers do; ``--workloads latest-batched`` runs mailroom's built-in ``latest()`` instead)

Systems: mailroom on the embedded log and on Kafka (1 process; and 2 processes with the same
application id), and through the same Kafka broker and input topic: Kafka Streams 4.1.1 (Java,
bench/peers/kafka-streams, built with Maven), Quix Streams and Faust (faust-streaming), both in a
venv of their own (.cache/bench-venv) so the project's stays clean. Each run is a fresh
application id, started as a process; the harness watches the group's committed offsets (input
and repartition topics) and stops the run (SIGTERM) once they reach the topics' ends. records/s =
events / (launch to done): start-up (JVM, group join) is included; for mailroom also
"processing rec/s" = events / (its first records processed to done), without start-up. The RSS peak is the process's
VmHWM, sampled every 0.25 s until it exits. The output topic is then read back and checked (count: final counts add up to the
events; window: to the delivered/deferred/bounced events; latest: one key per message id, each
with its last event).

A run longer than --timeout, or with no committed progress for --stall seconds, is stopped and
reported as partial (committed input / elapsed, shown as ">=").
Prints a table and writes bench/results/engine.json.

What each system does, naturally for it: mailroom decodes JSON columns with polars (count,
window: event time from the "ts" field) and keeps bytes for latest; Kafka Streams parses with
Jackson, windows by the record timestamp (= the event's ts), RocksDB stores; Quix parses JSON,
RocksDB state, windows by the record timestamp; Faust keeps its tables in memory (its default
store) and sends one output per record. Seen on 2 cores: Quix's group_by workloads (count,
window) stop making progress once the input is consumed (the repartition topic is left partly
unprocessed), and Faust processes a few hundred records/s, so both usually end as partial.
Other processes on the machine (or a second Kafka) make the figures noisy: use --repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.conftest.LocalKafka (starts a broker when none is given)

from mailroom.errors import LogError  # noqa: E402
from mailroom.log import TopicPartition, open_log  # noqa: E402

PARTITIONS = 4
BATCH = 10_000
DOMAINS = 5_000
MAX_IDS = 1_000_000
TYPES = ["delivered", "deferred", "bounced", "opened", "clicked", "complained"]
TYPE_P = [0.70, 0.12, 0.05, 0.09, 0.03, 0.01]
COUNTED = {"delivered", "deferred", "bounced"}
WORKLOADS = ["count", "window", "latest"]
INPUT = "bench-email-events"
PY = sys.executable
BENCH_VENV = ROOT / ".cache" / "bench-venv"
PEER_PY = BENCH_VENV / "bin" / "python"
PEER_PKGS = ["quixstreams==3.28.1", "faust-streaming==0.15.3", "orjson"]
KSTREAMS = ROOT / "bench" / "peers" / "kafka-streams"
console = Console(width=max(150, shutil.get_terminal_size((150, 40)).columns))


# -- input -----------------------------------------------------------------------------------------
def make_events(n: int, seed: int = 42):
    """(keys, values, timestamps, expected): n JSON events of ~200 bytes, keyed by message id."""
    rng = np.random.default_rng(seed)
    n_ids = min(MAX_IDS, max(1, n // 2))
    ids = rng.permutation(n) % n_ids                            # every id occurs, in random order
    domains = (DOMAINS * rng.random(n) ** 3).astype(np.int64)    # skewed: a few big receivers
    types = rng.choice(len(TYPES), size=n, p=TYPE_P)
    base = (int(time.time() * 1000) - 30 * 60_000) // 60_000 * 60_000
    span = 20 * 60_000                                           # 20 minutes of event time
    ts = base + np.arange(n, dtype=np.int64) * span // n + rng.integers(0, 5_000, n)  # a little disorder
    mtas = rng.integers(0, 64, n)
    keys, values = [], []
    pad = "x" * 200
    for i, (m, d, t, s, mta) in enumerate(zip(ids.tolist(), domains.tolist(), types.tolist(), ts.tolist(), mtas.tolist())):
        v = (f'{{"id":"m{m:07d}","domain":"d{d:04d}.example.com","type":"{TYPES[t]}","ts":{s},"seq":{i},'
             f'"mta":"mta-{mta:02d}.mailroom.test","smtp":"250 2.0.0 OK queued as {i:x}","detail":"')
        values.append((v + pad[: max(0, 198 - len(v))] + '"}').encode())
        keys.append(b"m%07d" % m)
    last_seq = np.full(n_ids, -1, dtype=np.int64)
    last_seq[ids] = np.arange(n)                                 # fancy assignment: the last write wins
    expected = {
        "count": n,
        "window": int(np.isin(types, [TYPES.index(t) for t in COUNTED]).sum()),
        "latest": n_ids,
        "ids": n_ids,
        "last_seq": last_seq,
    }
    return keys, values, ts, expected


def write_input(log, keys, values, ts) -> None:
    log.create_topic(INPUT, PARTITIONS, exist_ok=True)
    p = log.producer()
    for i in range(0, len(values), BATCH):
        p.send_batch(INPUT, values[i : i + BATCH], keys[i : i + BATCH], timestamps=ts[i : i + BATCH])
    p.flush(300)
    p.close()


# -- watching a run --------------------------------------------------------------------------------
class Watcher:
    """Is a group done? Its committed offsets on the input and on its repartition topics are at their ends."""

    def __init__(self, log, group: str, n_events: int) -> None:
        self.log = log
        self.group = group
        self.n = n_events
        self.consumer = log.consumer(group)
        self.input_tps = [TopicPartition(INPUT, p) for p in range(PARTITIONS)]

    def _ends(self, tps):
        return {tp: self.consumer.watermarks(tp)[1] for tp in tps}

    def _committed(self, tps):
        """The group's committed offsets; a broker's passing refusal (the group's coordinator
        loading or moving) is asked again, as a client would."""
        for attempt in range(20):
            try:
                return self.consumer.committed(tps)
            except LogError as e:
                if attempt == 19 or not any(c in str(e) for c in ("NOT_COORDINATOR", "COORDINATOR_LOAD", "COORDINATOR_NOT_AVAILABLE", "TIMED_OUT")):
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def input_done(self) -> int:
        got = self._committed(self.input_tps)
        return sum(v or 0 for v in got.values())

    def done(self) -> bool:
        consumed = self.input_done()
        self.progress = consumed
        if consumed < self.n:
            return False
        rep = [t for t in self.log.list_topics() if self.group in t and "repartition" in t]
        tps = [TopicPartition(t, p) for t in rep for p in range(self.log.describe_topic(t).partitions)]
        if not tps:
            return True
        ends = self._ends(tps)
        got = self._committed(tps)
        self.progress += sum(v or 0 for v in got.values())
        return all((got.get(tp) or 0) >= end for tp, end in ends.items())

    def close(self) -> None:
        self.consumer.close()


def vm_hwm(pid: int) -> int:
    """A live process's RSS peak since its exec (VmHWM). wait4's ru_maxrss would count the
    memory of the forked harness before the exec, so it is not used."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def run_processes(cmds: list[tuple[list[str], dict]], watcher: Watcher, timeout: float, logdir: Path,
                  stall: float = 30.0) -> dict:
    """Launch, wait until the watcher says done (or timeout, or no committed progress for
    ``stall`` seconds), SIGTERM, reap; time and RSS peaks."""
    t0 = time.perf_counter()
    procs = []
    for i, (cmd, env) in enumerate(cmds):
        out = open(logdir / f"proc-{i}.log", "wb")
        procs.append((subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True), out))
    partial = False
    failed = None
    first = None
    stalled = False
    last_progress, last_change = -1, time.perf_counter()
    hwm = [0] * len(procs)
    while True:
        time.sleep(0.25)
        hwm = [max(h, vm_hwm(p.pid)) for h, (p, _) in zip(hwm, procs)]
        elapsed = time.perf_counter() - t0
        if first is None and watcher.input_done() > 0:
            first = elapsed
        if watcher.done():
            break
        if watcher.progress != last_progress:
            last_progress, last_change = watcher.progress, time.perf_counter()
        elif first is not None and time.perf_counter() - last_change > stall:
            partial = stalled = True
            break
        dead = [p for p, _ in procs if p.poll() is not None]
        if dead:
            failed = f"exited with {dead[0].returncode}"
            break
        if elapsed > timeout:
            partial = True
            break
    elapsed = time.perf_counter() - t0
    consumed = watcher.input_done()
    for p, _ in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while any(p.poll() is None for p, _ in procs):  # closing (final commit) may still grow it
        hwm = [max(h, vm_hwm(p.pid)) for h, (p, _) in zip(hwm, procs)]
        if time.monotonic() > deadline:
            for p, _ in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    for p, out in procs:
        p.wait()
        out.close()
    rss = hwm
    done_wall = time.time() - (time.perf_counter() - t0 - elapsed)  # wall time when the watcher said done
    starts = []
    for i in range(len(procs)):  # mailroom workers say when their first records came
        for line in (logdir / f"proc-{i}.log").read_bytes().decode(errors="replace").splitlines():
            if line.startswith("first-records-at "):
                starts.append(float(line.split()[1]))
                break
    if failed:
        tail = (logdir / "proc-0.log").read_bytes()[-1500:].decode(errors="replace")
        return {"error": f"{failed}: {tail.strip().splitlines()[-1] if tail.strip() else ''}", "log_tail": tail}
    return {"seconds": elapsed, "records_per_s": (consumed if partial else watcher.n) / elapsed, "partial": partial,
            "stalled": stalled,
            "consumed": consumed, "first_commit_s": first, "rss_peak_bytes": max(rss) if rss else None,
            # from the first records processed to done: the rate without start-up (None for peers)
            "processing_per_s": ((consumed if partial else watcher.n) / (done_wall - min(starts))
                                 if starts and done_wall > min(starts) else None),
            "rss_peak_sum_bytes": sum(rss) if rss else None}


# -- reading the results back ----------------------------------------------------------------------
def read_output(log, topic: str) -> dict[bytes, bytes]:
    """The last value per key of the output topic."""
    c = log.consumer()
    tps = [TopicPartition(topic, p) for p in range(log.describe_topic(topic).partitions)]
    ends = {tp: c.watermarks(tp)[1] for tp in tps}
    c.assign(tps)
    last: dict[bytes, bytes] = {}
    pos = {tp: 0 for tp in tps}
    idle = 0
    while any(pos[tp] < ends[tp] for tp in tps) and idle < 20:
        batches = c.poll(BATCH, timeout=0.5)
        idle = 0 if batches else idle + 1
        for b in batches:
            last.update(zip(b.keys, b.values))
            pos[b.topic_partition] = b.next_offset
    c.close()
    return last


def _num(v: bytes) -> int:
    doc = orjson.loads(v)
    if isinstance(doc, dict):  # Quix windows: {"start", "end", "value"}
        return int(doc["value"])
    return int(doc)


def check(workload: str, last: dict[bytes, bytes], expected: dict) -> tuple[bool, str]:
    if workload in ("count", "window"):
        total = sum(_num(v) for v in last.values() if v is not None)
        return total == expected[workload], f"sum of final counts {total:,} (expected {expected[workload]:,}) over {len(last):,} keys"
    seqs = expected["last_seq"]
    bad = 0
    for k, v in last.items():
        if v is None or orjson.loads(v)["seq"] != seqs[int(k[1:])]:
            bad += 1
    ok = len(last) == expected["ids"] and bad == 0
    return ok, f"{len(last):,} keys (expected {expected['ids']:,}), {bad:,} not at their last event"


# -- the peers' set-up -----------------------------------------------------------------------------
def setup_python_peers() -> str | None:
    """Make the peers' venv (once). None, or why it could not be made."""
    stamp = BENCH_VENV / ".installed"
    want = " ".join(PEER_PKGS)
    if stamp.exists() and stamp.read_text() == want:
        return None
    try:
        if not PEER_PY.exists():
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True, capture_output=True)
        r = subprocess.run([str(PEER_PY), "-m", "pip", "install", "-q", *PEER_PKGS], capture_output=True, text=True)
        if r.returncode != 0:
            return "pip install failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:120]
        stamp.write_text(want)
        return None
    except Exception as e:  # noqa: BLE001
        return f"venv: {e}"[:120]


def peer_import_ok(module: str) -> str | None:
    r = subprocess.run([str(PEER_PY), "-c", f"import {module}"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"import {module} failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:120]


def setup_kafka_streams() -> str | None:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        return "no java/mvn (make system-deps)"
    if (KSTREAMS / "target" / "classes" / "bench" / "EngineBench.class").exists():
        src = KSTREAMS / "src" / "main" / "java" / "bench" / "EngineBench.java"
        if src.stat().st_mtime <= (KSTREAMS / "target" / "classes" / "bench" / "EngineBench.class").stat().st_mtime:
            return None
    r = subprocess.run(["mvn", "-q", "-B", "package", "-DskipTests"], cwd=KSTREAMS, capture_output=True, text=True)
    if r.returncode != 0:
        return "maven build failed: " + (r.stdout.strip().splitlines() or ["?"])[-1][:120]
    return None


# -- one run ---------------------------------------------------------------------------------------
def commands(system: str, url: str, bootstrap: str | None, app_id: str, out: str, workload: str, state: Path):
    if system.startswith("mailroom"):
        procs = 2 if system.endswith("x2") else 1
        return [([PY, str(ROOT / "bench" / "engine_worker.py"), url, app_id, INPUT, out, workload, str(state / f"p{i}")],
                 {"PYTHONPATH": str(ROOT / "src")}) for i in range(procs)]
    if system == "kafka-streams":
        cp = f"{KSTREAMS / 'target' / 'classes'}:{KSTREAMS / 'target' / 'dependency'}/*"
        return [(["java", "-cp", cp, "bench.EngineBench", bootstrap, app_id, INPUT, out, workload, str(state)], {})]
    if system == "quix":
        return [([str(PEER_PY), str(ROOT / "bench" / "peers" / "quix_app.py"), bootstrap, app_id, INPUT, out, workload, str(state)], {})]
    if system == "faust":
        return [([str(PEER_PY), str(ROOT / "bench" / "peers" / "faust_app.py"), "worker", "-l", "warn"],
                 {"BENCH_ARGS": f"{bootstrap} {app_id} {INPUT} {out} {workload} {state}"})]
    raise ValueError(system)


def one_run(system: str, workload: str, log, url: str, bootstrap: str | None, n: int, expected: dict,
            timeout: float, workdir: Path, verify: bool, stall: float = 30.0) -> dict:
    app_id = f"eb-{workload}-{system.replace('mailroom-', 'm')}-{uuid.uuid4().hex[:6]}"
    out = f"{app_id}-out"
    log.create_topic(out, PARTITIONS)
    state = workdir / app_id
    state.mkdir(parents=True)
    watcher = Watcher(log, app_id, n)
    try:
        res = run_processes(commands(system, url, bootstrap, app_id, out, workload, state), watcher, timeout, state, stall)
    finally:
        watcher.close()
    if "error" not in res and verify and not res["partial"]:
        ok, detail = check(workload, read_output(log, out), expected)
        res["verified"], res["check"] = ok, detail
    shutil.rmtree(state, ignore_errors=True)
    for t in [t for t in log.list_topics() if app_id in t]:  # keep the broker's disk and page cache small
        try:
            log.delete_topic(t)
        except Exception:  # noqa: BLE001
            pass
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="input events (default 1M, ~15 min on 2 cores; the full size is 10M)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; systems alternate within each, the best counts")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: count,window,latest")
    ap.add_argument("--no-kafka", action="store_true", help="mailroom on the embedded log only")
    ap.add_argument("--no-peers", action="store_true", help="mailroom only")
    ap.add_argument("--peers", default="kafka-streams,quix,faust", help="which peers (comma-separated)")
    ap.add_argument("--no-2proc", action="store_true", help="skip mailroom with 2 processes")
    ap.add_argument("--no-verify", action="store_true", help="skip reading the outputs back")
    ap.add_argument("--timeout", type=float, default=150.0, help="seconds per run before it is cut short (partial)")
    ap.add_argument("--stall", type=float, default=30.0, help="seconds without committed progress before a run is called stalled")
    ap.add_argument("--bootstrap", default=os.environ.get("MAILROOM_KAFKA_BOOTSTRAP"),
                    help="a running Kafka (default: start one with scripts/kafka-local)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine.json"))
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    n = args.events

    t = time.perf_counter()
    keys, values, ts, expected = make_events(n)
    console.print(f"generated {n:,} events ({sum(map(len, values)) / n:.0f} B avg, {expected['ids']:,} message ids, "
                  f"{DOMAINS:,} domains) in {time.perf_counter() - t:.1f} s")

    skipped: dict[str, str] = {}
    systems = ["mailroom-embedded"]
    if not args.no_kafka:
        systems += ["mailroom-kafka"] + ([] if args.no_2proc else ["mailroom-kafka-x2"])
        if not args.no_peers:
            peers = [p for p in args.peers.split(",") if p]
            if "kafka-streams" in peers:
                console.print("building the Kafka Streams peer (Maven)...")
                why = setup_kafka_streams()
                if why:
                    skipped["kafka-streams"] = why
            if "quix" in peers or "faust" in peers:
                console.print(f"setting up the Python peers' venv ({BENCH_VENV.relative_to(ROOT)})...")
                why = setup_python_peers()
                for p, mod in (("quix", "quixstreams"), ("faust", "faust")):
                    if p in peers:
                        w = why or peer_import_ok(mod)
                        if w:
                            skipped[p] = w
            systems += [p for p in peers if p not in skipped]
    if not args.no_2proc:
        systems.insert(1, "mailroom-embedded-x2")

    results: dict[str, dict[str, dict]] = {w: {} for w in workloads}
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-engine-bench-"))
    cluster = None
    logs = {}
    try:
        emb_url = f"embedded:{workdir / 'log'}"
        logs["embedded"] = (open_log(emb_url), emb_url, None)
        t = time.perf_counter()
        write_input(logs["embedded"][0], keys, values, ts)
        console.print(f"input written to the embedded log in {time.perf_counter() - t:.1f} s")
        if not args.no_kafka:
            bootstrap = args.bootstrap
            if not bootstrap:
                from tests.conftest import LocalKafka

                console.print("starting a local Kafka broker (scripts/kafka-local)...")
                cluster = LocalKafka(workdir / "kafka")
                bootstrap = cluster.start()
            klog = open_log(f"kafka://{bootstrap}")
            if INPUT in klog.list_topics():
                klog.delete_topic(INPUT)
                time.sleep(2)
            t = time.perf_counter()
            write_input(klog, keys, values, ts)
            console.print(f"input written to Kafka ({bootstrap}) in {time.perf_counter() - t:.1f} s")
            logs["kafka"] = (klog, f"kafka://{bootstrap}", bootstrap)
        del keys, values
        for rnd in range(args.repeat):
            for w in workloads:
                for s in systems:
                    if w not in WORKLOADS and not s.startswith("mailroom"):
                        continue  # (a mailroom-only variant, such as latest-batched: no peer runs it)
                    lg, url, bs = logs["embedded" if "embedded" in s else "kafka"]
                    console.print(f"[round {rnd + 1}] {w:6s} {s:22s} ...", end=" ")
                    r = one_run(s, w, lg, url, bs, n, expected, args.timeout, workdir, not args.no_verify, args.stall)
                    if "error" in r:
                        console.print(f"[red]failed: {r['error']}[/red]")
                    else:
                        mark = "" if "verified" not in r else (" ok" if r["verified"] else " [red]WRONG[/red]")
                        proc_s = f" ({r['processing_per_s']:,.0f} rec/s processing)" if r.get("processing_per_s") else ""
                        console.print(f"{r['records_per_s']:,.0f} rec/s{proc_s} in {r['seconds']:.1f} s, "
                                      f"RSS {r['rss_peak_bytes'] / 2**20:,.0f} MiB"
                                      f"{' (partial)' if r['partial'] else ''}{mark}  {r.get('check', '')}")
                    prev = results[w].get(s)
                    if prev is None or "error" in prev or ("error" not in r and r["records_per_s"] > prev["records_per_s"]):
                        results[w][s] = r
    finally:
        for lg, _, _ in logs.values():
            lg.close()
        if cluster:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    # -- the table --------------------------------------------------------------------------------
    all_systems = systems + [p for p in skipped]
    table = Table(title=f"engine end to end: {n:,} events of ~200 B, 4 partitions, at-least-once, "
                        f"best of {args.repeat} ({os.cpu_count()} cores)")
    table.add_column("workload")
    table.add_column("system", no_wrap=True)
    table.add_column("records/s", justify="right")
    table.add_column("processing rec/s", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("RSS peak MiB", justify="right")
    table.add_column("mailroom (same log) : this", justify="right")
    table.add_column("check")
    rows = []
    for w in workloads:
        for s in all_systems:
            r = results[w].get(s)
            if s in skipped:
                rows.append({"workload": w, "system": s, "not_run": skipped[s]})
                table.add_row(w, s, f"not run: {skipped[s]}", "", "", "", "", "")
                continue
            if r is None:
                continue
            if "error" in r:
                rows.append({"workload": w, "system": s, "not_run": r["error"]})
                table.add_row(w, s, f"failed: {r['error'][:60]}", "", "", "", "", "")
                continue
            ref = results[w].get("mailroom-embedded" if "embedded" in s else "mailroom-kafka")
            ratio = ref["records_per_s"] / r["records_per_s"] if ref and "error" not in ref else None
            rate = f"{'>=' if r['partial'] else ''}{r['records_per_s']:,.0f}"
            check_s = "" if "verified" not in r else ("ok" if r["verified"] else "WRONG")
            if r["partial"]:
                check_s = (f"stalled: no commit for {args.stall:.0f} s, input {r['consumed']:,}/{n:,} consumed" if r.get("stalled")
                           else f"cut at {args.timeout:.0f} s")
            rss_s = f"{r['rss_peak_bytes'] / 2**20:,.0f}" + (f" (2x, sum {r['rss_peak_sum_bytes'] / 2**20:,.0f})" if s.endswith("x2") else "")
            proc_rate = "" if not r.get("processing_per_s") else f"{r['processing_per_s']:,.0f}"
            table.add_row(w, s, rate, proc_rate, f"{r['seconds']:.1f}", rss_s, "" if ratio is None or s == "mailroom-kafka" or s == "mailroom-embedded" else f"{ratio:.2f}", check_s)
            rows.append({"workload": w, "system": s, "records_per_s": round(r["records_per_s"]), "seconds": round(r["seconds"], 2),
                         "processing_records_per_s": None if not r.get("processing_per_s") else round(r["processing_per_s"]),
                         "partial": r["partial"], "stalled": r.get("stalled", False), "first_commit_s": None if r["first_commit_s"] is None else round(r["first_commit_s"], 2),
                         "rss_peak_mib": round(r["rss_peak_bytes"] / 2**20, 1),
                         "rss_peak_sum_mib": round(r["rss_peak_sum_bytes"] / 2**20, 1),
                         "ratio_mailroom_to_this": None if ratio is None else round(ratio, 3),
                         "verified": r.get("verified"), "check": r.get("check")})
    console.print(table)
    latest = results.get("latest", {})
    for s in ("mailroom-embedded", "mailroom-kafka"):
        if s in latest and "error" not in latest[s]:
            console.print(f"RSS peak of {s} on latest ({expected['ids']:,} keys): {latest[s]['rss_peak_bytes'] / 2**20:,.0f} MiB")
    result = {"bench": "engine", "events": n, "message_ids": expected["ids"], "domains": DOMAINS, "partitions": PARTITIONS,
              "repeat": args.repeat, "timeout_s": args.timeout,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "not_run": skipped, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
