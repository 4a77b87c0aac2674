"""Turning librdkafka's errors into mailroom's typed errors, with what to do about them."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from ...errors import (
    CommitFailedError,
    LogError,
    ProducerFencedError,
    RecordTooLargeError,
    TopicExistsError,
    UnknownTopicError,
)

_UNKNOWN_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.MESSAGE_TOO_LARGE if hasattr(KafkaError, "MESSAGE_TOO_LARGE") else -9999}
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError inside a KafkaException (or None)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    if isinstance(exc, KafkaError):
        return exc
    return None


def translate(err: KafkaError | BaseException, *, topic: str | None = None, size: int = 0, limit: int = 0) -> Exception:
    """The mailroom error for a librdkafka error."""
    ke = err if isinstance(err, KafkaError) else kafka_error(err)
    if ke is None:
        return LogError(str(err))
    code = ke.code()
    if code in _UNKNOWN_TOPIC and topic:
        return UnknownTopicError(topic)
    if code in _TOO_LARGE:
        return RecordTooLargeError(topic or "?", size, limit)
    if code == KafkaError.TOPIC_ALREADY_EXISTS and topic:
        return TopicExistsError(topic)
    if code in _FENCED or ke.fatal():
        return ProducerFencedError(
            f"this transactional producer was fenced ({ke.str()}): another instance with the same "
            "transactional_id took over; close this one"
        )
    if code in (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
                KafkaError._ASSIGNMENT_LOST):
        return CommitFailedError(
            f"the group rebalanced and this consumer no longer owns the partitions ({ke.str()}): "
            "the records will be processed again by their new owner"
        )
    return LogError(f"Kafka error {ke.name()}: {ke.str()}" + (f" (topic '{topic}')" if topic else ""))
