"""A task: one sub-topology for one partition number, with its own nodes and state.

The task owns its stores (an LMDB environment in ``<state dir>/<task id>/``), each behind a
write-back cache whose flushes go to the store's changelog partition. On start it restores
every store from its changelog, from the checkpoint on (or from the beginning when there is no
clean checkpoint: under exactly-once, local state may hold uncommitted changes after a crash,
so it is wiped and rebuilt).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path


from ..log import Log, Producer, RecordBatch, TopicPartition
from ..state import CachingStore, Changelog, Checkpoint, InMemoryStore, LmdbEnv, WindowStore, restore
from .context import TaskContext
from .node import Node
from .operators.source_sink import SourceNode
from .processing_log import ProcessingLog
from .topology import SubTopology, Topology

log = logging.getLogger("mailroom.engine")


class Task:
    """Runs one sub-topology for one partition."""

    def __init__(
        self,
        topology: Topology,
        sub: SubTopology,
        partition: int,
        *,
        topic_of: Callable[[str], str],
        producer: Producer | None,
        log_: Log | None,
        state_dir: Path | None,
        caching: bool,
        exactly_once: bool,
        send: Callable[..., None],
        processing_log: ProcessingLog,
        restore_progress: Callable[[str, int, int], None] | None = None,
        clock: Callable[[], int] | None = None,
        partitions_of: Callable[[str], int] | None = None,
    ) -> None:
        self.id = f"{sub.id}_{partition}"
        #: wall-clock time in ms (the test driver passes a clock it moves by hand)
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.sub = sub
        self.partition = partition
        self._topic_of = topic_of
        self._producer = producer
        self._log = log_
        self._exactly_once = exactly_once
        self._caching = caching
        self.stores: dict[str, CachingStore] = {}
        self.window_stores: dict[str, WindowStore] = {}
        self.changelog_ends: dict[TopicPartition, int] = {}
        self._env: LmdbEnv | None = None
        self._checkpoint: Checkpoint | None = None
        self._restore_progress = restore_progress
        if state_dir is not None:
            folder = state_dir / self.id
            self._checkpoint = Checkpoint(state_dir / f"{self.id}.checkpoint")
            checkpoint = self._checkpoint.read()
            if exactly_once and not checkpoint and folder.exists():
                shutil.rmtree(folder)  # possibly ahead of the committed changelog: rebuild it
            self._env = LmdbEnv(folder)
            self._restored_from = checkpoint
            self._checkpoint.delete()  # from now on local state may move ahead of any checkpoint
        else:
            self._restored_from = {}
        self.ctx = TaskContext(
            task_id=self.id,
            partition=partition,
            caching=caching,
            processing_log=processing_log,
            kv_store=self._kv_store,
            window_store=self._window_store,
            send=send,
            partitions_of=partitions_of or (lambda topic: 1),
        )
        self.nodes: dict[str, Node] = {n: topology.nodes[n].factory() for n in sub.nodes}
        for n in sub.nodes:
            for p in topology.nodes[n].parents:
                self.nodes[p].children.append(self.nodes[n])
        self.sources: dict[str, SourceNode] = {}
        for n in sub.nodes:
            spec = topology.nodes[n]
            if spec.source_topic:
                node = self.nodes[n]
                node.topic = topic_of(spec.source_topic)
                self.sources[node.topic] = node
            if spec.sink_topic:
                self.nodes[n].topic = topic_of(spec.sink_topic)
        for node in self.nodes.values():
            node.init(self.ctx)
        self.positions: dict[TopicPartition, int] = {}

    # -- stores ------------------------------------------------------------------------------
    def changelog_tp(self, store: str) -> TopicPartition:
        return TopicPartition(self._topic_of("{app}-" + store + "-changelog"), self.partition)

    def _backing(self, name: str):
        return self._env.store(name) if self._env is not None else InMemoryStore(name)

    def _kv_store(self, name: str) -> CachingStore:
        if name in self.stores:
            return self.stores[name]
        inner = self._backing(name)
        tp = self.changelog_tp(name)
        if self._log is not None:
            self._restore(name, inner, tp, inner.put_many)
        changelog = Changelog(self._producer, tp) if self._producer is not None else None
        store = CachingStore(inner, enabled=self._caching, on_flush=changelog.send if changelog else None)
        self.stores[name] = store
        return store

    def _window_store(self, name: str, retention_ms: int, segment_ms: int) -> WindowStore:
        if name in self.window_stores:
            return self.window_stores[name]
        tp = self.changelog_tp(name)
        changelog = Changelog(self._producer, tp) if self._producer is not None else None

        def make_segment(seg: str) -> CachingStore:
            return CachingStore(self._backing(seg), enabled=self._caching, on_flush=changelog.send if changelog else None)

        def drop_segment(seg: str) -> None:
            if self._env is not None:
                self._env.drop(seg)

        ws = WindowStore(name, make_segment, drop_segment, retention_ms, segment_ms)
        if self._env is not None:  # adopt segments already on disk
            for existing in self._env.names():
                if existing.startswith(name + ".") and existing[len(name) + 1 :].lstrip("-").isdigit():
                    ws.attach(int(existing[len(name) + 1 :]), make_segment(existing))
        if self._log is not None:
            self._restore(name, ws, tp, lambda items: [ws.restore_put(k, v) for k, v in items])
        self.window_stores[name] = ws
        return ws

    def _restore(self, name: str, target, tp: TopicPartition, put_many) -> None:
        start = self._restored_from.get(tp, 0)

        class _Sink:
            def put_many(self, items):
                put_many(list(items))

        t0 = time.perf_counter()
        progress = None
        if self._restore_progress is not None:
            progress = lambda done, total: self._restore_progress(f"{self.id}/{name}", done, total)  # noqa: E731
        end = restore(_Sink(), self._log, tp, start, progress=progress)
        self.changelog_ends[tp] = end
        if end > start:
            log.info("task %s restored store %s: %d changelog records in %.2fs", self.id, name, end - start, time.perf_counter() - t0)

    # -- processing -------------------------------------------------------------------------------
    def process(self, rb: RecordBatch) -> None:
        """Run a polled batch of one of this task's source partitions through the topology."""
        source = self.sources[rb.topic]
        latest = source.ingest(rb)
        self.positions[TopicPartition(rb.topic, rb.partition)] = rb.next_offset
        # stream time follows the records' own (possibly extracted) timestamps, not the log's:
        # with a timestamp_field the log time says nothing about event time
        self.advance(self.ctx.stream_time if latest is None else latest)

    def advance(self, stream_time: int) -> None:
        if stream_time > self.ctx.stream_time:
            self.ctx.stream_time = stream_time
        wall = self.clock()
        for node in self.nodes.values():
            node.advance(self.ctx.stream_time, wall)

    def commit(self) -> None:
        """Flush state: nodes emit what their caches coalesced; every store reaches its changelog."""
        for node in self.nodes.values():
            node.commit()
        for store in self.stores.values():
            store.flush()
        for ws in self.window_stores.values():
            ws.flush()  # (operators that emit the old values took them in their own commit)

    @property
    def cache_full(self) -> bool:
        return any(s.full for s in self.stores.values())

    def write_checkpoint(self, changelog_offsets: dict[TopicPartition, int]) -> None:
        if self._checkpoint is not None:
            self._checkpoint.write(changelog_offsets)

    def close(self, clean: bool, changelog_offsets: dict[TopicPartition, int] | None = None) -> None:
        for node in self.nodes.values():
            node.close()
        if clean and changelog_offsets is not None:
            self.write_checkpoint(changelog_offsets)
        if self._env is not None:
            self._env.close()
