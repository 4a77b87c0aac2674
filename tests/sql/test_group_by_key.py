"""GROUP BY the source's key column aggregates in place: no repartition topic (as ksqlDB)."""

import orjson

from mailroom.sql.executor import SqlExecutor
from mailroom.sql.runtime import InMemoryRuntime

SRC = "CREATE STREAM s (id STRING KEY, n INT, g STRING) WITH (kafka_topic='s', value_format='JSON', partitions=2);"


class _Runtime(InMemoryRuntime):
    """Keeps the topologies of the queries it starts."""

    def start_query(self, query_id, topology, source_topics) -> None:
        self.topology = topology
        super().start_query(query_id, topology, source_topics)


def _run(query: str):
    rt = _Runtime()
    ex = SqlExecutor(rt)
    ex.execute_script(SRC + query)
    for i in range(6):
        rt.produce("s", f"k{i % 2}".encode(), orjson.dumps({"n": i, "g": "a" if i < 3 else None}), 1000 + i)
    return rt.topology, {r.key: orjson.loads(r.value) for r in rt.records("T")}


def test_group_by_the_key_needs_no_repartition() -> None:
    top, rows = _run("CREATE TABLE t AS SELECT id, SUM(n) AS total, COUNT(*) AS c FROM s GROUP BY id;")
    assert not any("repartition" in t.lower() for t in top.internal_topics)
    assert rows == {b"k0": {"TOTAL": 6, "C": 3}, b"k1": {"TOTAL": 9, "C": 3}}


def test_group_by_another_column_still_repartitions() -> None:
    top, rows = _run("CREATE TABLE t AS SELECT g, SUM(n) AS total FROM s GROUP BY g;")
    assert any("repartition" in t.lower() for t in top.internal_topics)
    assert rows == {b"a": {"TOTAL": 3}}
