"""The ``mailroom server`` command, and ``mailroom server passwd`` (the users of --auth-file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..cli.options import LogOption

server_app = typer.Typer()


def _env_path(name: str) -> Path | None:
    return Path(os.environ[name]) if os.environ.get(name) else None


@server_app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    log_url: str = LogOption,
    state_dir: Path = typer.Option(Path(os.environ.get("MAILROOM_STATE_DIR", ".mailroom/state")), "--state-dir",
                                   help="where queries keep their local state. Env: MAILROOM_STATE_DIR."),
    host: str = typer.Option(os.environ.get("MAILROOM_HOST", "127.0.0.1"), "--host", help="address to listen on. Env: MAILROOM_HOST."),
    port: int = typer.Option(int(os.environ.get("MAILROOM_PORT", "8088")), "--port", help="port to listen on. Env: MAILROOM_PORT."),
    service_id: str = typer.Option(os.environ.get("MAILROOM_SERVICE_ID", "default_"), "--service-id",
                                   help="ksql.service.id: the prefix of the queries' application ids. Env: MAILROOM_SERVICE_ID."),
    guarantee: str = typer.Option("at_least_once", "--guarantee", help="exactly_once or at_least_once (persistent queries)"),
    log_level: str = typer.Option("warning", "--log-level", help="the HTTP server's (hypercorn's) log level"),
    queries_files: list[Path] = typer.Option(
        [Path(f) for f in os.environ.get("MAILROOM_QUERIES_FILE", "").split(os.pathsep) if f], "--queries-file",
        help="SQL files to run at start, in order (ksqlDB's ksql.queries.file; repeatable); the server is then "
             "headless: /ksql runs only SHOW/LIST/DESCRIBE/EXPLAIN. Env: MAILROOM_QUERIES_FILE (':'-separated)."),
    extensions: bool = typer.Option(True, "--extensions/--no-extensions",
                                    help="mount the mailroom.server_extensions entry points (e.g. the email dashboard)"),
    auth_file: Path | None = typer.Option(_env_path("MAILROOM_AUTH_FILE"), "--auth-file",
                                          help="require HTTP basic auth with the users of this file (see `mailroom server "
                                               "passwd`); /healthcheck and /info stay open. Env: MAILROOM_AUTH_FILE."),
    processing_log_stream: bool = typer.Option(
        os.environ.get("MAILROOM_PROCESSING_LOG_STREAM", "true").lower() not in ("0", "false", "no"),
        "--processing-log-stream/--no-processing-log-stream",
        help="register the stream KSQL_PROCESSING_LOG over the processing-log topic <service id>ksql_processing_log "
             "(ksqlDB's ksql.logging.processing.stream.auto.create). Env: MAILROOM_PROCESSING_LOG_STREAM."),
    tls_cert: Path | None = typer.Option(_env_path("MAILROOM_TLS_CERT"), "--tls-cert",
                                         help="PEM certificate (chain): serve HTTPS only. Env: MAILROOM_TLS_CERT."),
    tls_key: Path | None = typer.Option(_env_path("MAILROOM_TLS_KEY"), "--tls-key",
                                        help="PEM private key of --tls-cert. Env: MAILROOM_TLS_KEY."),
    advertised_url: str | None = typer.Option(
        os.environ.get("MAILROOM_ADVERTISED_URL") or None, "--advertised-url",
        help="the URL the other servers of the cluster (same --service-id, same log) reach this one at, to forward "
             "pull queries to (default: from --host/--port). Env: MAILROOM_ADVERTISED_URL."),
) -> None:
    """Run the ksqlDB-compatible REST API (POST /ksql, /query, /query-stream, /inserts-stream,
    /close-query; GET /info, /healthcheck, /status, /metrics, /clusterStatus) until Ctrl-C / SIGTERM, over
    HTTP/1.1 and HTTP/2 (h2c without TLS, h2 by ALPN with it) on one port."""
    if ctx.invoked_subcommand is not None:
        return
    from .auth import AuthFileError, Authenticator
    from .listener import hypercorn_config, serve

    if (tls_cert is None) != (tls_key is None):
        typer.echo("--tls-cert and --tls-key go together", err=True)
        raise typer.Exit(2)
    for f in (tls_cert, tls_key):
        if f is not None and not f.is_file():
            typer.echo(f"no such file: {f}", err=True)
            raise typer.Exit(2)
    auth = None
    if auth_file is not None:
        try:
            auth = Authenticator(auth_file)
        except AuthFileError as e:
            typer.echo(f"--auth-file: {e}", err=True)
            raise typer.Exit(2) from None
        if not auth.users:
            typer.echo(f"--auth-file {auth_file} has no users: add one with `mailroom server passwd {auth_file} USER`", err=True)
            raise typer.Exit(2)

    from ..functions import builtin_registry, load_entry_points
    from .app import create_app
    from .core import KsqlServer, StatementFailed

    registry = builtin_registry()
    # installed packages' functions (entry point group "mailroom.functions", e.g. the email UDFs), as `mailroom run`
    for f in load_entry_points(registry=registry).failed:
        typer.echo(f"could not load functions from {f.path}: {f.error}", err=True)
    from .cluster import default_advertised_url

    # a cluster member (see .cluster): servers with this service id on this log share statements and work
    cluster = {"cluster": True, "advertised_url": advertised_url or default_advertised_url(host, port, tls=tls_cert is not None)}
    srv = KsqlServer(log_url, state_dir, service_id=service_id, processing_guarantee=guarantee, registry=registry, **cluster,
                     command_topic=not queries_files, processing_log_stream=processing_log_stream)  # headless: the files are the commands
    if tls_cert is not None and srv.cluster is not None:
        srv.cluster.trust(str(tls_cert))  # pull queries forwarded to the other servers (same certificate or CA)
    if queries_files:
        try:
            entities = srv.run_queries_file(*queries_files)
        except StatementFailed as e:
            typer.echo(f"--queries-file: {e.entity.get('message')} (in: {e.entity.get('statementText', '')})", err=True)
            srv.close()
            raise typer.Exit(1) from None
        typer.echo(f"ran {len(entities)} statements of {len(queries_files)} queries files (headless)", err=True)
    app = create_app(srv, extensions=extensions, auth=auth)
    scheme = "https" if tls_cert else "http"
    extra = f", {len(auth.users)} users in {auth_file}" if auth else ""
    typer.echo(f"mailroom server on {scheme}://{host}:{port} (log {log_url}, state {state_dir}{extra})", err=True)
    config = hypercorn_config(host, port, certfile=tls_cert, keyfile=tls_key, log_level=log_level)

    def stop_push_queries() -> None:  # open push responses end now rather than hold the shutdown up
        for qid in list(srv.push_queries):
            srv.stop_push(qid)

    serve(app, config, before_shutdown=stop_push_queries)


@server_app.command("passwd")
def passwd(
    file: Path = typer.Argument(..., help="the auth file (created if missing, mode 0600)"),
    user: str = typer.Argument(..., help="the user name (letters, digits, . _ @ -)"),
    role: str = typer.Option("read-only", "--role", help="read-only or read-write"),
) -> None:
    """Add a user to an auth file of `mailroom server --auth-file`, or change its role and
    password. The password is asked twice on a terminal, else read from the first line of stdin."""
    from .auth import AuthFileError, set_user

    if sys.stdin.isatty():
        password = typer.prompt(f"password for {user}", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        new = set_user(file, user, role, password)
    except (AuthFileError, OSError) as e:
        typer.echo(f"passwd: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{'added' if new else 'updated'} {user} ({role}) in {file}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")
