"""The test driver: a whole topology in-process, deterministic, record by record, caching off.

Like Kafka Streams' TopologyTestDriver: no log, no threads, in-memory stores. Each input
record is encoded with its source's serdes, run through the tasks (records written to
internal repartition topics are fed straight to the tasks that read them), and outputs are
kept per topic to read back.

    driver = TestDriver(top)
    driver.pipe_input("events", key="m1", value={"domain": "gmail.com"}, timestamp=1000)
    driver.read_output("counts")   # -> [Output(key=..., value=..., timestamp=...)]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..log import RecordBatch
from .processing_log import ProcessingLog
from .serdes import JSON, STRING, Serde
from .task import Task
from .topology import Topology


class Output(NamedTuple):
    key: Any
    value: Any
    timestamp: int
    headers: list | None = None


class TestDriver:
    """Runs a topology without a log."""

    __test__ = False  # not a pytest test class

    def __init__(self, topology: Topology, application_id: str = "test", *, caching: bool = False) -> None:
        self.application_id = application_id
        self.processing_log = ProcessingLog(None, f"{application_id}-processing-log")
        self._outputs: dict[str, list[tuple[bytes | None, bytes | None, int, list | None]]] = {}
        self._offsets: dict[str, int] = {}
        self.wall_time = 0  # ms; moved by advance_wall_clock
        self._raw: list[tuple] = []  # every output record, in order, across topics
        self.tasks: list[Task] = []
        self._by_topic: dict[str, Task] = {}
        for sub in topology.subtopologies():
            task = Task(
                topology,
                sub,
                0,
                topic_of=self.topic,
                producer=None,
                log_=None,
                state_dir=None,
                caching=caching,
                exactly_once=False,
                send=self._send,
                processing_log=self.processing_log,
                clock=lambda: self.wall_time,
            )
            self.tasks.append(task)
            for t in task.sources:
                self._by_topic[t] = task

    def topic(self, name: str) -> str:
        return name.replace("{app}", self.application_id)

    def _send(self, topic, keys, values, timestamps, headers=None, partitions=None) -> None:
        ts = np.asarray(timestamps, dtype=np.int64)
        if topic in self._by_topic:  # an internal topic: feed it on at once
            self._feed(topic, list(keys), list(values), ts, headers)
            return
        out = self._outputs.setdefault(topic, [])
        for i, (k, v) in enumerate(zip(keys, values)):
            rec = (k, v, int(ts[i]), headers[i] if headers else None)
            out.append(rec)
            self._raw.append((topic, *rec))

    def _feed(self, topic: str, keys: list, values: list, ts: np.ndarray, headers=None) -> None:
        task = self._by_topic.get(topic)
        if task is None:
            raise KeyError(f"topic '{topic}' is not a source of this topology (sources: {sorted(self._by_topic)})")
        start = self._offsets.get(topic, 0)
        self._offsets[topic] = start + len(keys)
        offsets = np.arange(start, start + len(keys), dtype=np.int64)
        task.process(RecordBatch(topic, 0, offsets, ts, keys, values, headers))

    def pipe_raw(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int = 0, headers=None) -> None:
        """Feed one record as bytes."""
        self._feed(topic, [key], [value], np.array([timestamp], dtype=np.int64), [headers] if headers else None)
        for task in self.tasks:
            task.commit()

    def pipe_input(self, topic: str, key: Any = None, value: Any = None, timestamp: int = 0, headers=None) -> None:
        """Feed one record, encoded with the source's own serdes."""
        src = self._by_topic.get(topic)
        if src is None:
            raise KeyError(f"topic '{topic}' is not a source of this topology (sources: {sorted(self._by_topic)})")
        node = src.sources[topic]
        kb = None if key is None else node.key_serde.encode([key])[0]
        vb = None if value is None else node.value_serde.encode([value])[0]
        self.pipe_raw(topic, kb, vb, timestamp, headers)

    def pipe_batch(self, topic: str, records: list[tuple[Any, Any, int]], *, commit: bool = True) -> None:
        """Feed several (key, value, timestamp) records as ONE polled batch (encoded with the
        source's serdes), then commit unless ``commit`` is False: how the runtime sees input."""
        src = self._by_topic.get(topic)
        if src is None:
            raise KeyError(f"topic '{topic}' is not a source of this topology (sources: {sorted(self._by_topic)})")
        node = src.sources[topic]
        keys = [None if k is None else node.key_serde.encode([k])[0] for k, _, _ in records]
        values = [None if v is None else node.value_serde.encode([v])[0] for _, v, _ in records]
        self._feed(topic, keys, values, np.array([t for _, _, t in records], dtype=np.int64))
        if commit:
            self.commit()

    def commit(self) -> None:
        """Commit every task (cached operators emit what they coalesced)."""
        for task in self.tasks:
            task.commit()

    def advance_wall_clock(self, ms: int) -> None:
        """Move the driver's wall clock on by ``ms`` (it starts at 0) and fire wall-clock timers."""
        self.wall_time += ms
        for task in self.tasks:
            task.advance(task.ctx.stream_time)
            task.commit()

    def read_output(self, topic: str, key_serde: Serde = STRING, value_serde: Serde = JSON) -> list[Output]:
        """Everything written to ``topic`` since the last read, decoded."""
        raw = self._outputs.pop(topic, [])
        if not raw:
            return []
        keys, _ = key_serde.decode([r[0] for r in raw])
        values, _ = value_serde.decode([r[1] for r in raw])
        return [Output(k, v, r[2], r[3]) for k, v, r in zip(keys, values, raw)]

    def drain_raw(self) -> list[tuple[str, bytes | None, bytes | None, int, list | None]]:
        """Every record written to an output topic since the last drain, in the order written,
        as (topic, key bytes, value bytes, timestamp, headers); also drops them from read_output."""
        raw, self._raw = self._raw, []
        self._outputs.clear()
        return raw

    def output_topics(self) -> list[str]:
        return sorted(self._outputs)
