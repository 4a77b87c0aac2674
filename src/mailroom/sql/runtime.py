"""Where SQL queries run: in-process on records fed one at a time (the conformance runner,
caching off, deterministic), or on a real log as engine applications.

Both offer the same few calls to the executor: topics, producing a record, starting and
stopping a persistent query.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import App, TestDriver, Topology
from ..engine.processing_log import ProcessingLog
from ..log import Log


@dataclass
class TopicRecord:
    """A record as it sits in a topic of the in-memory runtime."""

    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: list | None = None
    partition: int = 0


class Runtime(abc.ABC):
    """What the executor needs of a place to run queries."""

    @abc.abstractmethod
    def topic_exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None: ...

    @abc.abstractmethod
    def delete_topic(self, name: str) -> None: ...

    @abc.abstractmethod
    def topic_partitions(self, name: str) -> int: ...

    @abc.abstractmethod
    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int, headers: list | None = None) -> None: ...

    @abc.abstractmethod
    def start_query(self, query_id: str, topology: Topology, source_topics: list[str]) -> None: ...

    @abc.abstractmethod
    def stop_query(self, query_id: str) -> None: ...

    def close(self) -> None:
        for qid in list(self.queries()):
            self.stop_query(qid)

    @abc.abstractmethod
    def queries(self) -> list[str]: ...


class InMemoryRuntime(Runtime):
    """Topics as lists; each persistent query a :class:`TestDriver` (caching off).

    Producing a record delivers it at once to every query reading its topic, in the order the
    queries were started; what a query writes is delivered on the same way before the next query
    sees the record (depth first), as ksqlDB's conformance runner chains its test drivers.
    """

    def __init__(self, *, caching: bool = False) -> None:
        self.topics: dict[str, list[TopicRecord]] = {}
        self.partitions: dict[str, int] = {}
        self.drivers: dict[str, TestDriver] = {}
        self.caching = caching
        self.errors: list[str] = []
        self.processing_log = ProcessingLog(None, "processing-log")

    def topic_exists(self, name: str) -> bool:
        return name in self.topics

    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
        self.topics.setdefault(name, [])
        self.partitions.setdefault(name, partitions)

    def delete_topic(self, name: str) -> None:
        self.topics.pop(name, None)
        self.partitions.pop(name, None)

    def topic_partitions(self, name: str) -> int:
        return self.partitions.get(name, 1)

    def produce(self, topic: str, key, value, timestamp: int, headers=None, _depth: int = 0) -> None:
        if _depth > 50:
            raise RuntimeError(f"queries feed each other in a loop through topic {topic}")
        self.topics.setdefault(topic, []).append(TopicRecord(key, value, int(timestamp), headers))
        for qid, driver in list(self.drivers.items()):
            if topic not in driver._by_topic:
                continue
            driver.pipe_raw(topic, key, value, int(timestamp), headers)
            for t, k, v, ts, h in driver.drain_raw():
                self.produce(t, k, v, ts, h, _depth + 1)

    def start_query(self, query_id: str, topology: Topology, source_topics: list[str]) -> None:
        self.drivers[query_id] = TestDriver(topology, application_id=f"_confluent-ksql-{query_id}", caching=self.caching)
        self.drivers[query_id].processing_log = self.processing_log

    def stop_query(self, query_id: str) -> None:
        self.drivers.pop(query_id, None)

    def queries(self) -> list[str]:
        return list(self.drivers)

    def records(self, topic: str) -> list[TopicRecord]:
        return list(self.topics.get(topic, []))


class LogRuntime(Runtime):
    """Queries as engine applications on a real log (embedded or Kafka), each on a thread."""

    def __init__(self, log: Log, state_dir: str | Path = ".mailroom/state", *, processing_guarantee: str = "exactly_once",
                 service_id: str = "default_") -> None:
        import threading

        self.log = log
        self.state_dir = Path(state_dir)
        self.guarantee = processing_guarantee
        self.service_id = service_id
        self.apps: dict[str, tuple[App, Any]] = {}
        self._threading = threading
        self._producer = None
        #: one processing-log topic for every query run here (a server's ``<service id>ksql_processing_log``);
        #: None: each query reports to its own ``<application id>-processing-log``
        self.processing_log_topic: str | None = None

    def prepare_app(self, app: App) -> App:
        """Point ``app``'s processing log at the shared topic, if there is one (before it runs)."""
        if self.processing_log_topic:
            app.processing_log_topic = self.processing_log_topic
        return app

    def topic_exists(self, name: str) -> bool:
        return name in self.log.list_topics()

    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
        self.log.create_topic(name, partitions, config or {}, exist_ok=True)

    def delete_topic(self, name: str) -> None:
        self.log.delete_topic(name)

    def topic_partitions(self, name: str) -> int:
        return self.log.describe_topic(name).partitions

    def produce(self, topic: str, key, value, timestamp: int, headers=None) -> None:
        if self._producer is None:
            self._producer = self.log.producer()
        self._producer.send(topic, value, key, timestamp=int(timestamp), headers=headers)
        self._producer.flush(30)

    def start_query(self, query_id: str, topology: Topology, source_topics: list[str]) -> None:
        app_id = f"_confluent-ksql-{self.service_id}query_{query_id}"
        app = self.prepare_app(App(topology, app_id, self.log, state_dir=self.state_dir, processing_guarantee=self.guarantee))
        t = self._threading.Thread(target=app.run, name=f"query-{query_id}", daemon=True)
        self.apps[query_id] = (app, t)
        t.start()

    def stop_query(self, query_id: str) -> None:
        app, t = self.apps.pop(query_id, (None, None))
        if app is not None:
            app.stop()
            t.join(30)

    def queries(self) -> list[str]:
        return list(self.apps)

    def close(self) -> None:
        super().close()
        if self._producer is not None:
            self._producer.close()
