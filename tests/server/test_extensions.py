"""The server's extension hook (entry point group ``mailroom.server_extensions``), close hooks,
and ``mailroom server --queries-file`` (headless)."""

from __future__ import annotations

import importlib.metadata
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mailroom.server import KsqlServer, create_app
from mailroom.server.app import EXTENSIONS_GROUP, load_extensions
from mailroom.server.core import StatementFailed
from mailroom.sql.transient import read_topic

ROOT = Path(__file__).resolve().parents[2]
CREATE_S = "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"


def mount_hello(app: FastAPI, server: KsqlServer) -> None:
    """A test extension: one route, one shadowing attempt, one close hook."""

    @app.get("/hello")
    async def hello():
        return {"hello": server.service_id}

    @app.get("/info")
    async def not_info():
        return {"shadowed": True}

    server.on_close(lambda: CLOSED.append("hello"))


def mount_broken(app: FastAPI, server: KsqlServer) -> None:
    raise RuntimeError("broken on purpose")


CLOSED: list[str] = []


@pytest.fixture
def fake_entry_points(monkeypatch):
    eps = [importlib.metadata.EntryPoint(name, f"tests.server.test_extensions:{fn}", EXTENSIONS_GROUP)
           for name, fn in (("hello", "mount_hello"), ("broken", "mount_broken"), ("missing", "no_such_function"))]
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        return eps if kw.get("group") == EXTENSIONS_GROUP else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_extensions_mount_and_failures_are_not_fatal(tmp_path, fake_entry_points, caplog):
    CLOSED.clear()
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    with TestClient(create_app(srv, extensions=True)) as c:
        assert c.get("/hello").json() == {"hello": "default_"}
        assert "KsqlServerInfo" in c.get("/info").json()  # a built-in route is not shadowed
        status = c.app.state.extensions
        assert status["hello"] == "ok"
        assert status["broken"] == "RuntimeError: broken on purpose"
        assert status["missing"].startswith("AttributeError")
    assert CLOSED == ["hello"]  # the close hook ran at shutdown
    assert "broken on purpose" in caplog.text


def test_no_extensions_unless_asked(tmp_path, fake_entry_points):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    with TestClient(create_app(srv)) as c:
        assert c.get("/hello").status_code == 404


def test_load_extensions_of_another_group(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    try:
        assert load_extensions(FastAPI(), srv, group="mailroom.no-such-group") == {}
    finally:
        srv.close()


def test_email_dashboard_is_registered():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=EXTENSIONS_GROUP)}
    assert names.get("email-dashboard") == "mailroom.email.dashboard:mount"


def test_close_hook_failure_does_not_stop_close(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    ran = []
    srv.on_close(lambda: 1 / 0)
    srv.on_close(lambda: ran.append(True))
    srv.close()
    assert ran == [True]


def test_queries_file_runs_then_headless(tmp_path):
    f = tmp_path / "q.sql"
    f.write_text(CREATE_S + "\nINSERT INTO S (K, N) VALUES ('a', 1);\n"
                 "CREATE TABLE C AS SELECT K, COUNT(*) AS CNT FROM S GROUP BY K;\n")
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    try:
        ents = srv.run_queries_file(f)
        assert [e["commandId"] for e in ents] == ["stream/`S`/create", "table/`C`/create"]
        assert srv.log.describe_topic("s").partitions == 1
        assert sum(len(b.offsets) for b in read_topic(srv.log, "s")) == 0  # INSERT VALUES skipped
        with pytest.raises(StatementFailed) as e:
            srv.run_ksql("CREATE STREAM T (K STRING KEY) WITH (kafka_topic='t', value_format='JSON', partitions=1);")
        assert "headless mode" in e.value.entity["message"]
        [shown] = srv.run_ksql("SHOW STREAMS;")
        assert [s["name"] for s in shown["streams"]] == ["S"]
    finally:
        srv.close()


def test_queries_file_errors(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    try:
        with pytest.raises(StatementFailed, match="Cannot read"):
            srv.run_queries_file(tmp_path / "nope.sql")
        (tmp_path / "bad.sql").write_text("CREATE STREAM X AS SELECT * FROM NOPE;")
        with pytest.raises(StatementFailed) as e:
            srv.run_queries_file(tmp_path / "bad.sql")
        assert "NOPE does not exist" in e.value.entity["message"]
        assert srv.queries_files == []  # a failed file leaves the server interactive
    finally:
        srv.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mailroom.cli", "server", "--log", f"embedded:{tmp_path / 'log'}",
                             "--state-dir", str(tmp_path / "state"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)


def test_cli_bad_queries_file_exits_with_the_error(tmp_path):
    (tmp_path / "bad.sql").write_text("CREATE STREAM X AS SELECT * FROM NOPE;")
    proc = _cli(tmp_path, "--port", str(_free_port()), "--queries-file", str(tmp_path / "bad.sql"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"NOPE does not exist" in out


def test_cli_queries_file_and_extensions(tmp_path):
    (tmp_path / "q.sql").write_text(CREATE_S)
    port = _free_port()
    (tmp_path / "q2.sql").write_text("CREATE TABLE C AS SELECT K, COUNT(*) AS CNT FROM S GROUP BY K;")
    proc = _cli(tmp_path, "--port", str(port), "--queries-file", str(tmp_path / "q.sql"),
                "--queries-file", str(tmp_path / "q2.sql"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthcheck", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        r = httpx.post(base + "/ksql", json={"ksql": "SHOW STREAMS; SHOW TABLES;"})
        assert [s["name"] for s in r.json()[0]["streams"]] == ["KSQL_PROCESSING_LOG", "S"]  # (the server's own, and S)
        assert [t["name"] for t in r.json()[1]["tables"]] == ["C"]  # the second file ran after the first
        r = httpx.post(base + "/ksql", json={"ksql": "DROP STREAM S;"})
        assert r.status_code == 400 and "headless mode" in r.json()["message"]
        assert httpx.get(base + "/dashboard/").status_code == 200  # the email dashboard, mounted by its entry point
    finally:
        proc.terminate()
        proc.wait(20)
