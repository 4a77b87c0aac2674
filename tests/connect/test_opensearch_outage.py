"""No record is lost while OpenSearch is unresponsive or down: the sink retries, then catches up.

The test runs its own node (so stopping it cannot disturb the session's) and, while the sink
runs in a thread, first freezes it (SIGSTOP: requests time out), then stops it for real
(connections refused) and restarts it on the same port and data, producing records each time.
"""

from __future__ import annotations

import threading
import time

import pytest
from opensearchpy import OpenSearch

from mailroom.connect import OpenSearchSink
from mailroom.log import TopicPartition

from ..conftest import LocalOpenSearch
from .conftest import docs, produce


def wait_for(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def node(tmp_path):
    n = LocalOpenSearch(tmp_path / "opensearch")
    n.start()
    yield n
    n.stop()


@pytest.mark.slow
def test_no_record_lost_while_the_server_is_frozen_or_down(node, log):
    log.create_topic("states", partitions=2)
    sink = OpenSearchSink(log, "states", "outage", node.url, group="g", batch=200, request_timeout=1.0,
                          backoff_initial=0.05, backoff_max=0.5,
                          template={"settings": {"number_of_shards": 2}, "mappings": {"properties": {"v": {"type": "long"}}}})
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sink.run()
        except BaseException as e:  # surfaced by the assertions below
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        produce(log, "states", [(f"k{i}", {"v": i}) for i in range(500)])
        wait_for(lambda: sink.metrics.records == 500, "the first 500 records")

        node.pause()  # frozen: the kernel still accepts connections, nothing answers
        produce(log, "states", [(f"k{i}", {"v": i}) for i in range(500, 1000)])
        wait_for(lambda: sink.metrics.retries >= 2, "retries against the frozen node")
        assert sink.metrics.records == 500  # nothing committed while nothing was written
        node.resume()
        wait_for(lambda: sink.metrics.records == 1000, "catching up after the freeze")

        node.stop(keep_data=True)  # down: connections refused
        retries = sink.metrics.retries
        produce(log, "states", [(f"k{i}", {"v": -i}) for i in range(0, 1000, 10)]  # overwrites
                + [(f"k{i}", None) for i in range(1, 1000, 10)]  # deletes
                + [(f"k{i}", {"v": i}) for i in range(1000, 1300)])  # new
        wait_for(lambda: sink.metrics.retries >= retries + 3, "retries against the stopped node")
        assert sink.metrics.records == 1000
        node.start()  # the same port and data
        wait_for(lambda: sink.metrics.records == 1500, "catching up after the restart", timeout=90)
    finally:
        sink.stop()
        thread.join(30)
    assert not errors and not thread.is_alive()
    assert sink.metrics.failed == 0 and sink.metrics.indexed + sink.metrics.deleted >= 1500

    client = OpenSearch(hosts=[node.url], timeout=30)
    got = docs(client, "outage")
    expected = {f"k{i}": {"v": i} for i in range(1300)}
    for i in range(0, 1000, 10):
        expected[f"k{i}"] = {"v": -i}
    for i in range(1, 1000, 10):
        del expected[f"k{i}"]
    assert got == expected
    assert client.count(index="outage")["count"] == len(expected) == 1200
    client.close()
    c = log.consumer("g")
    tps = [TopicPartition("states", 0), TopicPartition("states", 1)]
    assert c.committed(tps) == {tp: c.watermarks(tp)[1] for tp in tps}
    c.close()
    sink.close()
