"""`mailroom server --auth-file`: the hashed-password file, `mailroom server passwd`, HTTP basic
auth and the read-only / read-write roles on each endpoint (in-process app and a real server)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from mailroom.server import KsqlServer, create_app
from mailroom.server.auth import AuthFileError, Authenticator, hash_password, parse_auth_file, set_user, verify_password
from tests.server.realserver import ROOT, running_server

CREATE_S = "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
RW = ("writer", "w-secret")
RO = ("reader", "r-secret")
RO2 = ("other", "o-secret")


@pytest.fixture
def auth_file(tmp_path):
    path = tmp_path / "users"
    set_user(path, RW[0], "read-write", RW[1])
    set_user(path, RO[0], "read-only", RO[1])
    set_user(path, RO2[0], "read-only", RO2[1])
    return path


@pytest.fixture
def server(tmp_path):
    return KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")


@pytest.fixture
def client(server, auth_file):
    with TestClient(create_app(server, auth=Authenticator(auth_file))) as c:
        yield c


def ksql(client, text, auth, status=200):
    r = client.post("/ksql", json={"ksql": text, "streamsProperties": {}}, auth=auth)
    assert r.status_code == status, r.text
    return r.json()


# -- the file -----------------------------------------------------------------------------------------
def test_hash_and_verify():
    h = hash_password("pässword")
    assert h.startswith("scrypt$16384$8$1$") and "pässword" not in h
    assert verify_password("pässword", h)
    assert not verify_password("password", h)
    assert hash_password("x") != hash_password("x")  # a new salt each time
    assert not verify_password("x", "scrypt$16384$8$1$not-base64$!!")  # malformed: refused, no crash


def test_set_user_writes_a_private_file_and_updates_in_place(tmp_path):
    path = tmp_path / "users"
    assert set_user(path, "alice", "read-only", "one") is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_text("# the team\n" + path.read_text())
    assert set_user(path, "bob", "read-write", "two") is True
    assert set_user(path, "alice", "read-write", "three") is False
    lines = path.read_text().splitlines()
    assert lines[0] == "# the team" and [x.split(":")[0] for x in lines[1:]] == ["alice", "bob"]
    users = parse_auth_file(path.read_text())
    assert users["alice"][0] == "read-write" and verify_password("three", users["alice"][1])
    with pytest.raises(AuthFileError, match="unknown role"):
        set_user(path, "carol", "admin", "x")
    with pytest.raises(AuthFileError, match="bad user name"):
        set_user(path, "ca:rol", "read-only", "x")


def test_bad_auth_file_lines_are_named():
    with pytest.raises(AuthFileError, match="line 2: expected USER:ROLE:HASH"):
        parse_auth_file("# ok\nalice-no-role\n")
    with pytest.raises(AuthFileError, match="line 1: unknown role 'root'"):
        parse_auth_file("alice:root:scrypt$1$1$1$a$b\n")
    with pytest.raises(AuthFileError, match="not scrypt"):
        parse_auth_file("alice:read-only:plaintext\n")


def test_passwd_command_reads_the_password_from_stdin(tmp_path):
    path = tmp_path / "users"
    cmd = [sys.executable, "-m", "mailroom.cli", "server", "passwd", str(path), "carol", "--role", "read-write"]
    r = subprocess.run(cmd, input="c-secret\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "added carol (read-write)" in r.stderr
    auth = Authenticator(path)
    assert auth.users == {"carol": "read-write"}
    assert auth.check(httpx.BasicAuth("carol", "c-secret")._auth_header).name == "carol"
    r = subprocess.run(cmd[:-2] + ["--role", "superuser"], input="x\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1 and "unknown role" in r.stderr


# -- authentication -------------------------------------------------------------------------------------
def test_open_paths_and_401(client):
    assert client.get("/healthcheck").status_code == 200
    assert client.get("/info").json()["KsqlServerInfo"]["serverStatus"] == "RUNNING"
    for auth in (None, ("reader", "wrong"), ("nobody", "r-secret")):
        r = client.post("/ksql", json={"ksql": "SHOW STREAMS;"}, auth=auth)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Basic realm="mailroom"')
        body = r.json()
        assert body["@type"] == "generic_error" and body["error_code"] == 40100 and "Unauthorized" in body["message"]
    for path in ("/status", "/metrics"):
        assert client.get(path).status_code == 401
        assert client.get(path, auth=RO).status_code == 200
    r = client.post("/ksql", json={"ksql": "SHOW STREAMS;"}, headers={"Authorization": "Basic !!not base64"})
    assert r.status_code == 401
    for i in range(3):
        assert client.get(f"/made-up-{i}").status_code == 401
    m = client.get("/metrics", auth=RO).text
    assert 'path="/ksql",status="401"' in m  # refusals are counted like any request
    assert 'path="other",status="401"} 3.0' in m and "made-up" not in m  # made-up paths add no labels


def test_a_user_added_while_running_can_log_in(client, auth_file):
    assert client.post("/ksql", json={"ksql": "SHOW STREAMS;"}, auth=("late", "l-secret")).status_code == 401
    time.sleep(0.01)  # a new mtime
    set_user(auth_file, "late", "read-only", "l-secret")
    assert client.post("/ksql", json={"ksql": "SHOW STREAMS;"}, auth=("late", "l-secret")).status_code == 200
    set_user(auth_file, "late", "read-only", "changed")  # the old password (cached) stops working
    assert client.post("/ksql", json={"ksql": "SHOW STREAMS;"}, auth=("late", "l-secret")).status_code == 401


# -- roles --------------------------------------------------------------------------------------------------
def test_read_only_may_read_but_not_change(client, server):
    ksql(client, CREATE_S + "INSERT INTO S (K, N) VALUES ('a', 1);", RW)
    [streams, desc] = ksql(client, "SHOW STREAMS; DESCRIBE S;", RO)
    assert [s["name"] for s in streams["streams"]] == ["S"] and desc["@type"] == "sourceDescription"
    for stmt in ("CREATE STREAM T (K STRING KEY) WITH (kafka_topic='t', value_format='JSON', partitions=1);",
                 "DROP STREAM S;", "INSERT INTO S (K, N) VALUES ('b', 2);", "TERMINATE ALL;", "SET 'auto.offset.reset'='earliest';"):
        body = ksql(client, "SHOW STREAMS; " + stmt, RO, status=403)
        assert body["@type"] == "statement_error" and body["error_code"] == 40300, body
        assert body["statementText"].strip() == stmt and "read-write" in body["message"]
    assert [s["name"] for s in ksql(client, "SHOW STREAMS;", RO)[0]["streams"]] == ["S"]  # nothing ran
    r = client.post("/inserts-stream", content=b'{"target": "S"}\n{"K": "b", "N": 2}\n', auth=RO)
    assert r.status_code == 403 and r.json()["error_code"] == 40300
    # queries: both roles; the rows are only the one the writer inserted
    r = client.post("/query-stream", json={"sql": "SELECT * FROM S EMIT CHANGES LIMIT 1;",
                                           "properties": {"auto.offset.reset": "earliest"}}, auth=RO)
    assert r.status_code == 200 and json.loads(r.text.strip().split("\n")[1]) == ["a", 1]
    r = client.post("/query", json={"ksql": "SELECT * FROM S;"}, auth=RO)
    assert [m["row"]["columns"] for m in json.loads(r.text)[1:-1]] == [["a", 1]]
    r = client.post("/inserts-stream", content=b'{"target": "S"}\n{"K": "b", "N": 2}\n', auth=RW)
    assert r.status_code == 200 and json.loads(r.text) == {"status": "ok", "seq": 0}


def _start_push(client, server, auth) -> tuple[str, threading.Thread]:
    before = set(server.push_queries)

    def consume():
        with client.stream("POST", "/query-stream", json={"sql": "SELECT * FROM S EMIT CHANGES;"}, auth=auth) as r:
            for _ in r.iter_lines():
                pass

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not set(server.push_queries) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    [qid] = set(server.push_queries) - before
    return qid, t


def test_close_query_own_or_read_write(client, server):
    ksql(client, CREATE_S, RW)
    mine, t1 = _start_push(client, server, RO)
    theirs, t2 = _start_push(client, server, RO2)
    r = client.post("/close-query", json={"queryId": theirs}, auth=RO)
    assert r.status_code == 403 and r.json()["error_code"] == 40300 and theirs in server.push_queries
    assert client.post("/close-query", json={"queryId": mine}, auth=RO).status_code == 200
    assert client.post("/close-query", json={"queryId": "nope"}, auth=RO).status_code == 400
    assert client.post("/close-query", json={"queryId": theirs}, auth=RW).status_code == 200
    t1.join(10)
    t2.join(10)
    assert not t1.is_alive() and not t2.is_alive()
    assert server.push_queries == {} and server.query_owners == {}


def test_dashboard_needs_credentials(server, auth_file):
    with TestClient(create_app(server, extensions=True, auth=Authenticator(auth_file))) as c:
        r = c.get("/dashboard/api/live")
        assert r.status_code == 401 and "www-authenticate" in r.headers
        assert c.get("/dashboard/static/app.js").status_code == 401
        assert c.get("/dashboard/api/live", auth=RO).status_code == 200  # read-only is enough to view


# -- the real server --------------------------------------------------------------------------------------
def test_cli_auth_file(tmp_path, auth_file):
    r = subprocess.run([sys.executable, "-m", "mailroom.cli", "server", "--log", f"embedded:{tmp_path / 'x'}",
                        "--auth-file", str(tmp_path / "missing")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "--auth-file" in r.stderr
    with running_server(tmp_path, "--auth-file", str(auth_file)) as (base, _):
        assert httpx.post(base + "/ksql", json={"ksql": CREATE_S}).status_code == 401
        assert httpx.post(base + "/ksql", json={"ksql": CREATE_S}, auth=RO).status_code == 403
        assert httpx.post(base + "/ksql", json={"ksql": CREATE_S}, auth=RW).status_code == 200
        r = httpx.post(base + "/query-stream", json={"sql": "SELECT * FROM S EMIT CHANGES LIMIT 0;"}, auth=RO)
        assert r.status_code == 200 and json.loads(r.text.split("\n")[0])["columnNames"] == ["K", "N"]
