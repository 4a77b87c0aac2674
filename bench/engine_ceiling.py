"""What bounds the engine's per-process rate: the stages of workload (a) "count per recipient
domain" on the embedded log, each timed alone over the same input, in one process.

    .venv/bin/python bench/engine_ceiling.py [--events 1000000] [--repeat 3]

Stages, each a loop over all the input (4 partitions, polls of up to 10k records, a partition's
batches of one poll merged as the engine does), cumulative:

1. consume: poll every batch and take its values as Python bytes (what a source needs);
2. + decode: the JSON values' "domain" field into a polars column (``JsonColumnsSerde``, the
   engine's columnar decode: native code over the whole batch);
3. + produce: write each polled batch's values to another topic (the log's own consume +
   produce rate for the same data: an upper bound for any pipeline that writes what it reads);
4. engine: the whole workload (decode, re-key through a repartition topic, count in the
   store with its changelog, output), as bench/engine_worker.py runs it, started in-process.

records/s = events / seconds of the loop (no process start-up). Best of --repeat rounds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import engine_bench as eb  # noqa: E402
from engine_worker import topology  # noqa: E402

from mailroom.engine import App, JsonColumnsSerde  # noqa: E402
from mailroom.engine.app import _merge_batches  # noqa: E402
from mailroom.log import TopicPartition, open_log  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.events
    keys, values, ts, _ = eb.make_events(n)
    work = Path(tempfile.mkdtemp(prefix="mailroom-ceiling-"))
    log = open_log(f"embedded:{work / 'log'}")
    try:
        eb.write_input(log, keys, values, ts)
        del keys, values
        serde = JsonColumnsSerde({"domain": pl.String})
        best: dict[str, float] = {}

        def keep(name: str, secs: float) -> None:
            best[name] = min(best.get(name, float("inf")), secs)

        for _ in range(args.repeat):
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
            app_id = f"ceil-{uuid.uuid4().hex[:6]}"
            log.create_topic(app_id + "-out", eb.PARTITIONS)
            state = work / app_id
            app = App(topology(eb.INPUT, app_id + "-out", "count"), app_id, log, state_dir=state, commit_interval_ms=1000)
            watcher = eb.Watcher(log, app_id, n)  # input and repartition topic committed to their ends
            t0 = time.perf_counter()
            steps = 0

            def until() -> bool:
                nonlocal steps
                steps += 1
                return steps % 10 == 0 and watcher.done()

            app.run(until=until)
            keep("4 engine (count)", time.perf_counter() - t0)
            watcher.close()
            for t in [t for t in log.list_topics() if app_id in t]:
                log.delete_topic(t)
            shutil.rmtree(state, ignore_errors=True)
        print(f"{n:,} events of ~200 B, 4 partitions, best of {args.repeat}:")
        for name, secs in sorted(best.items()):
            print(f"  {name:32s} {n / secs:12,.0f} records/s   ({secs * 1e6 / n:.2f} us/record)")
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
