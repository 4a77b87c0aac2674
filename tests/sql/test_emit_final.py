"""EMIT FINAL through the SQL layer: one result per closed window, and none for a window that a
jump in stream time took past its retention at the closing record (as ksqlDB)."""

from __future__ import annotations

import orjson
import pytest

from mailroom.functions import builtin_registry
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.runtime import InMemoryRuntime


@pytest.mark.parametrize("row_path", [False, True])
def test_emit_final_drops_windows_a_jump_expired(monkeypatch, row_path: bool) -> None:
    if row_path:
        monkeypatch.setattr("mailroom.sql.planner.COLUMNAR", False)
    rt = InMemoryRuntime(caching=False)
    ex = SqlExecutor(rt, builtin_registry())
    ex.execute_script(
        "CREATE STREAM s (id STRING KEY, v STRING) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        "CREATE TABLE t AS SELECT id, COUNT(*) AS c FROM s"
        " WINDOW TUMBLING (SIZE 2 MILLISECONDS, GRACE PERIOD 1 MILLISECONDS) GROUP BY id EMIT FINAL;")
    for ts in (0, 1, 2, 3):  # [0,2) closes at 3, within the retention
        rt.produce("s", b"k", b'{"V":"x"}', ts)
    assert [(orjson.loads(r.value), r.timestamp) for r in rt.records("T")] == [({"C": 2}, 1)]
    rt.produce("s", b"k", b'{"V":"x"}', 50)  # [2,4) closes only now, long expired: no result
    rt.produce("s", b"k", b'{"V":"x"}', 53)  # [50,52) closes at 53: its result comes
    assert [(orjson.loads(r.value), r.timestamp) for r in rt.records("T")] == [({"C": 2}, 1), ({"C": 1}, 50)]
