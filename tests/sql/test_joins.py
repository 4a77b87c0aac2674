"""SQL joins: stream-stream (WITHIN), stream-table, table-table, foreign-key and n-way joins,
run through the executor on the in-memory runtime."""

from __future__ import annotations

import pytest

from mailroom.functions import default_registry
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.metastore import SqlError
from mailroom.sql.parser import parse
from mailroom.sql.qtt import _decode_key, _decode_value, _source_for, encode_input
from mailroom.sql.runtime import InMemoryRuntime

_REGISTRY = default_registry()


class Sql:
    def __init__(self, *statements: str) -> None:
        self.runtime = InMemoryRuntime(caching=False)
        self.ex = SqlExecutor(self.runtime, _REGISTRY)
        for text in statements:
            for stmt in parse(text, self.ex.variables):
                props = getattr(stmt, "props", None) or {}
                if props.get("KAFKA_TOPIC") and not self.runtime.topic_exists(str(props["KAFKA_TOPIC"])):
                    self.runtime.create_topic(str(props["KAFKA_TOPIC"]), 1)
                self.ex.execute(stmt)

    def send(self, topic: str, key, value, ts: int) -> None:
        k, v, h = encode_input(self.ex, {"topic": topic, "key": key, "value": value})
        self.runtime.produce(topic, k, v, ts, h)

    def out(self, topic: str) -> list[tuple]:
        src = _source_for(self.ex, topic)
        return [(_decode_key(src, r.key)[0], _decode_value(src, r.value), r.timestamp) for r in self.runtime.records(topic)]


def streams(kind_l: str = "STREAM", kind_r: str = "STREAM") -> tuple[str, str]:
    key = {"STREAM": "KEY", "TABLE": "PRIMARY KEY"}
    return (f"CREATE {kind_l} L (ID INT {key[kind_l]}, A INT, B STRING) WITH (kafka_topic='l', value_format='JSON');",
            f"CREATE {kind_r} R (ID INT {key[kind_r]}, C INT) WITH (kafka_topic='r', value_format='JSON');")


def test_stream_stream_inner_join_within_window() -> None:
    sql = Sql(*streams(), "CREATE STREAM OUT AS SELECT L.ID, A, C FROM L JOIN R WITHIN 10 SECONDS ON L.ID = R.ID;")
    sql.send("l", 1, {"A": 10, "B": "x"}, 1000)
    sql.send("r", 1, {"C": 20}, 5000)  # within 10s: joins, at the later timestamp
    sql.send("r", 1, {"C": 30}, 20000)  # too late for the left record
    sql.send("r", 2, {"C": 40}, 20000)  # no left record
    assert sql.out("OUT") == [(1, {"A": 10, "C": 20}, 5000)]


def test_stream_stream_left_join_without_grace_emits_null_results_at_once() -> None:
    sql = Sql(*streams(), "CREATE STREAM OUT AS SELECT L.ID, A, C FROM L LEFT JOIN R WITHIN 10 SECONDS ON L.ID = R.ID;")
    sql.send("l", 1, {"A": 10}, 1000)
    sql.send("r", 1, {"C": 20}, 2000)
    assert sql.out("OUT") == [(1, {"A": 10, "C": None}, 1000), (1, {"A": 10, "C": 20}, 2000)]


def test_stream_stream_left_join_with_grace_waits_for_the_window_to_close() -> None:
    sql = Sql(*streams(), "CREATE STREAM OUT AS SELECT L.ID, A, C FROM L LEFT JOIN R WITHIN 1 SECOND GRACE PERIOD 1 SECOND ON L.ID = R.ID;")
    sql.send("l", 1, {"A": 10}, 1000)
    sql.send("l", 2, {"A": 20}, 1500)
    sql.send("r", 2, {"C": 5}, 1600)
    assert sql.out("OUT") == [(2, {"A": 20, "C": 5}, 1600)]
    sql.send("l", 3, {"A": 30}, 10000)  # stream time moves past 1000 + 1000 + 1000: key 1 had no match
    assert sql.out("OUT")[1:] == [(1, {"A": 10, "C": None}, 1000)]


def test_stream_stream_full_outer_join_has_a_synthetic_key() -> None:
    sql = Sql(*streams(), "CREATE STREAM OUT AS SELECT ROWKEY AS K, L.ID, R.ID, A, C FROM L FULL OUTER JOIN R WITHIN 1 SECOND ON L.ID = R.ID;")
    sql.send("r", 7, {"C": 1}, 100)
    sql.send("l", 7, {"A": 2}, 200)
    assert sql.out("OUT") == [(7, {"L_ID": None, "R_ID": 7, "A": None, "C": 1}, 100),
                              (7, {"L_ID": 7, "R_ID": 7, "A": 2, "C": 1}, 200)]
    with pytest.raises(SqlError, match="must include the join expression ROWKEY"):
        Sql(*streams(), "CREATE STREAM O2 AS SELECT A, C FROM L FULL OUTER JOIN R WITHIN 1 SECOND ON L.ID = R.ID;")


def test_stream_stream_join_on_a_value_column_repartitions() -> None:
    sql = Sql(*streams(), "CREATE STREAM OUT AS SELECT L.A, B, C FROM L JOIN R WITHIN 10 SECONDS ON L.A = R.ID;")
    sql.send("l", 1, {"A": 5, "B": "x"}, 0)
    sql.send("r", 5, {"C": 9}, 10)
    assert sql.out("OUT") == [(5, {"B": "x", "C": 9}, 10)]


def test_select_star_names_columns_by_source() -> None:
    sql = Sql(*streams(), "CREATE STREAM OUT AS SELECT * FROM L JOIN R WITHIN 10 SECONDS ON L.ID = R.ID;")
    sql.send("l", 1, {"A": 5, "B": "x"}, 0)
    sql.send("r", 1, {"C": 9}, 10)
    assert sql.out("OUT") == [(1, {"L_A": 5, "L_B": "x", "R_ID": 1, "R_C": 9}, 10)]
    assert [c.name for c in sql.ex.meta.get("OUT").key_columns] == ["L_ID"]


def test_stream_table_left_join_looks_up_the_table_at_arrival() -> None:
    sql = Sql(*streams("STREAM", "TABLE"), "CREATE STREAM OUT AS SELECT L.ID, A, C FROM L LEFT JOIN R ON L.ID = R.ID;")
    sql.send("l", 1, {"A": 1}, 0)
    sql.send("r", 1, {"C": 10}, 5)
    sql.send("l", 1, {"A": 2}, 10)
    sql.send("r", 1, {"C": 11}, 15)  # table updates trigger nothing
    assert sql.out("OUT") == [(1, {"A": 1, "C": None}, 0), (1, {"A": 2, "C": 10}, 10)]


def test_table_table_join_emits_changes_and_deletes() -> None:
    sql = Sql(*streams("TABLE", "TABLE"), "CREATE TABLE OUT AS SELECT L.ID, A, C FROM L JOIN R ON L.ID = R.ID;")
    sql.send("l", 1, {"A": 1}, 0)
    sql.send("r", 1, {"C": 10}, 5)
    sql.send("l", 1, {"A": 2}, 10)
    sql.send("r", 1, None, 15)
    assert sql.out("OUT") == [(1, {"A": 1, "C": 10}, 5), (1, {"A": 2, "C": 10}, 10), (1, None, 15)]


def test_foreign_key_table_join() -> None:
    sql = Sql("CREATE TABLE O (ID INT PRIMARY KEY, CUST INT, AMOUNT INT) WITH (kafka_topic='o', value_format='JSON');",
              "CREATE TABLE C (ID INT PRIMARY KEY, NAME STRING) WITH (kafka_topic='c', value_format='JSON');",
              "CREATE TABLE OUT AS SELECT O.ID, AMOUNT, NAME FROM O LEFT JOIN C ON O.CUST = C.ID;")
    sql.send("c", 7, {"NAME": "ann"}, 0)
    sql.send("o", 1, {"CUST": 7, "AMOUNT": 3}, 10)
    sql.send("o", 2, {"CUST": 8, "AMOUNT": 4}, 20)
    sql.send("c", 7, {"NAME": "anne"}, 30)
    assert sql.out("OUT") == [(1, {"AMOUNT": 3, "NAME": "ann"}, 10), (2, {"AMOUNT": 4, "NAME": None}, 20),
                              (1, {"AMOUNT": 3, "NAME": "anne"}, 30)]


def test_n_way_join() -> None:
    sql = Sql(*streams(), "CREATE TABLE T (ID INT PRIMARY KEY, D STRING) WITH (kafka_topic='t', value_format='JSON');",
              "CREATE STREAM OUT AS SELECT L.ID, A, C, D FROM L JOIN R WITHIN 10 SECONDS ON L.ID = R.ID JOIN T ON L.ID = T.ID;")
    sql.send("t", 1, {"D": "d"}, 0)
    sql.send("l", 1, {"A": 1}, 1)
    sql.send("r", 1, {"C": 2}, 2)
    assert sql.out("OUT") == [(1, {"A": 1, "C": 2, "D": "d"}, 2)]


@pytest.mark.parametrize("query, message", [
    ("SELECT * FROM L JOIN R WITHIN 1 SECOND ON L.ID = 0",
     "Invalid comparison expression '0' in join '(L.ID = 0)'. Each side of the join comparision must contain references from exactly one source."),
    ("SELECT L.A, C FROM L JOIN R WITHIN 1 SECOND ON L.ID = R.ID",
     "must include the join expressions L.ID or R.ID in its projection (eg, SELECT L.ID...)."),
    ("SELECT * FROM L JOIN R WITHIN 1 SECOND ON L.ID = R.ID AND L.A = R.C",
     "Invalid join condition: joins on multiple conditions are not yet supported."),
    ("SELECT * FROM L JOIN R ON L.ID = R.ID", "Stream-Stream joins must have a WITHIN clause"),
])
def test_join_errors(query: str, message: str) -> None:
    with pytest.raises(SqlError) as e:
        Sql(*streams(), f"CREATE STREAM OUT AS {query};")
    assert message in e.value.message


def test_table_table_join_must_use_the_right_primary_key() -> None:
    with pytest.raises(SqlError, match="table-table joins require to join on the primary key of the right input table. Got L.ID = R.C."):
        Sql(*streams("TABLE", "TABLE"), "CREATE TABLE OUT AS SELECT L.ID, C FROM L JOIN R ON L.ID = R.C;")
