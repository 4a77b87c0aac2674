"""CREATE ... AS SELECT printed as ksqlDB prints it in its messages."""

from __future__ import annotations

import pytest

from mailroom.functions import builtin_registry
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.formatter import format_create_as
from mailroom.sql.metastore import SqlError
from mailroom.sql.parser import parse
from mailroom.sql.runtime import InMemoryRuntime


def test_items_get_their_aliases_and_columns_their_source() -> None:
    [stmt] = parse("CREATE TABLE out WITH (key_format='KAFKA') AS SELECT f2, f1, f2 + f1, COUNT(*), s->b "
                   "FROM test WHERE f1 > 0 GROUP BY f1, f2 HAVING COUNT(*) > 1;")
    assert format_create_as(stmt, ["F1", "F2", "S", "B"]) == (
        "CREATE TABLE OUT WITH (KEY_FORMAT='KAFKA') AS SELECT\n"
        "  TEST.F2 F2,\n  TEST.F1 F1,\n  (TEST.F2 + TEST.F1) KSQL_COL_0,\n  COUNT(*) KSQL_COL_1,\n  TEST.S->B B_1\n"
        "FROM TEST TEST\nWHERE (TEST.F1 > 0)\nGROUP BY TEST.F1, TEST.F2\nHAVING (COUNT(*) > 1)\nEMIT CHANGES")


def test_joins_and_windows_are_not_printed() -> None:
    [stmt] = parse("CREATE TABLE o AS SELECT a.id, COUNT(*) FROM a JOIN b ON a.id = b.id GROUP BY a.id;")
    assert format_create_as(stmt, []) is None


def test_a_key_format_error_of_a_create_as_shows_the_statement() -> None:
    ex = SqlExecutor(InMemoryRuntime(caching=False), builtin_registry())
    ex.execute_script("CREATE STREAM test (id INT KEY, f1 INT, f2 INT) WITH (kafka_topic='t', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError) as err:
        ex.execute_script("CREATE TABLE out AS SELECT f1 AS k1, f2 AS k2, COUNT(*) AS total FROM test GROUP BY f1, f2;")
    assert err.value.message.endswith(
        "reason: The 'KAFKA' format only supports a single field. Got: [`K1` INTEGER KEY, `K2` INTEGER KEY]\n"
        "Statement: CREATE TABLE OUT AS SELECT\n  TEST.F1 K1,\n  TEST.F2 K2,\n  COUNT(*) TOTAL\n"
        "FROM TEST TEST\nGROUP BY TEST.F1, TEST.F2\nEMIT CHANGES")
