"""``PRINT 'topic' [FROM BEGINNING] [INTERVAL n] [LIMIT n];`` over REST, as ksqlDB answers it.

On ``POST /query`` the response is text, as ksqlDB's: two lines naming the key and value formats
(guessed from the first record), then one line per record::

    Key format: KAFKA_STRING
    Value format: JSON or KAFKA_STRING
    rowtime: 2026/11/29 07:30:00.000 Z, key: k, value: {"N":1}, partition: 0

On ``POST /query-stream`` (what ``mailroom sql`` reads) a header and one row per record, columns
ROWTIME, PARTITION, OFFSET, KEY, VALUE (as text). The records are read by a consumer of no group
on a thread of their own; the response ends at LIMIT, or when the client goes away.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from ..log import OFFSET_BEGINNING, OFFSET_END, Log, TopicPartition
from ..sql import ast as A
from ..sql.metastore import SqlError

COLUMNS = {"queryId": "", "columnNames": ["ROWTIME", "PARTITION", "OFFSET", "KEY", "VALUE"],
           "columnTypes": ["BIGINT", "INTEGER", "BIGINT", "STRING", "STRING"]}
_ids = itertools.count(1)


def _text(b: bytes | None) -> str:
    if b is None:
        return "<null>"
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.hex()


def _formats(key: bytes | None, value: bytes | None) -> tuple[str, str]:
    kf = "KAFKA_STRING" if key is None or _is_utf8(key) else "KAFKA_BYTES"
    try:
        json.loads(value or b"")
        vf = "JSON or KAFKA_STRING"
    except ValueError:
        vf = "KAFKA_STRING" if value is None or _is_utf8(value) else "KAFKA_BYTES"
    return kf, vf


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _rowtime(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.strftime("%Y/%m/%d %H:%M:%S.") + f"{t.microsecond // 1000:03d} Z"


def check(log: Log, stmt: A.PrintTopic) -> str:
    """The topic to print (raises SqlError if it does not exist; names match case-insensitively)."""
    topics = log.list_topics()
    if stmt.topic in topics:
        return stmt.topic
    for t in topics:
        if t.lower() == stmt.topic.lower():
            return t
    raise SqlError(f"Could not find topic '{stmt.topic}', or the KSQL user does not have permissions to list the topic. "
                   "Topic names are case-sensitive.")


async def records(log: Log, topic: str, stmt: A.PrintTopic) -> AsyncIterator[tuple[int, int, int, bytes | None, bytes | None]]:
    """(timestamp, partition, offset, key, value) of the topic's records, every INTERVAL-th, up to LIMIT."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
    stop = threading.Event()

    def put(item: Any) -> None:
        fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            try:
                fut.result(0.2)
                return
            except TimeoutError:
                continue
        fut.cancel()

    def read() -> None:
        c = log.consumer(None)
        try:
            tps = [TopicPartition(topic, p) for p in range(log.describe_topic(topic).partitions)]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, OFFSET_BEGINNING if stmt.from_beginning else OFFSET_END)
            while not stop.is_set():
                for rb in c.poll(1000, timeout=0.2):
                    for r in rb:
                        put((int(r.timestamp), rb.partition, int(r.offset), r.key, r.value))
                        if stop.is_set():
                            return
        except Exception as e:  # noqa: BLE001 - reported to the client
            put(e)
        finally:
            c.close()

    threading.Thread(target=read, name=f"print-{topic}", daemon=True).start()
    interval = max(1, stmt.interval or 1)
    seen = sent = 0
    try:
        while stmt.limit is None or sent < stmt.limit:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            seen += 1
            if (seen - 1) % interval:
                continue
            sent += 1
            yield item
    finally:
        stop.set()


async def ksql_text(log: Log, topic: str, stmt: A.PrintTopic) -> AsyncIterator[str]:
    """The ``/query`` form: format lines, then a line per record."""
    first = True
    async for ts, part, off, key, value in records(log, topic, stmt):
        if first:
            kf, vf = _formats(key, value)
            yield f"Key format: {kf}\nValue format: {vf}\n"
            first = False
        yield f"rowtime: {_rowtime(ts)}, key: {_text(key)}, value: {_text(value)}, partition: {part}\n"


async def delimited(log: Log, topic: str, stmt: A.PrintTopic) -> AsyncIterator[str]:
    """The ``/query-stream`` form: a header object, then one JSON array per record."""
    yield json.dumps({**COLUMNS, "queryId": f"print_{topic}_{next(_ids)}"}) + "\n"
    async for ts, part, off, key, value in records(log, topic, stmt):
        yield json.dumps([ts, part, off, None if key is None else _text(key), None if value is None else _text(value)]) + "\n"
