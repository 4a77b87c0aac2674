"""Typed errors of mailroom.

Every error carries the context a user needs (topic, partition, offset, file, position)
and, where there is one, says what to do about it. This module imports nothing of mailroom,
so every layer may raise these.
"""

from __future__ import annotations


class MailroomError(Exception):
    """Base class of every error mailroom raises on purpose."""


# --- the log -------------------------------------------------------------------------------


class LogError(MailroomError):
    """Something went wrong in a log backend (embedded or Kafka)."""


class UnknownTopicError(LogError):
    """A topic was used that does not exist."""

    def __init__(self, topic: str, hint: str | None = None) -> None:
        self.topic = topic
        msg = f"unknown topic '{topic}'"
        msg += f": {hint}" if hint else ": create it first (Log.create_topic or `mailroom topics create`)"
        super().__init__(msg)


class TopicExistsError(LogError):
    """A topic was created that already exists."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"topic '{topic}' already exists (pass exist_ok=True to reuse it)")


class InvalidConfigError(LogError):
    """A topic or client setting has a value that cannot be used."""


class RecordTooLargeError(LogError):
    """A record (or a batch) is larger than the topic or broker allows."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        self.topic, self.size, self.limit = topic, size, limit
        super().__init__(
            f"record of {size} bytes for topic '{topic}' exceeds max.message.bytes={limit}: "
            "split the value, or raise the topic's max.message.bytes"
        )


class InvalidRecordError(LogError):
    """A record the topic cannot take (e.g. a record without a key on a compacted topic)."""


class CorruptLogError(LogError):
    """A segment of the embedded log holds bytes that are not a valid record batch.

    Raised for damage *before* the tail of a segment (damage at the tail, left by a writer
    that was killed mid-write, is repaired on open and the torn bytes are kept aside).
    """

    def __init__(self, path: str, position: int, reason: str) -> None:
        self.path, self.position, self.reason = path, position, reason
        super().__init__(
            f"corrupt segment {path} at byte {position}: {reason}. Records before this position "
            "are intact; run `mailroom log check` to see the damage, or restore the file from a replica"
        )


class BrokerUnavailableError(LogError):
    """The Kafka cluster could not be reached."""

    def __init__(self, bootstrap: str, reason: str) -> None:
        self.bootstrap = bootstrap
        super().__init__(
            f"cannot reach Kafka at {bootstrap}: {reason}. Is the broker running? "
            "(start a local one with `scripts/kafka-local start`, or use the embedded log)"
        )


class CommitFailedError(LogError):
    """Offsets could not be committed: the consumer no longer owns those partitions, or the
    group moved on to a newer generation (another member took them over)."""


class ProducerFencedError(LogError):
    """Another producer with the same transactional id has started: this one must stop."""


class TransactionError(LogError):
    """A transaction call was made out of order (commit without begin, ...), or failed."""


# --- formats -------------------------------------------------------------------------------


class SerdeError(MailroomError):
    """A record could not be serialized or deserialized in the declared format.

    ``topic``, ``partition`` and ``offset`` say which record (None when not known, e.g. when
    serializing); ``reason`` says what was wrong with it.
    """

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        format: str | None = None,
    ) -> None:
        self.reason, self.topic, self.partition, self.offset, self.format = (
            reason,
            topic,
            partition,
            offset,
            format,
        )
        where = []
        if topic is not None:
            where.append(f"topic={topic}")
        if partition is not None:
            where.append(f"partition={partition}")
        if offset is not None:
            where.append(f"offset={offset}")
        prefix = f"{format} " if format else ""
        loc = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{prefix}serde error{loc}: {reason}")

    def at(self, topic: str | None, partition: int | None, offset: int | None) -> "SerdeError":
        """The same error, with the record's position filled in."""
        return type(self)(self.reason, topic=topic, partition=partition, offset=offset, format=self.format)
