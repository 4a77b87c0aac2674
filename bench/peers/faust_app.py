"""The Faust (faust-streaming) peer of bench/engine_bench.py (runs in the bench venv).

    BENCH_ARGS="BOOTSTRAP APP_ID INPUT OUTPUT WORKLOAD STATE_DIR" python faust_app.py worker -l warn

WORKLOAD: count | window | latest (see engine_bench.py). Tables with changelog topics, in
memory (Faust's default store), commit every second. Runs until SIGTERM.
"""

import os
import sys

import orjson

import faust

TYPES = {"delivered", "deferred", "bounced"}
bootstrap, app_id, input_, output, workload, state_dir = os.environ["BENCH_ARGS"].split()

app = faust.App(app_id, broker=f"kafka://{bootstrap}", store="memory://", datadir=state_dir,
                topic_partitions=4, topic_replication_factor=1, consumer_auto_offset_reset="earliest",
                broker_commit_interval=1.0, web_enabled=False, key_serializer="raw", value_serializer="raw")
events = app.topic(input_, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
out = app.topic(output, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

if workload == "count":
    counts = app.Table("counts", default=int, partitions=4)

    @app.agent(events)
    async def process(stream):
        async for ev in stream.group_by(lambda ev: orjson.loads(ev)["domain"], name="by-domain"):
            domain = orjson.loads(ev)["domain"]
            counts[domain] += 1
            await out.send(key=domain.encode(), value=b"%d" % counts[domain])

elif workload == "window":
    # relative_to_stream: windows by the record timestamp, which the bench sets to the event's ts
    wcounts = app.Table("window-counts", default=int, partitions=4).tumbling(60.0, expires=3600.0).relative_to_stream()

    def dt_key(ev):
        v = orjson.loads(ev)
        return v["domain"] + "|" + v["type"]

    @app.agent(events)
    async def process(stream):
        grouped = stream.filter(lambda ev: orjson.loads(ev)["type"] in TYPES).group_by(dt_key, name="by-domain-type")
        async for ev in grouped:
            k = dt_key(ev)
            wcounts[k] += 1
            ts = int(grouped.current_event.message.timestamp * 1000)
            start = ts - ts % 60_000
            await out.send(key=f"{k}@{start}".encode(), value=b"%d" % wcounts[k].current())

elif workload == "latest":
    latest = app.Table("latest", default=None, partitions=4, key_type=bytes, value_type=bytes)

    @app.agent(events)
    async def process(stream):
        async for key, ev in stream.items():
            latest[key] = ev
            await out.send(key=key, value=ev)

else:
    raise SystemExit(f"unknown workload {workload}")

if __name__ == "__main__":
    sys.argv[1:1] = []  # faust's own CLI: worker -l warning
    app.main()
