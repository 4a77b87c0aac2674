"""The OpenSearch sink against a real OpenSearch node (scripts/opensearch-local) and the embedded log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.connect import OpenSearchSink, SinkError
from mailroom.log import TopicPartition

from .conftest import docs, processing_log, produce

TEMPLATE = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {"properties": {"sent_at": {"type": "date"}, "status": {"type": "keyword"},
                                "attempts": {"type": "integer"}}},
}


def sink_for(log, index, url, **kw) -> OpenSearchSink:
    return OpenSearchSink(log, "states", index, url, **kw)


def test_upsert_by_key_replaces_and_count_stays(log, os_client, index_name, opensearch_url):
    log.create_topic("states", partitions=3)
    produce(log, "states", [("m1", {"status": "queued", "attempts": 0}), ("m2", {"status": "queued", "attempts": 0})])
    with sink_for(log, index_name, opensearch_url) as sink:
        sink.run(idle_timeout=0.5)
        assert docs(os_client, index_name) == {"m1": {"status": "queued", "attempts": 0},
                                               "m2": {"status": "queued", "attempts": 0}}
        produce(log, "states", [("m1", {"status": "delivered", "attempts": 1})])
        sink.run(idle_timeout=0.5)
        assert sink.metrics.records == 3 and sink.metrics.indexed == 3 and sink.metrics.failed == 0
    got = docs(os_client, index_name)
    assert got == {"m1": {"status": "delivered", "attempts": 1}, "m2": {"status": "queued", "attempts": 0}}
    assert os_client.count(index=index_name)["count"] == 2


def test_tombstone_deletes_the_document(log, os_client, index_name, opensearch_url):
    log.create_topic("states")
    produce(log, "states", [("a", {"n": 1}), ("b", {"n": 2}), ("a", None), ("never-there", None)])
    with sink_for(log, index_name, opensearch_url) as sink:
        sink.run(idle_timeout=0.5)
        assert sink.metrics.deleted == 2 and sink.metrics.failed == 0
    assert docs(os_client, index_name) == {"b": {"n": 2}}


def test_upsert_mode_merges_fields(log, os_client, index_name, opensearch_url):
    log.create_topic("states")
    produce(log, "states", [("m", {"status": "sent", "to": "x@example.com"}), ("m", {"status": "opened"})])
    with sink_for(log, index_name, opensearch_url, write="upsert") as sink:
        sink.run(idle_timeout=0.5)
    assert docs(os_client, index_name) == {"m": {"status": "opened", "to": "x@example.com"}}


def test_template_mapping_applies_and_bad_documents_go_to_the_processing_log(log, os_client, index_name, opensearch_url):
    log.create_topic("states")
    produce(log, "states", [
        ("ok-1", {"sent_at": "2024-05-01T10:00:00Z", "status": "sent"}),
        ("bad-date", {"sent_at": "not a date", "status": "sent"}),   # refused by OpenSearch: the mapping
        ("bad-json", b"{not json"),                                   # refused before sending
        ("array", b"[1, 2]"),                                          # JSON, but not a document
        (None, {"status": "no key"}),                                  # no document id
        ("ok-2", {"sent_at": 1714557600000, "status": "bounced"}),
    ])
    with sink_for(log, index_name, opensearch_url, template=TEMPLATE, group="g1") as sink:
        sink.run(idle_timeout=0.5)
        assert sink.metrics.indexed == 2 and sink.metrics.failed == 4
        pl_topic = sink.processing_log_topic
    mapping = os_client.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert mapping["sent_at"]["type"] == "date" and mapping["status"]["type"] == "keyword"
    assert set(docs(os_client, index_name)) == {"ok-1", "ok-2"}
    # a date range query works only because sent_at is a date
    hits = os_client.search(index=index_name, body={"query": {"range": {"sent_at": {"gte": "2024-05-01T09:00:00Z"}}}})
    assert hits["hits"]["total"]["value"] == 2
    entries = processing_log(log, pl_topic)
    assert pl_topic == "g1-processing-log"
    assert [(e["topic"], e["partition"], e["offset"]) for e in entries] == [("states", 0, o) for o in (2, 3, 4, 1)]
    reasons = {e["offset"]: e["reason"] for e in entries}
    assert "mapper_parsing_exception" in reasons[1] and "sent_at" in reasons[1]
    assert "not JSON" in reasons[2] and "not an object" in reasons[3] and "no key" in reasons[4]


def test_full_template_with_index_patterns(log, os_client, index_name, opensearch_url):
    log.create_topic("states")
    template = {"index_patterns": [index_name + "*"], "priority": 50, "name": f"mailroom-{index_name}",
                "template": {"mappings": {"properties": {"day": {"type": "date", "format": "yyyy-MM-dd"}}}}}
    produce(log, "states", [("k", {"day": "2024-01-31"})])
    with sink_for(log, index_name, opensearch_url, template=template) as sink:
        sink.run(idle_timeout=0.5)
    props = os_client.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert props["day"] == {"type": "date", "format": "yyyy-MM-dd"}
    assert os_client.indices.exists_index_template(name=f"mailroom-{index_name}")


def test_resume_from_committed_offsets_without_rereading(log, os_client, index_name, opensearch_url):
    log.create_topic("states", partitions=2)
    produce(log, "states", [(f"k{i}", {"v": i}) for i in range(100)])
    with sink_for(log, index_name, opensearch_url, group="g", batch=30) as sink:
        sink.run(idle_timeout=0.5)
        assert sink.metrics.records == 100 and sink.metrics.commits >= 4
    produce(log, "states", [(f"k{i}", {"v": i * 10}) for i in range(90, 120)])
    with sink_for(log, index_name, opensearch_url, group="g") as sink:  # a restart: same group
        sink.run(idle_timeout=0.5)
        assert sink.metrics.records == 30  # only what came after the commit
    got = docs(os_client, index_name)
    assert len(got) == 120 and os_client.count(index=index_name)["count"] == 120
    assert got["k5"] == {"v": 5} and got["k95"] == {"v": 950} and got["k119"] == {"v": 1190}
    c = log.consumer("g")
    committed = c.committed([TopicPartition("states", 0), TopicPartition("states", 1)])
    ends = {tp: c.watermarks(tp)[1] for tp in committed}
    c.close()
    assert committed == ends and sum(ends.values()) == 130


def test_id_from_a_value_field(log, os_client, index_name, opensearch_url):
    log.create_topic("states")
    produce(log, "states", [(None, {"id": "7", "x": "a"}), ("ignored", {"id": "m-8", "x": "b"}), ("t", None)])
    with sink_for(log, index_name, opensearch_url, id_from="value:id") as sink:
        sink.run(idle_timeout=0.5)
        assert sink.metrics.failed == 1  # the tombstone: no value, so no id
    assert docs(os_client, index_name) == {"7": {"id": "7", "x": "a"}, "m-8": {"id": "m-8", "x": "b"}}


def test_external_version_never_lets_an_old_write_win(log, os_client, index_name, opensearch_url):
    log.create_topic("states")
    produce(log, "states", [("m", {"s": "old"}), ("m", {"s": "new"})])
    with sink_for(log, index_name, opensearch_url, external_version=True) as sink:
        sink.run(idle_timeout=0.5)
    # a late copy of the first write (offset 0) arrives after the second: it must be ignored
    os_client.index(index=index_name, id="m", body={"s": "old"}, params={"version": 0, "version_type": "external_gte"},
                    ignore=[409])
    doc = os_client.get(index=index_name, id="m")
    assert doc["_source"] == {"s": "new"} and doc["_version"] == 1


def test_unreachable_path_is_an_error_not_a_silent_drop(log, opensearch_url):
    log.create_topic("states")
    produce(log, "states", [("k", {"v": 1})])
    # a template OpenSearch rejects (unknown field type): retrying cannot help, so it raises
    with pytest.raises(SinkError, match="index template"):
        sink_for(log, "t-bad-template", opensearch_url, template={"mappings": {"properties": {"x": {"type": "nope"}}}}).start()
    with pytest.raises(ValueError, match="id_from"):
        sink_for(log, "x", opensearch_url, id_from="header")


def test_cli_streams_a_topic(tmp_path, log, os_client, index_name, opensearch_url):
    log.create_topic("states")
    produce(log, "states", [("a", {"sent_at": "2024-02-02T00:00:00Z"}), ("b", {"sent_at": "2024-02-03T00:00:00Z"})])
    template = tmp_path / "template.json"
    template.write_text(json.dumps(TEMPLATE))
    mailroom = Path(sys.executable).with_name("mailroom")
    proc = subprocess.run([str(mailroom), "connect", "opensearch", "--topic", "states", "--index", index_name,
                           "--url", opensearch_url, "--template", str(template), "--idle-timeout", "1",
                           "--log", f"embedded:{tmp_path / 'log'}"],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["indexed"] == 2 and metrics["records"] == 2
    assert set(docs(os_client, index_name)) == {"a", "b"}
    mapping = os_client.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert mapping["sent_at"]["type"] == "date"
    bad = subprocess.run([str(mailroom), "connect", "opensearch", "--topic", "nope", "--index", index_name,
                          "--url", opensearch_url, "--log", f"embedded:{tmp_path / 'log'}"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "unknown topic 'nope'" in bad.stderr
