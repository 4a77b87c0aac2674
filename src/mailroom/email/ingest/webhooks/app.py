"""The webhook receiver: a Starlette app with ``POST /webhooks/{sendgrid,mailgun,ses,postmark}``.

Each post is verified and mapped by its provider, its events produced through the
:class:`~.sink.EventSink`, and answered 200 only after the log acknowledged them:

- 200 ``{"events": n, "ignored": n, "item_errors": n}``: written (items that could not be mapped
  went to the processing log, the rest of the payload was kept);
- 400 malformed payload, 401 not authentic, 413 too large: rejected, with a processing-log entry
  (``operator`` ``webhook-<provider>``, the reason, the start of the body); the provider may
  retry, nothing is written;
- 503 the log did not take the events: the provider retries, so nothing is lost.

``GET /healthz`` answers the counters per provider.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .common import Mapped, WebhookError
from .sink import ErrorEntry, EventSink

log = logging.getLogger("mailroom.email.webhooks")
MAX_BODY = 16 << 20
KEEP_BYTES = 64 << 10  # how much of a rejected body the processing log keeps


class Provider(Protocol):
    name: str

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Mapped: ...


def create_app(sink: EventSink, providers: list[Provider], *, max_body: int = MAX_BODY,
               manage_sink: bool = True) -> Starlette:
    """The receiver app. ``manage_sink``: start the sink on startup and close it on shutdown."""
    by_name = {p.name: p for p in providers}
    stats: dict[str, Counter] = {p.name: Counter() for p in providers}
    blocking = {"ses"}  # may fetch a certificate or confirm a subscription over the network

    async def reject(name: str, status: int, reason: str, body: bytes, path: str) -> JSONResponse:
        stats[name][f"rejected_{status}"] += 1  # the processing log logs the reason as a warning
        try:
            await sink.write([], [ErrorEntry(reason, f"webhook-{name}", body[:KEEP_BYTES], path)])
        except Exception as e:
            log.error("processing log write failed: %s", e)
        return JSONResponse({"error": reason}, status_code=status)

    async def receive(request: Request) -> JSONResponse:
        name = request.path_params["provider"]
        provider = by_name.get(name)
        if provider is None:
            return JSONResponse({"error": f"no webhook {name!r} here (one of {', '.join(by_name)})"}, status_code=404)
        st = stats[name]
        st["posts"] += 1
        path = request.url.path
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > max_body:
            return await reject(name, 413, f"body of {size} bytes exceeds {max_body}", b"", path)
        body = await request.body()
        if len(body) > max_body:
            return await reject(name, 413, f"body of {len(body)} bytes exceeds {max_body}", body, path)
        try:
            if name in blocking:
                mapped = await run_in_threadpool(provider.handle, body, request.headers)
            else:
                mapped = provider.handle(body, request.headers)
        except WebhookError as e:
            return await reject(name, e.status, e.reason, body, path)
        except Exception as e:
            log.exception("webhook %s: internal error", name)
            return await reject(name, 500, f"internal error: {type(e).__name__}: {e}", body, path)
        errors = [ErrorEntry(r, f"webhook-{name}", body[:KEEP_BYTES], path) for r in mapped.item_errors]
        try:
            await sink.write(mapped.events, errors)
        except Exception as e:
            st["produce_failures"] += 1
            return JSONResponse({"error": f"could not write the events: {type(e).__name__}: {e}"}, status_code=503)
        st["events"] += len(mapped.events)
        st["ignored"] += mapped.ignored
        st["item_errors"] += len(mapped.item_errors)
        out: dict[str, Any] = {"events": len(mapped.events), "ignored": mapped.ignored, "item_errors": len(mapped.item_errors)}
        if mapped.note:
            out["note"] = mapped.note
        return JSONResponse(out)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "topic": sink.topic, "providers": {k: dict(v) for k, v in stats.items()}})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if manage_sink:
            sink.start()
        try:
            yield
        finally:
            if manage_sink:
                sink.close()

    app = Starlette(routes=[Route("/webhooks/{provider}", receive, methods=["POST"]), Route("/healthz", healthz)],
                    lifespan=lifespan)
    app.state.stats = stats
    app.state.providers = by_name
    return app
