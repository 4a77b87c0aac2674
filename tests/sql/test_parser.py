"""The SQL parser: statements to exact syntax trees, precedence, literal typing, identifier case,
error positions, variables, and the ksqlDB query-validation-test corpus."""

from __future__ import annotations

import glob
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from mailroom.errors import MailroomError
from mailroom.formats.types import SqlType
from mailroom.sql import ast as A
from mailroom.sql.parser import SqlSyntaxError, parse, parse_expression, split_statements

C = A.ColumnRef
INT, BIGINT, STRING, DOUBLE, BOOLEAN = SqlType.INT, SqlType.BIGINT, SqlType.STRING, SqlType.DOUBLE, SqlType.BOOLEAN


def lit(v, t=None):
    if t is None:
        t = {bool: BOOLEAN, int: INT, str: STRING, float: DOUBLE}.get(type(v))
    return A.Literal(v, t)


def one(sql: str) -> A.Statement:
    stmts = parse(sql)
    assert len(stmts) == 1, stmts
    return stmts[0]


def q(sql: str) -> A.Query:
    stmt = one(sql)
    assert isinstance(stmt, A.QueryStatement)
    return stmt.query


def e(text: str) -> A.Expr:
    return parse_expression(text)


# --- DDL ------------------------------------------------------------------------------------------


def test_create_stream_with_columns() -> None:
    stmt = one(
        "CREATE STREAM pageviews (viewtime BIGINT, `userId` VARCHAR KEY, page_id INTEGER, "
        "amount DECIMAL(10, 2), tags ARRAY<STRING>, attrs MAP<STRING, DOUBLE>, "
        "addr STRUCT<street STRING, `Zip` INT>) "
        "WITH (kafka_topic='pageviews', value_format='JSON', PARTITIONS=4, wrap_single_value=false);"
    )
    assert stmt == A.CreateSource(
        "STREAM",
        "PAGEVIEWS",
        [
            A.ColumnDef("VIEWTIME", BIGINT),
            A.ColumnDef("userId", STRING, key=True),
            A.ColumnDef("PAGE_ID", INT),
            A.ColumnDef("AMOUNT", SqlType.decimal(10, 2)),
            A.ColumnDef("TAGS", SqlType.array(STRING)),
            A.ColumnDef("ATTRS", SqlType.map(DOUBLE)),
            A.ColumnDef("ADDR", SqlType.struct([("STREET", STRING), ("Zip", INT)])),
        ],
        {"KAFKA_TOPIC": "pageviews", "VALUE_FORMAT": "JSON", "PARTITIONS": 4, "WRAP_SINGLE_VALUE": False},
    )
    assert stmt.pos == (1, 1)
    assert stmt.columns[1].pos == (1, 43)


def test_create_table_variants() -> None:
    stmt = one(
        "CREATE OR REPLACE SOURCE TABLE IF NOT EXISTS t (k STRING PRIMARY KEY, "
        "h ARRAY<STRUCT<KEY STRING, VALUE BYTES>> HEADERS, h2 BYTES HEADER('x'), a addr, m MAP<INT, BIGINT>) "
        "WITH ('kafka_topic'='t', format='AVRO');"
    )
    assert stmt == A.CreateSource(
        "TABLE",
        "T",
        [
            A.ColumnDef("K", STRING, primary_key=True),
            A.ColumnDef("H", SqlType.array(SqlType.struct([("KEY", STRING), ("VALUE", SqlType.BYTES)])), headers=True),
            A.ColumnDef("H2", SqlType.BYTES, header_key="x"),
            A.ColumnDef("A", A.TypeRef("ADDR")),
            A.ColumnDef("M", SqlType.map(BIGINT)),
        ],
        {"KAFKA_TOPIC": "t", "FORMAT": "AVRO"},
        or_replace=True,
        if_not_exists=True,
        source=True,
    )


def test_create_without_columns() -> None:
    stmt = one("CREATE STREAM s WITH (kafka_topic='s', format='AVRO');")
    assert stmt == A.CreateSource("STREAM", "S", [], {"KAFKA_TOPIC": "s", "FORMAT": "AVRO"})


def test_create_as_select() -> None:
    stmt = one("CREATE TABLE counts WITH (kafka_topic='c') AS SELECT k, COUNT(*) AS n FROM s GROUP BY k EMIT CHANGES;")
    assert stmt == A.CreateAsSelect(
        "TABLE",
        "COUNTS",
        A.Query(
            [A.SelectItem(C("K")), A.SelectItem(A.FunctionCall("COUNT", [], star=True), "N")],
            A.SourceRef("S"),
            group_by=[C("K")],
            emit="CHANGES",
        ),
        {"KAFKA_TOPIC": "c"},
    )
    stmt = one("CREATE OR REPLACE STREAM IF NOT EXISTS o AS SELECT * FROM s;")
    assert stmt == A.CreateAsSelect(
        "STREAM", "O", A.Query([A.AllColumns()], A.SourceRef("S")), {}, or_replace=True, if_not_exists=True
    )
    assert stmt.query.pos == (1, 45)


def test_create_as_select_rejects_columns() -> None:
    with pytest.raises(SqlSyntaxError):
        parse("CREATE STREAM o (a INT) AS SELECT * FROM s;")


def test_insert_statements() -> None:
    assert one("INSERT INTO out SELECT * FROM s;") == A.InsertInto("OUT", A.Query([A.AllColumns()], A.SourceRef("S")))
    assert one("INSERT INTO out WITH (QUERY_ID='my_q') SELECT a FROM s;") == A.InsertInto(
        "OUT", A.Query([A.SelectItem(C("A"))], A.SourceRef("S")), {"QUERY_ID": "my_q"}
    )
    assert one("INSERT INTO s (a, `b`, ROWTIME) VALUES (1, 'x''y', -2.5);") == A.InsertValues(
        "S", ["A", "b", "ROWTIME"], [lit(1), lit("x'y"), lit(Decimal("-2.5"), SqlType.decimal(2, 1))]
    )
    assert one("INSERT INTO s VALUES (NULL, TRUE, ARRAY[1, 2]);") == A.InsertValues(
        "S", None, [lit(None, None), lit(True), A.ArrayConstructor([lit(1), lit(2)])]
    )


def test_types_statements() -> None:
    stmt = one("CREATE TYPE IF NOT EXISTS address AS STRUCT<number INTEGER, street VARCHAR, tags ARRAY<BOOL>>;")
    assert stmt == A.CreateType(
        "ADDRESS",
        SqlType.struct([("NUMBER", INT), ("STREET", STRING), ("TAGS", SqlType.array(BOOLEAN))]),
        if_not_exists=True,
    )
    assert one("CREATE TYPE money AS DECIMAL(4, 2);") == A.CreateType("MONEY", SqlType.decimal(4, 2))
    assert one("DROP TYPE IF EXISTS address;") == A.DropType("ADDRESS", if_exists=True)
    assert one("DROP TYPE address;") == A.DropType("ADDRESS")
    assert one("CREATE TYPE empty AS STRUCT<>;") == A.CreateType("EMPTY", SqlType.struct([]))
    assert one("SELECT CAST(x AS `MyType`) FROM s;") is not None


def test_drop_and_admin_statements() -> None:
    assert one("DROP STREAM IF EXISTS s DELETE TOPIC;") == A.DropSource("STREAM", "S", if_exists=True, delete_topic=True)
    assert one("DROP TABLE t;") == A.DropSource("TABLE", "T")
    assert one("TERMINATE CSAS_OUT_1;") == A.Terminate("CSAS_OUT_1")
    assert one("TERMINATE ALL;") == A.Terminate(None)
    for kw in ("STREAMS", "TABLES", "TOPICS", "QUERIES", "PROPERTIES", "FUNCTIONS", "TYPES", "VARIABLES"):
        assert one(f"SHOW {kw};") == A.Show(kw)
        assert one(f"list {kw.lower()} extended;") == A.Show(kw, extended=True)
    assert one("DESCRIBE s;") == A.Describe("S")
    assert one("DESCRIBE `s` EXTENDED;") == A.Describe("s", extended=True)
    assert one("DESCRIBE STREAMS EXTENDED;") == A.Describe(None, extended=True, what="STREAMS")
    assert one("DESCRIBE TABLES;") == A.Describe(None, what="TABLES")
    assert one("DESCRIBE FUNCTION concat;") == A.DescribeFunction("CONCAT")
    assert one("EXPLAIN CSAS_OUT_1;") == A.Explain(query_id="CSAS_OUT_1")
    explain = one("EXPLAIN SELECT * FROM s;")
    assert explain == A.Explain(statement=A.QueryStatement(A.Query([A.AllColumns()], A.SourceRef("S"))))
    assert explain.statement.text == "SELECT * FROM s;"
    assert one("SET 'auto.offset.reset'='earliest';") == A.SetProperty("auto.offset.reset", "earliest")
    assert one("UNSET 'auto.offset.reset';") == A.UnsetProperty("auto.offset.reset")
    assert one("DEFINE topic = 'orders';") == A.DefineVariable("topic", "orders")
    assert one("UNDEFINE topic;") == A.UndefineVariable("topic")
    assert one("PRINT 'MyTopic' FROM BEGINNING INTERVAL 2 LIMIT 10;") == A.PrintTopic(
        "MyTopic", from_beginning=True, interval=2, limit=10
    )
    assert one("PRINT myTopic;") == A.PrintTopic("myTopic")
    assert one("RUN SCRIPT '/tmp/x.sql';") == A.RunScript("/tmp/x.sql")


# --- queries --------------------------------------------------------------------------------------


def test_select_items_and_aliases() -> None:
    query = q("SELECT *, s.*, a, b AS x, c y, `d` AS `Lower`, KEY, VALUE, TIMESTAMP, SIZE FROM src s;")
    assert query.select == [
        A.AllColumns(),
        A.AllColumns("S"),
        A.SelectItem(C("A")),
        A.SelectItem(C("B"), "X"),
        A.SelectItem(C("C"), "Y"),
        A.SelectItem(C("d"), "Lower"),
        A.SelectItem(C("KEY")),
        A.SelectItem(C("VALUE")),
        A.SelectItem(C("TIMESTAMP")),
        A.SelectItem(C("SIZE")),
    ]
    assert query.from_ == A.SourceRef("SRC", "S")
    assert q("SELECT a FROM src AS s;").from_ == A.SourceRef("SRC", "S")


def test_n_way_join_with_within_and_grace() -> None:
    query = q(
        "SELECT * FROM a LEFT OUTER JOIN b WITHIN (1 SECOND, 2 HOURS) GRACE PERIOD 3 DAYS ON a.x = b.x "
        "FULL JOIN c ON a.x = c.x INNER JOIN d WITHIN 10 MILLISECONDS ON a.x = d.x "
        "RIGHT JOIN e ON e.x = a.x JOIN f ON f.x = a.x;"
    )
    on = lambda r: A.BinaryOp("=", C("X", "A"), C("X", r))  # noqa: E731
    j = A.Join(
        A.SourceRef("A"), A.SourceRef("B"), "LEFT", on("B"), A.WithinClause(1_000, 7_200_000, 259_200_000)
    )
    j = A.Join(j, A.SourceRef("C"), "FULL", on("C"))
    j = A.Join(j, A.SourceRef("D"), "INNER", on("D"), A.WithinClause(10, 10))
    j = A.Join(j, A.SourceRef("E"), "RIGHT", A.BinaryOp("=", C("X", "E"), C("X", "A")))
    j = A.Join(j, A.SourceRef("F"), "INNER", A.BinaryOp("=", C("X", "F"), C("X", "A")))
    assert query.from_ == j


def test_query_clauses() -> None:
    query = q(
        "SELECT k, SUM(v) FROM s WINDOW TUMBLING (SIZE 1 MINUTE, RETENTION 2 DAYS, GRACE PERIOD 10 SECONDS) "
        "WHERE v > 0 GROUP BY k HAVING SUM(v) > 10 EMIT FINAL LIMIT 5;"
    )
    assert query.window == A.WindowSpec("TUMBLING", 60_000, retention_ms=172_800_000, grace_ms=10_000)
    assert query.where == A.BinaryOp(">", C("V"), lit(0))
    assert query.group_by == [C("K")]
    assert query.having == A.BinaryOp(">", A.FunctionCall("SUM", [C("V")]), lit(10))
    assert query.emit == "FINAL" and query.limit == 5
    hop = q("SELECT k FROM s WINDOW HOPPING (SIZE 30 SECONDS, ADVANCE BY 10 SECONDS) GROUP BY (k, j);")
    assert hop.window == A.WindowSpec("HOPPING", 30_000, advance_ms=10_000)
    assert hop.group_by == [C("K"), C("J")]
    ses = q("SELECT k FROM s WINDOW SESSION (5 MINUTES, GRACE PERIOD 0 SECONDS) GROUP BY k;")
    assert ses.window == A.WindowSpec("SESSION", 300_000, grace_ms=0)
    part = q("SELECT * FROM s WHERE a IS NOT NULL PARTITION BY a, b->c EMIT CHANGES;")
    assert part.partition_by == [C("A"), A.Dereference(C("B"), "C")]
    assert q("SELECT * FROM s PARTITION BY ();").partition_by == []


def test_query_clause_errors() -> None:
    for bad in (
        "SELECT * FROM s WHERE a WHERE b;",
        "SELECT * FROM s WINDOW HOPPING (SIZE 1 SECOND);",
        "SELECT * FROM s WINDOW TUMBLING (ADVANCE BY 1 SECOND);",
        "SELECT * FROM s WINDOW SESSION (SIZE 1 SECOND);",
        "SELECT * FROM s GROUP BY a AND b;",
        "SELECT * FROM s GROUP BY a, (b, c);",
        "SELECT * FROM s WITHIN 1 SECOND;",
    ):
        with pytest.raises(SqlSyntaxError):
            parse(bad)


# --- expressions ----------------------------------------------------------------------------------


def test_precedence() -> None:
    assert e("a OR b AND NOT c") == A.BinaryOp("OR", C("A"), A.BinaryOp("AND", C("B"), A.UnaryOp("NOT", C("C"))))
    assert e("NOT a = b") == A.UnaryOp("NOT", A.BinaryOp("=", C("A"), C("B")))
    assert e("a + b * c - d") == A.BinaryOp(
        "-", A.BinaryOp("+", C("A"), A.BinaryOp("*", C("B"), C("C"))), C("D")
    )
    assert e("a || b + c") == A.BinaryOp("||", C("A"), A.BinaryOp("+", C("B"), C("C")))
    assert e("a || b = c") == A.BinaryOp("=", A.BinaryOp("||", C("A"), C("B")), C("C"))
    assert e("-a * b % c") == A.BinaryOp("%", A.BinaryOp("*", A.UnaryOp("-", C("A")), C("B")), C("C"))
    assert e("(a + b) * c") == A.BinaryOp("*", A.BinaryOp("+", C("A"), C("B")), C("C"))
    assert e("a - -1") == A.BinaryOp("-", C("A"), lit(-1))
    assert e("a / b / c") == A.BinaryOp("/", A.BinaryOp("/", C("A"), C("B")), C("C"))
    assert e("x BETWEEN 1 AND 2 AND y") == A.BinaryOp("AND", A.Between(C("X"), lit(1), lit(2)), C("Y"))
    assert e("a->b[1]->c") == A.Dereference(A.Subscript(A.Dereference(C("A"), "B"), lit(1)), "C")
    assert e("-m['k']") == A.UnaryOp("-", A.Subscript(C("M"), lit("k")))
    assert e("a != b") == A.BinaryOp("<>", C("A"), C("B"))
    for op in ("=", "<>", "<", "<=", ">", ">="):
        assert e(f"a {op} b + 1") == A.BinaryOp(op, C("A"), A.BinaryOp("+", C("B"), lit(1)))


def test_predicates() -> None:
    assert e("a IS NULL") == A.IsNull(C("A"))
    assert e("a IS NOT NULL") == A.IsNull(C("A"), negated=True)
    assert e("a IS DISTINCT FROM b") == A.IsDistinctFrom(C("A"), C("B"))
    assert e("a IS NOT DISTINCT FROM b") == A.IsDistinctFrom(C("A"), C("B"), negated=True)
    assert e("a LIKE 'x%'") == A.Like(C("A"), lit("x%"))
    assert e("a NOT LIKE 'x!%' ESCAPE '!'") == A.Like(C("A"), lit("x!%"), "!", negated=True)
    assert e("a NOT BETWEEN 1 AND b + 1") == A.Between(
        C("A"), lit(1), A.BinaryOp("+", C("B"), lit(1)), negated=True
    )
    assert e("a IN (1, 2)") == A.InList(C("A"), [lit(1), lit(2)])
    assert e("a NOT IN ('x')") == A.InList(C("A"), [lit("x")], negated=True)


def test_compound_expressions() -> None:
    assert e("CASE WHEN a > 1 THEN 'x' WHEN a > 0 THEN 'y' ELSE 'z' END") == A.Case(
        None, [(A.BinaryOp(">", C("A"), lit(1)), lit("x")), (A.BinaryOp(">", C("A"), lit(0)), lit("y"))], lit("z")
    )
    assert e("CASE a WHEN 1 THEN 'one' END") == A.Case(C("A"), [(lit(1), lit("one"))])
    assert e("CAST(a AS DECIMAL(5, 2))") == A.Cast(C("A"), SqlType.decimal(5, 2))
    assert e("CAST(a AS ARRAY<MAP<STRING, INT>>)") == A.Cast(C("A"), SqlType.array(SqlType.map(INT)))
    assert e("CAST(a AS address)") == A.Cast(C("A"), A.TypeRef("ADDRESS"))
    assert e("ARRAY[1, a]") == A.ArrayConstructor([lit(1), C("A")])
    assert e("ARRAY[]") == A.ArrayConstructor([])
    assert e("MAP('a' := 1, 'b' := x)") == A.MapConstructor([(lit("a"), lit(1)), (lit("b"), C("X"))])
    assert e("STRUCT(name := 'n', `Age` := 3)") == A.StructConstructor([("NAME", lit("n")), ("Age", lit(3))])
    assert e("STRUCT()") == A.StructConstructor([])
    assert e("COUNT(*)") == A.FunctionCall("COUNT", [], star=True)
    assert e("count(DISTINCT x)") == A.FunctionCall("COUNT", [C("X")], distinct=True)
    assert e("now()") == A.FunctionCall("NOW", [])
    assert e("TRANSFORM(arr, x => x + 1)") == A.FunctionCall(
        "TRANSFORM", [C("ARR"), A.Lambda(["X"], A.BinaryOp("+", C("X"), lit(1)))]
    )
    assert e("REDUCE(arr, 0, (s, x) => s + x)") == A.FunctionCall(
        "REDUCE", [C("ARR"), lit(0), A.Lambda(["S", "X"], A.BinaryOp("+", C("S"), C("X")))]
    )
    assert e("TIMESTAMPADD(SECONDS, 5, ts)") == A.FunctionCall(
        "TIMESTAMPADD", [A.IntervalUnit("SECONDS"), lit(5), C("TS")]
    )
    assert e("f(`SECONDS`, t.DAY)") == A.FunctionCall("F", [C("SECONDS"), C("DAY", "T")])
    assert e("s.col") == C("COL", "S")
    assert e("map[1] + array") == A.BinaryOp("+", A.Subscript(C("MAP"), lit(1)), C("ARRAY"))


def test_literal_typing() -> None:
    assert e("2147483647") == lit(2147483647, INT)
    assert e("2147483648") == lit(2147483648, BIGINT)
    assert e("-2147483648") == lit(-2147483648, INT)
    assert e("-2147483649") == lit(-2147483649, BIGINT)
    assert e("9223372036854775807") == lit(9223372036854775807, BIGINT)
    assert e("-9223372036854775808") == lit(-9223372036854775808, BIGINT)
    assert e("1.5") == lit(Decimal("1.5"), SqlType.decimal(2, 1))
    assert e("12.50") == lit(Decimal("12.50"), SqlType.decimal(4, 2))
    assert e("0.5") == lit(Decimal("0.5"), SqlType.decimal(2, 1))
    assert e("0.005") == lit(Decimal("0.005"), SqlType.decimal(4, 3))
    assert e(".25") == lit(Decimal(".25"), SqlType.decimal(3, 2))
    assert e("10.") == lit(Decimal("10"), SqlType.decimal(2, 0))
    assert e("1.5E2") == lit(150.0, DOUBLE)
    assert e("-1e-3") == lit(-0.001, DOUBLE)
    assert e("'it''s'") == lit("it's", STRING)
    assert e("TRUE") == lit(True) and e("false") == lit(False) and e("NULL") == lit(None, None)
    assert type(e("1.5").value) is Decimal
    for bad in ("9223372036854775808", "-9223372036854775809", "1.7976931348623159E308"):
        with pytest.raises(SqlSyntaxError):
            e(bad)


def test_identifier_case_rules() -> None:
    assert e("abc") == C("ABC")
    assert e("`abc`") == C("abc")
    assert e('"MiXed"') == C("MiXed")
    assert e("`a``b`") == C("a`b")
    assert e("`s`.`c`") == C("c", "s")
    assert e("s.`c`") == C("c", "S")
    assert e("x->`f`->g") == A.Dereference(A.Dereference(C("X"), "f"), "G")
    assert e("abs(x)") == A.FunctionCall("ABS", [C("X")])
    stmt = one("select `k`, v from `Src` where v = 'Keep Case';")
    assert stmt.query.select == [A.SelectItem(C("k")), A.SelectItem(C("V"))]
    assert stmt.query.from_ == A.SourceRef("Src")
    assert stmt.query.where == A.BinaryOp("=", C("V"), lit("Keep Case"))


def test_positions() -> None:
    expr = e("a +\n  b * 2")
    assert expr.pos == (1, 1)
    assert expr.right.pos == (2, 3)
    assert expr.right.right.pos == (2, 7)
    stmts = parse("SELECT a\nFROM s;\n\n  -- a comment\n  DROP STREAM s;")
    assert [s.pos for s in stmts] == [(1, 1), (5, 3)]
    assert stmts[0].query.from_.pos == (2, 6)


def test_statement_text_and_comments() -> None:
    script = (
        "-- leading comment\n"
        "CREATE STREAM s (a INT) WITH (kafka_topic='s;x', value_format='JSON'); /* block; comment */\n"
        "SELECT a FROM s -- trailing\n"
        "  EMIT CHANGES;\n"
        "SHOW STREAMS"
    )
    stmts = parse(script)
    assert [type(s) for s in stmts] == [A.CreateSource, A.QueryStatement, A.Show]
    assert stmts[0].text == "CREATE STREAM s (a INT) WITH (kafka_topic='s;x', value_format='JSON');"
    assert stmts[1].text == "SELECT a FROM s -- trailing\n  EMIT CHANGES;"
    assert stmts[2].text == "SHOW STREAMS"
    assert parse("") == [] and parse(" ;; -- nothing\n") == []


def test_variables() -> None:
    stmts = parse("SELECT * FROM ${src} WHERE a = '${val}';", {"src": "orders", "VAL": "x"})
    assert stmts[0].query.from_ == A.SourceRef("ORDERS")
    assert stmts[0].query.where == A.BinaryOp("=", C("A"), lit("x"))
    script = "DEFINE topic = 'orders';\nCREATE STREAM s WITH (kafka_topic='${topic}');\nUNDEFINE topic;"
    stmts = parse(script)
    assert stmts[1].props == {"KAFKA_TOPIC": "orders"}
    assert stmts[1].pos == (2, 1) and stmts[2].pos == (3, 1)
    assert split_statements("a ';'; b `;`; -- ;\n c") == [(0, "a ';';"), (6, " b `;`;"), (13, " -- ;\n c")]


def test_keywords_as_identifiers() -> None:
    stmt = one(
        "CREATE STREAM source (key INT KEY, value STRING, type STRING, size INT, emit INT, source INT, "
        "date DATE, time TIME, timestamp TIMESTAMP) WITH (kafka_topic='s', timestamp='timestamp');"
    )
    assert stmt.name == "SOURCE"
    assert [c.name for c in stmt.columns] == [
        "KEY", "VALUE", "TYPE", "SIZE", "EMIT", "SOURCE", "DATE", "TIME", "TIMESTAMP"
    ]  # fmt: skip
    assert [c.type for c in stmt.columns][-3:] == [SqlType.DATE, SqlType.TIME, SqlType.TIMESTAMP]
    assert stmt.props == {"KAFKA_TOPIC": "s", "TIMESTAMP": "timestamp"}
    assert e("REPLACE(key, 'a', type)") == A.FunctionCall("REPLACE", [C("KEY"), lit("a"), C("TYPE")])
    assert e("FILTER(map, (k, v) => v > size)") == A.FunctionCall(
        "FILTER", [C("MAP"), A.Lambda(["K", "V"], A.BinaryOp(">", C("V"), C("SIZE")))]
    )
    assert one("SELECT `FROM`, `select` AS `where` FROM `TABLE`;").query.select == [
        A.SelectItem(C("FROM")),
        A.SelectItem(C("select"), "where"),
    ]
    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT a, FROM s;")  # reserved words are not identifiers
    assert (info.value.line, info.value.column) == (1, 11)
    with pytest.raises(SqlSyntaxError):
        parse("CREATE STREAM s (select INT);")


# --- errors ---------------------------------------------------------------------------------------


def test_errors_have_line_column_and_ksql_like_message() -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT * FORM s;")
    err = info.value
    assert isinstance(err, MailroomError)
    assert (err.line, err.column) == (1, 10)
    assert str(err).startswith("line 1:10: Syntax Error\nExpecting {")
    assert "'FROM'" in str(err) and "','" in str(err)
    assert "Statement: SELECT * FORM s;" in str(err) and "Found: 'FORM'" in str(err)

    with pytest.raises(SqlSyntaxError) as info:
        parse("CREATE STREAM s (a INT) WITH (kafka_topic='s');\nSELECT a,\n  FROM s;")
    assert (info.value.line, info.value.column) == (3, 3)
    assert "Found: 'FROM'" in str(info.value) and "IDENTIFIER" in str(info.value)

    with pytest.raises(SqlSyntaxError) as info:
        parse("CREATE STREAM INPUT (K STRING (KEY)) WITH (kafka_topic='input',value_format='JSON');")
    assert (info.value.line, info.value.column) == (1, 32)  # where ksqlDB reports it too

    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT a FROM")
    assert "'<EOF>'" in str(info.value) and info.value.line == 1

    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT 'abc FROM s;")
    assert (info.value.line, info.value.column) == (1, 8)

    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT a # b FROM s;")
    assert (info.value.line, info.value.column) == (1, 10) and "'#'" in str(info.value)

    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT * FROM ${undefined};")
    assert "undefined" in str(info.value) and info.value.column == 15

    with pytest.raises(SqlSyntaxError) as info:
        parse("SELECT * FROM s GROUP BY f3, (f2, f1);")
    assert (info.value.line, info.value.column) == (1, 33)  # the ',' (ksqlDB: "missing ')' at ','")


# --- the ksqlDB query-validation-test corpus ------------------------------------------------------

QTT = Path("/work/shared/qtt/query-validation-tests")


def _strip_json_comments(s: str) -> str:
    out, i, n, in_str = [], 0, len(s), False
    while i < n:
        c = s[i]
        if in_str:
            out.append(c)
            if c == "\\":
                out.append(s[i + 1])
                i += 2
                continue
            in_str = c != '"'
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif s.startswith("//", i):
            j = s.find("\n", i)
            i = n if j < 0 else j
        elif s.startswith("/*", i):
            i = s.find("*/", i) + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _is_syntax_error(exc: dict | None) -> bool:
    if not exc:
        return False
    return "ParseFailedException" in exc.get("type", "") or "syntax" in exc.get("message", "").lower()


def test_qtt_corpus() -> None:
    assert QTT.is_dir(), f"ksqlDB's conformance cases are expected in {QTT} (../shared/qtt beside the checkout)"
    total, failures, syntax_cases = 0, [], 0
    started = time.perf_counter()
    for path in sorted(glob.glob(str(QTT / "*.json"))):
        doc = json.loads(_strip_json_comments(Path(path).read_text()))
        for case in doc.get("tests", []):
            expect_syntax_error = _is_syntax_error(case.get("expectedException"))
            for sql in case.get("statements", []):
                if expect_syntax_error:
                    syntax_cases += 1
                    try:
                        parse(sql)
                    except SqlSyntaxError:
                        pass
                    continue
                total += 1
                try:
                    parse(sql)
                except SqlSyntaxError as err:
                    failures.append(f"{Path(path).name}: {case['name']}: {sql}\n    {err}")
    elapsed = time.perf_counter() - started
    rate = (total - len(failures)) / total
    print(f"\nQTT corpus: {total - len(failures)}/{total} parsed ({rate:.2%}) in {elapsed:.2f}s; "
          f"{syntax_cases} statements of expected-syntax-error cases skipped")
    for f in failures:
        print(f)
    assert total > 2000
    assert rate >= 0.995, "\n".join(failures)


def test_grammar_is_lalr_and_fast_enough() -> None:
    from mailroom.sql.parser import _parser

    assert _parser().options.parser == "lalr"
    script = "CREATE STREAM o AS SELECT a, b->c, CASE WHEN x > 1 THEN 'y' END AS z FROM s WHERE a IN (1, 2);\n" * 200
    started = time.perf_counter()
    assert len(parse(script)) == 200
    assert time.perf_counter() - started < 5.0
