"""KafkaLog: topics (admin), producers and consumers on an Apache Kafka cluster."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

from ...errors import BrokerUnavailableError, LogError, TopicExistsError, UnknownTopicError
from ..base import Consumer, Log, Producer, TopicSpec
from .consumer import KafkaConsumer
from .errors import kafka_error, translate
from .producer import KafkaProducer

#: How long to wait for the cluster at start and for metadata to settle after admin calls.
DEFAULT_TIMEOUT = 10.0


def client_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka settings from keyword config: dotted names pass through as they are, and
    snake_case names (``security_protocol``) become dotted (``security.protocol``)."""
    return {k.replace("_", ".") if "." not in k and "_" in k else k: v for k, v in config.items()}


class KafkaLog(Log):
    """The log on Apache Kafka. ``bootstrap`` is ``host:port[,host:port...]``."""

    def __init__(self, bootstrap: str, *, timeout: float = DEFAULT_TIMEOUT, **config: Any) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.config = {"bootstrap.servers": bootstrap, **client_settings(config)}
        errors: list[str] = []
        self._admin = AdminClient({**self.config, "error_cb": lambda e: errors.append(e.str())})
        try:
            self._admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            reason = errors[-1] if errors else str(kafka_error(exc).str() if kafka_error(exc) else exc)
            self._admin = None  # stop its background retries now, not whenever it is collected
            raise BrokerUnavailableError(bootstrap, f"no answer within {timeout:.0f}s ({reason})") from None

    # -- topics -------------------------------------------------------------------------------
    def create_topic(self, name, partitions=1, config=None, *, replication_factor=None, exist_ok=False) -> TopicSpec:
        new = NewTopic(name, partitions, replication_factor if replication_factor is not None else -1,
                       config={k: str(v) for k, v in (config or {}).items()})
        fut = self._admin.create_topics([new], operation_timeout=self.timeout, request_timeout=self.timeout)[name]
        try:
            fut.result()
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                if not exist_ok:
                    raise TopicExistsError(name) from None
            else:
                raise LogError(f"cannot create topic '{name}': {err.str() if err else exc}") from None
        return self._wait_for(name, partitions)

    def _wait_for(self, name: str, partitions: int) -> TopicSpec:
        """Metadata reaches every broker a moment after creation: wait until all partitions
        have leaders and the configs can be described, so the first produce or assign finds them."""
        deadline = time.monotonic() + self.timeout * 3
        while True:
            md = self._metadata(name).topics.get(name)
            if md is not None and md.error is None and md.partitions and all(
                p.leader >= 0 for p in md.partitions.values()
            ):
                try:
                    return self.describe_topic(name)
                except UnknownTopicError:
                    # the broker answering describe_configs may not know the topic yet
                    # (a cluster learns it broker by broker): ask again
                    pass
            if time.monotonic() > deadline:
                raise LogError(f"topic '{name}' was created but its partitions have no leader yet: is the cluster healthy?")
            time.sleep(0.05)

    def delete_topic(self, name: str) -> None:
        fut = self._admin.delete_topics([name], operation_timeout=self.timeout, request_timeout=self.timeout)[name]
        try:
            fut.result()
        except KafkaException as exc:
            raise translate(exc, topic=name) from None
        deadline = time.monotonic() + self.timeout
        while name in self._topic_names() and time.monotonic() < deadline:
            time.sleep(0.05)

    def describe_topic(self, name: str) -> TopicSpec:
        md = self._metadata(name).topics.get(name)
        if md is None or (md.error is not None and md.error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)):
            raise UnknownTopicError(name)
        if md.error is not None:
            raise translate(md.error, topic=name)
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            entries = self._admin.describe_configs([res], request_timeout=self.timeout)[res].result()
        except KafkaException as exc:
            raise translate(exc, topic=name) from None
        config = {k: e.value for k, e in entries.items() if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
        replicas = len(md.partitions[0].replicas) if 0 in md.partitions else 1
        return TopicSpec(name, len(md.partitions), config, replicas)

    def _metadata(self, topic: str | None = None):
        """Cluster metadata. While a broker dies and leadership moves, a request may time out:
        ask again (for up to three timeouts) before calling the cluster unreachable."""
        deadline = time.monotonic() + self.timeout * 3
        while True:
            try:
                return self._admin.list_topics(topic, timeout=self.timeout)
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is None or err.code() not in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT) or time.monotonic() > deadline:
                    raise BrokerUnavailableError(self.bootstrap, f"no metadata: {err.str() if err else exc}") from None

    def _topic_names(self) -> list[str]:
        return list(self._metadata().topics)

    def list_topics(self) -> list[str]:
        return sorted(t for t in self._topic_names() if not t.startswith("__"))

    def partitions(self, name: str) -> int:
        """The partition count of a topic (UnknownTopicError if there is none)."""
        md = self._metadata(name).topics.get(name)
        if md is None or md.error is not None or not md.partitions:
            raise UnknownTopicError(name)
        return len(md.partitions)

    # -- clients ------------------------------------------------------------------------------
    def producer(self, *, transactional_id: str | None = None, **config: Any) -> Producer:
        return KafkaProducer(self, transactional_id, {**self.config, **client_settings(config)})

    def consumer(self, group_id: str | None = None, *, auto_offset_reset: str = "earliest", **config: Any) -> Consumer:
        strategy = config.pop("assignment_strategy", None)
        return KafkaConsumer(self, group_id, auto_offset_reset, {**self.config, **client_settings(config)}, strategy)

    def close(self) -> None:
        self._admin = None  # AdminClient has no close; dropping it stops its threads

    def __repr__(self) -> str:
        return f"KafkaLog({self.bootstrap!r})"
