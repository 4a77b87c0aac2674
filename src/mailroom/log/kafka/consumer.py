"""The Kafka consumer: read_committed, manual commits, cooperative rebalancing, batch polls."""

from __future__ import annotations

import uuid
from operator import itemgetter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import Message
from confluent_kafka import TopicPartition as RdTopicPartition

from ...errors import CommitFailedError, InvalidConfigError, LogError
from ..base import OFFSET_BEGINNING, OFFSET_END, AssignCallback, Consumer, RecordBatch, TopicPartition
from .errors import kafka_error, translate

if TYPE_CHECKING:
    from .log import KafkaLog

_error, _topic, _partition, _offset = Message.error, Message.topic, Message.partition, Message.offset
_timestamp, _key, _value, _headers = Message.timestamp, Message.key, Message.value, Message.headers
_ts = itemgetter(1)  # (timestamp type, ms)

DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,  # offsets are committed by the caller (or in a transaction)
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
    "fetch.wait.max.ms": 100,
    "queued.min.messages": 200_000,
    # once a partition's prefetch queue is full librdkafka waits this long before fetching it
    # again (default 1 s): a consumer that drains its queue quickly then sits idle. 10 ms: 2.5x
    # the read rate on a local broker (bench/log_bench.py), with the same queue bounds (memory)
    "fetch.queue.backoff.ms": 10,
}

# errors in the message stream that the caller must hear of; the others are transient
_RAISE = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
          KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}

_STRATEGIES = {"range": "range", "roundrobin": "roundrobin", "cooperative-sticky": "cooperative-sticky"}


class KafkaConsumer(Consumer):
    """Reads Kafka; see :class:`mailroom.log.Consumer` for the contract."""

    def __init__(self, log: KafkaLog, group_id: str | None, auto_offset_reset: str, config: dict[str, Any],
                 assignment_strategy: str | None = None) -> None:
        self._log = log
        self.group_id = group_id
        cfg = {**DEFAULTS, **config, "auto.offset.reset": auto_offset_reset}
        if assignment_strategy:
            if assignment_strategy not in _STRATEGIES:
                raise InvalidConfigError(f"unknown assignment strategy '{assignment_strategy}': use one of {sorted(_STRATEGIES)}")
            cfg["partition.assignment.strategy"] = _STRATEGIES[assignment_strategy]
        self._cooperative = cfg["partition.assignment.strategy"] == "cooperative-sticky"
        # librdkafka wants a group id even for assign(); a private one commits nothing anywhere
        cfg["group.id"] = group_id or f"mailroom-nogroup-{uuid.uuid4().hex}"
        self._c = RdConsumer(cfg)
        self._pos: dict[TopicPartition, int] = {}
        self._seeked: set[TopicPartition] = set()
        self._manual: list[TopicPartition] | None = None
        self._reset = auto_offset_reset
        self.last_error: KafkaError | None = None

    def group_metadata(self):
        """The group's metadata, for a transactional producer's offset commit."""
        return self._c.consumer_group_metadata()

    # -- assignment ---------------------------------------------------------------------------
    def subscribe(self, topics: Sequence[str], on_assign: AssignCallback | None = None,
                  on_revoke: AssignCallback | None = None) -> None:
        if self.group_id is None:
            raise InvalidConfigError("subscribe needs a consumer with a group_id (or use assign)")
        for t in topics:
            self._log.partitions(t)  # an unknown topic is an error here, not a silent empty read

        def assigned(_c, parts):
            tps = [TopicPartition(p.topic, p.partition) for p in parts]
            if on_assign is not None and tps:
                on_assign(tps)

        def revoked(_c, parts):
            tps = [TopicPartition(p.topic, p.partition) for p in parts]
            for tp in tps:
                self._pos.pop(tp, None)
            if on_revoke is not None and tps:
                on_revoke(tps)

        self._manual = None
        # the client performs the (incremental) assign itself after the callbacks return
        self._c.subscribe(list(topics), on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._manual = [TopicPartition(*tp) for tp in partitions]
        self._pos = {tp: p for tp, p in self._pos.items() if tp in self._manual}
        self._reassign()

    def _reassign(self, seek: Mapping[TopicPartition, int] | None = None) -> None:
        seek = seek or {}
        rd = []
        for tp in self._manual:
            off = seek.get(tp, self._pos.get(tp))
            if off is None and self.group_id is None:  # no group: nothing committed to look up
                off = OFFSET_END if self._reset == "latest" else OFFSET_BEGINNING
            rd.append(RdTopicPartition(tp.topic, tp.partition, off) if off is not None else RdTopicPartition(tp.topic, tp.partition))
        self._c.assign(rd)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition) for p in self._c.assignment()]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        tp = TopicPartition(*tp)
        if offset >= 0:
            self._pos[tp] = offset
            self._seeked.add(tp)  # our position rules until records of tp come back
        else:
            self._pos.pop(tp, None)
            self._seeked.discard(tp)
        if self._manual is not None:
            # re-assigning with the offset works even before the first fetch (seek() may not)
            self._reassign({tp: offset})
            return
        try:
            self._c.seek(RdTopicPartition(tp.topic, tp.partition, offset))
        except KafkaException as exc:
            raise translate(exc, topic=tp.topic) from None

    def position(self, tp: TopicPartition) -> int:
        tp = TopicPartition(*tp)
        own = self._pos.get(tp)
        if tp in self._seeked:
            return own
        # librdkafka's own position also moves past transaction markers (which are never
        # returned as records), so the end of a transactional partition is reachable
        pos = self._c.position([RdTopicPartition(tp.topic, tp.partition)])[0].offset
        if pos >= 0:
            return max(pos, own or 0)
        if own is not None:
            return own
        committed = self.committed([tp])[tp] if self.group_id else None
        if committed is not None:
            return committed
        low, high = self.watermarks(tp)
        return high if self._reset == "latest" else low

    # -- reading ------------------------------------------------------------------------------
    def poll(self, max_records: int = 10_000, timeout: float = 1.0) -> list[RecordBatch]:
        # consume(n, t) waits the whole timeout unless n records come: take what is queued,
        # and block (up to timeout) only for the first record
        msgs = self._c.consume(max_records, 0)
        if not msgs:
            first = self._c.poll(timeout)
            if first is None:
                return []
            msgs = [first]
            if max_records > 1:
                msgs += self._c.consume(max_records - 1, 0)
        # (per message only C calls through the Message type's own methods: no Python frame each)
        errs = list(map(_error, msgs))
        if errs.count(None) != len(errs):
            keep = []
            for m, err in zip(msgs, errs):
                if err is None:
                    keep.append(m)
                elif err.fatal() or err.code() in _RAISE:
                    raise translate(err, topic=m.topic())
                else:
                    self.last_error = err  # transient (coordinator loading, ...): librdkafka retries
            msgs = keep
            if not msgs:
                return []
        topics, parts = list(map(_topic, msgs)), list(map(_partition, msgs))
        groups: dict[tuple[str, int], list] = {}
        if topics.count(topics[0]) == len(topics) and parts.count(parts[0]) == len(parts):
            groups[(topics[0], parts[0])] = msgs
        elif topics.count(topics[0]) == len(topics):
            # one topic: a partition's messages come in runs (a fetch response each), cut by slicing
            pa = np.asarray(parts)
            cuts = (np.flatnonzero(pa[1:] != pa[:-1]) + 1).tolist()
            for lo, hi in zip([0, *cuts], [*cuts, len(msgs)]):
                g = groups.get((topics[0], parts[lo]))
                if g is None:
                    groups[(topics[0], parts[lo])] = msgs[lo:hi]
                else:
                    g += msgs[lo:hi]
        else:
            for key, m in zip(zip(topics, parts), msgs):
                g = groups.get(key)
                if g is None:
                    groups[key] = g = []
                g.append(m)
        out = []
        for (topic, part), ms in groups.items():
            n = len(ms)
            offsets = np.fromiter(map(_offset, ms), dtype=np.int64, count=n)
            stamps = np.fromiter(map(_ts, map(_timestamp, ms)), dtype=np.int64, count=n)
            hdrs = list(map(_headers, ms))
            batch = RecordBatch(
                topic, part, offsets, stamps, list(map(_key, ms)), list(map(_value, ms)),
                None if hdrs.count(None) == n else hdrs,
            )
            tp = TopicPartition(topic, part)
            self._pos[tp] = int(offsets[-1]) + 1
            self._seeked.discard(tp)
            out.append(batch)
        return out

    # -- offsets ------------------------------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self.group_id is None:
            raise InvalidConfigError("commit needs a consumer with a group_id")
        if offsets is None:
            offsets = {tp: self._pos[tp] for tp in self.assignment() if tp in self._pos}
        if not offsets:
            return
        tps = [RdTopicPartition(tp.topic, tp.partition, int(o)) for tp, o in offsets.items()]
        try:
            result = self._c.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            err = translate(exc)
            raise (err if isinstance(err, CommitFailedError) else CommitFailedError(str(err))) from None
        for r in result or []:
            if r.error is not None:
                raise CommitFailedError(f"commit of {r.topic}[{r.partition}] failed: {r.error.str()}")

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        tps = [RdTopicPartition(tp[0], tp[1]) for tp in partitions]
        try:
            got = self._c.committed(tps, timeout=self._log.timeout)
        except KafkaException as exc:
            raise translate(exc) from None
        return {TopicPartition(r.topic, r.partition): (None if r.offset in (OFFSET_INVALID,) or r.offset < 0 else r.offset)
                for r in got}

    def watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        # read_committed: the high end is the last stable offset (no open transaction's records)
        try:
            return self._c.get_watermark_offsets(RdTopicPartition(tp[0], tp[1]), timeout=self._log.timeout, cached=False)
        except KafkaException as exc:
            raise translate(exc, topic=tp[0]) from None

    def close(self) -> None:
        if self._c is not None:
            try:
                self._c.close()
            except (KafkaException, RuntimeError):
                pass
            self._c = None
