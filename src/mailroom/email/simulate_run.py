"""``mailroom simulate``: the simulator's events into a topic, paced or as fast as possible."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..log import open_log
from .simulator import Outage, SimConfig, simulate_batches


@dataclass
class SimulationStats:
    """What a run produced."""

    events: int
    seconds: float
    first_ts: int | None
    last_ts: int | None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def run_simulation(
    log_url: str,
    *,
    events: int | None = None,
    messages: int | None = None,
    rate: float = 0.0,
    seed: int = 42,
    outages: list[str] | None = None,
    topic: str = "email-events",
    partitions: int = 4,
    start_ms: int = 1_764_000_000_000,
    batch: int = 10_000,
    config: SimConfig | None = None,
    console: Console | None = None,
) -> SimulationStats:
    """Produce simulated events into ``topic`` (created with ``partitions`` if missing).

    ``events`` or ``messages`` bounds the run; ``rate`` caps events per wall-clock second (0: as
    fast as the log takes them); ``outages`` are ``PROVIDER:START:DURATION`` specs."""
    if (events is None) == (messages is None):
        raise ValueError("give exactly one of events and messages")
    if rate < 0:
        raise ValueError("rate must be >= 0 (0: as fast as possible)")
    cfg = replace(config or SimConfig(), outages=tuple(Outage.parse(o) for o in outages or ()))
    console = console or Console(stderr=True)
    lg = open_log(log_url)
    embedded = type(lg).__module__.startswith("mailroom.log.embedded")
    n = last = 0
    first_ts = None
    try:
        lg.create_topic(topic, partitions=partitions, exist_ok=True)
        total = events if events is not None else None
        cols = [TextColumn("[bold]simulate[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[speed]} ev/s"), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*cols, console=console, transient=False) as progress, lg.producer() as producer:
            label = f"{events:,} events" if events is not None else f"{messages:,} messages"
            task = progress.add_task(f"{label} -> {topic}", total=total if total is not None else messages, speed="-")
            t0 = time.perf_counter()
            for keys, values, ts in simulate_batches(messages, seed, batch, start_ms, config=cfg, max_events=events):
                step = len(ts) if rate <= 0 else max(1, int(rate / 10))  # paced: tenth-of-a-second slices
                for a in range(0, len(ts), step):
                    k, v, t = keys[a:a + step], values[a:a + step], ts[a:a + step]
                    if not embedded:  # other backends take lists of bytes
                        k, v = k.to_pylist(), v.to_pylist()
                    producer.send_batch(topic, v, k, timestamps=t)
                    n += len(t)
                    if rate > 0:
                        ahead = n / rate - (time.perf_counter() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
                first_ts = int(ts[0]) if first_ts is None and len(ts) else first_ts
                last = int(ts[-1]) if len(ts) else last
                done = n if events is not None else min(messages, _messages_so_far(keys))
                progress.update(task, completed=done, speed=f"{n / max(time.perf_counter() - t0, 1e-9):,.0f}")
            producer.flush()
            seconds = time.perf_counter() - t0
            if events is None:
                progress.update(task, completed=messages)
    finally:
        lg.close()
    return SimulationStats(n, seconds, first_ts, last or None)


def _messages_so_far(keys) -> int:
    """Messages injected so far, about: the simulator numbers them in order of arrival."""
    if not len(keys):
        return 0
    last = keys[len(keys) - 1].as_py()
    return int(last.split(b".", 1)[0]) + 1
