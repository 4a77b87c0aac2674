"""The server's state: one statement executor on a log runtime, the running push queries, and
the metrics. The HTTP layer (:mod:`.app`) calls into it; it knows nothing of HTTP.

Statements run one at a time (a lock around the executor): the metastore and the planner are
not thread-safe, and ksqlDB too runs the statements of a server in sequence.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from .. import __version__
from ..formats.types import SqlType
from ..log import Log, TopicPartition, open_log
from ..sql import ast as A
from ..sql.executor import Result, SqlExecutor
from ..sql.metastore import SqlError
from ..sql.parser import SqlSyntaxError, parse
from ..sql.runtime import LogRuntime
from ..sql.serdes import serdes_for
from ..sql.transient import Columns, PushQuery, check_pull, is_push, run_pull
from ..sql.views import TableViews
from . import processing_log, wire
from .metrics import Metrics
from .cluster import INTERNAL_REQUEST, PARTITION_RESTORING, Cluster, PartitionRestoring, host_of, remote_columns, route_pull

_OFFSET_RESET_KEYS = ("auto.offset.reset", "ksql.streams.auto.offset.reset")
#: what /ksql still runs in headless mode: statements that change nothing
log = logging.getLogger("mailroom.server")
_READ_ONLY = (A.Show, A.Describe, A.DescribeFunction, A.Explain)
#: the statements the command topic keeps (what changes the metastore or what runs)
_COMMANDS = (A.CreateSource, A.CreateAsSelect, A.InsertInto, A.CreateType, A.DropType, A.DropSource, A.Terminate,
             A.AlterSource)


class StatementFailed(Exception):
    """A statement of a request failed: the response entity says why (HTTP ``status``)."""

    def __init__(self, entity: dict[str, Any], status: int = 400) -> None:
        super().__init__(entity.get("message"))
        self.entity = entity
        self.status = status


class ServerRuntime(LogRuntime):
    """The log runtime with the server's settings for persistent queries: record caching on or
    off (``ksql.streams.cache.max.bytes.buffering`` = 0 turns it off: every update is emitted)."""

    def __init__(self, *args: Any, caching: bool = True, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.caching = caching

    def start_query(self, query_id: str, topology, source_topics: list[str]) -> None:
        from ..engine import App

        app_id = f"_confluent-ksql-{self.service_id}query_{query_id}"
        app = App(topology, app_id, self.log, state_dir=self.state_dir, processing_guarantee=self.guarantee,
                  caching=self.caching)
        self.prepare_app(app)  # the server-wide processing log (see .processing_log)
        t = self._threading.Thread(target=app.run, name=f"query-{query_id}", daemon=True)
        self.apps[query_id] = (app, t)
        t.start()


class KsqlServer:
    """What ``mailroom server`` runs: statements, push and pull queries, inserts."""

    def __init__(self, log: Log | str = "embedded:.mailroom/data", state_dir: str | Path = ".mailroom/state", *,
                 service_id: str = "default_", processing_guarantee: str = "at_least_once", registry: Any = None,
                 push_buffer: int = 10_000, push_stall_timeout: float = 5.0, caching: bool = True,
                 command_topic: bool = True, processing_log_stream: bool = False,
                 advertised_url: str | None = None, cluster: bool | None = None, heartbeat_interval: float = 1.0) -> None:
        self.log_url = log if isinstance(log, str) else getattr(log, "path", type(log).__name__)
        self.log: Log = open_log(log) if isinstance(log, str) else log
        self._owns_log = isinstance(log, str)
        self.state_dir = Path(state_dir)
        self.service_id = service_id
        self.runtime = ServerRuntime(self.log, self.state_dir, processing_guarantee=processing_guarantee,
                                     service_id=service_id, caching=caching)
        if registry is None:
            from ..functions import builtin_registry

            registry = builtin_registry()
        self.executor = SqlExecutor(self.runtime, registry)
        self.lock = threading.RLock()
        self.push_queries: dict[str, PushQuery] = {}
        #: tables materialized for pull queries, caught up at each query
        self.views = TableViews(self.log)
        self._stopped: list[PushQuery] = []  # stopped, maybe still closing: joined on close()
        self.push_buffer = push_buffer
        #: seconds a push query's client may take no row while push_buffer rows wait, before it is cut off
        self.push_stall_timeout = push_stall_timeout
        self.metrics = Metrics()
        self.command_seq = 0
        self.command_status: dict[str, dict[str, Any]] = {}
        self.cluster_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailroom:{self.log_url}"))
        self.started = time.time()
        #: the queries files this server runs (``--queries-file``): /ksql then runs read-only statements only
        self.queries_files: list[Path] = []
        self._close_hooks: list[Callable[[], None]] = []
        #: push query id -> the user who started it (with --auth-file): a read-only user may close only its own
        self.query_owners: dict[str, str] = {}
        #: the command topic (as ksqlDB keeps one): every statement that changes the metastore or
        #: what runs, replayed at start, so streams, tables and persistent queries survive a restart
        self.command_topic = f"_confluent-ksql-{service_id}_command_topic" if command_topic else None
        processing_log.install(self, stream=processing_log_stream)  # before any query starts
        self._command_position: int | None = None  # where the replay ended: the cluster follows on from there
        self.replayed = self._replay_commands() if self.command_topic else 0
        #: membership of the servers with this service id on this log (see .cluster); on by
        #: default with the command topic. Started after the replay: it follows on from there.
        self.cluster: Cluster | None = None
        if cluster if cluster is not None else command_topic:
            self.cluster = Cluster(self, advertised_url=advertised_url, interval=heartbeat_interval)
            self.cluster.start(self._command_position)

    # -- info ---------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"KsqlServerInfo": {"version": __version__, "kafkaClusterId": self.cluster_id,
                                   "ksqlServiceId": self.service_id, "serverStatus": "RUNNING"}}

    def health(self) -> dict[str, Any]:
        try:
            self.log.list_topics()
            kafka = True
        except Exception:  # noqa: BLE001
            kafka = False
        return {"isHealthy": kafka, "details": {"metastore": {"isHealthy": True}, "kafka": {"isHealthy": kafka},
                                               "commandRunner": {"isHealthy": True}}}

    # -- statements ---------------------------------------------------------------------------------
    def parse(self, text: str) -> list[A.Statement]:
        try:
            return parse(text, self.executor.variables)
        except SqlSyntaxError as e:
            raise StatementFailed(wire.statement_error(str(e), text)) from None

    def run_ksql(self, text: str, props: dict[str, Any] | None = None, *, read_only: bool = False) -> list[dict[str, Any]]:
        """``POST /ksql``: run each statement, return their entities; on an error raise
        :class:`StatementFailed` carrying the entities of the statements before it.
        ``read_only`` (a read-only user): refuse the whole request (HTTP 403) before running
        anything if one statement would change something (see :func:`.auth.read_only_statement`)."""
        stmts = self.parse(text)
        if read_only:
            from .auth import read_only_statement

            for stmt in stmts:
                if not read_only_statement(stmt):
                    self.metrics.statements.labels("error").inc()
                    raise StatementFailed(wire.statement_error(
                        "Forbidden: a read-only user may run SHOW, LIST, DESCRIBE, EXPLAIN and queries only; "
                        f"{type(stmt).__name__} needs the read-write role.", stmt.text, code=wire.FORBIDDEN), 403)
        entities: list[dict[str, Any]] = []
        cache = (props or {}).get("ksql.streams.cache.max.bytes.buffering", (props or {}).get("cache.max.bytes.buffering"))
        if cache is not None:
            self.runtime.caching = str(cache).strip() not in ("0", "0.0")
        for stmt in stmts:
            if self.queries_files and not isinstance(stmt, (*_READ_ONLY, A.QueryStatement, A.PrintTopic)):
                self.metrics.statements.labels("error").inc()
                raise StatementFailed(wire.statement_error(
                    f"The server is running in headless mode (--queries-file {' '.join(map(str, self.queries_files))}): interactive "
                    "statements are disabled; only SHOW, LIST, DESCRIBE and EXPLAIN are run.", stmt.text, entities))
            if isinstance(stmt, (A.QueryStatement, A.PrintTopic)):
                self.metrics.statements.labels("error").inc()
                raise StatementFailed(wire.statement_error(
                    "The following statement types should be issued to the websocket endpoint '/query':\n"
                    "\t* PRINT\n\t* SELECT", stmt.text, entities))
            try:
                with self.lock:
                    ent = self._execute(stmt)
            except SqlError as e:
                self.metrics.statements.labels("error").inc()
                raise StatementFailed(wire.statement_error(str(e), stmt.text, entities)) from None
            except StatementFailed:
                raise
            except Exception as e:  # noqa: BLE001
                self.metrics.statements.labels("error").inc()
                raise StatementFailed(wire.generic_error(f"{type(e).__name__}: {e}"), 500) from None
            self.metrics.statements.labels("ok").inc()
            if ent is not None:
                entities.append(ent)
        self.metrics.persistent_queries.set(len(self.executor.queries))
        return entities

    def run_queries_file(self, *paths: str | Path) -> list[dict[str, Any]]:
        """Run the statements of SQL files, in order, at start (ksqlDB's ``ksql.queries.file``),
        then stay headless: /ksql refuses statements that would change what runs. INSERT ...
        VALUES is skipped (it would insert again on every start). Raises :class:`StatementFailed`."""
        kept: list[str] = []
        for path in map(Path, paths):
            try:
                text = path.read_text()
            except OSError as e:
                raise StatementFailed(wire.generic_error(f"Cannot read the queries file {path}: {e}", wire.BAD_REQUEST)) from None
            kept += [s.text for s in self.parse(text) if not isinstance(s, A.InsertValues)]
        entities = self.run_ksql("\n".join(kept)) if kept else []
        self.queries_files = [Path(p) for p in paths]
        return entities

    def _replay_commands(self) -> int:
        """Run the command topic's statements again, in order (a statement that fails now, e.g.
        because its topic was deleted meanwhile, is logged and skipped). Returns how many ran."""
        self.log.create_topic(self.command_topic, 1, exist_ok=True)
        c = self.log.consumer(None)
        ran = 0
        try:
            tp = TopicPartition(self.command_topic, 0)
            c.assign([tp])
            end = c.watermarks(tp)[1]
            records: list[bytes] = []
            while c.position(tp) < end:
                batches = c.poll(10_000, timeout=1.0)
                if not batches:
                    break
                records += [v for b in batches for v in b.values if v is not None]
            self._command_position = c.position(tp)
        finally:
            c.close()
        for raw in records:
            ran += self._run_command(json.loads(raw)) is not None
        if ran:
            log.info("replayed %d statements from %s", ran, self.command_topic)
        return ran

    def _run_command(self, cmd: dict[str, Any]) -> Result | None:
        """Execute one command of the command topic (at start, or recorded by another server of
        the cluster); one that fails now is logged and skipped (None)."""
        saved = dict(self.executor.properties)
        res = None
        try:
            self.executor.properties.update(cmd.get("properties") or {})
            for stmt in parse(cmd["sql"], self.executor.variables):
                res = self.executor.execute(stmt)
            return res or Result(cmd["sql"], "")
        except Exception as e:  # noqa: BLE001 - one stale command must not keep the server down
            log.warning("command topic: skipped %r: %s", cmd.get("sql", "")[:200], e)
            return None
        finally:
            self.executor.properties.clear()
            self.executor.properties.update(saved)

    def _record_command(self, stmt: A.Statement, query_id: str | None = None) -> None:
        if self.command_topic is None or self.queries_files:
            return
        cmd = {"sql": stmt.text, "properties": self.executor.properties}
        if self.cluster is not None:  # the others skip what they already ran, and check the query id
            cmd.update(origin=self.cluster.instance_id, queryId=query_id)
        body = json.dumps(cmd, default=str).encode()
        with self.log.producer() as p:
            p.send(self.command_topic, body)
            p.flush(30)

    def on_close(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` first thing in :meth:`close` (extensions stop their threads there)."""
        self._close_hooks.append(hook)

    def _execute(self, stmt: A.Statement) -> dict[str, Any] | None:
        ex = self.executor
        if isinstance(stmt, A.Show) or (isinstance(stmt, A.Describe) and stmt.name is None):
            what = (stmt.what if isinstance(stmt, A.Show) else (stmt.what or "STREAMS")).upper()
            extended = getattr(stmt, "extended", False)
            return self._show(stmt, what, extended)
        if isinstance(stmt, A.Describe):
            src = ex.meta.get(stmt.name, stmt.pos)
            return {"@type": "sourceDescription", "statementText": stmt.text,
                    "sourceDescription": wire.source_description(src, ex.queries, stmt.extended), "warnings": []}
        if isinstance(stmt, A.DescribeFunction):
            try:
                d = ex.registry.describe(stmt.name)
            except Exception:  # noqa: BLE001
                raise SqlError(f"Can't find any functions with the name '{stmt.name.upper()}'", stmt.pos) from None
            functions = [{"arguments": [{"name": a["name"], "type": a["type"], "description": ""} for a in o.get("arguments", [])],
                          "returnType": o.get("returns", ""), "description": o.get("description", ""),
                          "argumentTypes": [a["type"] for a in o.get("arguments", [])]} for o in d.get("overloads", [])]
            return {"@type": "describe_function", "statementText": stmt.text, "name": d.get("name", stmt.name.upper()),
                    "description": d.get("description", ""), "author": d.get("author", ""), "version": d.get("version", ""),
                    "path": d.get("path", "internal"), "functions": functions, "type": d.get("type", "SCALAR"), "warnings": []}
        if isinstance(stmt, A.Explain):
            res = ex.execute(stmt)
            row = res.rows[0] if res.rows else {}
            return {"@type": "queryDescription", "statementText": stmt.text,
                    "queryDescription": {"id": row.get("id", ""), "statementText": row.get("sql", ""), "fields": [],
                                         "sources": [], "sinks": row.get("sinks", []), "topology": "", "executionPlan": "",
                                         "overriddenProperties": {}, "state": "RUNNING", "queryType": "PERSISTENT"},
                    "warnings": []}
        if isinstance(stmt, _COMMANDS) and self.cluster is not None:
            self.cluster.sync_commands()  # first what other servers ran: all run them in one order
        res: Result = ex.execute(stmt)
        if isinstance(stmt, _COMMANDS):
            self._record_command(stmt, res.query_id)
        if isinstance(stmt, (A.InsertValues, A.SetProperty, A.UnsetProperty, A.DefineVariable, A.UndefineVariable)):
            return None
        self.command_seq += 1
        ent = wire.current_status(stmt, res.message, res.query_id, self.command_seq)
        self.command_status[ent["commandId"]] = {"status": "SUCCESS", "message": res.message, "queryId": res.query_id}
        return ent

    def _show(self, stmt: A.Statement, what: str, extended: bool) -> dict[str, Any]:
        ex = self.executor
        base = {"statementText": stmt.text, "warnings": []}
        if what in ("STREAMS", "TABLES"):
            kind = what[:-1]
            srcs = sorted((s for s in ex.meta.sources.values() if s.kind == kind), key=lambda s: s.name)
            if extended:
                return {"@type": "source_descriptions", **base,
                        "sourceDescriptions": [wire.source_description(s, ex.queries, True) for s in srcs]}
            items = [{"type": s.kind, "name": s.name, "topic": s.topic, "keyFormat": s.key_format,
                      "valueFormat": s.value_format, "isWindowed": s.window is not None} for s in srcs]
            return {"@type": what.lower(), **base, what.lower(): items}
        if what == "QUERIES":
            qs = [{"queryString": q.sql, "sinks": [q.sink] if q.sink else [],
                   "sinkKafkaTopics": [ex.meta.sources[q.sink].topic] if q.sink in ex.meta.sources else [],
                   "id": q.id, "statusCount": {q.state: 1}, "queryType": "PERSISTENT", "state": q.state}
                  for q in ex.queries.values()]
            qs += [{"queryString": p.sql, "sinks": [], "sinkKafkaTopics": [], "id": qid, "statusCount": {"RUNNING": 1},
                    "queryType": "PUSH", "state": "RUNNING"} for qid, p in list(self.push_queries.items())]
            return {"@type": "queries", **base, "queries": qs}
        if what == "PROPERTIES":
            # the server's own settings (as ksqlDB lists its config), overlaid with what SET changed
            server_props = {"ksql.service.id": self.service_id, "ksql.streams.auto.offset.reset": "latest",
                            "ksql.streams.state.dir": str(self.state_dir),
                            "ksql.logging.processing.topic.name": processing_log.topic_name(self.service_id)}
            merged = {**server_props, **ex.properties}
            props = [{"name": k, "scope": "KSQL", "value": str(v)} for k, v in sorted(merged.items()) if not _secret(k)]
            return {"@type": "properties", **base, "properties": props,
                    "overwrittenProperties": sorted(k for k in ex.properties if not _secret(k)),
                    "defaultProperties": sorted(k for k in server_props if k not in ex.properties)}
        if what == "TOPICS":
            names = sorted(t for t in self.log.list_topics() if not t.startswith("_"))
            return {"@type": "kafka_topics", **base,
                    "topics": [{"name": t, "replicaInfo": [1] * self.runtime.topic_partitions(t)} for t in names]}
        if what == "FUNCTIONS":
            return {"@type": "function_names", **base,
                    "functions": [{"name": f.name, "type": f.kind, "category": getattr(f, "category", "")}
                                  for f in ex.registry.list_functions()]}
        if what == "TYPES":
            return {"@type": "type_list", **base, "types": {k: wire.schema_json(v) for k, v in sorted(ex.meta.types.items())}}
        if what == "VARIABLES":
            return {"@type": "variables", **base,
                    "variables": [{"name": k, "value": v} for k, v in sorted(ex.variables.items())]}
        raise SqlError(f"SHOW {what} is not supported", getattr(stmt, "pos", None))

    # -- queries ------------------------------------------------------------------------------------
    def prepare_query(self, text: str) -> A.Query:
        """The one SELECT of a /query or /query-stream request."""
        stmts = self.parse(text)
        if len(stmts) != 1:
            raise StatementFailed(wire.statement_error(f"Expected exactly one statement, got {len(stmts)}", text))
        stmt = stmts[0]
        if not isinstance(stmt, A.QueryStatement):
            raise StatementFailed(wire.statement_error(
                "Statement type not supported on this endpoint: only SELECT queries can be run here; "
                "use /ksql for other statements.", stmt.text))
        return stmt.query

    def pull(self, q: A.Query, text: str) -> tuple[str, Columns, list[tuple[list[Any], bool]]]:
        try:
            with self.lock:
                check_pull(q)
                cols, rows = run_pull(self.executor, q, self.log, self.views)
        except SqlError as e:
            raise StatementFailed(wire.statement_error(str(e), text)) from None
        self.metrics.pull_queries.inc()
        name = getattr(q.from_, "name", "QUERY")
        return f"query_{name}_{int(time.time() * 1000)}", cols, rows

    def pull_routed(self, q: A.Query, text: str, props: dict[str, Any] | None = None,
                    auth: str | None = None) -> tuple[str, Any, list[tuple[Any, bool]], str | None]:
        """A pull query in a cluster (see :mod:`.cluster`): answered here, or forwarded to the
        server that owns the key's partition. Returns (query id, columns, rows, ``host:port`` of
        the server that answered, None without a cluster). A forwarded answer's rows are
        :class:`.wire.RawJson` arrays. Raises :class:`StatementFailed` (HTTP 503, error code
        50300) while a partition it needs is being restored. ``auth``: the client's
        Authorization header, passed on to the other server."""
        cl = self.cluster
        props = props or {}
        if cl is None or str(props.get(INTERNAL_REQUEST, "")).lower() == "true":
            return (*self.pull(q, text), host_of(cl.advertised_url) if cl and cl.advertised_url else None)
        import httpx

        for _attempt in range(3):
            try:
                with self.lock:
                    check_pull(q)
                    route = route_pull(self, q)
            except PartitionRestoring as e:
                raise StatementFailed(wire.generic_error(str(e), PARTITION_RESTORING), 503) from None
            except SqlError as e:
                raise StatementFailed(wire.statement_error(str(e), text)) from None
            member = route.forward_to
            if member is None:
                return (*self.pull(q, text), host_of(cl.advertised_url) if cl.advertised_url else None)
            try:
                rows, header = cl.forward(member, text, props, auth)
            except httpx.TransportError as e:  # gone: route again without it (its partitions: restoring)
                log.info("cluster: %s unreachable (%s): routing without it", member.url, e)
                cl.mark_down(member)
                continue
            self.metrics.pull_queries.inc()
            name = getattr(q.from_, "name", "QUERY")
            return (f"query_{name}_{int(time.time() * 1000)}", remote_columns(header, route.source),
                    [(wire.RawJson(r), False) for r in rows], host_of(member.url))
        raise StatementFailed(wire.generic_error("Unable to execute pull query: no server that owns the partition "
                                                 "could be reached. Retry shortly.", PARTITION_RESTORING), 503)

    def cluster_status(self) -> dict[str, Any]:
        """``GET /clusterStatus`` (ksqlDB's shape; this server alone without a cluster)."""
        if self.cluster is None:
            return {"clusterStatus": {}}
        return self.cluster.status()

    def start_push(self, q: A.Query, text: str, props: dict[str, Any], on_row, on_done) -> PushQuery:
        reset = next((props[k] for k in _OFFSET_RESET_KEYS if k in props), None)
        if reset is None:
            reset = next((self.executor.properties[k] for k in _OFFSET_RESET_KEYS if k in self.executor.properties), "latest")
        try:
            with self.lock:
                pq = PushQuery(self.executor, q, self.log, state_dir=self.state_dir, service_id=self.service_id,
                               offset_reset=str(reset), on_row=on_row, on_done=on_done)
        except SqlError as e:
            raise StatementFailed(wire.statement_error(str(e), text)) from None
        self.runtime.prepare_app(pq.app)  # its skipped records go to the server's processing log too
        pq.sql = text  # type: ignore[attr-defined]
        self.push_queries[pq.query_id] = pq
        self.metrics.push_started.inc()
        self.metrics.push_active.set(len(self.push_queries))
        return pq.start()

    def stop_push(self, query_id: str, wait: bool = False) -> bool:
        pq = self.push_queries.pop(query_id, None)
        self.metrics.push_active.set(len(self.push_queries))
        if pq is None:
            return False
        pq.stop(wait=wait)
        self._stopped = [p for p in self._stopped if p.thread.is_alive()] + ([pq] if not wait else [])
        return True

    # -- inserts ------------------------------------------------------------------------------------
    def insert_target(self, name: str):
        src = self.executor.meta.find(name) or self.executor.meta.find(name.upper())
        if src is None:
            raise SqlError(f"Cannot insert values into an unknown stream/table: {name}")
        if src.source_only:
            raise SqlError(f"Cannot insert into read-only {src.kind.lower()}: {src.name}")
        return src

    def insert_row(self, src, obj: dict[str, Any]) -> None:
        """One row of ``/inserts-stream``: JSON values by column name (any case) into the
        source's topic, serialized in its formats."""
        if not isinstance(obj, dict):
            raise SqlError("Each row must be a JSON object")
        by_upper = {str(k).upper(): v for k, v in obj.items()}
        row: dict[str, Any] = {}
        for c in src.key_columns + src.value_columns:
            v = obj[c.name] if c.name in obj else by_upper.get(c.name.upper())
            row[c.name] = from_json(v, c.type, c.name)
        unknown = [k for k in obj if str(k).upper() not in {c.name.upper() for c in src.all_columns()} and str(k).upper() != "ROWTIME"]
        if unknown:
            raise SqlError(f"Column name {unknown[0]} does not exist.")
        ts = by_upper.get("ROWTIME")
        kser, vser = serdes_for(src)
        kvals = [row[c.name] for c in src.key_columns]
        key = None if not kvals else (kvals[0] if len(kvals) == 1 else tuple(kvals))
        kb = kser.encode([key])[0] if src.key_columns else None
        vb = vser.encode([row])[0]
        with self.lock:
            self.runtime.produce(src.topic, kb, vb, int(ts if ts is not None else time.time() * 1000))
        self.metrics.inserted_rows.inc()

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
        for hook in self._close_hooks:
            try:
                hook()
            except Exception as e:  # noqa: BLE001 - one extension must not stop the others closing
                logging.getLogger(__name__).warning("close hook %r failed: %s", hook, e)
        for qid in list(self.push_queries):
            self.stop_push(qid, wait=True)
        for pq in self._stopped:
            pq.stop(wait=True)
        self._stopped.clear()
        self.runtime.close()
        if self._owns_log:
            self.log.close()


def _secret(name: str) -> bool:
    n = name.lower()
    return any(w in n for w in ("password", "secret", "sasl.jaas", "credentials", "key.password"))


def from_json(v: Any, t: SqlType, name: str = "") -> Any:
    """A JSON value as the Python value of SQL type ``t`` (what the serdes take)."""
    if v is None:
        return None
    b = t.base
    try:
        if b in ("INT", "BIGINT"):
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError(v)
            return int(v)
        if b == "DOUBLE":
            return float(v)
        if b == "DECIMAL":
            return Decimal(str(v)).quantize(Decimal(1).scaleb(-(t.scale or 0)))
        if b == "STRING":
            return v if isinstance(v, str) else wire.encode(v)
        if b == "BOOLEAN":
            if isinstance(v, str):
                return v.lower() == "true"
            return bool(v)
        if b == "BYTES":
            return base64.b64decode(v)
        if b == "TIMESTAMP":
            if isinstance(v, (int, float)):
                return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(v))
            return dt.datetime.fromisoformat(str(v).rstrip("Z"))
        if b == "DATE":
            if isinstance(v, int):
                return dt.date(1970, 1, 1) + dt.timedelta(days=v)
            return dt.date.fromisoformat(str(v))
        if b == "TIME":
            if isinstance(v, int):
                return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=v)).time()
            return dt.time.fromisoformat(str(v))
        if b == "ARRAY":
            return [from_json(x, t.element, name) for x in v]
        if b == "MAP":
            return {str(k): from_json(x, t.element, name) for k, x in v.items()}
        if b == "STRUCT":
            up = {str(k).upper(): x for k, x in v.items()}
            return {c.name: from_json(v.get(c.name, up.get(c.name.upper())), c.type, c.name) for c in t.fields}
    except (ValueError, TypeError, ArithmeticError, AttributeError) as e:
        raise SqlError(f"Failed to insert values into {name}: can't coerce {v!r} to {t}") from e
    return v
