"""Options shared by the commands."""

from __future__ import annotations

import os

import typer

DEFAULT_LOG = "embedded:.mailroom/data"

LogOption = typer.Option(
    os.environ.get("MAILROOM_LOG", DEFAULT_LOG),
    "--log",
    "-l",
    help="The log: 'embedded:PATH' (a local folder) or 'kafka://HOST:PORT'. Env: MAILROOM_LOG.",
)
