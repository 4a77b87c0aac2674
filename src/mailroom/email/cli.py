"""The email application's commands, added to ``mailroom`` through the ``mailroom.commands`` entry point."""

from __future__ import annotations

import typer

from ..cli.options import LogOption


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
