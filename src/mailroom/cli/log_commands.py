"""``mailroom topics ...`` and ``mailroom log ...``: look at and manage a log."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from ..errors import MailroomError
from ..log import OFFSET_BEGINNING, TopicPartition, open_log
from .options import LogOption

topics_app = typer.Typer(help="List, create, describe and delete topics.", no_args_is_help=True)
log_app = typer.Typer(help="Produce, consume and maintain a log.", no_args_is_help=True)
console = Console()


def _fail(e: Exception) -> None:
    console.print(f"[red]error:[/red] {e}")
    raise typer.Exit(1)


@topics_app.command("list")
def topics_list(log: str = LogOption) -> None:
    """List the topics with their partition counts."""
    try:
        with open_log(log) as lg:
            table = Table("topic", "partitions", "config")
            for name in lg.list_topics():
                spec = lg.describe_topic(name)
                table.add_row(name, str(spec.partitions), ", ".join(f"{k}={v}" for k, v in spec.config.items()))
            console.print(table)
    except MailroomError as e:
        _fail(e)


@topics_app.command("create")
def topics_create(
    name: str,
    partitions: int = typer.Option(1, "--partitions", "-p", help="Number of partitions."),
    config: list[str] = typer.Option([], "--config", "-c", help="Topic config KEY=VALUE (repeatable)."),
    log: str = LogOption,
) -> None:
    """Create a topic."""
    try:
        cfg = dict(c.split("=", 1) for c in config)
    except ValueError:
        _fail(ValueError("--config takes KEY=VALUE, e.g. --config cleanup.policy=compact"))
    try:
        with open_log(log) as lg:
            lg.create_topic(name, partitions, cfg)
            console.print(f"created topic [bold]{name}[/bold] with {partitions} partition(s)")
    except MailroomError as e:
        _fail(e)


@topics_app.command("describe")
def topics_describe(name: str, log: str = LogOption) -> None:
    """Show a topic's partitions, config and offsets."""
    try:
        with open_log(log) as lg:
            spec = lg.describe_topic(name)
            c = lg.consumer()
            table = Table("partition", "low", "high")
            for p in range(spec.partitions):
                low, high = c.watermarks(TopicPartition(name, p))
                table.add_row(str(p), str(low), str(high))
            c.close()
            console.print(f"[bold]{name}[/bold]: {spec.partitions} partition(s), config {dict(spec.config)}")
            console.print(table)
    except MailroomError as e:
        _fail(e)


@topics_app.command("delete")
def topics_delete(name: str, log: str = LogOption) -> None:
    """Delete a topic and its data."""
    try:
        with open_log(log) as lg:
            lg.delete_topic(name)
            console.print(f"deleted topic [bold]{name}[/bold]")
    except MailroomError as e:
        _fail(e)


@log_app.command("produce")
def produce(
    topic: str,
    key_separator: str = typer.Option(None, "--key-separator", "-k", help="Split each line into KEY<sep>VALUE."),
    log: str = LogOption,
) -> None:
    """Send each line of standard input as one record."""
    try:
        with open_log(log) as lg, lg.producer() as p:
            n = 0
            for line in sys.stdin.buffer:
                line = line.rstrip(b"\n")
                key = None
                if key_separator:
                    key, _, line = line.partition(key_separator.encode())
                p.send(topic, line, key)
                n += 1
            p.flush(30)
            console.print(f"sent {n} record(s) to {topic}", style="dim")
    except MailroomError as e:
        _fail(e)


@log_app.command("consume")
def consume(
    topic: str,
    limit: int = typer.Option(10, "--limit", "-n", help="Stop after this many records (0: no limit)."),
    group: str = typer.Option(None, "--group", "-g", help="Consume as this group and commit (default: no group)."),
    timeout: float = typer.Option(2.0, help="Stop after this many seconds without a record."),
    log: str = LogOption,
) -> None:
    """Print records of a topic from the beginning, one line each."""
    try:
        with open_log(log) as lg:
            c = lg.consumer(group)
            if group:
                c.subscribe([topic])
            else:
                spec = lg.describe_topic(topic)
                c.assign([TopicPartition(topic, p) for p in range(spec.partitions)])
                for p in range(spec.partitions):
                    c.seek(TopicPartition(topic, p), OFFSET_BEGINNING)
            n = 0
            while not limit or n < limit:
                batches = c.poll(limit - n if limit else 10_000, timeout=timeout)
                if not batches:
                    break
                for b in batches:
                    for r in b:
                        typer.echo(f"{r.partition}\t{r.offset}\t{r.timestamp}\t{r.key!r}\t{r.value!r}")
                        n += 1
            if group:
                c.commit()
            c.close()
    except MailroomError as e:
        _fail(e)


@log_app.command("maintain")
def maintain(log: str = LogOption) -> None:
    """Apply retention and compaction now (embedded log; Kafka brokers do it themselves)."""
    try:
        with open_log(log) as lg:
            lg.maintain()
            console.print("done")
    except MailroomError as e:
        _fail(e)
