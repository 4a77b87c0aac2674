"""The ``mailroom server`` command."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..cli.options import LogOption


def server(
    log_url: str = LogOption,
    state_dir: Path = typer.Option(Path(os.environ.get("MAILROOM_STATE_DIR", ".mailroom/state")), "--state-dir",
                                   help="where queries keep their local state. Env: MAILROOM_STATE_DIR."),
    host: str = typer.Option(os.environ.get("MAILROOM_HOST", "127.0.0.1"), "--host", help="address to listen on. Env: MAILROOM_HOST."),
    port: int = typer.Option(int(os.environ.get("MAILROOM_PORT", "8088")), "--port", help="port to listen on. Env: MAILROOM_PORT."),
    service_id: str = typer.Option(os.environ.get("MAILROOM_SERVICE_ID", "default_"), "--service-id",
                                   help="ksql.service.id: the prefix of the queries' application ids. Env: MAILROOM_SERVICE_ID."),
    guarantee: str = typer.Option("at_least_once", "--guarantee", help="exactly_once or at_least_once (persistent queries)"),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level"),
) -> None:
    """Run the ksqlDB-compatible REST API (POST /ksql, /query, /query-stream, /inserts-stream,
    /close-query; GET /info, /healthcheck, /status, /metrics) until Ctrl-C / SIGTERM."""
    import uvicorn

    from .app import create_app
    from .core import KsqlServer

    srv = KsqlServer(log_url, state_dir, service_id=service_id, processing_guarantee=guarantee)
    typer.echo(f"mailroom server on http://{host}:{port} (log {log_url}, state {state_dir})", err=True)
    uvicorn.run(create_app(srv), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)


def register(app: typer.Typer) -> None:
    app.command("server")(server)
