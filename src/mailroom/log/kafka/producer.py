"""The Kafka producer: idempotent, batched, optionally transactional."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from confluent_kafka import KafkaException
from confluent_kafka import Producer as RdProducer
from confluent_kafka import TopicPartition as RdTopicPartition

from ...errors import CommitFailedError, InvalidConfigError, LogError, RecordTooLargeError, TransactionError
from ..base import Consumer, Producer, TopicPartition
from .errors import kafka_error, translate

if TYPE_CHECKING:
    from .log import KafkaLog

# Throughput defaults; any of them can be overridden through the log's or producer's config.
DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # no duplicates or reordering on retries
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "partitioner": "murmur2_random",  # Java's default: same key, same partition as any Kafka client
    "delivery.report.only.error": True,  # delivery reports only for failures: no per-record callback
    "message.max.bytes": 1_000_000,
}


class KafkaProducer(Producer):
    """Writes to Kafka; see :class:`mailroom.log.Producer` for the contract."""

    def __init__(self, log: KafkaLog, transactional_id: str | None, config: dict[str, Any]) -> None:
        self._log = log
        self._errors: list[tuple[str, Exception]] = []
        cfg = {**DEFAULTS, **config, "on_delivery": self._on_delivery}
        self._limit = int(cfg["message.max.bytes"])
        if transactional_id:
            cfg["transactional.id"] = transactional_id
        self.transactional_id = transactional_id
        self._p = RdProducer(cfg)
        self._known: set[str] = set()
        self._in_txn = False
        if transactional_id:
            try:  # fences any older instance and aborts its open transaction
                self._p.init_transactions(log.timeout * 3)
            except KafkaException as exc:
                raise translate(exc) from None

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            size = len(msg.value() or b"") + len(msg.key() or b"")
            self._errors.append((msg.topic(), translate(err, topic=msg.topic(), size=size, limit=self._limit)))

    def _check_topic(self, topic: str) -> None:
        """librdkafka reports a missing topic only after a long metadata timeout: ask once."""
        if topic not in self._known:
            self._log.partitions(topic)
            self._known.add(topic)

    def send(self, topic, value, key=None, *, partition=None, timestamp=None, headers=None) -> None:
        self.send_batch(topic, [value], [key], partition=partition,
                        timestamps=timestamp, headers=[headers] if headers else None)

    def send_batch(self, topic, values, keys=None, *, partition=None, partitions=None, timestamps=None, headers=None) -> None:
        if self.transactional_id and not self._in_txn:
            raise TransactionError("a transactional producer sends only inside a transaction: call begin_transaction() first")
        self._check_topic(topic)
        n = len(values)
        if keys is None:
            keys = [None] * n
        if timestamps is None or isinstance(timestamps, (int, np.integer)):
            ts_list = [int(timestamps or 0)] * n  # 0: librdkafka stamps the current time
        else:
            ts_list = np.asarray(timestamps, dtype=np.int64).tolist()
        if partitions is not None:
            parts = np.asarray(partitions, dtype=np.int64).tolist()
        else:
            parts = [-1 if partition is None else int(partition)] * n  # -1: the partitioner decides
        produce, poll = self._p.produce, self._p.poll
        i = 0
        while i < n:
            try:
                # one tight loop over the batch; librdkafka copies and batches underneath. The
                # arguments go by position (topic, value, key, partition, on_delivery, callback,
                # timestamp, headers): keyword arguments make each call about twice as slow
                if headers is None:
                    for i in range(i, n):
                        produce(topic, values[i], keys[i], parts[i], None, None, ts_list[i])
                else:
                    for i in range(i, n):
                        produce(topic, values[i], keys[i], parts[i], None, None, ts_list[i], headers[i])
                i = n
            except BufferError:
                poll(0.05)  # the local queue is full: let librdkafka send, then go on at record i
            except KafkaException as exc:
                size = len(values[i] or b"") + len(keys[i] or b"")
                err = translate(exc, topic=topic, size=size, limit=self._limit)
                if isinstance(err, RecordTooLargeError):
                    self._p.flush(self._log.timeout)  # what came before record i is still sent
                raise err from None
        poll(0)

    def flush(self, timeout: float | None = None) -> None:
        left = self._p.flush(timeout if timeout is not None else -1)
        if self._errors:
            topic, err = self._errors[0]
            count = len(self._errors)
            self._errors.clear()
            if count > 1:
                err.args = (f"{err.args[0] if err.args else err} (and {count - 1} more failed records)",)
            raise err
        if left:
            raise LogError(f"{left} records not acknowledged by Kafka within {timeout}s: is the cluster healthy?")

    # -- transactions -------------------------------------------------------------------------
    def _txn(self, call, *args) -> None:
        if not self.transactional_id:
            raise TransactionError("this producer has no transactional_id")
        try:
            call(*args)
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is not None and err.txn_requires_abort():
                try:
                    self._p.abort_transaction(self._log.timeout)
                finally:
                    self._in_txn = False
                raise CommitFailedError(f"transaction aborted: {err.str()}") from None
            raise translate(exc) from None

    def begin_transaction(self) -> None:
        self._txn(self._p.begin_transaction)
        self._in_txn = True

    def commit_transaction(self, offsets: Mapping[TopicPartition, int] | None = None, consumer: Consumer | None = None) -> None:
        if offsets:
            if consumer is None or not hasattr(consumer, "group_metadata"):
                raise InvalidConfigError("committing offsets in a transaction needs the Kafka consumer that read them")
            tps = [RdTopicPartition(tp.topic, tp.partition, int(o)) for tp, o in offsets.items()]
            self._txn(self._p.send_offsets_to_transaction, tps, consumer.group_metadata(), self._log.timeout)
        self._txn(self._p.commit_transaction, self._log.timeout * 3)
        self._in_txn = False
        self._errors.clear()

    def abort_transaction(self) -> None:
        self._txn(self._p.abort_transaction, self._log.timeout * 3)
        self._in_txn = False
        self._errors.clear()

    def close(self) -> None:
        if self._p is None:
            return
        try:
            if self._in_txn:
                self._p.abort_transaction(self._log.timeout)
            else:
                self._p.flush(self._log.timeout)
        except KafkaException:
            pass
        self._p = None
