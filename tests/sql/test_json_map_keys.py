"""A JSON sink cannot hold a MAP with non-STRING keys: ksqlDB rejects ``MAP(k := v)`` with an INT
``k`` when the result is written as JSON, but not where the key is a STRING or the map is only
used inside an expression."""

from __future__ import annotations

import pytest

from mailroom.functions import builtin_registry
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.metastore import SqlError
from mailroom.sql.runtime import InMemoryRuntime


@pytest.fixture
def ex() -> SqlExecutor:
    ex = SqlExecutor(InMemoryRuntime(), builtin_registry())
    ex.execute_script("CREATE STREAM INPUT (k INT, s STRING, v DOUBLE) WITH (kafka_topic='input_topic', value_format='JSON', partitions=1);")
    return ex


def test_map_with_int_keys_into_json_is_rejected(ex: SqlExecutor) -> None:
    with pytest.raises(SqlError, match="JSON only supports MAP types with STRING keys"):
        ex.execute_script("CREATE STREAM OUTPUT AS SELECT MAP(k := v) FROM INPUT;")
    assert ex.meta.find("OUTPUT") is None


def test_string_keys_or_a_map_used_inside_an_expression_are_fine(ex: SqlExecutor) -> None:
    ex.execute_script("CREATE STREAM O1 AS SELECT MAP(s := v) AS M FROM INPUT;")
    ex.execute_script("CREATE STREAM O2 AS SELECT MAP(k := v)[1] AS X FROM INPUT;")
    assert ex.meta.find("O1") is not None and ex.meta.find("O2") is not None
