"""Stream a log file into a topic as canonical events, following it as it grows, resuming after
a restart.

    from mailroom.log import open_log
    from mailroom.email.ingest.runner import ingest_file
    with open_log("embedded:./data") as log:
        stats = ingest_file("/var/log/mail.log", log, kind="postfix", follow=False)

Where it stopped is kept in a small JSON state file (default ``FILE.mailroom-offset`` next to
the log, or ``state_path``): the file's inode, the byte offset after the last line whose events
were flushed to the log, the line number, and the parser's state (queue id -> Message-ID and
attempt counts, so a message that was in flight at the stop keeps its id). A rotated file
(another inode) or a truncated one (offset beyond its size) is read from its start.

Delivery is at-least-once: the state is saved only after the producer has flushed the batch, so
a crash between the two sends that batch again. Lines that do not parse go to the processing
log topic (``<topic>-processing-log``) with line number and reason; nothing stops.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...engine.processing_log import ProcessingLog
from ...log import Log
from ..events import EmailEvent, encode
from . import parser_for
from .base import ParseError


@dataclass
class IngestStats:
    lines: int = 0
    events: int = 0
    errors: int = 0
    batches: int = 0
    offset: int = 0
    resumed_from: int = 0
    error_samples: list[ParseError] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)


def default_state_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".mailroom-offset")


def load_state(state_path: Path) -> dict:
    try:
        return json.loads(state_path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def save_state(state_path: Path, state: dict) -> None:
    tmp = state_path.with_name(state_path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_path)


def ingest_file(
    path: str | Path,
    log: Log,
    *,
    kind: str = "postfix",
    topic: str = "email-events",
    partitions: int = 4,
    follow: bool = False,
    state_path: str | Path | None = None,
    batch: int = 5_000,
    poll_interval: float = 0.25,
    idle_timeout: float | None = None,
    stop: Callable[[], bool] | None = None,
    on_batch: Callable[[list[EmailEvent]], None] | None = None,
    error_topic: str | None = None,
    parser_options: dict | None = None,
) -> IngestStats:
    """Parse ``path`` with the ``kind`` parser and produce its events to ``topic`` (created with
    ``partitions`` if missing), keyed by message id, timestamped by event time.

    ``follow``: keep reading as the file grows (and reopen it when rotated) until ``stop()``
    returns true or nothing new came for ``idle_timeout`` seconds."""
    path = Path(path)
    state_path = Path(state_path) if state_path else default_state_path(path)
    state = load_state(state_path)
    parser = parser_for(kind, **(parser_options or {}))
    log.create_topic(topic, partitions=partitions, exist_ok=True)
    error_topic = error_topic or f"{topic}-processing-log"
    log.create_topic(error_topic, partitions=1, exist_ok=True)
    stats = IngestStats()

    with log.producer() as producer:
        plog = ProcessingLog(producer, error_topic)
        f, inode = _open(path)
        offset, line_no = 0, 0
        if state and f is not None and state.get("inode") == inode and state.get("offset", 0) <= os.fstat(f.fileno()).st_size:
            offset, line_no = int(state["offset"]), int(state.get("line_no", 0))
            parser.restore(state.get("parser") or {})
            f.seek(offset)
        stats.resumed_from = offset
        pending: list[EmailEvent] = []
        last_data = time.monotonic()
        buf = b""

        def flush() -> None:
            nonlocal pending
            if pending:
                producer.send_batch(topic, [encode(e) for e in pending], [e.key for e in pending],
                                    timestamps=[e.ts for e in pending])
                for e in pending:
                    stats.by_type[e.type] = stats.by_type.get(e.type, 0) + 1
                stats.events += len(pending)
                stats.batches += 1
                if on_batch:
                    on_batch(pending)
            for err in parser.take_errors():
                stats.errors += 1
                if len(stats.error_samples) < 100:
                    stats.error_samples.append(err)
                plog.report(f"line {err.line_no}: {err.reason}", operator=f"ingest-{kind}", topic=str(path),
                            offset=err.line_no, value=err.line.encode())
            producer.flush()
            save_state(state_path, {"path": str(path), "inode": inode, "offset": offset, "line_no": line_no,
                                    "parser": parser.snapshot()})
            pending = []

        while True:
            chunk = f.read(1 << 20) if f is not None else b""
            if chunk:
                last_data = time.monotonic()
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()  # an incomplete last line waits for its end
                for raw in lines:
                    line_no += 1
                    offset += len(raw) + 1
                    stats.lines += 1
                    pending.extend(parser.feed(raw.decode("utf-8", "replace"), line_no))
                    if len(pending) >= batch:
                        flush()
                continue
            # end of the file for now
            if not follow:
                if buf:
                    line_no += 1
                    offset += len(buf)
                    stats.lines += 1
                    pending.extend(parser.feed(buf.decode("utf-8", "replace"), line_no))
                    buf = b""
                flush()
                break
            flush()
            if (stop and stop()) or (idle_timeout is not None and time.monotonic() - last_data > idle_timeout):
                break
            time.sleep(poll_interval)
            # rotated (new inode) or truncated: start over on the new file
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if f is None or st.st_ino != inode or st.st_size < offset:
                if f is not None:
                    f.close()
                f, inode = _open(path)
                offset, line_no, buf = 0, 0, b""
        if f is not None:
            f.close()
    stats.offset = offset
    return stats


def _open(path: Path):
    try:
        f = open(path, "rb")  # noqa: SIM115 - held across the follow loop
    except FileNotFoundError:
        return None, None
    return f, os.fstat(f.fileno()).st_ino
