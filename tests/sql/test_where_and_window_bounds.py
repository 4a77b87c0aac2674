"""ksqlDB planner rules: a stream record without a value never passes a WHERE (even one on the
key or window bounds only), and a windowed aggregation over a join cannot select its window
bounds (ksqlDB issue 5931: "SELECT column 'WINDOWSTART' cannot be resolved.")."""

from __future__ import annotations

import orjson
import pytest

from mailroom.functions import builtin_registry
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.metastore import SqlError
from mailroom.sql.runtime import InMemoryRuntime


def _executor() -> tuple[InMemoryRuntime, SqlExecutor]:
    rt = InMemoryRuntime(caching=False)
    return rt, SqlExecutor(rt, builtin_registry())


@pytest.mark.parametrize("row_path", [False, True])
def test_a_stream_record_without_a_value_does_not_pass_a_where_on_the_key(monkeypatch, row_path: bool) -> None:
    if row_path:
        monkeypatch.setattr("mailroom.sql.planner.COLUMNAR", False)
    rt, ex = _executor()
    ex.execute_script("CREATE STREAM s (id STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                      "CREATE STREAM f AS SELECT * FROM s WHERE id = 'k';"
                      "CREATE STREAM p AS SELECT * FROM s;")
    for value in (b'{"V":1}', None, b'{"V":2}'):
        rt.produce("s", b'k', value, 0)
    assert [orjson.loads(r.value) for r in rt.records("F")] == [{"V": 1}, {"V": 2}]
    assert [r.value for r in rt.records("P")][1] is None  # (a projection keeps it, as ksqlDB)


def test_a_session_tombstone_does_not_pass_a_where_on_window_bounds() -> None:
    rt, ex = _executor()
    ex.execute_script(
        "CREATE STREAM data (user_id INT) WITH (kafka_topic='data', value_format='JSON', partitions=1);"
        "CREATE TABLE sessions AS SELECT user_id, COUNT(user_id) AS c FROM data WINDOW SESSION (5 SECONDS) GROUP BY user_id;"
        "CREATE STREAM session_stream (user_id INT KEY, c BIGINT) WITH (kafka_topic='SESSIONS', value_format='JSON', window_type='Session');"
        "CREATE STREAM starts AS SELECT * FROM session_stream WHERE WINDOWSTART = WINDOWEND;")
    for ts in (0, 1000):  # the second merges [0,0] away: a tombstone for it, then [0,1000]
        rt.produce("data", None, b'{"USER_ID":5}', ts)
    assert [r.value for r in rt.records("SESSIONS")].count(None) == 1
    assert [(orjson.loads(r.value), r.timestamp) for r in rt.records("STARTS")] == [({"C": 1}, 0)]


def test_window_bounds_of_a_windowed_aggregation_over_a_join_cannot_be_resolved() -> None:
    _rt, ex = _executor()
    ex.execute_script("CREATE STREAM a (id VARCHAR, col1 VARCHAR) WITH (kafka_topic='a', value_format='JSON', partitions=1);"
                      "CREATE TABLE b (id VARCHAR PRIMARY KEY, col1 VARCHAR) WITH (kafka_topic='b', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError, match=r"SELECT column 'WINDOWEND' cannot be resolved\."):
        ex.execute_script("CREATE TABLE c AS SELECT a.id, COUNT(*) AS n, WINDOWEND + 1 AS wend FROM a JOIN b ON a.id = b.id "
                          "WINDOW TUMBLING (SIZE 10 MILLISECONDS) GROUP BY a.id;")
    # without a join they resolve
    ex.execute_script("CREATE TABLE d AS SELECT id, COUNT(*) AS n, WINDOWSTART AS ws FROM a "
                      "WINDOW TUMBLING (SIZE 10 MILLISECONDS) GROUP BY id;")
