"""The email application's commands, added to ``mailroom`` through the ``mailroom.commands`` entry point.

- ``mailroom demo``: the whole application on the embedded log (server, dashboard, pipelines, simulator)
- ``mailroom ingest postfix|exim|powermta FILE [--follow] [--topic T] [--log URL]``: a log file's
  events into a topic, resuming where it stopped
- ``mailroom report postfix|exim|powermta FILE [--json]``: per-domain delivery counts of a log file
- ``mailroom ingest webhooks --listen HOST:PORT``: ESP webhooks (SendGrid, Mailgun, SES, Postmark) into a topic
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..cli.options import LogOption

KINDS = ("postfix", "exim", "powermta", "kumomta")


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
        messages: int = typer.Option(20_000, "--messages", "-m", help="How many email messages to simulate."),
        seed: int = typer.Option(42, help="Simulator seed (same seed, same events)."),
        outage: str = typer.Option("gmail:3m:2m", help="A provider outage PROVIDER:START:DURATION ('' for none)."),
        port: int = typer.Option(8088, help="Port of the server and dashboard (another free one if taken)."),
        duration: float | None = typer.Option(None, help="Serve the dashboard this many seconds, then stop (default: until Ctrl-C)."),
        data_dir: Path = typer.Option(Path(".mailroom/demo"), "--data-dir", help="Where the demo keeps its log, state and process logs."),
        keep: bool = typer.Option(False, help="Keep the data of an earlier demo run (default: start afresh)."),
    ) -> None:
        """The email-tracking application end to end on the embedded log: server + dashboard, SQL and
        alerting pipelines, simulated traffic with an outage; prints a summary and the dashboard's address."""
        from .demo import run_demo

        summary = run_demo(data_dir, messages=messages, seed=seed, outage=outage, port=port, duration=duration, keep=keep)
        if not summary.get("caught_up"):
            typer.echo("error: the pipelines did not catch up; see the *.log files in " + str(data_dir), err=True)
            raise typer.Exit(1)

    @app.command()
    def simulate(
        events: int | None = typer.Option(None, "--events", "-n", help="Stop after this many events."),
        messages: int | None = typer.Option(None, "--messages", "-m", help="Simulate this many messages (all their events)."),
        rate: float = typer.Option(0.0, "--rate", "-r", help="Events per second of wall-clock time (0: as fast as possible)."),
        seed: int = typer.Option(42, help="Simulator seed (same seed, same events)."),
        outage: list[str] = typer.Option([], "--outage", help="PROVIDER:START:DURATION from the start of event time, "
                                                              "e.g. gmail:15m:10m (repeatable)."),
        topic: str = typer.Option("email-events", "--topic", "-t", help="Topic to write the events to."),
        partitions: int = typer.Option(4, help="Partitions of the topic if it is created."),
        msg_rate: float = typer.Option(50.0, "--message-rate", help="Messages per second of EVENT time (traffic shape)."),
        no_throttling: bool = typer.Option(False, "--no-throttling", help="No random throttling episodes."),
        log: str = LogOption,
    ) -> None:
        """Simulated email events (providers, greylisting, throttling, outages, retries, opens) into a topic."""
        from .simulate_run import run_simulation
        from .simulator import SimConfig

        if (events is None) == (messages is None):
            typer.echo("error: give one of --events N and --messages N", err=True)
            raise typer.Exit(2)
        try:
            stats = run_simulation(log, events=events, messages=messages, rate=rate, seed=seed, outages=outage, topic=topic,
                                   partitions=partitions, config=SimConfig(rate_per_s=msg_rate, throttling=not no_throttling))
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{stats.events:,} events into {topic} in {stats.seconds:.2f} s ({stats.events_per_s:,.0f} events/s)", err=True)

    ingest_app = typer.Typer(help="Stream MTA logs into a topic as canonical email events.", no_args_is_help=True)
    report_app = typer.Typer(help="Summaries of MTA logs.", no_args_is_help=True)
    for kind in KINDS:
        ingest_app.command(kind)(_ingest_command(kind))
        report_app.command(kind)(_report_command(kind))
    from .ingest.webhooks.command import webhooks as _webhooks

    ingest_app.command("webhooks")(_webhooks)
    app.add_typer(ingest_app, name="ingest")
    app.add_typer(report_app, name="report")
