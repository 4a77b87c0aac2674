"""What bounds the engine's per-process rate: the stages of a workload of bench/engine_bench.py,
each timed alone over the same input, in one process.

    .venv/bin/python bench/engine_ceiling.py [--events 1000000] [--repeat 3]
    .venv/bin/python bench/engine_ceiling.py --workload latest [--bootstrap HOST:PORT]

On the embedded log, or with ``--bootstrap`` on Kafka (a broker of one's own, e.g.
``scripts/kafka-local start``). Workload (a) "count per recipient domain" (the default):

Stages, each a loop over all the input (4 partitions, polls of up to 10k records, a partition's
batches of one poll merged as the engine does), cumulative:

1. consume: poll every batch and take its values as Python bytes (what a source needs);
2. + decode: the JSON values' "domain" field into a polars column (``JsonColumnsSerde``, the
   engine's columnar decode: native code over the whole batch);
3. + produce: write each polled batch's values to another topic (the log's own consume +
   produce rate for the same data: an upper bound for any pipeline that writes what it reads);
4. engine: the whole workload (decode, re-key through a repartition topic, count in the
   store with its changelog, output), as bench/engine_worker.py runs it, started in-process.

Workload (c) "latest event per message id" (``--workload latest``):

1. consume: as above;
2. + store: each polled batch's last value per key (a dict built in C) and one batched LMDB
   read of those keys (the old value's timestamp: a reduce needs the old state); every second
   (the bench's commit interval) one batched write of timestamp + value per changed key:
   mailroom's own store, its per-key work in C maps (one small lambda reads a stored timestamp);
3. + produce: at each such commit, the changed keys' states to a changelog topic and their
   values to an output topic (what any table aggregation with a changelog writes, once per
   changed key per commit);
4. engine: the whole workload (``reduce(lambda old, new: new)``) as bench/engine_worker.py runs it.

Stage 3 is the rate of the work no engine can skip, done with no engine at all: an upper bound
for this machine and log, to compare with the peers' figures of bench/engine_bench.py.

records/s = events / seconds of the loop (no process start-up). Best of --repeat rounds.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import engine_bench as eb  # noqa: E402
from engine_worker import topology  # noqa: E402

from mailroom.engine import App, JsonColumnsSerde  # noqa: E402
from mailroom.engine.app import _merge_batches  # noqa: E402
from mailroom.log import TopicPartition, open_log  # noqa: E402
from mailroom.state.lmdb_store import LmdbEnv, LmdbStore  # noqa: E402


def drain(log, n: int, on_batch=None) -> float:
    """Seconds to poll all ``n`` input records (calling ``on_batch`` on each batch)."""
    c = log.consumer()
    c.assign([TopicPartition(eb.INPUT, p) for p in range(eb.PARTITIONS)])
    got = 0
    t0 = time.perf_counter()
    while got < n:
        for rb in _merge_batches(c.poll(10_000, timeout=1.0)):  # as the engine's loop does
            got += len(rb)
            if on_batch is not None:
                on_batch(rb)
    dt = time.perf_counter() - t0
    c.close()
    return dt


def run_engine(log, workload: str, n: int, state: Path) -> float:
    """Seconds for the engine to run ``workload`` over the input (started in-process)."""
    app_id = f"ceil-{uuid.uuid4().hex[:6]}"
    log.create_topic(app_id + "-out", eb.PARTITIONS)
    app = App(topology(eb.INPUT, app_id + "-out", workload), app_id, log, state_dir=state / app_id,
              commit_interval_ms=1000)
    watcher = eb.Watcher(log, app_id, n)  # input and repartition topics committed to their ends
    t0 = time.perf_counter()
    steps = 0

    def until() -> bool:
        nonlocal steps
        steps += 1
        return steps % 10 == 0 and watcher.done()

    app.run(until=until)
    secs = time.perf_counter() - t0
    watcher.close()
    for t in [t for t in log.list_topics() if app_id in t]:
        log.delete_topic(t)
    shutil.rmtree(state / app_id, ignore_errors=True)
    return secs


def count_stages(log, n: int, keep) -> None:
    """Stages 1-3 of workload (a)."""
    serde = JsonColumnsSerde({"domain": pl.String})
    keep("1 consume", drain(log, n, lambda rb: rb.values))
    keep("2 consume + decode", drain(log, n, lambda rb: serde.decode(rb.values)))
    out = f"ceiling-{uuid.uuid4().hex[:6]}"
    log.create_topic(out, eb.PARTITIONS)
    p = log.producer()

    def produce(rb, p=p, out=out):
        serde.decode(rb.values)
        p.send_batch(out, rb.values, rb.keys, timestamps=rb.timestamps, partition=rb.partition)

    secs = drain(log, n, produce)
    t0 = time.perf_counter()
    p.flush()
    keep("3 consume + decode + produce", secs + time.perf_counter() - t0)
    p.close()
    log.delete_topic(out)


def latest_stages(log, n: int, keep, state: Path) -> None:
    """Stages 1-3 of workload (c): the consume, store and produce work of a table of the latest
    value per key, with no engine and no per-key Python (C maps over the batch's lists)."""
    keep("1 consume", drain(log, n, lambda rb: rb.values))
    ts_of = struct.Struct(">q")
    for stage, produce in (("2 consume + store", False), ("3 consume + store + produce", True)):
        env = LmdbEnv(state / f"ceiling-{uuid.uuid4().hex[:6]}")
        store = LmdbStore(env, "latest")
        tag = uuid.uuid4().hex[:6]
        out, changelog = f"ceiling-out-{tag}", f"ceiling-changelog-{tag}"
        p = None
        if produce:
            log.create_topic(out, eb.PARTITIONS)
            log.create_topic(changelog, eb.PARTITIONS, config={"cleanup.policy": "compact"})
            p = log.producer()

        # key -> raw state / timestamp / value, written once per commit, as the engine does
        p_raw: dict = {}
        p_ts: dict = {}
        p_val: dict = {}
        last_commit = [time.perf_counter()]

        def commit():
            ks = list(p_raw)
            raws = list(p_raw.values())
            store.put_many(list(zip(ks, raws)))
            if p is not None:
                stamps = np.fromiter(p_ts.values(), dtype=np.int64, count=len(ks))
                p.send_batch(changelog, raws, ks, timestamps=stamps)
                p.send_batch(out, list(p_val.values()), ks, timestamps=stamps)
            p_raw.clear(), p_ts.clear(), p_val.clear()
            last_commit[0] = time.perf_counter()

        def on_batch(rb):
            last = dict(zip(rb.keys, range(len(rb))))  # each key's last record in the batch
            ks = list(last)
            idx = list(last.values())
            vals = list(map(rb.values.__getitem__, idx))
            olds = store.get_many(ks)  # (a key already pending was read before: read again, no matter)
            # the state's timestamp: the newer of the stored one and the record's
            tss = rb.timestamps[idx].tolist()
            new_ts = list(map(max, tss, map(lambda raw: -1 if raw is None else ts_of.unpack_from(raw)[0], olds)))
            p_raw.update(zip(ks, map(bytes.__add__, map(ts_of.pack, new_ts), vals)))
            p_ts.update(zip(ks, new_ts))
            p_val.update(zip(ks, vals))
            if time.perf_counter() - last_commit[0] >= 1.0:
                commit()

        secs = drain(log, n, on_batch)
        t0 = time.perf_counter()
        if p_raw:
            commit()
        if p is not None:
            p.flush()
            p.close()
            log.delete_topic(out)
            log.delete_topic(changelog)
        keep(stage, secs + time.perf_counter() - t0)
        env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workload", choices=["count", "latest"], default="count")
    ap.add_argument("--bootstrap", default=None, help="a Kafka broker HOST:PORT (default: the embedded log)")
    args = ap.parse_args()
    n = args.events
    keys, values, ts, _ = eb.make_events(n)
    work = Path(tempfile.mkdtemp(prefix="mailroom-ceiling-"))
    if args.bootstrap:
        log = open_log(f"kafka://{args.bootstrap}")
        eb.INPUT = f"ceiling-input-{uuid.uuid4().hex[:6]}"  # (a broker may hold an older input)
    else:
        log = open_log(f"embedded:{work / 'log'}")
    try:
        eb.write_input(log, keys, values, ts)
        del keys, values
        best: dict[str, float] = {}

        def keep(name: str, secs: float) -> None:
            best[name] = min(best.get(name, float("inf")), secs)

        for _ in range(args.repeat):
            if args.workload == "count":
                count_stages(log, n, keep)
            else:
                latest_stages(log, n, keep, work)
            keep(f"4 engine ({args.workload})", run_engine(log, args.workload, n, work))
        where = f"Kafka at {args.bootstrap}" if args.bootstrap else "the embedded log"
        print(f"{args.workload}: {n:,} events of ~200 B, 4 partitions, on {where}, best of {args.repeat}:")
        for name, secs in sorted(best.items()):
            print(f"  {name:32s} {n / secs:12,.0f} records/s   ({secs * 1e6 / n:.2f} us/record)")
    finally:
        if args.bootstrap:
            log.delete_topic(eb.INPUT)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
