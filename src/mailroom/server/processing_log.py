"""The server's processing log, queryable as a stream (as ksqlDB's ``KSQL_PROCESSING_LOG``).

Every query of a server (persistent and push) reports the records it had to skip (bad JSON, a
key that does not decode, a failing function...) to one topic per service id,
``<service id>ksql_processing_log`` (ksqlDB's name), instead of a topic per query. At start the
server registers the stream ``KSQL_PROCESSING_LOG`` over it, so that ``SELECT * FROM
KSQL_PROCESSING_LOG EMIT CHANGES;`` and ``PRINT`` show the entries.

An entry (written by :class:`mailroom.engine.processing_log.ProcessingLog`) is a JSON object:
``LOGGER`` (the application id of the query that skipped the record), ``TS`` (epoch ms),
``OPERATOR``, ``REASON``, the skipped record's ``TOPIC``, ``PARTITION`` and ``OFFSET``, and its
``KEY`` and ``VALUE`` in base64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sql.parser import parse

if TYPE_CHECKING:
    from .core import KsqlServer

STREAM = "KSQL_PROCESSING_LOG"


def topic_name(service_id: str) -> str:
    """ksqlDB's processing-log topic of a service id (``default_`` -> ``default_ksql_processing_log``)."""
    return f"{service_id}ksql_processing_log"


def stream_ddl(topic: str) -> str:
    """The CREATE STREAM of ``KSQL_PROCESSING_LOG`` over ``topic``."""
    return (f"CREATE STREAM {STREAM} (LOGGER STRING, TS BIGINT, OPERATOR STRING, REASON STRING, TOPIC STRING, "
            f"`PARTITION` INT, `OFFSET` BIGINT, KEY STRING, VALUE STRING) "
            f"WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON', PARTITIONS=1);")


def install(server: KsqlServer, *, stream: bool = True) -> str:
    """Point ``server``'s queries at the shared processing-log topic and (``stream``) register
    ``KSQL_PROCESSING_LOG`` over it; returns the topic. Call before any query starts (before
    the command topic is replayed). The stream is not a command: it is registered afresh at
    every start, and left alone if a source of that name already exists."""
    topic = topic_name(server.service_id)
    server.runtime.processing_log_topic = topic
    if stream and server.executor.meta.find(STREAM) is None:
        for stmt in parse(stream_ddl(topic)):
            server.executor.execute(stmt)
    return topic
