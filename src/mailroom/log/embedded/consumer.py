"""The embedded log's consumer: partition readers, group membership and offset commits."""

from __future__ import annotations

import logging

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ...errors import InvalidConfigError, LogError
from ..base import OFFSET_BEGINNING, OFFSET_END, AssignCallback, Consumer, RecordBatch, TopicPartition
from .groups import HANDOFF_TIMEOUT, Member
from .reader import OWN_BATCH_RECORDS, OffsetOutOfRange, PartitionReader, concat_frames, group_frames

if TYPE_CHECKING:
    from .log import EmbeddedLog

_IDLE_SLEEPS = (0.001, 0.002, 0.005, 0.01, 0.02)


log = logging.getLogger("mailroom.log")

class EmbeddedConsumer(Consumer):
    """Reads the embedded log; joins a group on :meth:`subscribe`."""

    def __init__(self, log: EmbeddedLog, group_id: str | None, auto_offset_reset: str, *, check_crcs: bool = True) -> None:
        self._log = log
        self._check_crcs = check_crcs
        self.group_id = group_id
        self._reset = auto_offset_reset
        self._store = log.group(group_id) if group_id else None
        self._readers: dict[TopicPartition, PartitionReader] = {}
        self.member: Member | None = None
        self._on_assign: AssignCallback | None = None
        self._on_revoke: AssignCallback | None = None
        self._turn = 0
        #: partitions assigned to this member, waiting for their previous owner to let them go
        #: (-> when the wait began)
        self._waiting: dict[TopicPartition, float] = {}

    # -- assignment ---------------------------------------------------------------------------
    def subscribe(self, topics, on_assign=None, on_revoke=None) -> None:
        if self._store is None:
            raise InvalidConfigError("subscribe needs a consumer with a group_id (or use assign)")
        for t in topics:
            self._log.topic(t)  # an unknown topic is an error here, not a silent empty read
        if self.member is not None:
            self.member.leave()
            self._drop(list(self._readers))
            self._waiting.clear()
        self._on_assign, self._on_revoke = on_assign, on_revoke

        def counts(names: list[str]) -> dict[str, int]:
            out = {}
            for n in names:
                try:
                    out[n] = self._log.topic(n).spec.partitions
                except LogError:
                    pass
            return out

        self.member = self._store.join(list(topics), counts)
        self._rebalance()

    def _rebalance(self) -> None:
        change = self.member.heartbeat()
        if change is not None:
            added, removed = change
            waiting = [tp for tp in removed if tp in self._waiting]
            for tp in waiting:  # assigned and taken away again before it was free
                del self._waiting[tp]
            removed = [tp for tp in removed if tp not in waiting]
            if removed:
                if self._on_revoke:
                    self._on_revoke(removed)  # (may commit them: this member still holds them)
                self._drop(removed)
                self.member.release(removed)
            now = time.monotonic()
            for tp in added:
                self._waiting.setdefault(tp, now)
        if self._waiting:
            self._take_free()

    def _take_free(self) -> None:
        """Start consuming the newly assigned partitions their previous owner has let go."""
        holders = self._store.holders(exclude=self.member.member_id)
        now = time.monotonic()
        ready = [tp for tp, since in self._waiting.items() if tp not in holders or now - since >= HANDOFF_TIMEOUT]
        if not ready:
            return
        for tp in ready:
            if tp in holders:
                log.warning("%s[%d]: its previous owner did not let it go in %.0fs: taking it over",
                            tp.topic, tp.partition, HANDOFF_TIMEOUT)
            del self._waiting[tp]
        self.member.hold(ready)
        for tp in ready:
            self._add(tp)
        if self._on_assign:
            self._on_assign(ready)

    def _drop(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            r = self._readers.pop(tp, None)
            if r:
                r.close()

    def _add(self, tp: TopicPartition) -> None:
        reader = PartitionReader(self._log.partition(tp), check_crcs=self._check_crcs)
        self._readers[tp] = reader
        committed = self._store.committed(tp) if self._store else None
        if committed is not None:
            try:
                reader.seek(committed)
                return
            except OffsetOutOfRange:  # deleted by retention (or beyond the end): reset as configured
                log.warning("committed offset %d of %s[%d] is out of range [%d, %d]: resetting to %s",
                            committed, tp.topic, tp.partition, reader.plog.start_offset(), reader.plog.end_offset(), self._reset)
        self._seek_reset(tp, reader)

    def _seek_reset(self, tp: TopicPartition, reader: PartitionReader) -> None:
        if self._reset == "error":
            raise LogError(f"no valid committed offset for {tp.topic}[{tp.partition}] and auto_offset_reset='error'")
        plog = reader.plog
        target = plog.start_offset() if self._reset == "earliest" else plog.end_offset()
        try:
            reader.seek(target)
        except OffsetOutOfRange:  # retention moved the start meanwhile
            reader.seek(plog.start_offset())

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        if self.member is not None:
            raise InvalidConfigError("this consumer subscribed to a group: it cannot also assign partitions by hand")
        self._drop([tp for tp in self._readers if tp not in partitions])
        for tp in partitions:
            tp = TopicPartition(*tp)
            if tp not in self._readers:
                self._add(tp)

    def assignment(self) -> list[TopicPartition]:
        if self.member is not None:
            self._rebalance()
        return sorted(self._readers)

    # -- positions ---------------------------------------------------------------------------
    def _reader(self, tp: TopicPartition) -> PartitionReader:
        try:
            return self._readers[tp]
        except KeyError:
            raise LogError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer") from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        reader = self._reader(tp)
        plog = reader.plog
        if offset == OFFSET_BEGINNING:
            offset = plog.start_offset()
        elif offset == OFFSET_END:
            offset = plog.end_offset()
        try:
            reader.seek(offset)
        except OffsetOutOfRange:
            self._seek_reset(tp, reader)

    def position(self, tp: TopicPartition) -> int:
        return self._reader(tp).next_offset

    def poll(self, max_records: int = 10_000, timeout: float = 1.0) -> list[RecordBatch]:
        deadline = time.monotonic() + timeout
        idle = 0
        while True:
            if self.member is not None:
                self._rebalance()
            batches = self._read(max_records)
            if batches or time.monotonic() >= deadline:
                return batches
            time.sleep(min(_IDLE_SLEEPS[min(idle, len(_IDLE_SLEEPS) - 1)], max(0.0, deadline - time.monotonic())))
            idle += 1

    def _read(self, max_records: int) -> list[RecordBatch]:
        # (runs once a poll, and a poll is a few frames: kept short, as the reader's fast path is)
        readers = list(self._readers.items())
        if not readers:
            return []
        turn = self._turn = (self._turn + 1) % len(readers)
        out: list[RecordBatch] = []
        budget = max_records
        for tp, reader in readers[turn:] + readers[:turn]:  # rotate, so no partition starves
            if budget <= 0:
                break
            try:
                frames = reader.read(budget, split=not out)  # (a whole frame or none, once some records are in)
            except FileNotFoundError:
                self._seek_reset(tp, reader)  # its segment went away under retention
                continue
            if not frames:
                continue
            topic, partition = tp
            for f in frames:
                if len(f.offsets) < OWN_BATCH_RECORDS:
                    break
            else:  # big frames go out as they are: no copy (the common case, made short)
                for f in frames:
                    out.append(RecordBatch(topic, partition, f.offsets, f.timestamps, f.keys, f.values, f.headers))
                    budget -= len(f.offsets)
                continue
            for run in group_frames(frames):
                offsets, ts, keys, values, headers = concat_frames(run)
                out.append(RecordBatch(topic, partition, offsets, ts, keys, values, headers))
                budget -= len(offsets)
        return out

    # -- offsets --------------------------------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self._store is None:
            raise InvalidConfigError("commit needs a consumer with a group_id")
        if offsets is None:
            offsets = {tp: r.next_offset for tp, r in self._readers.items()}
        self._store.commit({TopicPartition(*tp): o for tp, o in offsets.items()}, self.member)

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        if self._store is None:
            raise InvalidConfigError("committed offsets belong to a group: make the consumer with a group_id")
        return {TopicPartition(*tp): self._store.committed(TopicPartition(*tp)) for tp in partitions}

    def watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        plog = self._log.partition(TopicPartition(*tp))
        return plog.start_offset(), plog.end_offset()

    def close(self) -> None:
        self._drop(list(self._readers))
        self._waiting.clear()
        if self.member is not None:
            self.member.leave()
            self.member = None
