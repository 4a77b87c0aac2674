"""Fixtures of the connector tests: the session's OpenSearch node, a client, an embedded log."""

from __future__ import annotations

import uuid

import orjson
import pytest
from opensearchpy import OpenSearch

from mailroom.log import Log, open_log


@pytest.fixture
def os_client(opensearch_url: str) -> OpenSearch:
    client = OpenSearch(hosts=[opensearch_url], timeout=30)
    yield client
    client.close()


@pytest.fixture
def index_name(request, os_client: OpenSearch) -> str:
    """An index name no other test uses; the index (and its template) are deleted afterwards."""
    name = f"t-{request.node.name.split('[')[0][:40].lower().replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    yield name
    os_client.indices.delete(index=name, ignore_unavailable=True)
    os_client.indices.delete_index_template(name=f"mailroom-{name}", ignore=[404])


@pytest.fixture
def log(tmp_path) -> Log:
    lg = open_log(f"embedded:{tmp_path / 'log'}")
    yield lg
    lg.close()


def produce(log: Log, topic: str, records: list[tuple[str | None, dict | bytes | None]]) -> None:
    """Send (key, value) pairs: dict values as JSON, bytes as they are, None as a tombstone."""
    with log.producer() as p:
        for key, value in records:
            raw = orjson.dumps(value) if isinstance(value, dict) else value
            p.send(topic, raw, None if key is None else key.encode())
        p.flush()


def docs(client: OpenSearch, index: str) -> dict[str, dict]:
    """Every document of ``index`` by id (after a refresh)."""
    client.indices.refresh(index=index)
    resp = client.search(index=index, body={"query": {"match_all": {}}, "size": 10_000})
    return {h["_id"]: h["_source"] for h in resp["hits"]["hits"]}


def processing_log(log: Log, topic: str) -> list[dict]:
    """The entries of a processing log topic."""
    c = log.consumer(None)
    from mailroom.log import TopicPartition

    c.assign([TopicPartition(topic, 0)])
    out = [orjson.loads(r.value) for b in c.poll(10_000, timeout=0.5) for r in b]
    c.close()
    return out
