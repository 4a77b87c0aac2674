"""`mailroom sql`: statements split as typed, scripts with JSON output, and the interactive shell
in a real terminal (tmux): a push query streams, Ctrl-C stops it, the shell still answers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mailroom.cli.shell import split_statements

from ..server.realserver import free_port, running_server

ROOT = Path(__file__).resolve().parents[2]
CREATE = "CREATE STREAM S (K STRING KEY, N INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"


def test_split_statements_respects_quotes_and_comments() -> None:
    stmts, rest = split_statements("SELECT 'a;b' FROM S; -- a comment; still one\nSHOW STREAMS;\nINSERT INTO")
    assert stmts == ["SELECT 'a;b' FROM S;", "-- a comment; still one\nSHOW STREAMS;"]
    assert rest == "\nINSERT INTO"
    assert split_statements("SELECT 'it''s;' FROM `we;ird`;") == (["SELECT 'it''s;' FROM `we;ird`;"], "")
    assert split_statements("  ;  -- nothing\n") == ([], "  -- nothing\n")


def run_sql(args: list[str], tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailroom.cli", "sql", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout)


def test_script_mode_with_json_output_on_an_in_process_server(tmp_path) -> None:
    script = tmp_path / "setup.sql"
    script.write_text(CREATE + "\nINSERT INTO S (K, N) VALUES ('a', 1);\nINSERT INTO S (K, N) VALUES ('b', 2);\n")
    stmts = (f"RUN SCRIPT '{script}'; SET 'auto.offset.reset'='earliest';"
             "SELECT * FROM S EMIT CHANGES LIMIT 2; SELECT K FROM S WHERE N > 1; SELECT nope FROM S;")
    r = run_sql(["--log", f"embedded:{tmp_path / 'log'}", "--state-dir", str(tmp_path / "state"), "-e", stmts, "--json"], tmp_path)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.returncode == 1, r.stderr  # the last statement failed
    assert lines[0]["commandStatus"]["status"] == "SUCCESS"
    rows = [x["row"] for x in lines if "row" in x]
    assert rows == [["a", 1], ["b", 2], ["b"]]
    assert "NOPE" in lines[-1]["error"]


@pytest.fixture
def server(tmp_path):
    with running_server(tmp_path) as (base, _proc):
        yield base


def test_unreachable_server_says_what_to_do(tmp_path) -> None:
    r = run_sql([f"http://127.0.0.1:{free_port()}", "-e", "SHOW STREAMS;"], tmp_path, timeout=30)
    assert r.returncode == 2 and "mailroom server" in r.stderr


def test_interactive_shell_in_a_terminal(server, tmp_path) -> None:
    session = f"mailroom-sql-{free_port()}"
    tmux = ["tmux", "-L", session]
    env_cmd = f"HOME={tmp_path} {sys.executable} -m mailroom.cli sql {server}"
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", "-c", str(ROOT), env_cmd], check=True)

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", session, "-S", "-200"], capture_output=True, text=True).stdout

    def wait_screen(text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = screen()
            if text in s:
                return s
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not on the screen:\n{screen()}")

    def keys(*k: str) -> None:
        subprocess.run([*tmux, "send-keys", "-t", session, *k], check=True)

    def type_line(text: str) -> None:  # literally (tmux reads a trailing ';' as its own separator)
        text = text[:-1] + "\\;" if text.endswith(";") else text
        subprocess.run([*tmux, "send-keys", "-t", session, "-l", text], check=True)
        keys("Enter")

    try:
        wait_screen("mailroom>")
        type_line("CREATE STREAM S (K STRING KEY, N INT)")  # a statement over two lines
        wait_screen("       >")
        type_line("WITH (kafka_topic='s', value_format='JSON', partitions=1);")
        wait_screen("Stream created")
        type_line("SELECT K, N FROM S EMIT CHANGES;")
        wait_screen("| K ")
        for i in range(3):
            r = httpx.post(server + "/ksql", json={"ksql": f"INSERT INTO S (K, N) VALUES ('k{i}', {i * 10});"})
            assert r.status_code == 200
        wait_screen("| k2 ")
        keys("C-c")
        wait_screen("Query terminated")
        type_line("SHOW STREAMS;")
        s = wait_screen("Stream Name")
        assert "| k0 " in s and "| k1 " in s
        # the push query was closed on the server, not left running
        queries = httpx.post(server + "/ksql", json={"ksql": "SHOW QUERIES;"}).json()[0]["queries"]
        assert not [q for q in queries if q.get("queryType") == "PUSH"]
        keys("C-d")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
