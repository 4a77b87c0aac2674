"""Materialized views of tables for pull queries: the latest record per key, kept up to date.

A pull query on a table used to read the table's whole topic every time. A :class:`TableView`
reads it once, then at each query only what was appended since (a catch-up from its last
positions to the current end offsets), so a query costs what changed plus the rows it returns.
A key lookup (``WHERE key = ...`` or ``key IN (...)``) touches only the matching rows: the
literal is serialized with the table's key format and looked up by key bytes.

Views live as long as the server (:class:`TableViews`, at most ``max_views`` tables, least
recently used dropped first). A deleted and re-created topic (its start offset moving past a
view's position, or its end going backwards) starts the view afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ..log import Log, TopicPartition
from . import ast as A

#: (partition, offset, timestamp, key, value, headers) of the latest record of a key
Row = tuple[int, int, int, bytes | None, bytes | None, Any]


class TableView:
    """The latest record per (partition, key bytes) of one topic."""

    def __init__(self, log: Log, topic: str) -> None:
        self.log = log
        self.topic = topic
        self._latest: dict[tuple[int, bytes | None], Row] = {}
        self._positions: dict[int, int] = {}
        self._lock = threading.Lock()
        #: kept between refreshes (assigned to every partition): a consumer made per query cost
        #: more than the lookup itself (and far more on Kafka)
        self._consumer: Any = None
        self._assigned = 0

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def __len__(self) -> int:
        return len(self._latest)

    def refresh(self, idle_polls: int = 20) -> int:
        """Read what was appended since the last refresh; returns the number of records read."""
        with self._lock:
            n = self.log.describe_topic(self.topic).partitions
            tps = [TopicPartition(self.topic, p) for p in range(n)]
            if self._consumer is None or self._assigned != n:
                if self._consumer is not None:
                    self._consumer.close()
                self._consumer = self.log.consumer(None)
                self._consumer.assign(tps)
                self._assigned = n
            c = self._consumer
            read = 0
            try:
                ends: dict[TopicPartition, int] = {}
                for tp in tps:
                    lo, hi = c.watermarks(tp)
                    pos = self._positions.get(tp.partition, lo)
                    if pos < lo or pos > hi:  # the topic was re-created or truncated: start afresh
                        self._drop_partition(tp.partition)
                        pos = lo
                        if tp.partition in self._positions:  # (a consumer of the old topic reads no more)
                            c.close()
                            c = self._consumer = self.log.consumer(None)
                            c.assign(tps)
                    self._positions[tp.partition] = pos
                    if hi > pos:
                        c.seek(tp, pos)
                        ends[tp] = hi
                idle = 0
                while ends and idle < idle_polls:
                    batches = c.poll(50_000, timeout=0.2)
                    idle = 0 if batches else idle + 1
                    for rb in batches:
                        tp = rb.topic_partition
                        if tp not in ends:
                            continue
                        self._apply(rb)
                        read += len(rb)
                        self._positions[tp.partition] = rb.next_offset
                        if rb.next_offset >= ends[tp]:
                            del ends[tp]
            except BaseException:
                c.close()  # in an unknown state: the next refresh starts a new one
                self._consumer = None
                raise
            return read

    def _drop_partition(self, partition: int) -> None:
        for k in [k for k in self._latest if k[0] == partition]:
            del self._latest[k]

    def _apply(self, rb: Any) -> None:
        latest = self._latest
        p = rb.partition
        headers = getattr(rb, "headers", None)
        offsets, stamps = rb.offsets.tolist(), rb.timestamps.tolist()
        for i, (k, v) in enumerate(zip(rb.keys, rb.values)):
            key = (p, k)
            if v is None:
                latest.pop(key, None)
            else:
                latest.pop(key, None)  # keep the order of last update
                latest[key] = (p, offsets[i], stamps[i], k, v, headers[i] if headers else None)

    def rows(self, keys: Iterable[bytes] | None = None) -> list[Row]:
        """The live rows (all, or those with these key bytes), in the order a state store scan
        returns them: partition by partition, by key bytes."""
        with self._lock:
            if keys is None:
                found = list(self._latest.values())
            else:
                wanted = set(keys)
                parts = list(self._positions) if wanted else []  # the partitions read (not a scan of every key)
                found = [r for p in parts for kb in wanted if (r := self._latest.get((p, kb))) is not None]
        return sorted(found, key=lambda r: (r[0], r[3] or b""))


class TableViews:
    """The views of one server, by topic."""

    def __init__(self, log: Log, max_views: int = 32) -> None:
        self.log = log
        self.max_views = max_views
        self._views: OrderedDict[str, TableView] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, topic: str) -> TableView:
        with self._lock:
            view = self._views.pop(topic, None) or TableView(self.log, topic)
            self._views[topic] = view
            while len(self._views) > self.max_views:
                self._views.popitem(last=False)[1].close()
            return view

    def drop(self, topic: str) -> None:
        with self._lock:
            view = self._views.pop(topic, None)
        if view is not None:
            view.close()


def key_literals(where: A.Expr | None, key_name: str) -> list[Any] | None:
    """The key values a WHERE clause pins the single key column ``key_name`` to (``k = lit``,
    ``k IN (lit, ...)``, either ANDed with anything else), or None when it does not pin it."""
    if where is None:
        return None
    if isinstance(where, A.BinaryOp):
        if where.op.upper() == "AND":
            left = key_literals(where.left, key_name)
            return left if left is not None else key_literals(where.right, key_name)
        if where.op == "=":
            for a, b in ((where.left, where.right), (where.right, where.left)):
                if isinstance(a, A.ColumnRef) and a.name == key_name and isinstance(b, A.Literal) and b.value is not None:
                    return [b]  # (a Literal: its value and SQL type)
        return None
    if isinstance(where, A.InList) and not where.negated:
        if isinstance(where.expr, A.ColumnRef) and where.expr.name == key_name and all(
                isinstance(i, A.Literal) and i.value is not None for i in where.items):
            return list(where.items)
    return None
