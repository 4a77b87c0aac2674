"""Fixtures of the log conformance suite: every test runs on both backends."""

from __future__ import annotations

import uuid

import pytest

from mailroom.log import Log, open_log


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request, tmp_path) -> str:
    """The URL of a fresh log of each backend (Kafka: the suite's broker, unique topic names)."""
    if request.param == "embedded":
        return f"embedded:{tmp_path / 'log'}"
    return "kafka://" + request.getfixturevalue("kafka_bootstrap")


@pytest.fixture
def backend(log_url: str) -> str:
    return "kafka" if log_url.startswith("kafka://") else "embedded"


@pytest.fixture
def log(log_url: str) -> Log:
    lg = open_log(log_url)
    yield lg
    lg.close()


@pytest.fixture
def topic_name(request) -> str:
    """A topic name no other test uses (the Kafka broker is shared by the whole session)."""
    return f"t-{request.node.name.split('[')[0][:40]}-{uuid.uuid4().hex[:8]}"
