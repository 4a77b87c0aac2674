"""The Quix Streams peer of bench/engine_bench.py (runs in the bench venv, .cache/bench-venv).

    python quix_app.py BOOTSTRAP APP_ID INPUT OUTPUT WORKLOAD STATE_DIR

WORKLOAD: count | window | latest (see engine_bench.py). At-least-once, commit every second,
RocksDB state with changelog topics (Quix's defaults otherwise). Runs until SIGTERM.
"""

import sys

from quixstreams import Application

TYPES = {"delivered", "deferred", "bounced"}


def main() -> None:
    bootstrap, app_id, input_, output, workload, state_dir = sys.argv[1:7]
    app = Application(broker_address=bootstrap, consumer_group=app_id, auto_offset_reset="earliest",
                      commit_interval=1.0, state_dir=state_dir, processing_guarantee="at-least-once",
                      loglevel="WARNING")
    src = app.topic(input_, key_deserializer="str", value_deserializer="json")
    out = app.topic(output, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(src)
    if workload == "count":
        sdf = sdf.group_by("domain", name="by-domain", key_serializer="str", key_deserializer="str")

        def count(value, state):
            n = state.get("n", 0) + 1
            state.set("n", n)
            return n

        sdf = sdf.apply(count, stateful=True)
    elif workload == "window":
        sdf = sdf.filter(lambda v: v["type"] in TYPES)
        sdf = sdf.group_by(lambda v: v["domain"] + "|" + v["type"], name="by-domain-type",
                           key_serializer="str", key_deserializer="str")
        # windows by the record timestamp, which the bench sets to the event's ts
        sdf = sdf.tumbling_window(60_000, grace_ms=3_600_000).count().current()
    elif workload == "latest":
        def latest(value, state):
            state.set("latest", value)
            return value

        sdf = sdf.apply(latest, stateful=True)
    else:
        raise SystemExit(f"unknown workload {workload}")
    sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
