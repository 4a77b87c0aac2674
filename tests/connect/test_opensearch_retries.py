"""The sink's answers to an overloaded or failing server (429, 5xx, 413, item-level rejections).

A small HTTP proxy in front of the session's real OpenSearch node forwards every request, except
the ``_bulk`` requests it is told to fail: whole ones answered 429/503/413 without forwarding, or
forwarded and then answered with some items turned into 429 rejections (as a node whose write
queue is full does). Nothing may be lost, nothing may go to the processing log, and the
documents must end up as the last record of each key says.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import orjson

from mailroom.connect import OpenSearchSink

from .conftest import docs, processing_log, produce


class FaultyProxy:
    """Forwards to ``upstream``; ``faults`` (a queue) decides the fate of each next ``_bulk`` request."""

    def __init__(self, upstream: str, max_body: int | None = None) -> None:
        target = urlsplit(upstream)
        self.faults: deque[str] = deque()
        self.max_body = max_body
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self, body: bytes) -> tuple[int, bytes]:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                return resp.status, data

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if "/_bulk" not in self.path:
                    self._answer(*self._forward(body))
                    return
                if proxy.max_body is not None and len(body) > proxy.max_body:
                    proxy.seen.append("413")
                    self._answer(413, b'{"error":"request entity too large","status":413}')
                    return
                fault = proxy.faults.popleft() if proxy.faults else "pass"
                proxy.seen.append(fault)
                if fault in ("429", "503"):
                    err = {"error": {"type": "rejected" if fault == "429" else "unavailable", "reason": "test"},
                           "status": int(fault)}
                    self._answer(int(fault), orjson.dumps(err))
                    return
                status, data = self._forward(body)
                if fault == "items429" and status == 200:  # applied, but the last half is reported rejected
                    resp = orjson.loads(data)
                    items = resp["items"]
                    for item in items[len(items) // 2:]:
                        for result in item.values():
                            result.update(status=429, error={"type": "es_rejected_execution_exception",
                                                             "reason": "write queue is full"})
                    resp["errors"] = True
                    data = orjson.dumps(resp)
                self._answer(status, data)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_429_503_and_rejected_items_are_retried_in_order(log, os_client, index_name, opensearch_url):
    proxy = FaultyProxy(opensearch_url)
    try:
        log.create_topic("states")
        # the same keys several times in one batch: a retry must not let an older value win
        produce(log, "states", [(f"k{i % 20}", {"v": i}) for i in range(100)] + [("k3", None)])
        proxy.faults.extend(["429", "503", "items429", "items429"])
        with OpenSearchSink(log, "states", index_name, proxy.url, backoff_initial=0.01, backoff_max=0.05) as sink:
            sink.run(idle_timeout=0.5)
            assert sink.metrics.retries == 4 and sink.metrics.failed == 0 and sink.metrics.records == 101
            assert "429" in sink.metrics.last_error or "rejected" in sink.metrics.last_error
            pl = sink.processing_log_topic
        assert proxy.seen[:5] == ["429", "503", "items429", "items429", "pass"]
        expected = {f"k{i}": {"v": 80 + i} for i in range(20)}
        del expected["k3"]
        assert docs(os_client, index_name) == expected
        assert processing_log(log, pl) == []
    finally:
        proxy.close()


def test_a_too_large_request_is_split(log, os_client, index_name, opensearch_url):
    proxy = FaultyProxy(opensearch_url, max_body=4000)
    try:
        log.create_topic("states")
        produce(log, "states", [(f"k{i}", {"text": "x" * 100, "i": i}) for i in range(200)])
        with OpenSearchSink(log, "states", index_name, proxy.url, backoff_initial=0.01) as sink:
            sink.run(idle_timeout=0.5)
            assert sink.metrics.indexed == 200 and sink.metrics.failed == 0
            assert sink.max_bulk_bytes <= 4000
        assert "413" in proxy.seen and len(docs(os_client, index_name)) == 200
    finally:
        proxy.close()


def test_stopping_while_the_server_is_unreachable_commits_nothing(log, os_client, index_name, opensearch_url):
    with socket.socket() as s:  # a loopback port where nothing listens: connections are refused
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    log.create_topic("states")
    produce(log, "states", [(f"k{i}", {"v": i}) for i in range(50)])
    for template in ({"mappings": {"properties": {"v": {"type": "long"}}}}, None):  # stuck in start, then in a bulk
        sink = OpenSearchSink(log, "states", index_name, dead_url, group="g", template=template,
                              backoff_initial=0.01, backoff_max=0.05)
        thread = threading.Thread(target=sink.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while sink.metrics.retries < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        sink.stop()
        thread.join(10)
        assert not thread.is_alive() and sink.metrics.retries >= 3 and sink.metrics.records == 0
        assert "Connection refused" in sink.metrics.last_error
        sink.close()
    # the same group against the live server: every record is still there to be written
    with OpenSearchSink(log, "states", index_name, opensearch_url, group="g") as sink:
        sink.run(idle_timeout=0.5)
        assert sink.metrics.records == 50
    assert len(docs(os_client, index_name)) == 50
