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
    queries_files: list[Path] = typer.Option(
        [Path(f) for f in os.environ.get("MAILROOM_QUERIES_FILE", "").split(os.pathsep) if f], "--queries-file",
        help="SQL files to run at start, in order (ksqlDB's ksql.queries.file; repeatable); the server is then "
             "headless: /ksql runs only SHOW/LIST/DESCRIBE/EXPLAIN. Env: MAILROOM_QUERIES_FILE (':'-separated)."),
    extensions: bool = typer.Option(True, "--extensions/--no-extensions",
                                    help="mount the mailroom.server_extensions entry points (e.g. the email dashboard)"),
) -> None:
    """Run the ksqlDB-compatible REST API (POST /ksql, /query, /query-stream, /inserts-stream,
    /close-query; GET /info, /healthcheck, /status, /metrics) until Ctrl-C / SIGTERM."""
    import uvicorn

    from ..functions import builtin_registry, load_entry_points
    from .app import create_app
    from .core import KsqlServer, StatementFailed

    registry = builtin_registry()
    # installed packages' functions (entry point group "mailroom.functions", e.g. the email UDFs), as `mailroom run`
    for f in load_entry_points(registry=registry).failed:
        typer.echo(f"could not load functions from {f.path}: {f.error}", err=True)
    srv = KsqlServer(log_url, state_dir, service_id=service_id, processing_guarantee=guarantee, registry=registry)
    if queries_files:
        try:
            entities = srv.run_queries_file(*queries_files)
        except StatementFailed as e:
            typer.echo(f"--queries-file: {e.entity.get('message')} (in: {e.entity.get('statementText', '')})", err=True)
            srv.close()
            raise typer.Exit(1) from None
        typer.echo(f"ran {len(entities)} statements of {len(queries_files)} queries files (headless)", err=True)
    app = create_app(srv, extensions=extensions)
    typer.echo(f"mailroom server on http://{host}:{port} (log {log_url}, state {state_dir})", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)


def register(app: typer.Typer) -> None:
    app.command("server")(server)
