"""One mailroom process of bench/engine_bench.py: a workload over the email events topic.

    .venv/bin/python bench/engine_worker.py LOG_URL APP_ID INPUT OUTPUT WORKLOAD STATE_DIR

WORKLOAD: count | window | latest (see engine_bench.py). At-least-once, commit every second,
caching on, LMDB state with changelogs (the App's defaults). Start it twice with the same APP_ID
(and their own STATE_DIRs) to split the partitions over two processes. Runs until SIGTERM.
Prints "first-records-at <unix time>" once it has processed its first records (the harness's
processing rate starts there: process start-up and group join excluded).

WORKLOAD latest runs ``reduce(lambda old, new: new)`` (as the peers do); latest-batched the same
table through the built-in ``latest()`` (no Python call per record; about as fast here: the
store reads and writes per key dominate).
"""

from __future__ import annotations

import sys
import time

import polars as pl

from mailroom.engine import BYTES, App, JsonColumnsSerde, TimeWindows, Topology
from mailroom.log import open_log

TYPES = ["delivered", "deferred", "bounced"]


def topology(input_: str, output: str, workload: str) -> Topology:
    top = Topology()
    if workload == "count":
        (top.stream(input_, value_serde=JsonColumnsSerde({"domain": pl.String}))
            .group_by("domain")                              # through a repartition topic
            .count()
            .to_stream()
            .to(output))
    elif workload == "window":
        (top.stream(input_, value_serde=JsonColumnsSerde({"domain": pl.String, "type": pl.String, "ts": pl.Int64}),
                    timestamp_field="ts")                    # event time
            .filter(pl.col("type").is_in(TYPES))
            .group_by(pl.col("domain") + "|" + pl.col("type"))
            .windowed_by(TimeWindows.tumbling(60_000, grace_ms=3_600_000))
            .count()
            .to_stream()
            .to(output))
    elif workload == "latest":                              # what the peers run: a reducer per record
        (top.stream(input_, value_serde=BYTES)
            .group_by_key()
            .reduce(lambda old, new: new)
            .to_stream()
            .to(output, value_serde=BYTES))
    elif workload == "latest-batched":
        (top.stream(input_, value_serde=BYTES)
            .group_by_key()
            .latest()                                        # = reduce(lambda old, new: new), batched
            .to_stream()
            .to(output, value_serde=BYTES))
    else:
        raise SystemExit(f"unknown workload {workload}")
    return top


def main() -> None:
    url, app_id, input_, output, workload, state_dir = sys.argv[1:7]
    log = open_log(url)
    app = App(topology(input_, output, workload), app_id, log, state_dir=state_dir, commit_interval_ms=1000)
    first = []

    def until() -> bool:  # (never stops the run: notes when the first records came, for the harness)
        if not first and app.tasks and any(t.positions for t in app.tasks.values()):
            first.append(time.time())
            print(f"first-records-at {first[0]:.3f}", flush=True)
        return False

    try:
        app.run(until=until)  # until SIGTERM: commits and closes cleanly
    finally:
        log.close()


if __name__ == "__main__":
    main()
