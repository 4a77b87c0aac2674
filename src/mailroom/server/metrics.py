"""Prometheus metrics of one server (a registry of its own, so several servers can live in one
process, as in the tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the app)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("mailroom_http_requests", "HTTP requests", ["method", "path", "status"], registry=r)
        self.latency = Histogram("mailroom_http_request_duration_seconds", "HTTP request latency (to the response head)",
                                 ["path"], registry=r)
        self.statements = Counter("mailroom_statements", "statements run through /ksql", ["result"], registry=r)
        self.persistent_queries = Gauge("mailroom_persistent_queries", "persistent queries running", registry=r)
        self.push_started = Counter("mailroom_push_queries_started", "push queries started", registry=r)
        self.push_active = Gauge("mailroom_push_queries_active", "push queries running now", registry=r)
        self.push_rows = Counter("mailroom_push_query_rows", "rows sent to push query clients", registry=r)
        self.push_slow = Counter("mailroom_push_queries_slow_disconnected",
                                 "push queries stopped because their client read too slowly", registry=r)
        self.pull_queries = Counter("mailroom_pull_queries", "pull queries answered", registry=r)
        self.inserted_rows = Counter("mailroom_inserted_rows", "rows inserted through /inserts-stream", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
