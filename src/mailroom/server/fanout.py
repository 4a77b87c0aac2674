"""Live push queries shared by their subscribers (as ksqlDB's scalable push queries share work).

A push query is an engine App with its own consumer, decoding and operators: a hundred dashboards
running the same ``SELECT ... EMIT CHANGES`` would run it a hundred times and take the CPU (and
the GIL) from the persistent queries. Here subscribers of the same query text with
``auto.offset.reset`` = ``latest`` (the default: a live tail, nothing to replay) share one running
query; each row goes to every subscriber. Each subscriber keeps its own query id (listed by SHOW
QUERIES, closed by /close-query) and its own LIMIT; the shared query stops when its last
subscriber leaves. A subscriber must not hold the others back: its row callback must not block
(the REST layer cuts off a shared subscriber whose buffer is full at once). Queries from
``earliest`` replay the topic for themselves and run alone.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..sql import ast as A

if TYPE_CHECKING:
    from .core import KsqlServer

_OFFSET_RESET_KEYS = ("auto.offset.reset", "ksql.streams.auto.offset.reset")
_fanouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Shared:
    """One running push query and its subscribers (replaced, never changed in place, so the
    query's thread iterates a consistent set while subscribers come and go)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.subs: dict[str, tuple[Callable, Callable]] = {}
        self.pq: Any = None
        self.done = False
        self._lock = lock  # the fanout's: no subscriber joins between "done" and telling them

    def on_row(self, cols: list[Any], tomb: bool) -> None:
        for on_row, _ in self.subs.values():
            on_row(cols, tomb)

    def on_done(self, err: BaseException | None) -> None:
        with self._lock:
            self.done = True
            subs = self.subs
        for _, on_done in subs.values():
            on_done(err)


class Subscriber:
    """What the server lists in ``push_queries`` for one subscriber of a shared query (the
    attributes the server uses of a PushQuery: query_id, columns, sql, thread, stop)."""

    def __init__(self, fanout: PushFanout, shared: _Shared, query_id: str) -> None:
        self._fanout = fanout
        self.shared = shared
        self.query_id = query_id
        self.columns = shared.pq.columns
        self.sql = shared.pq.sql
        self.thread = shared.pq.thread
        self.limit = None

    def stop(self, wait: bool = False) -> None:
        self._fanout.detach(self, wait)


class PushFanout:
    """The shared push queries of one server (see the module docstring)."""

    def __init__(self, server: KsqlServer) -> None:
        self.server = server
        self._shared: dict[str, _Shared] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def shareable(self, q: A.Query, props: dict[str, Any]) -> bool:
        reset = next((props[k] for k in _OFFSET_RESET_KEYS if k in props), None)
        if reset is None:
            reset = next((self.server.executor.properties[k] for k in _OFFSET_RESET_KEYS
                          if k in self.server.executor.properties), "latest")
        return str(reset).lower() == "latest"

    def start(self, q: A.Query, text: str, props: dict[str, Any], on_row: Callable, on_done: Callable) -> Any:
        """Subscribe to the running query of this text (starting it if none runs), or run an
        unshareable one alone (:meth:`KsqlServer.start_push`); returns what the server lists."""
        if not self.shareable(q, props):
            return self.server.start_push(q, text, props, on_row, on_done)
        key = " ".join(text.split()).rstrip(";")
        srv = self.server
        with self._lock:
            sh = self._shared.get(key)
            if sh is None or sh.done or not sh.pq.thread.is_alive():
                sh = _Shared(self._lock)
                sh.pq = srv.start_push(q, text, props, sh.on_row, sh.on_done)
                srv.push_queries.pop(sh.pq.query_id, None)  # listed through its subscribers
                self._shared[key] = sh
            else:
                srv.metrics.push_started.inc()  # (a new shared query was counted by start_push)
            sub = Subscriber(self, sh, f"{sh.pq.query_id}_{next(self._ids)}")
            sh.subs = {**sh.subs, sub.query_id: (on_row, on_done)}
            srv.push_queries[sub.query_id] = sub
        srv.metrics.push_active.set(len(srv.push_queries))
        return sub

    def detach(self, sub: Subscriber, wait: bool = False) -> None:
        """``sub`` leaves; the last one out stops the shared query."""
        sh = sub.shared
        with self._lock:
            mine = sh.subs.get(sub.query_id)
            sh.subs = {k: v for k, v in sh.subs.items() if k != sub.query_id}
            last = not sh.subs
            if last:
                key = next((k for k, v in self._shared.items() if v is sh), None)
                if key is not None:
                    del self._shared[key]
        if last:
            sh.pq.stop(wait=wait)
        if mine is not None:
            mine[1](None)  # its response ends as a stopped query's does (the query itself may go on)

    def running(self) -> int:
        """Shared queries running now."""
        return len(self._shared)


def fanout_of(server: KsqlServer) -> PushFanout:
    """The server's :class:`PushFanout` (made on first use)."""
    f = _fanouts.get(server)
    if f is None:
        f = _fanouts[server] = PushFanout(server)
    return f
