"""A user UDAF in a windowed aggregation keeps its state across a restart (restored from the
changelog into a fresh state dir), and DESCRIBE FUNCTION shows a user function's metadata."""

from __future__ import annotations

import time

import orjson

from mailroom.functions import builtin_registry, udaf, udf
from mailroom.log import TopicPartition, open_log
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.runtime import LogRuntime

MIN = 60_000
T0 = 1_764_000_000_000
SCRIPT = """
CREATE STREAM S (K STRING KEY, V BIGINT) WITH (kafka_topic='s', value_format='JSON', partitions=2);
CREATE TABLE W AS SELECT K, SUM_SQUARES(V) AS SQ FROM S WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY K;
"""


def registry():
    reg = builtin_registry()

    @udaf(name="sum_squares", description="sum of squares", author="mailroom tests", version="1.2", registry=reg)
    class SumSquares:
        def initialize(self) -> int:
            return 0

        def aggregate(self, state: int, v: int) -> int:
            return state + v * v

        def merge(self, a: int, b: int) -> int:
            return a + b

        def map(self, state: int) -> int:
            return state

    @udf(name="domain_of_test", description="the domain of an address", author="mailroom tests", version="2.0", registry=reg)
    def domain_of_test(address: str) -> str:
        return address.rsplit("@", 1)[-1]

    return reg


def produce(log, rows: list[tuple[str, int, int]]) -> None:
    with log.producer() as p:
        p.send_batch("s", [orjson.dumps({"V": v}) for _, v, _ in rows], [k.encode() for k, _, _ in rows],
                     timestamps=[t for _, _, t in rows])
        p.flush(30)


def latest(log) -> dict:
    c = log.consumer()
    c.assign([TopicPartition("W", p) for p in range(log.describe_topic("W").partitions)])
    out = {}
    while batches := c.poll(10_000, timeout=0.5):
        for b in batches:
            for k, v in zip(b.keys, b.values):
                out[(k[:-8].decode(), int.from_bytes(k[-8:], "big"))] = orjson.loads(v)["SQ"] if v else None
    c.close()
    return out


def run_until(log, state_dir, want: dict, timeout: float = 60) -> dict:
    rt = LogRuntime(log, state_dir)
    try:
        SqlExecutor(rt, registry()).execute_script(SCRIPT)
        deadline = time.monotonic() + timeout
        while (got := latest(log)) != want and time.monotonic() < deadline:
            time.sleep(0.3)
        return got
    finally:
        rt.close()


def test_udaf_state_in_a_window_survives_a_restart(tmp_path) -> None:
    log = open_log(f"embedded:{tmp_path / 'log'}")
    log.create_topic("s", 2)
    produce(log, [("a", 2, T0), ("a", 3, T0 + 1000), ("b", 1, T0 + 2000), ("a", 5, T0 + MIN)])
    want = {("a", T0): 13, ("b", T0): 1, ("a", T0 + MIN): 25}
    assert run_until(log, tmp_path / "state1", want) == want
    # a new instance with an empty state dir: the UDAF's window state comes back from the changelog
    produce(log, [("a", 4, T0 + 3000), ("b", 2, T0 + 4000)])
    want2 = {("a", T0): 29, ("b", T0): 5, ("a", T0 + MIN): 25}
    assert run_until(log, tmp_path / "state2", want2) == want2
    log.close()


def test_describe_function_shows_a_user_function(tmp_path) -> None:
    from mailroom.server import KsqlServer

    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state", registry=registry())
    try:
        (d,) = srv.run_ksql("DESCRIBE FUNCTION domain_of_test;")
    finally:
        srv.close()
    assert d["@type"] == "describe_function" and d["name"] == "DOMAIN_OF_TEST"
    assert (d["author"], d["version"], d["description"]) == ("mailroom tests", "2.0", "the domain of an address")
    assert [(f["argumentTypes"], f["returnType"]) for f in d["functions"]] == [(["STRING"], "STRING")]
