"""The email application's commands, added to ``mailroom`` through the ``mailroom.commands`` entry point.

- ``mailroom demo``: simulated email events through the log, with a summary
- ``mailroom ingest postfix|exim|powermta FILE [--follow] [--topic T] [--log URL]``: a log file's
  events into a topic, resuming where it stopped
- ``mailroom report postfix|exim|powermta FILE [--json]``: per-domain delivery counts of a log file
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..cli.options import LogOption

KINDS = ("postfix", "exim", "powermta")


def _ingest_command(kind: str):
    def command(
        file: Path = typer.Argument(..., help=f"The {kind} log file."),
        follow: bool = typer.Option(False, "--follow", "-f", help="Keep reading as the file grows (Ctrl-C to stop)."),
        topic: str = typer.Option("email-events", "--topic", "-t", help="Topic to write the events to."),
        partitions: int = typer.Option(4, help="Partitions of the topic if it is created."),
        state: Path | None = typer.Option(None, "--state", help="Offset state file (default FILE.mailroom-offset)."),
        batch: int = typer.Option(5000, help="Events per produced batch."),
        idle_timeout: float | None = typer.Option(None, "--idle-timeout", help="With --follow: stop after this many idle seconds."),
        year: int | None = typer.Option(None, help="Year of syslog time stamps (which have none); default: this year."),
        log: str = LogOption,
    ) -> None:
        import signal

        from ..log import open_log
        from .ingest.runner import ingest_file

        stopping = {"now": False}
        if follow:
            signal.signal(signal.SIGINT, lambda *_: stopping.__setitem__("now", True))
            signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__("now", True))
        if not file.exists() and not follow:
            typer.echo(f"error: no such file {file}", err=True)
            raise typer.Exit(1)
        opts = {"year": year} if (year and kind == "postfix") else {}
        with open_log(log) as lg:
            stats = ingest_file(file, lg, kind=kind, topic=topic, partitions=partitions, follow=follow, state_path=state,
                                batch=batch, idle_timeout=idle_timeout, stop=lambda: stopping["now"], parser_options=opts)
        typer.echo(f"{stats.lines:,} lines (from byte {stats.resumed_from:,}) -> {stats.events:,} events into {topic}; "
                   f"{stats.errors:,} lines did not parse (see {topic}-processing-log)", err=True)
        for e in stats.error_samples[:5]:
            typer.echo(f"  {e}", err=True)

    command.__doc__ = f"Stream {'an' if kind[0] in 'aeiou' else 'a'} {kind} log's events into a topic (resumes where it stopped)."
    return command


def _report_command(kind: str):
    def command(
        file: Path = typer.Argument(..., help=f"The {kind} log file."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        year: int | None = typer.Option(None, help="Year of syslog time stamps (which have none); default: this year."),
    ) -> None:
        from .report import render_table, report_file

        if not file.exists():
            typer.echo(f"error: no such file {file}", err=True)
            raise typer.Exit(1)
        opts = {"year": year} if (year and kind == "postfix") else {}
        rep, errors = report_file(file, kind, **opts)
        if as_json:
            typer.echo(json.dumps(rep, indent=1))
        else:
            from rich.console import Console

            Console().print(render_table(rep, title=f"{file.name}: deliveries per recipient domain"))
            t = rep["totals"]
            typer.echo(f"received {t['received']:,}  delivered {t['delivered']:,}  deferred {t['deferred']:,} "
                       f"({t['deferrals']:,} deferrals)  bounced {t['bounced']:,}  expired {t['expired']:,}  rejected {t['rejected']:,}")
        if errors:
            typer.echo(f"{len(errors):,} lines did not parse; first: {errors[0]}", err=True)

    command.__doc__ = f"Per-domain delivery counts of {'an' if kind[0] in 'aeiou' else 'a'} {kind} log (delivered, deferred, bounced, expired, rejected)."
    return command


def register(app: typer.Typer) -> None:
    """Add the email commands to the ``mailroom`` CLI."""

    @app.command()
    def demo(
        messages: int = typer.Option(200_000, "--messages", "-m", help="How many email messages to simulate."),
        partitions: int = typer.Option(4, help="Partitions of the events topic."),
        seed: int = typer.Option(42, help="Simulator seed (same seed, same events)."),
        log: str = LogOption,
    ) -> None:
        """Simulate email events, stream them through the log, and print a summary."""
        from .demo import run_demo

        summary = run_demo(log, messages=messages, partitions=partitions, seed=seed)
        if summary["events_consumed"] != summary["events_produced"]:
            typer.echo("error: not every produced event was consumed", err=True)
            raise typer.Exit(1)

    ingest_app = typer.Typer(help="Stream MTA logs into a topic as canonical email events.", no_args_is_help=True)
    report_app = typer.Typer(help="Summaries of MTA logs.", no_args_is_help=True)
    for kind in KINDS:
        ingest_app.command(kind)(_ingest_command(kind))
        report_app.command(kind)(_report_command(kind))
    app.add_typer(ingest_app, name="ingest")
    app.add_typer(report_app, name="report")
