"""``mailroom demo``: simulated email events through the embedded log, with a summary.

Produces the simulator's events into a topic (keyed by message id, so every message's events
stay in order in one partition), reads them back as a consumer group, and summarizes them.
Later steps of the project grow this into the full email-tracking demo.
"""

from __future__ import annotations

import time

import orjson
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..log import TopicPartition, open_log
from .simulator import simulate

TOPIC = "email-events"
SCHEMA = {"message_id": pl.String, "type": pl.String, "provider": pl.String, "ts": pl.Int64}


def run_demo(log_url: str, messages: int = 200_000, partitions: int = 4, seed: int = 42, console: Console | None = None) -> dict:
    """Run the demo; returns the summary it prints."""
    console = console or Console()
    log = open_log(log_url)
    try:
        if TOPIC in log.list_topics():
            log.delete_topic(TOPIC)
        log.create_topic(TOPIC, partitions=partitions)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        produced = 0
        t0 = time.perf_counter()
        with Progress(*columns, console=console, transient=False) as progress, log.producer() as producer:
            task = progress.add_task("simulate + produce (messages)", total=messages)
            for events in simulate(messages=messages, seed=seed):
                producer.send_batch(
                    TOPIC,
                    [orjson.dumps(e) for e in events],
                    [e["message_id"].encode() for e in events],
                    timestamps=[e["ts"] for e in events],
                )
                produced += len(events)
                progress.advance(task, min(10_000, messages - progress.tasks[0].completed))
            producer.flush()
        t_produce = time.perf_counter() - t0

        t0 = time.perf_counter()
        frames = []
        consumer = log.consumer("mailroom-demo")
        consumer.subscribe([TOPIC])
        consumed = 0
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("consume (events)", total=produced)
            while consumed < produced:
                batches = consumer.poll(50_000, timeout=2.0)
                if not batches:
                    break
                for b in batches:
                    frames.append(pl.read_ndjson(b"\n".join(b.values), schema=SCHEMA))
                    consumed += len(b)
                    progress.advance(task, len(b))
        consumer.commit()
        consumer.close()
        t_consume = time.perf_counter() - t0
    finally:
        log.close()

    df = pl.concat(frames) if frames else pl.DataFrame()
    by_type = df.group_by("type").len().sort("len", descending=True) if len(df) else df
    by_provider = (
        df.group_by("provider").agg(
            pl.col("message_id").n_unique().alias("messages"),
            (pl.col("type") == "delivered").sum().alias("delivered"),
            (pl.col("type") == "deferred").sum().alias("deferred"),
            (pl.col("type") == "bounced").sum().alias("bounced"),
            (pl.col("type") == "opened").sum().alias("opened"),
        ).sort("messages", descending=True)
        if len(df)
        else df
    )
    table = Table(title="events by provider")
    for col in ("provider", "messages", "delivered", "deferred", "bounced", "opened", "delivery rate"):
        table.add_column(col, justify="right" if col != "provider" else "left")
    for row in by_provider.iter_rows(named=True):
        table.add_row(
            row["provider"], *(f"{row[c]:,}" for c in ("messages", "delivered", "deferred", "bounced", "opened")),
            f"{row['delivered'] / row['messages']:.1%}",
        )
    console.print(table)
    summary = {
        "log": log_url,
        "messages": messages,
        "events_produced": produced,
        "events_consumed": consumed,
        "produce_events_per_s": round(produced / t_produce),
        "consume_events_per_s": round(consumed / t_consume),
        "by_type": dict(zip(by_type["type"].to_list(), by_type["len"].to_list())) if len(df) else {},
    }
    console.print(
        f"[bold]summary[/bold]: {produced:,} events of {messages:,} messages produced "
        f"({summary['produce_events_per_s']:,}/s incl. simulation) and {consumed:,} consumed and decoded "
        f"({summary['consume_events_per_s']:,}/s) on {log_url}"
    )
    return summary
