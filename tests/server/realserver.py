"""A real `mailroom server` process on a free port, for the tests of auth, TLS, HTTP/2 and
external clients (helpers, not tests)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(tmp_path: Path, *args: str, verify: ssl.SSLContext | bool = True,
                   scheme: str = "http", extensions: bool = False, state_dir: Path | None = None,
                   log: str | None = None, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``mailroom server`` with ``args`` on an embedded log in ``tmp_path`` (with the
    installed server extensions, e.g. the dashboard, if ``extensions``); yields (base URL,
    process) once /healthcheck answers; stops it (SIGTERM) at the end. ``state_dir``, ``log``
    (a log URL) and ``port``: instead of ``tmp_path/state``, ``embedded:tmp_path/log`` and a free
    port (two servers of one cluster share the log, each with its own state dir)."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mailroom.cli", "server", "--log", log or f"embedded:{tmp_path / 'log'}",
                             "--state-dir", str(state_dir or tmp_path / "state"), "--port", str(port),
                             "--extensions" if extensions else "--no-extensions", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(base + "/healthcheck", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server did not start: {proc.stdout.read().decode() if proc.stdout else ''}")
            time.sleep(0.2)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
