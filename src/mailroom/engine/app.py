"""The runtime: an application instance that runs a topology's tasks on a log.

Every process started with the same ``application_id`` joins one consumer group; the group
splits the input partitions, and each process runs the tasks of the partitions it owns. When a
process joins or dies, partitions move, and the new owner restores the tasks' state from their
changelogs.

The loop: poll a batch per partition -> its task runs it through the topology -> at each
commit interval (or when a cache is full): nodes flush their caches (emitting the coalesced
changes), stores flush to their changelogs, then

- at-least-once: the producer is flushed, then the input offsets are committed;
- exactly-once: outputs, changelog records and input offsets commit in one transaction
  (the log's atomic commit), so a crash at any point leaves either all of it or none.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import CommitFailedError
from ..log import OFFSET_BEGINNING, Log, RecordBatch, TopicPartition
from ..state import CHANGELOG_CONFIG
from .processing_log import ProcessingLog
from .task import Task
from .topology import Topology

log = logging.getLogger("mailroom.engine")

AT_LEAST_ONCE = "at_least_once"
EXACTLY_ONCE = "exactly_once"


def _lock_state_dir(folder: Path) -> int:
    """Hold the instance's state dir: two live instances must never share one."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirLockedError(
            f"state dir {folder} is in use by another running instance of this application: "
            "give each instance its own state_dir"
        ) from None
    return fd


def _unlock_state_dir(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing drops the flock


def _process_id(folder: Path) -> str:
    """This instance's id, kept in its state dir so that a restart is the same instance."""
    path = folder / "process.id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pid = uuid.uuid4().hex[:12]
        path.write_text(pid)
        return pid


def _merge_batches(batches: list[RecordBatch]) -> list[RecordBatch]:
    """One batch per partition: a poll may return a partition's records as several batches (one
    per stored frame, ~2.5k records of the bench's input), and every batch pays fixed costs
    down the topology (a native decode call, a repartition record per target partition, a
    store transaction): processed as one, they are paid once. Order within a partition is kept."""
    if len(batches) < 2:
        return batches
    by_tp: dict[tuple[str, int], list[RecordBatch]] = {}
    for rb in batches:
        by_tp.setdefault((rb.topic, rb.partition), []).append(rb)
    if len(by_tp) == len(batches):
        return batches
    out = []
    for (topic, part), group in by_tp.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        headers = None
        if any(rb.headers is not None for rb in group):
            headers = [h for rb in group for h in (rb.headers if rb.headers is not None else [None] * len(rb))]
        out.append(RecordBatch(
            topic, part,
            np.concatenate([rb.offsets for rb in group]),
            np.concatenate([rb.timestamps for rb in group]),
            pa.concat_arrays([rb.key_array for rb in group]),
            pa.concat_arrays([rb.value_array for rb in group]),
            headers,
        ))
    return out


class StateDirLockedError(RuntimeError):
    """Another live instance holds this state dir."""


#: the cyclic garbage collector's thresholds while an App runs: Python's default collects the
#: young generation every 700 allocations and the whole heap every 10th of those rounds, which
#: here means scanning the node caches' hundred thousands of live entries again and again (a
#: third of a windowed count's time); a stream processor allocates in batches and frees by
#: reference counting, so it collects far less often (the JVM's tuning flags, in Python)
GC_THRESHOLD = (100_000, 50, 1_000)
#: the shortest time between two commits made because a poll found nothing (``commit_when_idle``)
IDLE_COMMIT_GAP = 0.05


def _tune_gc() -> None:
    """Raise the collector's thresholds to :data:`GC_THRESHOLD` (never lowers a higher setting)."""
    now = gc.get_threshold()
    if now[0] < GC_THRESHOLD[0]:
        gc.set_threshold(*GC_THRESHOLD)


class App:
    """One instance of a stream application."""

    def __init__(
        self,
        topology: Topology,
        application_id: str,
        log_: Log,
        *,
        state_dir: str | os.PathLike = ".mailroom/state",
        processing_guarantee: str = AT_LEAST_ONCE,
        commit_interval_ms: int | None = None,
        caching: bool = True,
        max_poll_records: int = 10_000,
        restore_progress: Callable[[str, int, int], None] | None = None,
        commit_when_idle: bool = True,
    ) -> None:
        if processing_guarantee not in (AT_LEAST_ONCE, EXACTLY_ONCE):
            raise ValueError(f"processing_guarantee must be '{AT_LEAST_ONCE}' or '{EXACTLY_ONCE}'")
        self.topology = topology
        self.application_id = application_id
        self.log = log_
        self.state_dir = Path(state_dir) / application_id
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock = _lock_state_dir(self.state_dir)
        self.process_id = _process_id(self.state_dir)
        self.exactly_once = processing_guarantee == EXACTLY_ONCE
        self.commit_interval = (commit_interval_ms if commit_interval_ms is not None else (100 if self.exactly_once else 1000)) / 1000
        self.caching = caching
        self.max_poll_records = max_poll_records
        self.restore_progress = restore_progress
        #: commit as soon as a poll finds nothing, rather than at the next interval: results
        #: coalesced by the caches go out as soon as the input is drained (a quiet stream does
        #: not wait out the interval), and a busy one, whose polls never come back empty, is
        #: unaffected
        self.commit_when_idle = commit_when_idle
        self._uncommitted = False
        self.subs = topology.subtopologies()
        self._sub_of_topic = {self.topic(t): s for s in self.subs for t in s.source_topics}
        self.tasks: dict[str, Task] = {}
        self._stop = threading.Event()
        self._consumer = None
        self._producer = None
        self._last_commit = time.monotonic()
        self.processing_log_topic = f"{application_id}-processing-log"
        self._partition_counts: dict[str, int] = {}

    def topic(self, name: str) -> str:
        """A topology topic name with the application id filled in (internal topics)."""
        return name.replace("{app}", self.application_id)

    # -- set-up -----------------------------------------------------------------------------------
    def _create_internal_topics(self) -> None:
        for sub in self.subs:
            external = [t for t in sub.source_topics if "{app}" not in t]
            counts = {t: self.log.describe_topic(t).partitions for t in external}  # UnknownTopicError if missing
            if len(set(counts.values())) > 1:
                raise ValueError(f"source topics of one sub-topology must be co-partitioned, but have {counts}")
        # repartition topics take the partition count of the sub-topology feeding them
        feeding = {}
        for sub in self.subs:
            n = max((self.log.describe_topic(t).partitions for t in sub.source_topics if "{app}" not in t), default=None)
            for node in sub.nodes:
                sink = self.topology.nodes[node].sink_topic
                if sink and "{app}" in sink and n:
                    feeding[sink] = n
        for topic, n in feeding.items():
            self.log.create_topic(self.topic(topic), n, exist_ok=True)
        for sub in self.subs:
            n = max(
                (self.log.describe_topic(self.topic(t)).partitions for t in sub.source_topics),
                default=1,
            )
            for node in sub.nodes:
                for store, kind in self.topology.nodes[node].stores:
                    cfg = dict(CHANGELOG_CONFIG)
                    if kind == "window":
                        cfg = {"cleanup.policy": "compact,delete"}
                    self.log.create_topic(self.topic("{app}-" + store + "-changelog"), n, cfg, exist_ok=True)
        self.log.create_topic(self.processing_log_topic, 1, exist_ok=True)

    def _start(self) -> None:
        _tune_gc()
        self._create_internal_topics()
        # a stable transactional id per instance (its state dir): a restarted instance fences
        # its dead predecessor's open transaction at once instead of waiting for it to time out
        txid = f"{self.application_id}-{self.process_id}" if self.exactly_once else None
        self._producer = self.log.producer(transactional_id=txid, **({"transaction.timeout.ms": 10_000} if txid else {}))
        self._plog = ProcessingLog(self._producer, self.processing_log_topic, logger=self.application_id)
        self._consumer = self.log.consumer(self.application_id, assignment_strategy="range")
        topics = sorted(self._sub_of_topic)
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        if self.exactly_once:
            self._producer.begin_transaction()

    def _send(self, topic, keys, values, timestamps, headers=None, partitions=None) -> None:
        self._producer.send_batch(topic, values, keys, timestamps=np.asarray(timestamps, dtype=np.int64), headers=headers,
                                  partitions=partitions)

    def _partitions_of(self, topic: str) -> int:
        n = self._partition_counts.get(topic)
        if n is None:
            n = self._partition_counts[topic] = self.log.describe_topic(topic).partitions
        return n

    def _task_for(self, tp: TopicPartition) -> Task:
        sub = self._sub_of_topic[tp.topic]
        tid = f"{sub.id}_{tp.partition}"
        task = self.tasks.get(tid)
        if task is None:
            task = Task(
                self.topology,
                sub,
                tp.partition,
                topic_of=self.topic,
                producer=self._producer,
                log_=self.log,
                state_dir=self.state_dir,
                caching=self.caching,
                exactly_once=self.exactly_once,
                send=self._send,
                processing_log=self._plog,
                restore_progress=self.restore_progress,
                partitions_of=self._partitions_of,
            )
            self.tasks[tid] = task
        return task

    def _on_assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self._task_for(tp)
        log.info("%s: assigned %s", self.application_id, tps)

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        gone = {f"{self._sub_of_topic[tp.topic].id}_{tp.partition}" for tp in tps if tp.topic in self._sub_of_topic}
        gone &= set(self.tasks)  # (on close the tasks are already closed and committed)
        if gone:
            committed = True
            try:
                self.commit()
            except CommitFailedError as e:  # the group moved on: the new owner redoes the uncommitted part
                committed = False
                log.warning("commit on revoke failed (%s); the new owner will reprocess", e)
                self._recover_from_failed_commit(keep=gone)
            for tid in gone:
                task = self.tasks.pop(tid, None)
                if task:
                    # committed: local state matches the changelog, so a checkpoint lets this
                    # instance skip the restore if the task comes back (eager rebalances do that)
                    task.close(clean=committed, changelog_offsets=self._changelog_ends([task]) if committed else None)
        log.info("%s: revoked %s", self.application_id, tps)

    # -- running ---------------------------------------------------------------------------------
    def step(self, timeout: float = 0.1) -> int:
        """Poll once, process, commit if due. Returns the number of records processed."""
        if self._consumer is None:
            self._start()
        # with work to commit, an idle commit comes as soon as nothing is waiting (not after the
        # poll has waited out its timeout), but at most every IDLE_COMMIT_GAP: a Kafka consumer's
        # prefetch queue is briefly empty now and then even under load, and a commit waits for acks
        if self._uncommitted and self.commit_when_idle:
            timeout = min(timeout, max(0.0, self._last_commit + IDLE_COMMIT_GAP - time.monotonic()))
        batches = _merge_batches(self._consumer.poll(self.max_poll_records, timeout=timeout))
        n = 0
        for rb in batches:
            task = self._task_for(rb.topic_partition)
            task.process(rb)
            n += len(rb)
        if not batches:  # no records: wall-clock timers still fire
            for task in self.tasks.values():
                task.advance(task.ctx.stream_time)
        else:
            self._uncommitted = True
        if (time.monotonic() - self._last_commit >= self.commit_interval
                or (not batches and self._uncommitted and self.commit_when_idle)
                or any(t.cache_full for t in self.tasks.values())):
            try:
                self.commit()
            except CommitFailedError as e:
                log.warning("commit failed (%s): going back to the last committed offsets", e)
                self._recover_from_failed_commit()
        return n

    def commit(self) -> None:
        """Flush every task and commit (see the module docstring)."""
        if self._consumer is None:
            return
        for task in self.tasks.values():
            task.commit()
        offsets = {tp: pos for t in self.tasks.values() for tp, pos in t.positions.items()}
        log.debug("%s: commit %s", self.application_id, offsets)
        if self.exactly_once:
            self._producer.commit_transaction(offsets, self._consumer)
            self._producer.begin_transaction()
        else:
            self._producer.flush()
            if offsets:
                self._consumer.commit(offsets)
        self._last_commit = time.monotonic()
        self._uncommitted = False

    def _recover_from_failed_commit(self, keep: set[str] = frozenset()) -> None:
        """After a commit that did not happen: under exactly-once the transaction (every task's
        outputs and changelog records) is aborted, so every task goes back to the last committed
        state: closed without a checkpoint (its store is rebuilt from the changelog) and its
        partitions read again from the committed offsets. Tasks in ``keep`` are left to the caller.
        Under at-least-once outputs were already sent: reading again may duplicate, never lose."""
        if not self.exactly_once:
            return
        try:
            self._producer.abort_transaction()
        except Exception as e:  # already aborted by the failed commit
            log.debug("abort after failed commit: %s", e)
        self._producer.begin_transaction()
        for tid in [t for t in self.tasks if t not in keep]:
            task = self.tasks.pop(tid)
            task.close(clean=False)
            tps = list(task.positions) or [TopicPartition(t, task.partition) for t in task.sources]
            committed = self._consumer.committed(tps)
            for tp in tps:
                off = committed.get(tp)
                self._consumer.seek(tp, off if off is not None else OFFSET_BEGINNING)

    def run(self, *, until: Callable[[], bool] | None = None, idle_timeout: float | None = None) -> None:
        """Process until :meth:`stop` (or SIGTERM/SIGINT), ``until()`` is true, or no record came
        for ``idle_timeout`` seconds; then commit and close cleanly."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.step(timeout=0.2):
                    idle_since = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                    break
                if until is not None and until():
                    break
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Commit, write checkpoints, leave the group."""
        if self._consumer is None:
            _unlock_state_dir(self._dir_lock)
            self._dir_lock = None
            return
        self.commit()
        if self.exactly_once:
            self._producer.abort_transaction()  # the empty one begun by the last commit
        for task in self.tasks.values():
            task.close(clean=True, changelog_offsets=self._changelog_ends([task]))
        self.tasks.clear()
        self._consumer.close()
        self._producer.close()
        self._consumer = None
        _unlock_state_dir(self._dir_lock)
        self._dir_lock = None

    def _changelog_ends(self, tasks: list[Task]) -> dict[TopicPartition, int]:
        """The end offsets of the tasks' changelog partitions (what their stores now hold)."""
        return {tp: self._consumer.watermarks(tp)[1] for task in tasks for tp in task.changelog_ends}

    def owners(self) -> dict[str, list[TopicPartition]]:
        """This instance's tasks and their source partitions."""
        out: dict[str, list[TopicPartition]] = {}
        for tid, task in self.tasks.items():
            out[tid] = [TopicPartition(t, task.partition) for t in task.sources]
        return out
