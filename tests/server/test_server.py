"""`mailroom server`: the REST API in-process (FastAPI's TestClient) on an embedded log in a tmp
dir, plus one real uvicorn server on a free port for the client-disconnect and CLI paths."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from mailroom.server import KsqlServer, create_app

EARLIEST = {"auto.offset.reset": "earliest"}
CREATE_S = "CREATE STREAM S (K STRING KEY, N INT, NAME STRING) WITH (kafka_topic='s', value_format='JSON', partitions=1);"


@pytest.fixture
def server(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    yield srv


@pytest.fixture
def client(server):
    with TestClient(create_app(server)) as c:
        yield c


def ksql(client, text, status=200):
    r = client.post("/ksql", json={"ksql": text, "streamsProperties": {}})
    assert r.status_code == status, r.text
    return r.json()


def query_lines(client, path, body, headers=None):
    with client.stream("POST", path, json=body, headers=headers or {}) as r:
        assert r.status_code == 200, r.read()
        return r.status_code, r.headers.get("content-type", ""), r.read().decode()


def test_create_stream_returns_current_status(client):
    [ent] = ksql(client, CREATE_S)
    assert ent["@type"] == "currentStatus"
    assert ent["commandId"] == "stream/`S`/create"
    assert ent["commandStatus"] == {"status": "SUCCESS", "message": "Stream created", "queryId": None}
    assert ent["statementText"] == CREATE_S


def test_insert_values_show_streams_and_describe(client):
    ksql(client, CREATE_S)
    ents = ksql(client, "INSERT INTO S (K, N, NAME) VALUES ('a', 1, 'x'); SHOW STREAMS; DESCRIBE S;")
    assert [e["@type"] for e in ents] == ["streams", "sourceDescription"]  # INSERT VALUES: no entity
    assert ents[0]["streams"] == [{"type": "STREAM", "name": "S", "topic": "s", "keyFormat": "KAFKA",
                                   "valueFormat": "JSON", "isWindowed": False}]
    d = ents[1]["sourceDescription"]
    assert d["name"] == "S" and d["type"] == "STREAM" and d["topic"] == "s"
    assert d["fields"][0] == {"name": "K", "schema": {"type": "STRING", "fields": None, "memberSchema": None}, "type": "KEY"}
    assert d["fields"][1]["name"] == "N" and d["fields"][1]["schema"]["type"] == "INTEGER"
    assert "type" not in d["fields"][1]


def test_show_tables_and_queries_after_ctas(client):
    ksql(client, CREATE_S)
    [ent] = ksql(client, "CREATE TABLE C AS SELECT K, COUNT(*) AS CNT FROM S GROUP BY K;")
    qid = ent["commandStatus"]["queryId"]
    assert qid and qid.startswith("CTAS_C")
    [tables, queries] = ksql(client, "SHOW TABLES; SHOW QUERIES;")
    assert [t["name"] for t in tables["tables"]] == ["C"]
    assert [q["id"] for q in queries["queries"]] == [qid]
    assert queries["queries"][0]["state"] == "RUNNING"


def test_statement_error_shape(client):
    ksql(client, CREATE_S)
    body = ksql(client, "SHOW STREAMS; CREATE STREAM X AS SELECT * FROM NOPE;", status=400)
    assert body["@type"] == "statement_error"
    assert body["error_code"] == 40001
    assert "NOPE does not exist" in body["message"]
    assert body["statementText"] == "CREATE STREAM X AS SELECT * FROM NOPE;"
    assert [e["@type"] for e in body["entities"]] == ["streams"]  # what ran before the failure


def test_syntax_error_and_select_on_ksql_endpoint(client):
    body = ksql(client, "CREATE STREM X;", status=400)
    assert body["@type"] == "statement_error" and body["message"]
    body = ksql(client, "SELECT * FROM S EMIT CHANGES;", status=400)
    assert "/query" in body["message"]


def test_bad_json_is_generic_error(client):
    r = client.post("/ksql", content=b"{not json")
    assert r.status_code == 400
    assert r.json()["@type"] == "generic_error"


def test_push_query_with_limit_returns_inserted_rows(client):
    ksql(client, CREATE_S)
    ksql(client, "INSERT INTO S (K, N, NAME) VALUES ('a', 1, 'x'); INSERT INTO S (K, N, NAME) VALUES ('b', 2, 'y');")
    _, ctype, text = query_lines(client, "/query", {"ksql": "SELECT K, N FROM S EMIT CHANGES LIMIT 2;",
                                                    "streamsProperties": EARLIEST})
    assert ctype.startswith("application/json")
    msgs = json.loads(text)
    assert msgs[0]["header"]["schema"] == "`K` STRING, `N` INTEGER"
    assert msgs[0]["header"]["queryId"].startswith("transient_S_")
    assert msgs[1:] == [{"row": {"columns": ["a", 1]}}, {"row": {"columns": ["b", 2]}}, {"finalMessage": "Limit Reached"}]
    assert text.count("\n") >= 3  # one message per line, as ksqlDB writes them


def test_push_query_sees_rows_inserted_while_it_runs(client, server):
    ksql(client, CREATE_S)

    def insert_later():
        time.sleep(0.5)
        server.run_ksql("INSERT INTO S (K, N, NAME) VALUES ('late', 7, 'z');")

    t = threading.Thread(target=insert_later)
    t.start()
    _, _, text = query_lines(client, "/query", {"ksql": "SELECT * FROM S EMIT CHANGES LIMIT 1;"})  # latest
    t.join()
    msgs = json.loads(text)
    assert msgs[1] == {"row": {"columns": ["late", 7, "z"]}}
    deadline = time.monotonic() + 5
    while server.push_queries and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.push_queries == {}  # LIMIT stopped the query


def test_query_stream_delimited_and_json(client):
    ksql(client, CREATE_S)
    ksql(client, "INSERT INTO S (K, N, NAME) VALUES ('a', 1, 'x'); INSERT INTO S (K, N, NAME) VALUES ('b', 2, 'y');")
    body = {"sql": "SELECT K, N * 10 AS TEN FROM S EMIT CHANGES LIMIT 2;", "properties": EARLIEST}
    _, ctype, text = query_lines(client, "/query-stream", body, {"Accept": "application/vnd.ksqlapi.delimited.v1"})
    assert ctype.startswith("application/vnd.ksqlapi.delimited.v1")
    lines = text.strip().split("\n")
    head = json.loads(lines[0])
    assert head["columnNames"] == ["K", "TEN"] and head["columnTypes"] == ["STRING", "INTEGER"]
    assert head["queryId"]
    assert [json.loads(x) for x in lines[1:]] == [["a", 10], ["b", 20]]
    _, ctype, text = query_lines(client, "/query-stream", body, {"Accept": "application/json"})
    arr = json.loads(text)
    assert arr[0]["columnNames"] == ["K", "TEN"] and arr[1:] == [["a", 10], ["b", 20]]


def test_close_query_stops_a_push_query(client, server):
    ksql(client, CREATE_S)
    got: dict = {}

    def consume():
        with client.stream("POST", "/query-stream", json={"sql": "SELECT * FROM S EMIT CHANGES;"}) as r:
            got["lines"] = [line for line in r.iter_lines() if line]

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 10
    while not server.push_queries and time.monotonic() < deadline:
        time.sleep(0.05)
    [qid] = list(server.push_queries)
    r = client.post("/close-query", json={"queryId": qid})
    assert r.status_code == 200
    t.join(10)
    assert not t.is_alive()
    assert json.loads(got["lines"][0])["queryId"] == qid
    assert client.post("/close-query", json={"queryId": "nope"}).status_code == 400


def test_pull_query_on_materialized_table(client):
    ksql(client, CREATE_S)
    ksql(client, "CREATE TABLE C AS SELECT K, COUNT(*) AS CNT FROM S GROUP BY K;")
    ksql(client, "INSERT INTO S (K, N, NAME) VALUES ('a', 1, 'x'); INSERT INTO S (K, N, NAME) VALUES ('a', 2, 'y');"
                 "INSERT INTO S (K, N, NAME) VALUES ('b', 3, 'z');")
    deadline = time.monotonic() + 10
    while True:
        r = client.post("/query", json={"ksql": "SELECT * FROM C WHERE K = 'a';"})
        assert r.status_code == 200, r.text
        msgs = json.loads(r.text)
        if msgs[1:] == [{"row": {"columns": ["a", 2]}}] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # as ksqlDB answers a pull query on a table: key columns marked KEY, no final message
    assert msgs[0]["header"]["schema"] == "`K` STRING KEY, `CNT` BIGINT"
    assert msgs[1:] == [{"row": {"columns": ["a", 2]}}]


def test_pull_query_on_stream_has_final_message(client):
    ksql(client, CREATE_S)
    ksql(client, "INSERT INTO S (K, N, NAME) VALUES ('a', 1, 'x'); INSERT INTO S (K, N, NAME) VALUES ('b', 2, 'y');")
    msgs = json.loads(client.post("/query", json={"ksql": "SELECT K, N FROM S WHERE N > 1;"}).text)
    assert msgs[0]["header"]["schema"] == "`K` STRING, `N` INTEGER"
    assert msgs[1:] == [{"row": {"columns": ["b", 2]}}, {"finalMessage": "Query Completed"}]
    msgs = json.loads(client.post("/query", json={"ksql": "SELECT K FROM S LIMIT 1;"}).text)
    assert msgs[1:] == [{"row": {"columns": ["a"]}}, {"finalMessage": "Limit Reached"}]


def test_pull_query_error(client):
    ksql(client, CREATE_S)
    r = client.post("/query", json={"ksql": "SELECT K, COUNT(*) FROM S GROUP BY K;"})
    assert r.status_code == 400
    assert r.json()["@type"] == "statement_error"
    assert "Pull queries don't support GROUP BY" in r.json()["message"]


def test_inserts_stream(client):
    ksql(client, CREATE_S)
    rows = [{"K": "a", "N": 1, "NAME": "x"}, {"k": "b", "n": 2}, {"K": "c", "N": "not a number"}]
    body = "\n".join(json.dumps(x) for x in [{"target": "S"}, *rows]) + "\n"
    r = client.post("/inserts-stream", content=body.encode())
    assert r.status_code == 200
    acks = [json.loads(x) for x in r.text.strip().split("\n")]
    assert acks[0] == {"status": "ok", "seq": 0} and acks[1] == {"status": "ok", "seq": 1}
    assert acks[2]["status"] == "error" and acks[2]["seq"] == 2
    _, _, text = query_lines(client, "/query", {"ksql": "SELECT * FROM S EMIT CHANGES LIMIT 2;", "streamsProperties": EARLIEST})
    assert [m["row"]["columns"] for m in json.loads(text)[1:3]] == [["a", 1, "x"], ["b", 2, None]]
    r = client.post("/inserts-stream", content=b'{"target": "NOPE"}\n{"K": "a"}\n')
    assert r.status_code == 400 and "NOPE" in r.json()["message"]


def test_info_healthcheck_status_metrics(client):
    info = client.get("/info").json()["KsqlServerInfo"]
    assert info["serverStatus"] == "RUNNING" and info["ksqlServiceId"] == "default_"
    assert info["version"] and info["kafkaClusterId"]
    h = client.get("/healthcheck").json()
    assert h["isHealthy"] is True and h["details"]["kafka"]["isHealthy"] is True
    ksql(client, CREATE_S)
    assert client.get("/status").json()["commandStatuses"] == {"stream/`S`/create": "SUCCESS"}
    assert client.get("/status/stream/`S`/create").json()["status"] == "SUCCESS"
    m = client.get("/metrics")
    assert m.status_code == 200
    assert 'mailroom_http_requests_total{method="POST",path="/ksql",status="200"} 1.0' in m.text
    assert 'mailroom_statements_total{result="ok"} 1.0' in m.text


def test_slow_client_is_disconnected(tmp_path):
    """A client that does not read while rows pile up past the server's buffer is cut off (the
    response ends with an error message) and its query stopped; others are not slowed."""
    import asyncio

    from mailroom.server.app import _run_query

    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state", push_buffer=5)
    try:
        srv.run_ksql(CREATE_S)
        for i in range(50):
            srv.run_ksql(f"INSERT INTO S (K, N, NAME) VALUES ('k{i}', {i}, 'x');")

        async def scenario() -> list[str]:
            resp = await _run_query(srv, "SELECT * FROM S EMIT CHANGES;", EARLIEST, "query")
            deadline = time.monotonic() + 30  # the client reads nothing while rows pile up
            while srv.push_queries and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return [chunk async for chunk in resp.body_iterator]

        chunks = asyncio.run(scenario())
        assert chunks[0].startswith('[{"header"')
        assert len([c for c in chunks if '"row"' in c]) <= 6
        assert "read too slowly" in chunks[-1]
        assert srv.metrics.push_slow._value.get() == 1
        assert srv.push_queries == {}
    finally:
        srv.close()


# -- a real server -----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def real_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mailroom.cli", "server", "--log", f"embedded:{tmp_path / 'log'}",
                             "--state-dir", str(tmp_path / "state"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/healthcheck", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {proc.stdout.read().decode() if proc.stdout else ''}")
        time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(20)


def test_real_server_push_query_and_disconnect(real_server):
    r = httpx.post(real_server + "/ksql", json={"ksql": CREATE_S})
    assert r.status_code == 200 and r.json()[0]["commandStatus"]["status"] == "SUCCESS"
    httpx.post(real_server + "/ksql", json={"ksql": "INSERT INTO S (K, N, NAME) VALUES ('a', 1, 'x');"})
    with httpx.stream("POST", real_server + "/query-stream", json={"sql": "SELECT * FROM S EMIT CHANGES;", "properties": EARLIEST},
                      timeout=10) as r:
        lines = r.iter_lines()
        head = json.loads(next(lines))
        assert json.loads(next(lines)) == ["a", 1, "x"]
    # the client went away: the server stops the query
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        queries = httpx.post(real_server + "/ksql", json={"ksql": "SHOW QUERIES;"}).json()[0]["queries"]
        if not any(q["id"] == head["queryId"] for q in queries):
            break
        time.sleep(0.2)
    assert not any(q["id"] == head["queryId"] for q in queries)
    m = httpx.get(real_server + "/metrics").text
    assert "mailroom_push_queries_started_total 1.0" in m
