"""The ``mailroom`` command: platform commands, plus those that installed packages add.

Packages (mailroom's own email application among them) add command groups through the
``mailroom.commands`` entry-point group: each entry names a function ``register(app)`` that adds
commands to the Typer app. That keeps the CLI below the applications built on it.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

import typer

from .. import __version__
from . import sql_commands
from .log_commands import log_app, topics_app

app = typer.Typer(
    name="mailroom",
    help="Stream processing for email in flight: an embedded log or Apache Kafka, an engine, SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(topics_app, name="topics")
app.add_typer(log_app, name="log")
sql_commands.register(app)
from .shell import register as _register_shell  # noqa: E402

_register_shell(app)
from ..server.cli import register as _register_server  # noqa: E402  (fastapi/uvicorn load only when run)

_register_server(app)


@app.command()
def version() -> None:
    """Print mailroom's version."""
    typer.echo(__version__)


def _load_plugins() -> None:
    for ep in entry_points(group="mailroom.commands"):
        try:
            ep.load()(app)
        except Exception as e:  # one broken plugin must not take the whole CLI down
            logging.getLogger("mailroom.cli").warning("could not load commands from %s: %s", ep.value, e)


_load_plugins()


def main() -> None:
    """Entry point of the console script."""
    # MAILROOM_LOG_LEVEL=INFO (or DEBUG) shows what the engine does: assignments, restores, commits
    level = os.environ.get("MAILROOM_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()
