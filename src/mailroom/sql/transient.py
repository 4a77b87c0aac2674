"""Transient queries: push queries (``SELECT ... EMIT CHANGES``) and pull queries (``SELECT``
without EMIT CHANGES), as the REST server and the shell run them.

A push query is planned like a persistent query, but instead of a sink its final stream is
tapped with a ``peek``: each (key, row) that reaches the end calls ``on_row(columns,
tombstone)``. The topology runs as an engine :class:`~mailroom.engine.App` with an application
id of its own (``_confluent-ksql-<service>transient_<source>_<n>``), reading its sources from
the earliest or the latest offset (``auto.offset.reset``), on a thread, until :meth:`stop`.

A pull query takes the latest record per key of a table (from a :mod:`~mailroom.sql.views`
materialized view kept up to date incrementally, or by reading the topic when no view is given;
all records for a stream) and runs them through the same planned topology in-process (a
:class:`~mailroom.engine.TestDriver`), so WHERE, projections and pseudo-columns behave as in
push queries. A WHERE on the key looks up only the matching rows.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import App, TestDriver, Windowed
from ..formats.types import SqlType
from ..log import OFFSET_BEGINNING, Log, RecordBatch, TopicPartition
from . import ast as A
from .metastore import WINDOWEND, WINDOWSTART, DataSource, SqlError
from .serdes import serdes_for
from .views import TableView, TableViews, key_literals

log = logging.getLogger("mailroom.sql.transient")

_ids = itertools.count(1)

_PULL_HINT = "See https://cnfl.io/queries for more info.\nAdd EMIT CHANGES if you intended to issue a push query."


def ksql_type(t: SqlType | None) -> str:
    """A type as ksqlDB writes it in a query header schema (``INTEGER``, ``ARRAY<STRING>``...)."""
    if t is None:
        return "STRING"
    b = t.base
    if b == "INT":
        return "INTEGER"
    if b == "DECIMAL":
        return f"DECIMAL({t.precision}, {t.scale})"
    if b == "ARRAY":
        return f"ARRAY<{ksql_type(t.element)}>"
    if b == "MAP":
        return f"MAP<STRING, {ksql_type(t.element)}>"
    if b == "STRUCT":
        return "STRUCT<" + ", ".join(f"`{c.name}` {ksql_type(c.type)}" for c in t.fields) + ">"
    return b


@dataclass
class Columns:
    names: list[str]
    types: list[SqlType]
    #: which columns are the table's key (pull queries on tables mark them ``KEY`` in the schema)
    keys: list[bool] | None = None

    def schema(self) -> str:
        keys = self.keys or [False] * len(self.names)
        return ", ".join(f"`{n}` {ksql_type(t)}" + (" KEY" if k else "") for n, t, k in zip(self.names, self.types, keys))

    def type_names(self) -> list[str]:
        return [ksql_type(t) for t in self.types]


def is_push(q: A.Query) -> bool:
    return (q.emit or "").upper() in ("CHANGES", "FINAL")


def check_pull(q: A.Query) -> None:
    """ksqlDB's limits on pull queries (what would need EMIT CHANGES)."""
    if q.group_by:
        raise SqlError(f"Pull queries don't support GROUP BY clauses. {_PULL_HINT}", q.pos)
    if q.window is not None:
        raise SqlError(f"Pull queries don't support WINDOW clauses. {_PULL_HINT}", q.pos)
    if isinstance(q.from_, A.Join):
        raise SqlError(f"Pull queries don't support JOIN clauses. {_PULL_HINT}", q.pos)
    if q.partition_by:
        raise SqlError(f"Pull queries don't support PARTITION BY clauses. {_PULL_HINT}", q.pos)
    if q.having is not None:
        raise SqlError(f"Pull queries don't support HAVING clauses. {_PULL_HINT}", q.pos)


class _Tapped:
    """A planned transient query: its topology (ending in a tap), output columns and sources."""

    def __init__(self, executor: Any, q: A.Query, on_record: Callable[[Any, Any], None]) -> None:
        plan, stream, outputs = executor.planner.plan(q, None, transient=True)
        self.plan = plan
        self.outputs = outputs
        self.sources: list[DataSource] = plan.sources
        primary = plan.sources[0] if len(plan.sources) == 1 else None
        self._key_names = [c.name for c in primary.key_columns] if primary is not None else []
        names = [o.name for o in outputs]
        # SELECT * of a windowed source: the window bounds come right after the key columns
        if (primary is not None and primary.window is not None and len(q.select) == 1 and isinstance(q.select[0], A.AllColumns)
                and names[-2:] == [WINDOWSTART, WINDOWEND]):
            nk = len(primary.key_columns)
            order = list(range(nk)) + [len(names) - 2, len(names) - 1] + list(range(nk, len(names) - 2))
            outputs = [outputs[i] for i in order]
            self.outputs = outputs
        self.columns = Columns([o.name for o in outputs], [o.type for o in outputs])
        if hasattr(stream, "to_stream") and not hasattr(stream, "to"):
            stream = stream.to_stream()  # a table's changes: deletions arrive as None values
        stream.peek(on_record)

    def to_columns(self, key: Any, row: dict | None) -> tuple[list[Any], bool]:
        """The output columns of one record and whether it is a tombstone (a deleted table row:
        its key columns, and the window bounds, filled from the key; the rest NULL)."""
        if row is not None:
            return [row.get(n) for n in self.columns.names], False
        known: dict[str, Any] = {}
        k = key
        if isinstance(k, Windowed):
            known[WINDOWSTART], known[WINDOWEND] = k.start, k.end
            k = k.key
        if len(self._key_names) == 1:
            known[self._key_names[0]] = k
        elif self._key_names and isinstance(k, (tuple, list)):
            known.update(zip(self._key_names, k))
        return [known.get(n) for n in self.columns.names], True


class _OffsetResetLog:
    """The log as the transient query's App sees it: its consumers start where
    ``auto.offset.reset`` says when the group has no committed offset (a fresh group always)."""

    def __init__(self, inner: Log, reset: str) -> None:
        self._inner = inner
        self._reset = reset

    def consumer(self, group_id: str | None = None, **config: Any):
        config["auto_offset_reset"] = self._reset
        return self._inner.consumer(group_id, **config)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TransientApp(App):
    """An App whose progress is never committed: a transient query does not resume, so it
    flushes its tasks (their outputs reach the tap) but keeps no offsets in its group."""

    def commit(self) -> None:
        if self._consumer is None:
            return
        for task in self.tasks.values():
            task.commit()
        self._producer.flush()
        self._last_commit = time.monotonic()


class PushQuery:
    """A push query running as an engine App on the log.

    ``on_row(columns, tombstone)`` is called on the App's thread for each result row;
    ``on_done(error)`` once when the App stops (``error`` is None on a normal stop)."""

    def __init__(self, executor: Any, q: A.Query, log_: Log, *, state_dir: str | Path, service_id: str = "default_",
                 offset_reset: str = "latest", on_row: Callable[[list[Any], bool], None],
                 on_done: Callable[[BaseException | None], None] | None = None) -> None:
        self.on_row = on_row
        self.on_done = on_done or (lambda e: None)
        self.limit = q.limit
        self._stopped = threading.Event()
        self.tapped = _Tapped(executor, q, self._record)
        self.columns = self.tapped.columns
        name = self.tapped.sources[0].name if self.tapped.sources else "QUERY"
        self.query_id = f"transient_{name}_{next(_ids)}"
        self.application_id = f"_confluent-ksql-{service_id}{self.query_id}"
        self.log = log_
        self.state_dir = Path(state_dir) / "transient"
        reset = str(offset_reset or "latest").lower()
        if reset not in ("earliest", "latest"):
            raise SqlError(f"Invalid value {offset_reset} for configuration auto.offset.reset: "
                           "String must be one of: latest, earliest, none")
        self.app = _TransientApp(self.tapped.plan.topology, self.application_id, _OffsetResetLog(log_, reset),  # type: ignore[arg-type]
                       state_dir=self.state_dir, caching=False, commit_interval_ms=5_000)
        self.thread = threading.Thread(target=self._run, name=f"push-{self.query_id}", daemon=True)

    def _record(self, key: Any, row: Any) -> None:
        if self._stopped.is_set():
            return
        if row is None and not self.tapped.plan.is_table:
            return  # a stream record without a value: nothing to show (ksqlDB skips it)
        cols, tomb = self.tapped.to_columns(key, row)
        self.on_row(cols, tomb)

    def _run(self) -> None:
        err: BaseException | None = None
        try:
            self.app.run()
        except BaseException as e:  # noqa: BLE001 - reported to the client
            log.warning("push query %s failed: %s", self.query_id, e)
            err = e
        finally:
            self._stopped.set()
            self._cleanup()
            self.on_done(err)

    def start(self) -> PushQuery:
        self.thread.start()
        return self

    def stop(self, wait: bool = False) -> None:
        self._stopped.set()
        self.app.stop()
        if wait and self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(30)

    def _cleanup(self) -> None:
        """A transient query leaves nothing behind: its internal topics and local state go."""
        try:
            for t in self.log.list_topics():
                if t.startswith(self.application_id):
                    self.log.delete_topic(t)
        except Exception as e:  # noqa: BLE001
            log.debug("cleanup of %s topics: %s", self.query_id, e)
        shutil.rmtree(self.state_dir / self.application_id, ignore_errors=True)


def read_topic(log_: Log, topic: str) -> list[RecordBatch]:
    """Every record of ``topic`` now in the log, partition by partition."""
    n = log_.describe_topic(topic).partitions
    out: list[RecordBatch] = []
    c = log_.consumer(None)
    try:
        tps = [TopicPartition(topic, p) for p in range(n)]
        c.assign(tps)
        for tp in tps:
            lo, hi = c.watermarks(tp)
            if hi <= lo:
                continue
            c.seek(tp, OFFSET_BEGINNING)
        ends = {tp: c.watermarks(tp)[1] for tp in tps}
        done = {tp for tp in tps if ends[tp] <= c.watermarks(tp)[0]}
        idle = 0
        while len(done) < len(tps) and idle < 20:
            batches = c.poll(10_000, timeout=0.2)
            if not batches:
                idle += 1
            for rb in batches:
                out.append(rb)
                tp = rb.topic_partition
                if rb.next_offset >= ends[tp]:
                    done.add(tp)
    finally:
        c.close()
    return out


_INTS = {"INT", "BIGINT"}


def _lookup_keys(src: DataSource, q: A.Query) -> list[bytes] | None:
    """The key bytes a pull query's WHERE pins a (non-windowed, single key column) table to."""
    if src.window is not None or len(src.key_columns) != 1:
        return None
    col = src.key_columns[0]
    lits = key_literals(q.where, col.name)
    if not lits:
        return None
    kb, lb = col.type.base, None
    for lit in lits:
        lb = lit.type.base if lit.type is not None else None
        if not (lb == kb == "STRING" or (lb in _INTS and kb in _INTS)):
            return None  # a literal of another type: leave the conversion to the full scan
    kser, _ = serdes_for(src)
    try:
        return [b for b in kser.encode([lit.value for lit in lits]) if b is not None]
    except Exception:  # noqa: BLE001 - not encodable as a key: no row can match by key
        return None


def run_pull(executor: Any, q: A.Query, log_: Log, views: TableViews | None = None) -> tuple[Columns, list[tuple[list[Any], bool]]]:
    """Answer a pull query (see the module docstring): from a materialized view of the table
    when ``views`` is given, else by reading the source's topic."""
    check_pull(q)
    rows: list[tuple[Any, Any]] = []
    tapped = _Tapped(executor, q, lambda k, v: rows.append((k, v)))
    src = tapped.sources[0]
    driver = TestDriver(tapped.plan.topology, application_id=f"_pull_{next(_ids)}")
    task = driver._by_topic.get(src.topic)
    if task is None:
        raise SqlError(f"Cannot run a pull query on {src.name}")
    if src.is_table:
        view = views.get(src.topic) if views is not None else TableView(log_, src.topic)
        view.refresh()
        found = view.rows(_lookup_keys(src, q))
        # one batch per partition, in the order a state store scan returns the rows
        for part in sorted({r[0] for r in found}):
            rs = [r for r in found if r[0] == part]
            hdrs = [r[5] for r in rs]
            task.process(RecordBatch(src.topic, part, np.array([r[1] for r in rs], dtype=np.int64),
                                     np.array([r[2] for r in rs], dtype=np.int64), [r[3] for r in rs], [r[4] for r in rs],
                                     hdrs if any(h for h in hdrs) else None))
    else:
        for rb in read_topic(log_, src.topic):
            task.process(rb)
    for t in driver.tasks:
        t.commit()
    out = [tapped.to_columns(k, v) for k, v in rows if v is not None]
    if q.limit is not None:
        if q.limit < 0:
            raise SqlError("Pull queries don't support negative integers in the LIMIT clause. See https://cnfl.io/queries for more info.", q.pos)
        out = out[: q.limit]
    cols = tapped.columns
    if src.is_table:
        key_names = {c.name for c in src.key_columns} | ({WINDOWSTART, WINDOWEND} if src.window is not None else set())
        cols = Columns(cols.names, cols.types, [n in key_names for n in cols.names])
    return cols, out
