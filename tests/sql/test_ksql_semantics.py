"""ksqlDB's semantics where they differ from textbook SQL, and its error messages: comparisons
with a NULL side are FALSE, a stream record without a value is not aggregated, numeric literal
overflows are reported with their sign, a missing key names every key column, expressions are
typed before keys, partial timestamp strings, unknown INSERT targets."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from mailroom.formats.types import SqlType
from mailroom.functions import builtin_registry
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.expressions import ExpressionCompiler, Scope
from mailroom.sql.metastore import SqlError
from mailroom.sql.parser import SqlSyntaxError, parse, parse_expression
from mailroom.sql.runtime import InMemoryRuntime


def _compile(text: str):
    scope = Scope()
    for name, t in (("A", SqlType.BYTES), ("B", SqlType.BYTES), ("N", SqlType.INT), ("D", SqlType.DATE)):
        scope.add(name, name, t)
    return ExpressionCompiler(builtin_registry()).compile(parse_expression(text), scope)


@pytest.mark.parametrize("op", ["=", "<>", "<", "<=", ">", ">="])
def test_a_comparison_with_a_null_side_is_false(op: str) -> None:
    c = _compile(f"A {op} B")
    assert c.fn({"A": None, "B": None}) is False
    assert c.fn({"A": b"a", "B": None}) is False
    assert c.fn({"A": None, "B": b"a"}) is False
    assert _compile(f"N {op} NULL").fn({"N": 1}) is False
    # NOT of it is TRUE (Java's !false), not NULL
    assert _compile(f"NOT (N {op} 1)").fn({"N": None}) is True


def test_bytes_compare_bytewise() -> None:
    assert _compile("A > B").fn({"A": b"b", "B": b"a"}) is True
    assert _compile("A > B").fn({"A": b"a", "B": b"a"}) is False


def test_between_with_a_null_is_false_and_not_between_true() -> None:
    assert _compile("N BETWEEN 1 AND 3").fn({"N": None}) is False
    assert _compile("N NOT BETWEEN 1 AND 3").fn({"N": None}) is True
    assert _compile("N BETWEEN 1 AND 3").fn({"N": 2}) is True
    assert _compile("D BETWEEN '2020-01-01' AND '2020-12-31'").fn({"D": dt.date(2020, 6, 1)}) is True


def _executor() -> tuple[InMemoryRuntime, SqlExecutor]:
    rt = InMemoryRuntime(caching=False)
    return rt, SqlExecutor(rt, builtin_registry())


@pytest.mark.parametrize("row_path", [False, True])
def test_a_stream_record_without_a_value_is_not_aggregated(monkeypatch, row_path: bool) -> None:
    if row_path:
        monkeypatch.setattr("mailroom.sql.planner.COLUMNAR", False)
    rt, ex = _executor()
    ex.execute_script("CREATE STREAM s (id STRING KEY, v STRING) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                      "CREATE TABLE t AS SELECT id, COUNT(1) AS c FROM s GROUP BY id;"
                      "CREATE TABLE u AS SELECT v, COUNT(1) AS c FROM s GROUP BY v;")
    for i, value in enumerate([b'{"V":"x"}', None, b'{"V":"x"}']):
        rt.produce("s", b"k", value, i)
    # no output at all for the record without a value (not even the unchanged count)
    assert [orjson.loads(r.value) for r in rt.records("T")] == [{"C": 1}, {"C": 2}]
    assert [orjson.loads(r.value) for r in rt.records("U")] == [{"C": 1}, {"C": 2}]
    assert not [e for e in rt.processing_log.entries if "NULL key" in str(e)]


@pytest.mark.parametrize("text, message", [
    ("9223372036854775808", "Invalid numeric literal: 9223372036854775808"),
    ("-9223372036854775809", "Invalid numeric literal: -9223372036854775809"),
    ("1.7976931348623159E308", "Number overflows DOUBLE: 1.7976931348623159E308"),
    ("-1.7976931348623160E308", "Number overflows DOUBLE: -1.7976931348623160E308"),
])
def test_numeric_literal_overflow_keeps_its_sign_and_ksqldb_position(text: str, message: str) -> None:
    with pytest.raises(SqlSyntaxError) as err:
        parse(f"SELECT K, {text} FROM S;\n")
    assert err.value.reason == message
    # the true 1-based column; ksqlDB's message says one more, after "Failed to prepare statement"
    assert (err.value.line, err.value.column) == (1, 11)
    assert str(err.value) == f"Failed to prepare statement: line 1:12: {message}"


def test_the_smallest_bigint_is_still_a_literal() -> None:
    assert parse_expression("-9223372036854775808").value == -(2**63)
    assert parse_expression("-1.7976931348623157E308").value == -1.7976931348623157e308


def test_a_missing_key_names_every_key_column() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (id INT KEY, id2 INT KEY, name STRING) WITH (kafka_topic='s', format='JSON', partitions=1);")
    with pytest.raises(SqlError, match=r"must include the key columns ID and ID2 in its projection \(eg, SELECT ID, ID2\.\.\.\)\."):
        ex.execute_script("CREATE STREAM o AS SELECT id, name FROM s;")


def test_an_unresolvable_function_is_reported_before_a_missing_key() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (id STRING KEY, n INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError, match=r"Function 'greatest' does not accept parameters \(\)\."):
        ex.execute_script("CREATE STREAM o AS SELECT GREATEST(*) AS h FROM s;")


def test_a_struct_constructor_with_a_field_twice_is_rejected() -> None:
    with pytest.raises(SqlError, match=r"Duplicate field names found in STRUCT: 'FOO INTEGER' and 'FOO BIGINT'"):
        _compile("STRUCT(foo := N, foo := CAST(N AS BIGINT))")


def test_rowtime_compares_with_a_partial_timestamp_string() -> None:
    c = _compile_rowtime("ROWTIME >= '2018'")
    assert c.fn({"ROWTIME": 1514764800000}) is True and c.fn({"ROWTIME": 1514764799999}) is False
    assert _compile_rowtime("ROWTIME < '2018-02'").fn({"ROWTIME": 1517443199999}) is True  # 2018-01-31T23:59:59.999


def _compile_rowtime(text: str):
    scope = Scope()
    scope.add("ROWTIME", "ROWTIME", SqlType.BIGINT)
    return ExpressionCompiler(builtin_registry()).compile(parse_expression(text), scope)


def test_insert_into_an_unknown_target_says_where() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (k STRING KEY, d1 STRING) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError) as err:
        ex.execute_script("INSERT INTO unknown SELECT d1, COUNT() FROM s GROUP BY d1;")
    assert str(err.value) == "Line: 1, Col: 13: Source `UNKNOWN` does not exist."


def test_insert_values_into_an_unknown_target_hints_at_the_case() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM \"lower\" (id INT KEY, v STRING) WITH (kafka_topic='a', value_format='JSON', partitions=1);"
                      "CREATE STREAM upper (id INT KEY, v STRING) WITH (kafka_topic='b', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError, match='unknown stream/table: `LOWER`\nDid you mean "lower"\\? Hint: wrap the source name in double quotes'):
        ex.execute_script("INSERT INTO lower (id, v) VALUES (1, 'x');")
    with pytest.raises(SqlError, match="unknown stream/table: `upper`\nDid you mean UPPER\\? Hint: try removing double quotes"):
        ex.execute_script("INSERT INTO \"upper\" (id, v) VALUES (1, 'x');")
    with pytest.raises(SqlError) as err:
        ex.execute_script("INSERT INTO nope (id, v) VALUES (1, 'x');")
    assert err.value.message == "Cannot insert values into an unknown stream/table: `NOPE`"


def test_partition_by_names_every_expression_and_rejects_the_key_twice() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (name STRING, id INT, age INT) WITH (kafka_topic='s', format='JSON', partitions=1);")
    with pytest.raises(SqlError, match=r"must include the partitioning expressions S\.ID and S\.AGE in its projection \(eg, SELECT S\.ID, S\.AGE\.\.\.\)"):
        ex.execute_script("CREATE STREAM o AS SELECT id, name FROM s PARTITION BY id, age;")
    with pytest.raises(SqlError, match=r"The projection contains a key column \(`NAME`\) more than once, aliased as: NAME and NAME2\."):
        ex.execute_script("CREATE STREAM o AS SELECT name, name AS name2, id FROM s PARTITION BY name;")


def test_struct_fields_named_like_a_column_get_numbered_aliases() -> None:
    rt, ex = _executor()
    ex.execute_script("CREATE STREAM s (k STRING KEY, b INT, a STRUCT<b INT>, c STRUCT<b INT, x INT>) "
                      "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                      "CREATE STREAM o AS SELECT k, b, a->b, c->b, c->x FROM s;")
    assert [c.name for c in ex.meta.get("O").value_columns] == ["B", "B_1", "B_2", "X"]
    rt.produce("s", b"k", b'{"B": 0, "A": {"B": 1}, "C": {"B": 2, "X": 3}}', 0)
    assert [orjson.loads(r.value) for r in rt.records("O")] == [{"B": 0, "B_1": 1, "B_2": 2, "X": 3}]


def test_a_type_created_after_the_executor_is_usable() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE TYPE address AS STRUCT<number INTEGER, city VARCHAR>;"
                      "CREATE TYPE person AS STRUCT<name VARCHAR, address ADDRESS>;"
                      "CREATE TABLE people (k STRING PRIMARY KEY, p PERSON) WITH (kafka_topic='p', value_format='JSON', partitions=1);")
    [col] = ex.meta.get("PEOPLE").value_columns
    assert col.type == SqlType.struct([("NAME", SqlType.STRING),
                                       ("ADDRESS", SqlType.struct([("NUMBER", SqlType.INT), ("CITY", SqlType.STRING)]))])


def test_create_table_as_select_aggregates_needs_a_group_by() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError, match=r"does not support aggregate function \[COUNT\(ROWTIME\), SUM\(V\)\] without a GROUP BY clause\."):
        ex.execute_script("CREATE TABLE t AS SELECT COUNT(*), SUM(v) FROM s;")
    with pytest.raises(SqlError, match=r"Non-aggregate SELECT expression\(s\) not part of GROUP BY: V"):
        ex.execute_script("CREATE TABLE t AS SELECT v, COUNT(*) FROM s;")


def test_partition_by_select_star_puts_the_old_key_after_the_values() -> None:
    rt, ex = _executor()
    ex.execute_script("CREATE STREAM s (k STRING KEY, id BIGINT, name STRING, v BIGINT) WITH (kafka_topic='s', value_format='DELIMITED', partitions=1);"
                      "CREATE STREAM r AS SELECT * FROM s PARTITION BY name;")
    assert [c.name for c in ex.meta.get("R").key_columns] == ["NAME"]
    assert [c.name for c in ex.meta.get("R").value_columns] == ["ID", "V", "K"]
    rt.produce("s", b"1", b"0,zero,50", 0)
    assert [(r.key, r.value) for r in rt.records("R")] == [(b"zero", b"0,50,1")]


def test_a_key_format_for_a_result_without_a_key_is_rejected() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (id INT KEY, name STRING) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError, match="Key format specified for stream without key columns."):
        ex.execute_script("CREATE STREAM o WITH (key_format='DELIMITED') AS SELECT id, name FROM s PARTITION BY NULL;")


def test_a_duplicate_column_is_named_with_its_type() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (id INT KEY, data STRING) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
    with pytest.raises(SqlError, match="Duplicate value columns found in schema: `COUNT` BIGINT$"):
        ex.execute_script("CREATE TABLE t AS SELECT data AS count, COUNT(*) AS count FROM s GROUP BY data;")
    with pytest.raises(SqlError, match="Duplicate value columns found in schema: `X` INTEGER$"):
        ex.execute_script("CREATE STREAM o AS SELECT id, data AS x, id AS x FROM s;")


def test_partition_by_a_value_expression_of_a_record_without_a_value_is_null() -> None:
    rt, ex = _executor()
    ex.execute_script("CREATE STREAM s (k STRING KEY, id BIGINT, v INT) WITH (kafka_topic='s', format='JSON', partitions=1);"
                      "CREATE STREAM o AS SELECT * FROM s PARTITION BY id, ROWTIME, k;")
    rt.produce("s", b'"a"', b'{"ID": 22, "V": 1}', 10)
    rt.produce("s", b'"b"', None, 12)
    # the key column K still comes from the record's key; ID and ROWTIME from its (missing) value
    assert [(orjson.loads(r.key), r.value) for r in rt.records("O")] == [
        ({"ID": 22, "ROWTIME": 10, "K": "a"}, b'{"V":1}'), ({"ID": None, "ROWTIME": None, "K": "b"}, None)]


def test_a_keyed_result_of_keyless_sources_takes_the_default_key_format() -> None:
    rt = InMemoryRuntime(caching=False)
    ex = SqlExecutor(rt, builtin_registry(), properties={"ksql.persistence.default.format.key": "DELIMITED"})
    ex.execute_script("CREATE STREAM s (id INT, v STRING) WITH (kafka_topic='s', key_format='NONE', value_format='JSON', partitions=1);"
                      "CREATE STREAM o AS SELECT id, v FROM s PARTITION BY id;")
    assert ex.meta.get("O").key_format == "DELIMITED"
    rt.produce("s", None, b'{"ID": 10, "V": "x"}', 0)
    assert [r.key for r in rt.records("O")] == [b"10"]


def test_alter_adds_value_columns_to_a_plain_source_only() -> None:
    from mailroom.sql import ast as A

    [stmt] = parse("ALTER STREAM s ADD COLUMN b STRING, ADD c ARRAY<INT>;")
    assert isinstance(stmt, A.AlterSource) and stmt.kind == "STREAM" and stmt.name == "S"
    assert [(c.name, c.type) for c in stmt.columns] == [("B", SqlType.STRING), ("C", SqlType.array(SqlType.INT))]
    rt, ex = _executor()
    ex.execute_script("CREATE STREAM s (k STRING KEY, a INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                      "ALTER STREAM s ADD COLUMN b STRING;"
                      "CREATE STREAM o AS SELECT * FROM s;")
    assert [c.name for c in ex.meta.get("O").value_columns] == ["A", "B"]
    rt.produce("s", b"k", b'{"A": 1, "B": "x"}', 0)
    assert [orjson.loads(r.value) for r in rt.records("O")] == [{"A": 1, "B": "x"}]
    for sql, message in [
        ("ALTER STREAM s ADD a INT;", "Cannot add column `A` to schema. A column with the same name already exists."),
        ("ALTER TABLE s ADD x INT;", "Incompatible data source type is STREAM, but statement was ALTER TABLE"),
        ("ALTER STREAM o ADD x INT;", "ALTER command is not supported for CREATE ... AS statements."),
        ("ALTER STREAM nope ADD x INT;", "Source NOPE does not exist."),
    ]:
        with pytest.raises(SqlError) as err:
            ex.execute_script(sql)
        assert err.value.message == message
    ex.execute_script("CREATE SOURCE STREAM src (k STRING KEY, t STRING) WITH (kafka_topic='s2', value_format='DELIMITED', partitions=1);")
    with pytest.raises(SqlError, match="Cannot alter stream 'SRC': ALTER operations are not supported on source streams."):
        ex.execute_script("ALTER STREAM src ADD COLUMN x INT;")


def test_an_ambiguous_join_column_is_a_preparation_error_with_its_position() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE TABLE l (id BIGINT PRIMARY KEY, f1 BIGINT) WITH (kafka_topic='l', format='JSON', partitions=1);"
                      "CREATE TABLE r (id BIGINT PRIMARY KEY, f2 BIGINT) WITH (kafka_topic='r', format='JSON', partitions=1);")
    with pytest.raises(SqlError) as err:
        ex.execute_script("CREATE TABLE o AS SELECT l.id, f1, f2 FROM l JOIN r ON id = r.id;")
    assert str(err.value) == "Exception while preparing statement: Line: 1, Col: 56: Column 'ID' is ambiguous. Could be L.ID or R.ID."


def test_group_by_over_a_kafka_value_format_is_rejected() -> None:
    _, ex = _executor()
    ex.execute_script("CREATE STREAM s (k STRING KEY, data STRING) WITH (kafka_topic='s', value_format='KAFKA', partitions=1);")
    with pytest.raises(SqlError, match="Source\\(s\\) S are using the 'KAFKA' value format. This format does not yet support GROUP BY."):
        ex.execute_script("CREATE TABLE t WITH (value_format='DELIMITED') AS SELECT data, COUNT(*) FROM s GROUP BY data;")


def test_a_bad_token_after_a_column_type_expects_what_antlr_says() -> None:
    with pytest.raises(SqlSyntaxError) as err:
        parse("CREATE STREAM i (k VARCHAR(STRING) (KEY)) WITH (kafka_topic='i', value_format='JSON');")
    assert str(err.value).startswith("line 1:36: Syntax Error\nExpecting {',', ')'}\n")


def test_declared_map_key_types_are_checked() -> None:
    [stmt] = parse("CREATE STREAM i (k ARRAY<MAP<INT, DOUBLE>> KEY, m MAP<STRING, STRUCT<a MAP<BIGINT, INT>>>) WITH (kafka_topic='i', format='JSON');")
    assert stmt.columns[0].declared == "ARRAY<MAP<INTEGER, DOUBLE>>"
    assert stmt.columns[1].map_keys == (SqlType.STRING, SqlType.BIGINT)
    assert stmt.columns[1].type == SqlType.map(SqlType.struct([("A", SqlType.map(SqlType.INT))]))
    _, ex = _executor()
    with pytest.raises(SqlError, match=r"Map keys, including types that contain maps, are not supported .* Key column name: `K`\. "
                                       r"Column type: ARRAY<MAP<INTEGER, DOUBLE>>\."):
        ex.execute_script("CREATE STREAM i (k ARRAY<MAP<INT, DOUBLE>> KEY, v INT) WITH (kafka_topic='i', format='JSON', partitions=1);")
    with pytest.raises(SqlError, match="JSON only supports MAP types with STRING keys"):
        ex.execute_script("CREATE STREAM j (m MAP<INT, DOUBLE>) WITH (kafka_topic='j', value_format='JSON', partitions=1);")
    ex.execute_script("CREATE TYPE k AS STRING;"
                      "CREATE STREAM ok (m MAP<K, DOUBLE>, n MAP<VARCHAR, INT>) WITH (kafka_topic='ok', value_format='JSON', partitions=1);")
