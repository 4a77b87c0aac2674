"""The command topic: streams, tables and persistent queries created over /ksql survive a restart
of the server (replayed in order, same query ids, so the queries resume from their offsets)."""

from __future__ import annotations

import time

from mailroom.server import KsqlServer


def wait_rows(srv: KsqlServer, sql: str, want: list, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while True:
        _, _, rows = srv.pull(srv.prepare_query(sql), sql)
        got = sorted(r for r, _ in rows)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_statements_survive_a_restart(tmp_path) -> None:
    args = (f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    srv = KsqlServer(*args)
    try:
        srv.run_ksql("CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=2);"
                     "CREATE TABLE T AS SELECT K, SUM(N) AS TOTAL FROM S GROUP BY K;"
                     "CREATE STREAM GONE (K STRING KEY) WITH (kafka_topic='gone', value_format='JSON', partitions=1);"
                     "DROP STREAM GONE;"
                     "INSERT INTO S (K, N) VALUES ('a', 1); INSERT INTO S (K, N) VALUES ('b', 2);")
        assert wait_rows(srv, "SELECT * FROM T;", [["a", 1], ["b", 2]]) == [["a", 1], ["b", 2]]
        qids = sorted(srv.executor.queries)
    finally:
        srv.close()

    srv = KsqlServer(*args)
    try:
        assert srv.replayed == 4
        assert sorted(srv.executor.queries) == qids  # the same ids: the query resumes its state and offsets
        assert srv.executor.meta.find("GONE") is None and srv.executor.meta.find("T") is not None
        srv.run_ksql("INSERT INTO S (K, N) VALUES ('a', 10);")  # (INSERT VALUES is data, not a command)
        assert wait_rows(srv, "SELECT * FROM T;", [["a", 11], ["b", 2]]) == [["a", 11], ["b", 2]]
    finally:
        srv.close()
