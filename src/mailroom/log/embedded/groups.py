"""Consumer groups of the embedded log: committed offsets and membership, across processes.

A group lives in ``groups/<group>/``:

- ``offsets.log``: appended commit records (length, CRC, msgpack of {topic: {partition: offset}});
  the last value per partition wins. Rewritten whole (atomic rename) when it grows large.
- ``members/<id>``: one file per live member, holding its subscription, ``flock``-ed by its
  owner for as long as it lives. A member whose lock can be taken is dead (its process ended).
- ``state.json``: the generation and the member list, changed under ``.lock`` whenever a member
  joins, leaves or is found dead.
- ``held/<id>``: the partitions a live member is consuming now (rewritten atomically).

Every member computes the same assignment from the state (Kafka's range assignment over the
sorted members subscribed to each topic), so no leader is needed. Offset commits are fenced:
a member may commit only partitions it owns in the current generation, so a member that has not
yet noticed a rebalance cannot overwrite its successor's offsets.

Partitions move cooperatively: a member assigned a partition that another live member still
holds waits until that member has let it go (it commits its progress in its revoke callback
first, which it may: nobody else consumes the partition yet), or until HANDOFF_TIMEOUT. So a
partition changes hands at its last committed offset, and an at-least-once application does not
process again what the previous owner had done (as with Kafka's rebalance protocol).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path

import crc32c
import msgpack
import orjson

from ...errors import CommitFailedError
from ..base import TopicPartition

_REC = struct.Struct("<II")  # length, crc
_COMPACT_AT = 1 << 20
LIVENESS_INTERVAL = 0.5
#: how long a member waits for a live previous owner to let a partition go before taking it anyway
HANDOFF_TIMEOUT = 30.0


def assign_partitions(
    members: list[str], subscriptions: Mapping[str, list[str]], partition_counts: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """The group's assignment, as Kafka's range assignor makes it.

    Each topic's partitions are cut into contiguous ranges over its sorted subscribers, so
    topics with the same partition count are co-partitioned: partition i of each goes to the
    same member (the engine's joins and repartitioned aggregations rely on that).
    """
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    for topic in sorted({t for m in members for t in subscriptions.get(m, [])}):
        eligible = [m for m in sorted(members) if topic in subscriptions.get(m, [])]
        count = partition_counts.get(topic, 0)
        per, extra = divmod(count, len(eligible))
        p = 0
        for i, m in enumerate(eligible):
            n = per + (1 if i < extra else 0)
            out[m].extend(TopicPartition(topic, q) for q in range(p, p + n))
            p += n
    return out


class GroupStore:
    """Committed offsets and membership of one group, shared by all processes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "members").mkdir(parents=True, exist_ok=True)
        (folder / "held").mkdir(exist_ok=True)
        self._lock_fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._tlock = threading.RLock()
        self._offsets: dict[TopicPartition, int] = {}
        self._offsets_pos = 0
        self._offsets_ino = -1

    @contextmanager
    def locked(self):
        with self._tlock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- offsets ----------------------------------------------------------------------------
    @property
    def _offsets_path(self) -> Path:
        return self.folder / "offsets.log"

    def _refresh_offsets(self) -> None:
        try:
            fd = os.open(self._offsets_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            st = os.fstat(fd)
            if st.st_ino != self._offsets_ino:  # rewritten: read from the start
                self._offsets, self._offsets_pos, self._offsets_ino = {}, 0, st.st_ino
            if st.st_size <= self._offsets_pos:
                return
            data = os.pread(fd, st.st_size - self._offsets_pos, self._offsets_pos)
        finally:
            os.close(fd)
        p = 0
        while p + _REC.size <= len(data):
            length, crc = _REC.unpack_from(data, p)
            body = data[p + _REC.size : p + _REC.size + length]
            if len(body) < length or crc32c.crc32c(body) != crc:
                break  # a commit cut short by a crash: never acknowledged
            for topic, parts in msgpack.unpackb(body, strict_map_key=False).items():
                for part, off in parts.items():
                    self._offsets[TopicPartition(topic, int(part))] = off
            p += _REC.size + length
        self._offsets_pos += p

    def committed(self, tp: TopicPartition) -> int | None:
        """The committed offset of ``tp`` (None if none)."""
        with self._tlock:
            self._refresh_offsets()
            return self._offsets.get(tp)

    def commit(self, offsets: Mapping[TopicPartition, int], member: Member | None = None, *, only_forward: bool = False) -> None:
        """Commit offsets atomically (one record). ``member`` is checked to own the partitions."""
        if not offsets:
            return
        with self.locked():
            if member is not None:
                foreign = member.not_owned(offsets)
                if foreign:
                    raise CommitFailedError(
                        f"cannot commit {foreign[:3]} for group '{self.folder.name}': this consumer no longer "
                        "owns them (the group rebalanced); poll again to get the new assignment"
                    )
            self._refresh_offsets()
            if only_forward:
                offsets = {tp: o for tp, o in offsets.items() if o > self._offsets.get(tp, -1)}
                if not offsets:
                    return
            self._repair_tail()
            nested: dict[str, dict[int, int]] = {}
            for tp, off in offsets.items():
                nested.setdefault(tp.topic, {})[tp.partition] = int(off)
            body = msgpack.packb(nested)
            fd = os.open(self._offsets_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, _REC.pack(len(body), crc32c.crc32c(body)) + body)
            finally:
                os.close(fd)
            self._refresh_offsets()
            if self._offsets_pos > _COMPACT_AT:
                self._rewrite_offsets()

    def _repair_tail(self) -> None:
        """Cut a commit record torn by a crash (under the lock)."""
        self._refresh_offsets()
        try:
            size = os.stat(self._offsets_path).st_size
        except FileNotFoundError:
            return
        if size > self._offsets_pos:
            os.truncate(self._offsets_path, self._offsets_pos)

    def _rewrite_offsets(self) -> None:
        nested: dict[str, dict[int, int]] = {}
        for tp, off in self._offsets.items():
            nested.setdefault(tp.topic, {})[tp.partition] = off
        body = msgpack.packb(nested)
        tmp = self._offsets_path.with_suffix(".tmp")
        tmp.write_bytes(_REC.pack(len(body), crc32c.crc32c(body)) + body)
        os.replace(tmp, self._offsets_path)
        self._refresh_offsets()

    def forget_topic(self, topic: str) -> None:
        """Drop the committed offsets of a deleted topic."""
        with self.locked():
            self._refresh_offsets()
            if any(tp.topic == topic for tp in self._offsets):
                for tp in [tp for tp in self._offsets if tp.topic == topic]:
                    del self._offsets[tp]
                self._rewrite_offsets()

    # -- membership -----------------------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.folder / "state.json"

    def read_state(self) -> dict:
        try:
            return orjson.loads(self._state_path.read_bytes())
        except FileNotFoundError:
            return {"generation": 0, "members": []}

    def _write_state(self, state: dict) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(state))
        os.replace(tmp, self._state_path)

    def _live_members(self) -> list[str]:
        """Members whose owner still holds their lock (dead ones are removed). Under the lock."""
        live = []
        for name in os.listdir(self.folder / "members"):
            path = self.folder / "members" / name
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                live.append(name)
            else:
                path.unlink(missing_ok=True)  # its owner is gone
                (self.folder / "held" / name).unlink(missing_ok=True)
            finally:
                os.close(fd)
        return sorted(live)

    def reconcile(self) -> None:
        """Bring state.json in line with the live members (bumping the generation on change)."""
        with self.locked():
            state = self.read_state()
            live = self._live_members()
            if live != state["members"]:
                self._write_state({"generation": state["generation"] + 1, "members": live})

    def holders(self, exclude: str | None = None) -> dict[TopicPartition, str]:
        """Which live member (other than ``exclude``) holds each partition it is consuming."""
        out: dict[TopicPartition, str] = {}
        for m in self.read_state()["members"]:
            if m == exclude:
                continue
            try:
                held = orjson.loads((self.folder / "held" / m).read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            for t, p in held:
                out[TopicPartition(t, p)] = m
        return out

    def subscriptions(self, members: list[str]) -> dict[str, list[str]]:
        subs = {}
        for m in members:
            try:
                subs[m] = orjson.loads((self.folder / "members" / m).read_bytes())["topics"]
            except (FileNotFoundError, ValueError):
                subs[m] = []
        return subs

    def join(self, topics: list[str], partition_counts: Callable[[list[str]], dict[str, int]]) -> Member:
        """Add a member subscribed to ``topics``; it lives until :meth:`Member.leave` or its process ends."""
        member_id = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        path = self.folder / "members" / member_id
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, orjson.dumps({"topics": list(topics), "pid": os.getpid()}))
        member = Member(self, member_id, fd, partition_counts)
        self.reconcile()
        return member


class Member:
    """One live member of a group."""

    def __init__(self, store: GroupStore, member_id: str, fd: int, partition_counts: Callable[[list[str]], dict[str, int]]) -> None:
        self.store = store
        self.member_id = member_id
        self._fd = fd
        self._partition_counts = partition_counts
        self._state_key: tuple = ()
        self._last_liveness = 0.0
        self.generation = -1
        self.assignment: list[TopicPartition] = []
        #: the partitions this member consumes now (published in held/<id>)
        self.held: set[TopicPartition] = set()

    def hold(self, tps: list[TopicPartition]) -> None:
        """Note (and publish) that this member now consumes ``tps``."""
        self.held.update(tps)
        self._publish()

    def release(self, tps: list[TopicPartition]) -> None:
        """Note (and publish) that this member no longer consumes ``tps``."""
        self.held.difference_update(tps)
        self._publish()

    def _publish(self) -> None:
        path = self.store.folder / "held" / self.member_id
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(sorted([tp.topic, tp.partition] for tp in self.held)))
        os.replace(tmp, path)

    def not_owned(self, tps) -> list[TopicPartition]:
        """Of ``tps``, those this member may not commit: neither assigned to it now, nor still
        held by it with no other live member holding them (the revoke callback's commit)."""
        owned = set(self.current_assignment())
        lost = [tp for tp in tps if tp not in owned]
        if lost and any(tp in self.held for tp in lost):
            others = self.store.holders(exclude=self.member_id)
            lost = [tp for tp in lost if tp not in self.held or tp in others]
        return lost

    def current_assignment(self) -> list[TopicPartition]:
        """What this member owns in the group's current state (reads the state afresh)."""
        state = self.store.read_state()
        if self.member_id not in state["members"]:
            return []
        subs = self.store.subscriptions(state["members"])
        topics = sorted({t for ts in subs.values() for t in ts})
        return assign_partitions(state["members"], subs, self._partition_counts(topics))[self.member_id]

    def heartbeat(self) -> tuple[list[TopicPartition], list[TopicPartition]] | None:
        """Check the group; returns (added, removed) partitions if the assignment changed."""
        now = time.monotonic()
        if now - self._last_liveness >= LIVENESS_INTERVAL:
            self._last_liveness = now
            self.store.reconcile()
        try:
            st = os.stat(self.store.folder / "state.json")
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = ()
        if key == self._state_key:
            return None
        self._state_key = key
        state = self.store.read_state()
        if self.member_id not in state["members"]:
            # removed (e.g. thought dead while paused): join again under the same id
            self.store.reconcile()
            state = self.store.read_state()
        self.generation = state["generation"]
        new = self.current_assignment()
        old = self.assignment
        self.assignment = new
        added = [tp for tp in new if tp not in old]
        removed = [tp for tp in old if tp not in new]
        return (added, removed) if added or removed else None

    def leave(self) -> None:
        """Leave the group (the others take over its partitions)."""
        if self._fd < 0:
            return
        (self.store.folder / "members" / self.member_id).unlink(missing_ok=True)
        (self.store.folder / "held" / self.member_id).unlink(missing_ok=True)
        self.held.clear()
        os.close(self._fd)
        self._fd = -1
        self.store.reconcile()
