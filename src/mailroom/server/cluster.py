"""Several ``mailroom server`` processes with one service id on one log form a cluster.

What they share, and how:

- **Statements**: every server keeps following the command topic
  (``_confluent-ksql-{service_id}_command_topic``) while it runs, not only at start. A statement
  sent to one server is executed there, then recorded (tagged with that server's instance id);
  the others execute it as it arrives, in topic order, so a ``CREATE TABLE ... AS SELECT`` sent
  to server A starts on server B too, with the same query id (a mismatch is logged). Before a
  server executes a statement of its own it first catches up with the topic, so the servers run
  the same statements in the same order. (Two statements sent to two servers within the same few
  milliseconds may still be recorded in another order than they ran: ksqlDB closes that gap by
  writing to the command topic first, under a transactional producer.)
- **Work**: each server runs every persistent query as an engine application with the same
  application id, so the engine's consumer groups split the queries' partitions between them,
  and move a dead server's tasks to the survivors (restoring their state from the changelogs).
- **Membership and ownership**: each server publishes a heartbeat every ``interval`` seconds on
  the compacted topic ``_confluent-ksql-{service_id}_heartbeat`` (key: its instance id): its
  advertised URL and, per query, the partitions of the query's table-writing sub-topology that
  it owns now. A member silent for ``stale_after`` seconds is dropped, as is one a forward could
  not reach (until it beats again); one that shuts down cleanly writes a tombstone.
  ``GET /clusterStatus`` shows the members in ksqlDB's shape.

Pull queries on a table materialized by a query (:func:`route_pull`): the key's partition is the
partition of the task that maintains the key, computed as the engine routes it (the repartition
topic's hash after a GROUP BY, else Kafka's partitioner over the source's key bytes). The server
that owns that task answers; another server forwards the query to it over HTTP (``POST
/query-stream`` with ``request.ksql.internal.request``, the client's credentials passed on). The
response names the host that answered: the ``X-Mailroom-Source-Host`` header, and ksqlDB's
``sourceHost`` in each ``/query`` row when the request sets ``request.ksql.debug``. A partition
no live member owns (its owner died or froze and the engine has not yet moved its task) gets an
HTTP 503 ``generic_error`` (code 50300) saying it is being restored, instead of an answer that
may be stale; a retry after the tasks move gets the answer. A lone server (no other member seen
since it started) answers everything itself, as a single ksqlDB server does; so does a server
whose partition is owned by an in-process member without a URL (it cannot be asked, but it is
alive, so the table's topic is fresh).

A table scan (or keys of several partitions) is answered where it arrives: the table's rows
live in its topic, which every server reads (:mod:`mailroom.sql.views`), so there is nothing to
gather from other hosts (ksqlDB scatters because its state lives only in each host's stores). It
needs every partition to have a live owner (else the same 503), so it never mixes fresh
partitions with ones whose owner is gone.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..log import TopicPartition

if TYPE_CHECKING:
    from .core import KsqlServer

log = logging.getLogger("mailroom.server.cluster")

#: ksqlDB's request property: a query forwarded by another server, to be answered locally
INTERNAL_REQUEST = "request.ksql.internal.request"
#: the error code of a pull query on a partition being restored (HTTP 503)
PARTITION_RESTORING = 50300
#: one beat a second per server: small segments so that compaction keeps only the last of each
HEARTBEAT_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": str(1 << 20), "segment.ms": "600000",
                          "delete.retention.ms": "60000"}


@dataclass
class Member:
    """What the last heartbeat of a server said."""

    id: str
    url: str | None
    ts: int  # the heartbeat's wall-clock time (ms)
    seen: float  # time.monotonic() when it was read (or estimated from ts for old records)
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: int = 0


class PartitionRestoring(Exception):
    """No live server owns a partition a pull query needs."""


def default_advertised_url(host: str, port: int, tls: bool = False) -> str:
    """The URL other servers reach this one at, from its listener (a wildcard address is
    replaced by this machine's name)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def host_of(url: str | None) -> str:
    """``host:port`` of a URL (ksqlDB names hosts so in /clusterStatus and ``sourceHost``)."""
    if not url:
        return "local"
    return url.split("://", 1)[-1].rstrip("/")


class Cluster:
    """This server's membership of its cluster: follows the command topic, publishes and reads
    heartbeats, and knows who owns which partition of each query."""

    def __init__(self, server: KsqlServer, *, advertised_url: str | None = None, interval: float = 1.0,
                 stale_after: float = 4.0, forward_timeout: float = 5.0) -> None:
        self.server = server
        self.log = server.log
        self.instance_id = uuid.uuid4().hex[:16]
        self.advertised_url = advertised_url
        self.interval = interval
        self.stale_after = stale_after
        self.forward_timeout = forward_timeout
        self.heartbeat_topic = f"_confluent-ksql-{server.service_id}_heartbeat"
        self.started = int(time.time() * 1000)
        self._members: dict[str, Member] = {}
        self._down: dict[str, int] = {}  # member id -> wall ms when a forward to it failed
        #: another member was seen since this server started: from then on a partition nobody
        #: owns is "being restored" (a lone server answers everything itself)
        self.peers_seen = False
        self._mlock = threading.Lock()
        self._cmd_lock = threading.Lock()
        self._cmd_consumer = None
        self._cmd_tp = TopicPartition(server.command_topic, 0) if server.command_topic else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = None
        self._verify: Any = True  # how forwards check the other servers' certificates (see trust)
        self._tables: dict[str, TableTasks] = {}  # query id -> how its table's keys map to tasks

    def trust(self, cafile: str) -> None:
        """Accept the other servers' TLS certificates when signed by ``cafile`` (or being it), as
        well as by the system's CAs: the servers of one cluster usually share one certificate."""
        import ssl

        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cafile=cafile)
        self._verify = ctx

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, command_position: int | None = None) -> None:
        """Start following the command topic from ``command_position`` (where the replay at start
        ended) and heartbeating."""
        self.log.create_topic(self.heartbeat_topic, 1, HEARTBEAT_TOPIC_CONFIG, exist_ok=True)
        if self._cmd_tp is not None:
            c = self.log.consumer(None)
            c.assign([self._cmd_tp])
            c.seek(self._cmd_tp, command_position if command_position is not None else c.watermarks(self._cmd_tp)[1])
            self._cmd_consumer = c
        self._hb_consumer = self.log.consumer(None)
        tp = TopicPartition(self.heartbeat_topic, 0)
        self._hb_consumer.assign([tp])
        lo, hi = self._hb_consumer.watermarks(tp)
        self._hb_consumer.seek(tp, max(lo, hi - 1000))  # enough to see every live member's last beat
        deadline = time.monotonic() + 10
        while self._hb_consumer.position(tp) < hi and time.monotonic() < deadline:
            self._read_heartbeats(timeout=0.5, backlog=True)  # (with the tombstones of those who left)
        self.peers_seen = any(mid != self.instance_id for mid in self.members())
        self._producer = self.log.producer()
        self._thread = threading.Thread(target=self._run, name="cluster-agent", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the agent; leave the cluster at once (a tombstone), rather than go stale."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            if self._thread is not None:
                self._producer.send(self.heartbeat_topic, None, self.instance_id.encode())
                self._producer.close()
        except Exception as e:  # noqa: BLE001 - the log may be gone already; the others see us go stale
            log.debug("heartbeat tombstone: %s", e)
        for c in (self._cmd_consumer, getattr(self, "_hb_consumer", None)):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
        if self._http is not None:
            self._http.close()

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_beat:
                    self._beat()
                    next_beat = time.monotonic() + self.interval
                self._read_heartbeats()
                self.sync_commands(wait_lock=False)
            except Exception as e:  # noqa: BLE001 - the agent must outlive a log hiccup
                log.warning("cluster agent: %s: %s", type(e).__name__, e)
            self._stop.wait(min(0.2, self.interval / 2))

    # -- the command topic ---------------------------------------------------------------------------
    def sync_commands(self, wait_lock: bool = True) -> int:
        """Execute the statements other servers recorded since the last call; returns how many.
        With ``wait_lock`` False (the agent), gives up if a statement is running now."""
        c, tp = self._cmd_consumer, self._cmd_tp
        if c is None:
            return 0
        with self._cmd_lock:
            if c.position(tp) >= c.watermarks(tp)[1]:
                return 0
        srv = self.server
        if not srv.lock.acquire(blocking=wait_lock):
            return 0
        ran = 0
        try:
            with self._cmd_lock:
                end = c.watermarks(tp)[1]
                while c.position(tp) < end:
                    batches = c.poll(1000, timeout=1.0)
                    if not batches:
                        break
                    for raw in (v for b in batches for v in b.values if v is not None):
                        cmd = json.loads(raw)
                        if cmd.get("origin") == self.instance_id:
                            continue  # ours: executed before it was recorded
                        res = srv._run_command(cmd)
                        ran += 1
                        want = cmd.get("queryId")
                        if res is not None and want and res.query_id and res.query_id != want:
                            log.warning("command topic: %r started as %s here but as %s on its server",
                                        cmd.get("sql", "")[:100], res.query_id, want)
        finally:
            srv.lock.release()
        if ran:
            srv.metrics.persistent_queries.set(len(srv.executor.queries))
            log.info("ran %d statements from other servers", ran)
        return ran

    # -- heartbeats ----------------------------------------------------------------------------------
    def local_ownership(self) -> dict[str, dict[str, Any]]:
        """Per running query: its table topic and the partitions (tasks of the sub-topology that
        writes it) this server owns now, and every source partition of its tasks."""
        out: dict[str, dict[str, Any]] = {}
        for qid, (app, _t) in list(self.server.runtime.apps.items()):
            sink_topic = self._sink_topic(qid)
            try:
                tt = table_tasks(self.server, qid, sink_topic) if sink_topic else None
                tasks = _tasks(app)
                subs = {str(sub.id): sub for sub in app.subs}
                stores = sorted({store for tid in tasks for n in subs[tid.rsplit("_", 1)[0]].nodes
                                 for store, _kind in app.topology.nodes[n].stores})
            except Exception as e:  # noqa: BLE001 - (a topic just deleted, a rebalance): the next beat tells
                log.debug("ownership of %s: %s", qid, e)
                continue
            out[qid] = {"topic": sink_topic, "partitions": tt.owned() if tt is not None else [],
                        "active": sorted([tp.topic, tp.partition] for tps in tasks.values() for tp in tps),
                        "stores": stores}
        return out

    def _sink_topic(self, qid: str) -> str | None:
        q = self.server.executor.queries.get(qid)
        src = self.server.executor.meta.sources.get(q.sink) if q is not None and q.sink else None
        return src.topic if src is not None else None

    def _beat(self) -> None:
        now = int(time.time() * 1000)
        body = {"id": self.instance_id, "url": self.advertised_url, "ts": now, "started": self.started,
                "queries": self.local_ownership()}
        self._producer.send(self.heartbeat_topic, json.dumps(body).encode(), self.instance_id.encode(), timestamp=now)
        self._producer.flush(10)

    def _read_heartbeats(self, timeout: float = 0, backlog: bool = False) -> None:
        for rb in self._hb_consumer.poll(10_000, timeout=timeout):
            for k, v, ts in zip(rb.keys, rb.values, rb.timestamps.tolist()):
                mid = (k or b"").decode()
                with self._mlock:
                    if v is None:
                        self._members.pop(mid, None)
                        continue
                    beat = json.loads(v)
                    age = max(0.0, time.time() - beat.get("ts", ts) / 1000)
                    if age > self.stale_after:
                        continue  # an old beat (read at start): that member may be long gone
                    if mid != self.instance_id and not backlog:
                        self.peers_seen = True
                    if beat["ts"] > self._down.get(mid, -1):
                        self._down.pop(mid, None)
                    self._members[mid] = Member(mid, beat.get("url"), beat["ts"], time.monotonic() - age,
                                                beat.get("queries") or {}, beat.get("started", 0))

    def members(self) -> dict[str, Member]:
        """The live members (this server included): heard from within ``stale_after`` seconds and
        not found unreachable since their last heartbeat."""
        now = time.monotonic()
        with self._mlock:
            for mid in [m for m, mem in self._members.items() if now - mem.seen > self.stale_after]:
                log.info("cluster: member %s (%s) went stale", mid, self._members[mid].url)
                del self._members[mid]
                self._down.pop(mid, None)
            return {mid: m for mid, m in self._members.items() if mid not in self._down}

    def mark_down(self, member: Member) -> None:
        """A forward to ``member`` failed: skip it until it heartbeats again."""
        with self._mlock:
            self._down[member.id] = int(time.time() * 1000)

    # -- routing -------------------------------------------------------------------------------------
    def owners(self, qid: str, partition: int) -> list[Member]:
        """The live other members that claim ``partition`` of query ``qid``, freshest first."""
        found = [m for mid, m in self.members().items() if mid != self.instance_id
                 and partition in (m.queries.get(qid) or {}).get("partitions", ())]
        return sorted(found, key=lambda m: -m.ts)

    def forward(self, member: Member, text: str, props: dict[str, Any], auth: str | None) -> tuple[list[str], str]:
        """Run a pull query on ``member`` (it answers locally). Returns (the raw JSON array of
        each row, the header line). Raises ``httpx.TransportError`` when it cannot be reached in
        ``forward_timeout`` seconds, :class:`.core.StatementFailed` with its error when it answers one."""
        import httpx

        from .core import StatementFailed

        if self._http is None:
            self._http = httpx.Client(timeout=self.forward_timeout, verify=self._verify)
        headers = {"Accept": "application/vnd.ksqlapi.delimited.v1", "Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        body = {"sql": text, "properties": {**props, INTERNAL_REQUEST: True}}
        r = self._http.post(member.url.rstrip("/") + "/query-stream", json=body, headers=headers)
        if r.status_code != 200:
            try:
                entity = r.json()
            except ValueError:
                entity = {"@type": "generic_error", "error_code": r.status_code * 100, "message": r.text}
            raise StatementFailed(entity, r.status_code)
        lines = [ln for ln in r.text.split("\n") if ln.strip()]
        if len(lines) > 1 and lines[-1].startswith("{"):  # (rows are arrays): an error after the header
            raise StatementFailed(json.loads(lines[-1]), 500)
        return lines[1:], lines[0] if lines else ""

    # -- /clusterStatus ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``GET /clusterStatus`` in ksqlDB's shape: per host (``host:port``), whether it is alive,
        its last heartbeat and, per query, the stores and source partitions it runs."""
        live = self.members()
        with self._mlock:
            everyone = dict(self._members)
        everyone[self.instance_id] = Member(self.instance_id, self.advertised_url, int(time.time() * 1000),
                                            time.monotonic(), self.local_ownership(), self.started)
        out: dict[str, Any] = {}
        for mid, m in everyone.items():
            per_query = {qid: {"activeStores": q.get("stores", []),
                               "activePartitions": [{"topic": t, "partition": p} for t, p in q.get("active", [])],
                               "standByStores": [], "standByPartitions": [],
                               "tablePartitions": q.get("partitions", [])}
                         for qid, q in m.queries.items()}
            name = host_of(m.url) if m.url else f"local:{mid}"
            out[name] = {"hostAlive": mid == self.instance_id or mid in live, "lastStatusUpdateMs": m.ts,
                         "activeStandbyPerQuery": per_query,
                         "hostStoreLags": {"stateStoreLags": {}, "updateTimeMs": m.ts}}
        return {"clusterStatus": out}


def _sink_sub(app: Any, sink_topic: str | None) -> Any:
    """The sub-topology of ``app`` that writes ``sink_topic`` (where the table's state lives)."""
    if sink_topic is None:
        return None
    for sub in app.subs:
        if any(app.topology.nodes[n].sink_topic == sink_topic for n in sub.nodes):
            return sub
    return None


@dataclass
class TableTasks:
    """How a running query's table maps keys to the engine tasks that maintain them."""

    app: Any
    sub: Any  # the sub-topology that writes the table (where its state lives)
    partitions: int
    repartitioned: bool  # fed by a repartition topic (GROUP BY/PARTITION BY), else by a source topic
    key_serde: Any  # that source's key serializer (not repartitioned)

    def partition_of(self, value: Any) -> int | None:
        """The partition of the task that handles key ``value``, as the engine routes it: the
        repartition topic's hash of the key value, else Kafka's partitioner over the source
        topic's key bytes. None when that cannot be told."""
        from ..engine.operators.repartition import key_bytes
        from ..log.partitioner import partition_for

        if self.repartitioned:
            return partition_for(key_bytes([value])[0].as_py(), self.partitions)
        if self.key_serde is None:
            return None
        try:
            kb = self.key_serde.encode([value])[0]
        except Exception:  # noqa: BLE001 - not a key of this table: no task has it
            return None
        return None if kb is None else partition_for(kb, self.partitions)

    def owned(self) -> list[int]:
        """The partitions whose task runs in this server now."""
        prefix = f"{self.sub.id}_"
        return sorted(int(tid[len(prefix):]) for tid in _tasks(self.app) if tid.startswith(prefix))


def _tasks(app: Any) -> dict[str, list[TopicPartition]]:
    """``app.owners()`` (task id ``{sub}_{partition}`` -> its source partitions), read from another
    thread than the app's: a rebalance changing it meanwhile is read again."""
    for _ in range(5):
        try:
            return app.owners()
        except RuntimeError:  # dictionary changed size during iteration
            time.sleep(0.001)
    return {}


def table_tasks(server: KsqlServer, qid: str, sink_topic: str) -> TableTasks | None:
    """The :class:`TableTasks` of query ``qid`` writing ``sink_topic`` (None if it does not run
    here), cached per running application."""
    from ..sql.serdes import serdes_for

    app_t = server.runtime.apps.get(qid)
    if app_t is None:
        return None
    cache = server.cluster._tables if server.cluster is not None else {}
    hit = cache.get(qid)
    if hit is not None and hit.app is app_t[0]:
        return hit
    app = app_t[0]
    sub = _sink_sub(app, sink_topic)
    if sub is None or not sub.source_topics:
        return None
    topic = sub.source_topics[0]
    n = server.log.describe_topic(app.topic(topic)).partitions
    serde = None
    if "{app}" not in topic:
        src = next((s for s in server.executor.meta.sources.values() if s.topic == topic), None)
        serde = serdes_for(src)[0] if src is not None and len(src.key_columns) == 1 else None
    tt = TableTasks(app, sub, n, "{app}" in topic, serde)
    cache[qid] = tt
    return tt


@dataclass
class PullRoute:
    """Where a pull query runs: here (``forward_to`` None) or on another member."""

    forward_to: Member | None
    partitions: list[int]
    source: Any = None


def route_pull(server: KsqlServer, q: Any) -> PullRoute:
    """Where pull query ``q`` should run (see the module docstring). Raises
    :class:`PartitionRestoring` when a partition it needs has no live owner."""
    from ..sql.views import key_literals

    cl = server.cluster
    name = getattr(q.from_, "name", None)
    src = server.executor.meta.find(name) if isinstance(name, str) else None
    qid = getattr(src, "query_id", None) if src is not None and src.is_table else None
    if cl is None or qid is None or qid not in server.runtime.apps:
        return PullRoute(None, [], src)  # not materialized by a running query: its topic is the truth
    tt = table_tasks(server, qid, src.topic)
    if tt is None:
        return PullRoute(None, [], src)
    parts: set[int] | None = None
    if src.window is None and len(src.key_columns) == 1:
        lits = key_literals(q.where, src.key_columns[0].name)
        if lits:
            found = [tt.partition_of(lit.value) for lit in lits]
            parts = None if any(p is None for p in found) else set(found)  # type: ignore[arg-type]
    needed = sorted(parts) if parts is not None else list(range(tt.partitions))
    mine = set(tt.owned())
    targets: dict[int, Member] = {}
    missing: list[int] = []
    for p in needed:
        if p in mine:
            continue
        owners = cl.owners(qid, p)
        if owners and owners[0].url:
            targets[p] = owners[0]
        elif owners:
            continue  # an in-process server (no URL) owns it: live, so the table's topic is fresh; read it here
        elif cl.peers_seen:
            missing.append(p)
    if missing:
        what = f"Partition {missing[0]}" if len(missing) == 1 else f"Partitions {', '.join(map(str, missing))}"
        raise PartitionRestoring(
            f"Unable to execute pull query: {what} of table {src.name} (query {qid}) "
            f"{'is' if len(missing) == 1 else 'are'} being restored: no live server owns "
            f"{'it' if len(missing) == 1 else 'them'} (its server left the cluster and the engine has not moved "
            "its tasks yet). Retry shortly.")
    if len(needed) == 1 and targets:
        return PullRoute(targets[needed[0]], needed, src)
    # several partitions (a scan, or keys of several owners): the rows are all in the table's
    # topic, which this server reads too, and every partition has a live owner: answer here
    return PullRoute(None, needed, src)


@dataclass
class RemoteColumns:
    """The columns of a forwarded pull query's answer (from the other server's header)."""

    names: list[str]
    types: list[str]
    keys: list[bool]

    def schema(self) -> str:
        return ", ".join(f"`{n}` {t}" + (" KEY" if k else "") for n, t, k in zip(self.names, self.types, self.keys))

    def type_names(self) -> list[str]:
        return list(self.types)


def remote_columns(header: str, src: Any) -> RemoteColumns:
    """The columns named by a ``/query-stream`` header line, keys marked as ``src``'s."""
    head = json.loads(header)
    keys = {c.name for c in src.key_columns} | ({"WINDOWSTART", "WINDOWEND"} if src.window is not None else set())
    names = head.get("columnNames", [])
    return RemoteColumns(names, head.get("columnTypes", []), [n in keys for n in names])
