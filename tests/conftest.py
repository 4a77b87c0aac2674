"""Session-wide fixtures: the real Apache Kafka broker the Kafka-backed tests run against.

The broker is started once per test session by ``scripts/kafka-local`` (Apache Kafka's own
jars, fetched with Maven) and stopped at the end. Set ``MAILROOM_KAFKA_BOOTSTRAP`` to use a
running cluster instead. Kafka tests are never skipped: a broker that cannot start is an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = ROOT / "scripts" / "kafka-local"


class LocalKafka:
    """A cluster run by scripts/kafka-local in its own folder (so it never meets a user's)."""

    def __init__(self, run_dir: Path, brokers: int = 1) -> None:
        self.env = {**os.environ, "MAILROOM_KAFKA_RUN": str(run_dir)}
        self.brokers = brokers
        self.bootstrap = ""

    def _run(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run([sys.executable, str(KAFKA_LOCAL), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/kafka-local {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout.strip()

    def start(self) -> str:
        self.bootstrap = self._run("start", "--brokers", str(self.brokers)).splitlines()[-1]
        return self.bootstrap

    def kill(self, node_id: int) -> None:
        self._run("kill", str(node_id))

    def stop(self) -> None:
        self._run("stop", timeout=120)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    """host:port of a real Kafka broker for this test session."""
    given = os.environ.get("MAILROOM_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    cluster = LocalKafka(tmp_path_factory.mktemp("kafka"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


# --- OpenSearch ------------------------------------------------------------------------------
OPENSEARCH_LOCAL = ROOT / "scripts" / "opensearch-local"


class LocalOpenSearch:
    """A node run by scripts/opensearch-local in its own folder (so it never meets a user's)."""

    def __init__(self, run_dir: Path) -> None:
        self.env = {**os.environ, "MAILROOM_OPENSEARCH_RUN": str(run_dir)}
        self.url = ""

    def _run(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run([sys.executable, str(OPENSEARCH_LOCAL), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/opensearch-local {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout.strip()

    def start(self) -> str:
        """Start (or, after ``stop(keep_data=True)``, restart on the same port and data); the URL."""
        self.url = self._run("start").splitlines()[-1]
        return self.url

    def stop(self, keep_data: bool = False) -> None:
        self._run("stop", *(["--keep-data"] if keep_data else []), timeout=120)

    def pause(self) -> None:
        self._run("pause")

    def resume(self) -> None:
        self._run("resume")


@pytest.fixture(scope="session")
def opensearch_url(tmp_path_factory) -> str:
    """http://host:port of a real OpenSearch node for this test session."""
    given = os.environ.get("MAILROOM_OPENSEARCH_URL")
    if given:
        yield given.rstrip("/")
        return
    node = LocalOpenSearch(tmp_path_factory.mktemp("opensearch"))
    try:
        yield node.start()
    finally:
        node.stop()
