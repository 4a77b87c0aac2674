"""The REST API, wire-compatible with ksqlDB's (see :func:`create_app`).

Endpoints:

- ``POST /ksql`` ``{"ksql": "...", "streamsProperties": {...}}``: statements; a JSON array of
  entities (``currentStatus``, ``streams``, ``tables``, ``queries``, ``sourceDescription``...).
  A failing statement: HTTP 400 and a ``statement_error`` holding the entities of the
  statements before it.
- ``POST /query`` ``{"ksql": "SELECT ...", "streamsProperties": {...}}``: chunked JSON,
  ``[{"header":{"queryId","schema"}},\\n{"row":{"columns":[...]}},\\n...,{"finalMessage":...}]``.
- ``POST /query-stream`` ``{"sql": "...", "properties": {...}}``: with ``Accept:
  application/vnd.ksqlapi.delimited.v1`` (the default) a header object line then one JSON array
  per row; with ``Accept: application/json`` one JSON array of them.
- ``POST /close-query`` ``{"queryId": "..."}``; ``POST /inserts-stream`` (first line
  ``{"target": "S"}``, then one JSON object per line; one ack line ``{"status":"ok","seq":n}``
  per row, as they are written); ``GET /info``, ``GET /healthcheck``, ``GET /status``,
  ``GET /metrics`` (Prometheus), ``GET /clusterStatus`` (the servers of the cluster and their
  partitions, see :mod:`.cluster`; pull queries by key are forwarded to the key's owner there).

Extensions: ``create_app(..., extensions=True)`` (what ``mailroom server`` does) calls each
entry point of the group ``mailroom.server_extensions``, a ``mount(app: FastAPI, server:
KsqlServer) -> None`` that may add routes (after the built-in ones, so it cannot shadow them) and
register ``server.on_close`` hooks; one that fails is logged and left out.

Authentication (``create_app(..., auth=Authenticator(FILE))``, ``mailroom server --auth-file``):
HTTP basic on every path but ``/healthcheck`` and ``/info``; roles and the file format in
:mod:`.auth`. Missing or wrong credentials: HTTP 401 with ``WWW-Authenticate: Basic`` and a
``generic_error`` of code 40100; a role that may not: HTTP 403, code 40300 (``statement_error`` on
``/ksql``), as ksqlDB answers them.

``PRINT 'topic' ...`` on ``/query`` and ``/query-stream``: see :mod:`.printing`.

Push queries run as engine Apps (see :mod:`mailroom.sql.transient`); live ones (offset reset
``latest``) of the same text share one App (see :mod:`.fanout`); each result row goes through an
asyncio queue to the client's response (the rows queued by then in one chunk). LIMIT ends the
response; a client that disconnects, or ``/close-query``, stops the query. A client ``push_buffer`` rows behind holds its
own query back (never the others); one that takes no row for ``push_stall_timeout`` seconds
while that many wait is disconnected with an error message and its query stopped. A subscriber
of a shared query is cut off as soon as its buffer is full (it must not hold the others back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..sql import ast as A
from ..sql.metastore import SqlError
from ..sql.transient import is_push
from . import printing, wire
from .fanout import fanout_of
from .auth import OPEN_PATHS, REALM, Authenticator, User
from .core import KsqlServer, StatementFailed
from .metrics import CONTENT_TYPE_LATEST

DELIMITED = "application/vnd.ksqlapi.delimited.v1"
KSQL_JSON = "application/json"
EXTENSIONS_GROUP = "mailroom.server_extensions"
_CHUNK_ROWS = 500  # at most this many queued rows of a push query go out in one response chunk
USER_KEY = "mailroom.user"  # the authenticated User in the ASGI scope
SOURCE_HOST = "X-Mailroom-Source-Host"  # the host:port of the server that answered a pull query
log = logging.getLogger(__name__)


def _error(entity: dict[str, Any], status: int = 400) -> JSONResponse:
    return JSONResponse(entity, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as e:
        raise StatementFailed(wire.generic_error(f"Invalid JSON in request: {e}", wire.BAD_REQUEST)) from None
    if not isinstance(body, dict):
        raise StatementFailed(wire.generic_error("The request body must be a JSON object", wire.BAD_REQUEST))
    return body


def load_extensions(api: FastAPI, server: KsqlServer, group: str = EXTENSIONS_GROUP) -> dict[str, str]:
    """Call ``mount(api, server)`` of each entry point of ``group``; returns {name: "ok" or the
    error}, also kept as ``api.state.extensions``. A failing extension is logged, not fatal."""
    from importlib.metadata import entry_points

    loaded: dict[str, str] = {}
    for ep in entry_points(group=group):
        try:
            ep.load()(api, server)
            loaded[ep.name] = "ok"
        except Exception as e:  # noqa: BLE001 - the API must come up without a broken extension
            log.warning("server extension %s (%s) failed to load: %s: %s", ep.name, ep.value, type(e).__name__, e)
            loaded[ep.name] = f"{type(e).__name__}: {e}"
    api.state.extensions = loaded
    return loaded


def _user(request: Request) -> User | None:
    """The authenticated user of a request (None when the server runs without --auth-file)."""
    return request.scope.get(USER_KEY)


def create_app(server: KsqlServer, *, close_on_shutdown: bool = True, extensions: bool = False,
               auth: Authenticator | None = None) -> FastAPI:
    """The ASGI app of ``server`` (FastAPI, wrapped in the metrics/auth/inserts-stream layer);
    ``extensions``: mount the ``mailroom.server_extensions`` entry points too; ``auth``: require
    HTTP basic credentials from that file (see :mod:`.auth`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if close_on_shutdown:
            await run_in_threadpool(server.close)

    api = FastAPI(title="mailroom", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    api.state.server = server

    @api.exception_handler(StatementFailed)
    async def _failed(request: Request, e: StatementFailed):
        return _error(e.entity, e.status)

    # -- info -----------------------------------------------------------------------------------
    @api.get("/info")
    async def info():
        return server.info()

    @api.get("/healthcheck")
    async def healthcheck():
        h = await run_in_threadpool(server.health)
        return JSONResponse(h, status_code=200 if h["isHealthy"] else 503)

    @api.get("/status")
    async def status():
        return {"commandStatuses": {k: v["status"] for k, v in server.command_status.items()}}

    @api.get("/status/{kind}/{entity}/{action}")
    async def status_of(kind: str, entity: str, action: str):
        st = server.command_status.get(f"{kind}/{entity}/{action}")
        if st is None:
            return _error(wire.generic_error(f"Command not found: {kind}/{entity}/{action}", wire.NOT_FOUND), 404)
        return {"status": st["status"], "message": st["message"], "queryId": st["queryId"]}

    @api.get("/clusterStatus")
    async def cluster_status():
        return await run_in_threadpool(server.cluster_status)

    @api.get("/metrics")
    async def metrics():
        return Response(server.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- statements -----------------------------------------------------------------------------
    @api.post("/ksql")
    async def ksql(request: Request):
        body = await _body(request)
        text = body.get("ksql")
        if not isinstance(text, str) or not text.strip():
            return _error(wire.generic_error("The request has no statements ('ksql' is missing or empty)", wire.BAD_REQUEST))
        props = body.get("streamsProperties") or {}
        user = _user(request)
        entities = await run_in_threadpool(server.run_ksql, text, props, read_only=user is not None and not user.can_write)
        return Response(wire.dumps(entities), media_type=KSQL_JSON)

    # -- queries --------------------------------------------------------------------------------
    @api.post("/query")
    async def query(request: Request):
        body = await _body(request)
        text = body.get("ksql") or body.get("sql")
        if not isinstance(text, str) or not text.strip():
            return _error(wire.generic_error("The request has no query ('ksql' is missing or empty)", wire.BAD_REQUEST))
        props = body.get("streamsProperties") or body.get("properties") or {}
        if _is_print(text):
            return await _print(server, text, "query")
        return await _run_query(server, text, props, "query", _user(request), request.headers.get("authorization"))

    @api.post("/query-stream")
    async def query_stream(request: Request):
        body = await _body(request)
        text = body.get("sql") or body.get("ksql")
        if not isinstance(text, str) or not text.strip():
            return _error(wire.generic_error("The request has no query ('sql' is missing or empty)", wire.BAD_REQUEST))
        props = body.get("properties") or body.get("streamsProperties") or {}
        accept = request.headers.get("accept", "")
        fmt = "json" if "application/json" in accept and DELIMITED not in accept else "delimited"
        if _is_print(text):
            return await _print(server, text, fmt)
        return await _run_query(server, text, props, fmt, _user(request), request.headers.get("authorization"))

    @api.post("/close-query")
    async def close_query(request: Request):
        body = await _body(request)
        qid = body.get("queryId")
        user = _user(request)
        if (user is not None and not user.can_write and isinstance(qid, str) and qid in server.push_queries
                and server.query_owners.get(qid) != user.name):
            return _error(wire.generic_error(f"Forbidden: {qid} was started by another user; a read-only user may close "
                                             "only its own queries", wire.FORBIDDEN), 403)
        if not isinstance(qid, str) or not await run_in_threadpool(server.stop_push, qid):
            return _error(wire.generic_error(f"No query with id {qid}", wire.BAD_REQUEST))
        return Response(b"", status_code=200)

    if extensions:
        load_extensions(api, server)
    return _Outer(api, server, auth)  # type: ignore[return-value]


def _is_print(text: str) -> bool:
    return text.lstrip().upper().startswith("PRINT")


async def _print(server: KsqlServer, text: str, fmt: str) -> Response:
    """``PRINT 'topic' ...`` (see :mod:`.printing`): ksqlDB's text lines on /query, a header and
    rows on /query-stream."""
    stmts = server.parse(text)
    if len(stmts) != 1 or not isinstance(stmts[0], A.PrintTopic):
        raise StatementFailed(wire.statement_error("Expected exactly one PRINT statement", text))
    stmt = stmts[0]
    try:
        topic = await run_in_threadpool(printing.check, server.log, stmt)
    except SqlError as e:
        raise StatementFailed(wire.statement_error(e.message, stmt.text)) from None
    if fmt == "query":
        return StreamingResponse(printing.ksql_text(server.log, topic, stmt), media_type="text/plain")
    return StreamingResponse(printing.delimited(server.log, topic, stmt), media_type=DELIMITED)


def _prepare_and_pull(server: KsqlServer, text: str, props: dict[str, Any], auth: str | None) -> tuple[Any, Any]:
    """The query, and a pull query's answer: in one trip to the thread pool (a key lookup
    costs about as much as a hop there and back)."""
    q = server.prepare_query(text)
    return q, (None if is_push(q) else server.pull_routed(q, text, props, auth))


async def _run_query(server: KsqlServer, text: str, props: dict[str, Any], fmt: str,
                     user: User | None = None, auth: str | None = None) -> Response:
    q, pulled = await run_in_threadpool(_prepare_and_pull, server, text, props, auth)
    media = DELIMITED if fmt == "delimited" else KSQL_JSON
    if pulled is not None:
        # in a cluster: maybe forwarded to the server owning the key (see .cluster); host answered
        qid, cols, rows, host = pulled
        if cols.keys is not None:  # a table: ksqlDB ends the rows without a final message
            final = None
        else:
            final = "Limit Reached" if q.limit is not None and len(rows) >= q.limit else "Query Completed"
        frames = _frames(fmt, qid, cols, rows, final)
        if host is not None and fmt == "query" and str(props.get("request.ksql.debug", "")).lower() == "true":
            # ksqlDB's StreamedRow.sourceHost (a debug request): which server answered each row
            frames = [f[:-1] + ',"sourceHost":' + json.dumps(host) + "}" if f.startswith(',\n{"row"') else f for f in frames]
        return Response("".join(frames), media_type=media, headers={SOURCE_HOST: host} if host else None)

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    state: dict[str, Any] = {"slow": False, "pending": 0}  # pending: rows queued, not yet sent
    room = threading.Condition()  # notified as the response takes rows off the queue

    inbox: list[tuple] = []  # items from the query's thread, not yet moved to the queue
    inbox_lock = threading.Lock()

    def move() -> None:  # on the event loop
        with inbox_lock:
            items = inbox[:]
            inbox.clear()
        for item in items:
            queue.put_nowait(item)

    def put(item: tuple) -> None:
        # one wake-up of the event loop per burst of rows, not per row: with many subscribers a
        # wake-up (a write to the loop's self-pipe) per row per subscriber costs more than the rows
        with inbox_lock:
            inbox.append(item)
            if len(inbox) > 1:
                return  # a move() is already on its way
        try:
            loop.call_soon_threadsafe(move)
        except RuntimeError:  # the loop is gone: the server is shutting down
            pass

    def on_row(cols: list[Any], tomb: bool) -> None:
        # on the query's own thread: waiting here holds back this query only (backpressure), so a
        # client that reads slower than the query produces (a replay from earliest) gets every row
        if state["slow"]:
            return
        with room:
            deadline = None
            while state["pending"] >= server.push_buffer:
                if state["shared"]:  # one query's thread serves every subscriber: no waiting for one
                    state["slow"] = True
                    break
                qid = state.get("qid")
                if qid is not None and qid not in server.push_queries:
                    return  # stopped (close-query, LIMIT, disconnect): the row goes nowhere
                now = time.monotonic()
                deadline = deadline or now + server.push_stall_timeout
                if now >= deadline:
                    state["slow"] = True
                    break
                room.wait(min(0.1, deadline - now))
            else:
                state["pending"] += 1
        if state["slow"]:
            put(("slow",))
            if state.get("qid"):
                server.stop_push(state["qid"])  # at once: a stalled client must not keep a query running
            return
        put(("row", cols, tomb))

    def on_done(err: BaseException | None) -> None:
        put(("done", err))

    fan = fanout_of(server)  # live queries of the same text share one running query (see .fanout)
    state["shared"] = fan.shareable(q, props)
    pq = await run_in_threadpool(fan.start, q, text, props, on_row, on_done)
    state["qid"] = pq.query_id
    if user is not None:
        server.query_owners[pq.query_id] = user.name
    limit = q.limit

    async def gen():
        sent = 0
        try:
            yield _header(fmt, pq.query_id, pq.columns)
            if limit is not None and limit <= 0:
                yield _final(fmt, "Limit Reached")
                return
            held = None  # an item taken off the queue while batching rows, handled next turn
            while True:
                item, held = held or await queue.get(), None
                if item[0] == "row":
                    # the rows queued by now go out in one chunk: with many subscribers, one write
                    # per row would spend the server's time (and the GIL) on framing, not on queries
                    chunk = []
                    while True:
                        chunk.append(_row(fmt, item[1], item[2]))
                        sent += 1
                        if (limit is not None and sent >= limit) or queue.empty() or len(chunk) >= _CHUNK_ROWS:
                            break
                        item = queue.get_nowait()
                        if item[0] != "row":
                            held = item
                            break
                    with room:
                        state["pending"] -= len(chunk)
                        room.notify()
                    server.metrics.push_rows.inc(len(chunk))
                    if limit is not None and sent >= limit:
                        yield "".join(chunk) + _final(fmt, "Limit Reached")
                        return
                    yield "".join(chunk)
                elif item[0] == "slow":
                    server.metrics.push_slow.inc()
                    yield _final_error(fmt, "The client read too slowly: the query was stopped")
                    return
                else:
                    err = item[1]
                    if err is not None:
                        yield _final_error(fmt, f"Query failed: {err}")
                    else:
                        yield _final(fmt, "Query Completed") if fmt != "delimited" else ""
                    return
        finally:
            server.stop_push(pq.query_id)
            server.query_owners.pop(pq.query_id, None)

    return StreamingResponse(gen(), media_type=media)


# -- framing -------------------------------------------------------------------------------------------
def _header(fmt: str, qid: str, cols) -> str:
    if fmt == "query":
        return '[{"header":{"queryId":' + json.dumps(qid) + ',"schema":' + json.dumps(cols.schema()) + "}}"
    head = {"queryId": qid, "columnNames": cols.names, "columnTypes": cols.type_names()}
    return ("[" if fmt == "json" else "") + json.dumps(head, separators=(",", ":")) + ("" if fmt == "json" else "\n")


def _row(fmt: str, cols: list[Any], tomb: bool) -> str:
    if fmt == "query":
        return ',\n{"row":{"columns":' + wire.encode(cols) + (',"tombstone":true' if tomb else "") + "}}"
    if fmt == "json":
        return ",\n" + wire.encode(cols)
    return wire.encode(cols) + "\n"


def _final(fmt: str, message: str) -> str:
    if fmt == "query":
        return ',\n{"finalMessage":' + json.dumps(message) + "}]\n"
    if fmt == "json":
        return "]\n"
    return ""


def _final_error(fmt: str, message: str) -> str:
    err = wire.generic_error(message)
    if fmt == "query":
        return ',\n{"errorMessage":' + json.dumps(err) + "}]\n"
    if fmt == "json":
        return ",\n" + json.dumps(err) + "]\n"
    return json.dumps(err) + "\n"


def _frames(fmt: str, qid: str, cols, rows: list[tuple[list[Any], bool]], final: str | None) -> list[str]:
    out = [_header(fmt, qid, cols)]
    out += [_row(fmt, c, t) for c, t in rows]
    if final is not None:
        out.append(_final(fmt, final))
    elif fmt == "delimited":
        pass
    else:
        out.append("]\n")
    return out


# -- the outer ASGI layer: metrics for every request, and /inserts-stream --------------------------------
class _Outer:
    """Counts and times every request; checks credentials (with ``auth``); serves ``POST
    /inserts-stream`` itself, at the ASGI level, so acks go out while the client is still
    sending rows (a full-duplex stream)."""

    def __init__(self, api: FastAPI, server: KsqlServer, auth: Authenticator | None = None) -> None:
        self.api = api
        self.server = server
        self.auth = auth
        self.state = api.state
        self._labels: dict[str, str] = {}

    def _route(self, path: str) -> str:
        label = self._labels.get(path)
        if label is None:
            label = _route_label(self.api, path)
            if len(self._labels) < 1000:
                self._labels[path] = label
        return label

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self.auth is not None:
                header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
                user = await run_in_threadpool(self.auth.check, header)
                if user is None:
                    await send({"type": "websocket.close", "code": 1008})  # policy violation: no credentials
                    return
                scope[USER_KEY] = user
            await self.api(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        start = time.perf_counter()
        status_box = {"status": 500}

        async def send_wrapped(message) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                self.server.metrics.latency.labels(self._route(path)).observe(time.perf_counter() - start)
            await send(message)

        try:
            if self.auth is not None and path not in OPEN_PATHS:
                header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
                user = await run_in_threadpool(self.auth.check, header)  # scrypt: ~50 ms on a cache miss
                if user is None:
                    await _drain(receive)
                    msg = "Unauthorized: wrong user name or password" if header else "Unauthorized: credentials required"
                    await _send_json(send_wrapped, 401, wire.generic_error(msg, wire.UNAUTHORIZED),
                                     [(b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode())])
                    return
                scope[USER_KEY] = user
                if path == "/inserts-stream" and not user.can_write:
                    await _drain(receive)
                    await _send_json(send_wrapped, 403, wire.generic_error(
                        "Forbidden: inserting needs the read-write role", wire.FORBIDDEN))
                    return
            if path == "/inserts-stream" and method == "POST":
                await _inserts_stream(self.server, receive, send_wrapped)
            else:
                await self.api(scope, receive, send_wrapped)
        finally:
            self.server.metrics.requests.labels(method, self._route(path), str(status_box["status"])).inc()


async def _drain(receive, limit: int = 1 << 20, timeout: float = 2.0) -> None:
    """Read (and drop) a refused request's body, up to ``limit`` bytes or ``timeout`` seconds,
    before answering: an HTTP/2 client still sending it would otherwise see its stream reset
    under it rather than read the 401/403."""
    async def read() -> None:
        seen = 0
        while seen < limit:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            seen += len(msg.get("body", b""))
            if not msg.get("more_body", False):
                return

    try:
        await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        pass


async def _send_json(send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode(), "more_body": False})


def _route_label(api: FastAPI, path: str) -> str:
    """The metrics label of a request path: a route of the app, ``PREFIX/...`` for a route with
    parameters or a mount, else ``other`` (any path a client makes up must not add a label)."""
    for route in api.routes:
        rpath = getattr(route, "path", "")
        if rpath == path:
            return path
        prefix = rpath.split("{", 1)[0].rstrip("/") if "{" in rpath or not hasattr(route, "endpoint") else None
        if prefix and path.startswith(prefix + "/"):
            return prefix + "/..."
    return "/inserts-stream" if path == "/inserts-stream" else "other"


async def _inserts_stream(server: KsqlServer, receive, send) -> None:
    headers = [(b"content-type", b"application/json")]
    started = False
    buf = b""
    seq = 0
    target = None
    more = True

    async def out(obj: dict[str, Any], status: int = 200, last: bool = False) -> None:
        nonlocal started
        if not started:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            started = True
        await send({"type": "http.response.body", "body": (json.dumps(obj) + "\n").encode(), "more_body": not last})

    while more or buf:
        if more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            buf += msg.get("body", b"")
            more = msg.get("more_body", False)
        lines = buf.split(b"\n")
        buf = lines.pop() if more else b""
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                await out({"status": "error", "seq": seq, "error_code": wire.BAD_REQUEST, "message": f"Invalid JSON: {e}"})
                seq += 1
                continue
            if target is None:
                name = obj.get("target") if isinstance(obj, dict) else None
                try:
                    if not isinstance(name, str):
                        raise SqlError("The first line must be {\"target\": \"<stream name>\"}")
                    target = server.insert_target(name)
                except SqlError as e:
                    await out(wire.generic_error(e.message, wire.BAD_REQUEST), 400, last=True)
                    return
                continue
            try:
                await run_in_threadpool(server.insert_row, target, obj)
                await out({"status": "ok", "seq": seq})
            except SqlError as e:
                await out({"status": "error", "seq": seq, "error_code": wire.BAD_REQUEST, "message": e.message})
            seq += 1
        if not more:
            break
    if target is None and not started:
        await out(wire.generic_error("No target given: the first line must be {\"target\": \"<stream name>\"}",
                                     wire.BAD_REQUEST), 400, last=True)
        return
    if not started:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
