"""The ``mailroom`` command, run as a real process."""

from __future__ import annotations

import subprocess
import sys

MAILROOM = [sys.executable, "-m", "mailroom.cli"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MAILROOM, *args], input=input, capture_output=True, text=True, timeout=120)


def test_help_everywhere() -> None:
    top = run("--help")
    assert top.returncode == 0 and "topics" in top.stdout and "demo" in top.stdout
    for sub in (["topics", "--help"], ["topics", "create", "--help"], ["log", "consume", "--help"], ["demo", "--help"]):
        r = run(*sub)
        assert r.returncode == 0 and "Usage" in r.stdout, sub


def test_topics_produce_consume(tmp_path) -> None:
    log = f"embedded:{tmp_path}"
    assert run("topics", "create", "ev", "--partitions", "2", "--log", log).returncode == 0
    r = run("log", "produce", "ev", "-k", ":", "--log", log, input="m1:hello\nm2:world\n")
    assert r.returncode == 0, r.stderr
    out = run("log", "consume", "ev", "--log", log, "--timeout", "0.5")
    assert out.returncode == 0
    assert "b'hello'" in out.stdout and "b'world'" in out.stdout
    listing = run("topics", "list", "--log", log)
    assert "ev" in listing.stdout


def test_unknown_topic_says_what_to_do(tmp_path) -> None:
    r = run("topics", "describe", "nope", "--log", f"embedded:{tmp_path}")
    assert r.returncode == 1
    assert "unknown topic 'nope'" in r.stdout and "create it first" in r.stdout
