"""What the dashboard shows live, kept up to date by push queries on the server.

One :class:`Feed` per source (``SELECT * FROM <source> EMIT CHANGES`` from the earliest offset,
through the server's own query API), shared by every browser looking at the page: N viewers
cost the server one push query per source, not N (a browser holding one streaming HTTP/1.1
request per source would also use up its six connections per host). A source that does not
exist yet (pipelines not submitted) is retried every few seconds and reported as ``missing``;
a query that stops is started again from the earliest offset (the state it fed is cleared first,
so nothing is counted twice).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ...server.core import KsqlServer, StatementFailed
from .index import EventIndex

log = logging.getLogger(__name__)

#: the columns of the health tables that the page draws (others are left out of the snapshot)
HEALTH_COLUMNS = ("WINDOWSTART", "WINDOWEND", "ATTEMPTS", "DELIVERED", "DEFERRED", "BOUNCED", "HARD_BOUNCES", "BLOCKED",
                  "THROTTLED", "ACCEPT_RATE", "P50_LATENCY_MS", "P95_LATENCY_MS")


class Feed:
    """One push query over ``source`` feeding ``on_row(row_dict, tombstone)``."""

    def __init__(self, server: KsqlServer, source: str, on_row: Callable[[dict[str, Any], bool], None],
                 on_reset: Callable[[], None]) -> None:
        self.server = server
        self.source = source
        self.on_row = on_row
        self.on_reset = on_reset
        self.status = "starting"  # starting, live, missing, failed
        self.message = ""
        self.rows = 0
        self.query_id: str | None = None
        self.running = False
        self._names: list[str] = []
        self._ready = threading.Event()

    def start(self) -> None:
        """Start the push query; a missing source leaves the feed ``missing`` (retried later)."""
        sql = f"SELECT * FROM {self.source} EMIT CHANGES;"
        self._ready.clear()
        if self.rows:  # a restart replays from the earliest offset: forget what the last run fed
            self.on_reset()
            self.rows = 0
        try:
            q = self.server.prepare_query(sql)
            pq = self.server.start_push(q, sql, {"auto.offset.reset": "earliest"}, self._row, self._done)
        except StatementFailed as e:
            msg = str(e.entity.get("message", e))
            self.status = "missing" if "does not exist" in msg or "not exist" in msg else "failed"
            self.message = msg.splitlines()[0]
            return
        self._names = list(pq.columns.names)
        self.query_id = pq.query_id
        self.running = True
        self.status, self.message = "live", ""
        self._ready.set()

    def _row(self, cols: list[Any], tomb: bool) -> None:
        self._ready.wait(30)  # the first rows may come before start_push has returned
        self.rows += 1
        try:
            self.on_row(dict(zip(self._names, cols)), tomb)
        except Exception as e:  # noqa: BLE001 - a bad row must not stop the feed
            log.warning("dashboard feed %s: bad row %r: %s", self.source, cols, e)

    def _done(self, err: BaseException | None) -> None:
        self.running = False
        self.query_id = None
        if err is not None:
            self.status, self.message = "failed", f"{type(err).__name__}: {err}"
        elif self.status == "live":
            self.status, self.message = "starting", "the query stopped; starting it again"

    def stop(self) -> None:
        qid = self.query_id
        if qid is not None:
            self.server.stop_push(qid)

    def info(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "rows": self.rows}


class WindowedRows:
    """The latest row per (subject, window start) of a windowed table, for the newest
    ``windows`` window starts."""

    def __init__(self, key: str, windows: int) -> None:
        self.key = key
        self.windows = windows
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}

    def update(self, row: dict[str, Any], tomb: bool) -> None:
        subject, start = row.get(self.key), row.get("WINDOWSTART")
        if subject is None or not isinstance(start, int):
            return
        k = (str(subject), start)
        if tomb:
            self.rows.pop(k, None)
            return
        starts = sorted({s for _, s in self.rows})
        if len(starts) >= self.windows and start < starts[0]:
            return  # older than everything kept: off the chart
        self.rows[k] = {self.key: str(subject), **{c: row.get(c) for c in HEALTH_COLUMNS}}
        if len(starts) >= self.windows and start not in starts:
            cut = sorted(set(starts) | {start})[-self.windows]
            self.rows = {key: r for key, r in self.rows.items() if key[1] >= cut}

    def clear(self) -> None:
        self.rows.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        return [self.rows[k] for k in sorted(self.rows, key=lambda k: (k[1], k[0]))]


class KeyedRows:
    """The latest row per key of a table, the ``limit`` most recently updated."""

    def __init__(self, key: str, limit: int) -> None:
        self.key = key
        self.limit = limit
        self.rows: dict[str, dict[str, Any]] = {}

    def update(self, row: dict[str, Any], tomb: bool) -> None:
        k = row.get(self.key)
        if k is None:
            return
        self.rows.pop(str(k), None)
        if not tomb:
            self.rows[str(k)] = row
            while len(self.rows) > self.limit:
                self.rows.pop(next(iter(self.rows)))

    def clear(self) -> None:
        self.rows.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.rows.values())


class LiveState:
    """Everything the page shows live, fed by one :class:`Feed` per source; started on first
    use and stopped when the server closes."""

    def __init__(self, server: KsqlServer, *, windows: int = 30, list_size: int = 100, campaigns: int = 200,
                 index_messages: int = 50_000, retry_s: float = 2.0) -> None:
        self.server = server
        self.retry_s = retry_s
        self.lock = threading.Lock()
        self.version = 0
        self.provider = WindowedRows("PROVIDER", windows)
        self.node = WindowedRows("MTA", windows)
        self.campaigns = KeyedRows("CAMPAIGN_ID", campaigns)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=list_size)
        self.stuck: deque[dict[str, Any]] = deque(maxlen=list_size)
        self.index = EventIndex(index_messages)
        self.feeds = [
            self._feed("MTA_HEALTH_PROVIDER", self.provider.update, self.provider.clear),
            self._feed("MTA_HEALTH_NODE", self.node.update, self.node.clear),
            self._feed("CAMPAIGN_STATS", self.campaigns.update, self.campaigns.clear),
            self._feed("ALERTS", lambda r, t: t or self.alerts.append(r), self.alerts.clear),
            self._feed("STUCK_MAIL", lambda r, t: t or self.stuck.append(r), self.stuck.clear),
        ]
        if index_messages > 0:  # 0: no index (its replay from the earliest offset costs CPU on a big topic)
            self.feeds.append(self._feed("EMAIL_EVENTS", lambda r, t: t or self.index.add(r), self.index.clear))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _feed(self, source: str, update: Callable[[dict[str, Any], bool], Any], clear: Callable[[], Any]) -> Feed:
        def on_row(row: dict[str, Any], tomb: bool) -> None:
            with self.lock:
                update(row, tomb)
                self.version += 1

        def on_reset() -> None:
            with self.lock:
                clear()
                self.version += 1

        return Feed(self.server, source, on_row, on_reset)

    def ensure_started(self) -> None:
        """Start the feeds' supervisor (once)."""
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._supervise, name="dashboard-feeds", daemon=True)
                self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            for f in self.feeds:
                if not f.running and not self._stop.is_set():
                    before = f.status
                    f.start()
                    if f.status != before:
                        with self.lock:
                            self.version += 1
            self._stop.wait(self.retry_s)

    def close(self) -> None:
        """Stop the supervisor and the push queries (a server close hook)."""
        self._stop.set()
        for f in self.feeds:
            f.stop()
        if self._thread is not None:
            self._thread.join(10)

    def snapshot(self) -> dict[str, Any]:
        """What the page draws, as JSON-ready values."""
        with self.lock:
            return {
                "version": self.version,
                "sources": {f.source: f.info() for f in self.feeds},
                "provider": self.provider.snapshot(),
                "node": self.node.snapshot(),
                "campaigns": self.campaigns.snapshot(),
                "alerts": list(self.alerts)[::-1],
                "stuck": list(self.stuck)[::-1],
                "index": self.index.stats(),
            }
