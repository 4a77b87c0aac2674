"""Materialized views for pull queries: caught up incrementally, key lookups by key bytes."""

from __future__ import annotations

import orjson

from mailroom.log import open_log
from mailroom.sql import ast as A
from mailroom.sql.parser import parse
from mailroom.sql.transient import _lookup_keys, run_pull
from mailroom.sql.views import TableView, key_literals


def produce(log, rows: list[tuple[bytes, bytes | None]]) -> None:
    with log.producer() as p:
        p.send_batch("t", [v for _, v in rows], [k for k, _ in rows])
        p.flush()


def test_view_catches_up_incrementally_and_applies_tombstones(tmp_path) -> None:
    with open_log(f"embedded:{tmp_path}") as log:
        log.create_topic("t", partitions=3)
        produce(log, [(b"a", b"1"), (b"b", b"1"), (b"c", b"1")])
        view = TableView(log, "t")
        assert view.refresh() == 3
        produce(log, [(b"a", b"2"), (b"b", None)])
        assert view.refresh() == 2  # only what was appended since
        assert view.refresh() == 0
        rows = {r[3]: r[4] for r in view.rows()}
        assert rows == {b"a": b"2", b"c": b"1"}
        assert [r[4] for r in view.rows([b"a", b"zz"])] == [b"2"]
        # a deleted and re-created topic starts the view afresh
        log.delete_topic("t")
        log.create_topic("t", partitions=3)
        produce(log, [(b"x", b"9")])
        view.refresh()
        assert {r[3]: r[4] for r in view.rows()} == {b"x": b"9"}


def where(sql: str) -> A.Expr:
    return parse(f"SELECT * FROM T WHERE {sql};")[0].query.where


def test_key_literals_of_where_clauses() -> None:
    assert [lit.value for lit in key_literals(where("K = 'a'"), "K")] == ["a"]
    assert [lit.value for lit in key_literals(where("'a' = K AND N > 1"), "K")] == ["a"]
    assert [lit.value for lit in key_literals(where("N > 1 AND K IN ('a', 'b')"), "K")] == ["a", "b"]
    assert key_literals(where("K = 'a' OR K = 'b'"), "K") is None  # not pinned by one conjunct
    assert key_literals(where("K NOT IN ('a')"), "K") is None
    assert key_literals(where("N = 1"), "K") is None


def test_pull_queries_through_views_match_a_full_read(tmp_path) -> None:
    from mailroom.server import KsqlServer

    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    try:
        srv.log.create_topic("events", partitions=2)
        srv.executor.execute_script("CREATE TABLE T (ID STRING PRIMARY KEY, N INT, NAME STRING) "
                                    "WITH (kafka_topic='events', value_format='JSON');")
        with srv.log.producer() as p:
            p.send_batch("events", [orjson.dumps({"N": i, "NAME": f"n{i % 7}"}) for i in range(500)],
                         [f"id{i % 100}".encode() for i in range(500)])
            p.flush()
        def pull(sql: str, views=srv.views):
            q = parse(sql)[0].query
            return sorted(map(tuple, (cols for cols, _ in run_pull(srv.executor, q, srv.log, views)[1])))

        full = pull("SELECT * FROM T;", None)
        assert len(full) == 100 and ("id7", 407, "n1") in full
        assert pull("SELECT * FROM T;") == full
        assert pull("SELECT * FROM T WHERE ID = 'id7';") == [("id7", 407, "n1")]
        src = srv.executor.meta.find("T")  # the lookup goes by key bytes, not through a scan
        assert _lookup_keys(src, parse("SELECT * FROM T WHERE ID = 'id7';")[0].query) == [b"id7"]
        assert _lookup_keys(src, parse("SELECT * FROM T WHERE ID = 7;")[0].query) is None
        assert pull("SELECT ID, N FROM T WHERE ID IN ('id7', 'id8', 'nope') AND N > 407;") == [("id8", 408)]
        assert pull("SELECT * FROM T WHERE NAME = 'n1';") == pull("SELECT * FROM T WHERE NAME = 'n1';", None)
        with srv.log.producer() as p:
            p.send_batch("events", [orjson.dumps({"N": -1, "NAME": "new"}), None], [b"id7", b"id8"])
            p.flush()
        assert pull("SELECT * FROM T WHERE ID IN ('id7', 'id8');") == [("id7", -1, "new")]
    finally:
        srv.close()
