"""The email app's live dashboard, served by ``mailroom server`` at ``/dashboard``.

Registered through the server's extension hook (entry point group
``mailroom.server_extensions``: ``email-dashboard = "mailroom.email.dashboard:mount"``). It adds:

- ``GET /dashboard/``: the page (static/index.html, app.js, style.css; no build step, charts
  drawn as plain SVG);
- ``GET /dashboard/api/live?since=N``: what the page draws (per-provider and per-node health
  windows, alerts, stuck mail, campaign stats, each source's status), kept up to date by one
  push query per source on the server (live.py); ``{"version": N, "unchanged": true}`` when
  nothing changed since version N (the page polls it every second);
- ``GET /dashboard/api/search?q=...[&scan=true]``: a message id or a recipient -> states (pull
  queries on EMAIL_STATE) and event timelines (search.py, index.py).

It reads only through the server's query API (push and pull queries, as /query-stream runs
them); a source that does not exist yet shows as ``missing`` with a hint, never an error page.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ...server import wire
from ...server.core import KsqlServer
from .live import LiveState
from .search import search

STATIC = Path(__file__).parent / "static"


def _json(obj: object) -> Response:
    # wire.encode writes values as the REST API does (DECIMAL exact, TIMESTAMP as ISO text...)
    return Response(wire.encode(obj), media_type="application/json", headers={"Cache-Control": "no-store"})


def mount(app: FastAPI, server: KsqlServer) -> None:
    """Add the dashboard's routes to ``app``; its push queries start with the first request and
    stop when the server closes. ``MAILROOM_DASHBOARD_INDEX``: messages kept for timelines
    (default 50000; 0: no index, timelines only by an explicit scan)."""
    live = LiveState(server, index_messages=int(os.environ.get("MAILROOM_DASHBOARD_INDEX", "50000")))
    server.on_close(live.close)
    app.state.dashboard = live

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_redirect():
        return RedirectResponse("/dashboard/", status_code=307)

    @app.get("/dashboard/", include_in_schema=False)
    async def dashboard_page():
        live.ensure_started()
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/dashboard/api/live")
    def dashboard_live(since: int = Query(-1)):
        live.ensure_started()
        if since >= 0 and since == live.version:
            return _json({"version": since, "unchanged": True})
        return _json(live.snapshot())

    @app.get("/dashboard/api/search")
    def dashboard_search(q: str = Query(""), scan: bool = Query(False)):
        live.ensure_started()
        return _json(search(server, live, q, scan=scan))

    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")


__all__ = ["mount"]
