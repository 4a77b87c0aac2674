"""The embedded log: topics in a local folder, shared by every process that opens it.

Layout of the data folder::

    topics/<topic>/topic.json         partitions and config (the topic exists iff this exists)
    topics/<topic>/<partition>/       segments, indexes, .lock (see partition.py)
    groups/<group>/                   committed offsets and members (see groups.py)
    transactions/<transactional id>/  journal, epoch (see transactions.py)
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ...errors import InvalidConfigError, TopicExistsError, UnknownTopicError
from ..base import Consumer, Log, Producer, TopicPartition, TopicSpec
from .groups import GroupStore
from .partition import PartitionLog, TopicSettings

_LEGAL = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
KNOWN_CONFIG = {
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "index.interval.bytes",
    "min.cleanable.dirty.ratio",
    "min.insync.replicas",
    "message.timestamp.type",
    "compression.type",
}


class _Topic:
    """What a process knows of one topic: its spec and its open partitions."""

    def __init__(self, spec: TopicSpec, folder: Path, ino: int) -> None:
        self.spec = spec
        self.folder = folder
        self.ino = ino
        self.settings = TopicSettings(dict(spec.config))
        self.partitions = [PartitionLog(folder / str(p), spec.name, p, self.settings) for p in range(spec.partitions)]

    def close(self) -> None:
        for p in self.partitions:
            p.close()


class EmbeddedLog(Log):
    """A durable log in the folder ``path`` (created if missing).

    Safe to open from several processes at once: a CLI producer can write while a server
    consumes. ``fsync=True`` also syncs each append to disk (survives power loss, not only a
    killed process; much slower).
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False, **_ignored: Any) -> None:
        self.root = Path(path)
        (self.root / "topics").mkdir(parents=True, exist_ok=True)
        (self.root / "groups").mkdir(exist_ok=True)
        (self.root / "transactions").mkdir(exist_ok=True)
        self.fsync = fsync
        self._lock_fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._tlock = threading.RLock()
        self._topics: dict[str, _Topic] = {}
        self._topic_meta: dict[str, str] = {}
        self._groups: dict[str, GroupStore] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"EmbeddedLog({str(self.root)!r})"

    @contextmanager
    def _locked(self):
        with self._tlock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _topic_folder(self, name: str) -> Path:
        return self.root / "topics" / name

    # -- topics ---------------------------------------------------------------------------
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        replication_factor: int | None = None,
        exist_ok: bool = False,
    ) -> TopicSpec:
        if not _LEGAL.match(name) or name in (".", ".."):
            raise InvalidConfigError(
                f"illegal topic name '{name}': use up to 249 of the characters a-z, A-Z, 0-9, '.', '_' and '-'"
            )
        if partitions < 1:
            raise InvalidConfigError(f"topic '{name}': partitions must be at least 1, not {partitions}")
        config = {k: str(v) for k, v in (config or {}).items()}
        unknown = set(config) - KNOWN_CONFIG
        if unknown:
            raise InvalidConfigError(f"topic '{name}': unknown config {sorted(unknown)}; known: {sorted(KNOWN_CONFIG)}")
        try:
            TopicSettings(config)
        except ValueError as e:
            raise InvalidConfigError(f"topic '{name}': bad config value: {e}") from None
        folder = self._topic_folder(name)
        with self._locked():
            if (folder / "topic.json").exists():
                if exist_ok:
                    return self.describe_topic(name)
                raise TopicExistsError(name)
            if folder.exists():  # left half-made by a crash during create
                shutil.rmtree(folder)
            folder.mkdir()
            for p in range(partitions):
                (folder / str(p)).mkdir()
            tmp = folder / "topic.json.tmp"
            tmp.write_bytes(orjson.dumps({"name": name, "partitions": partitions, "config": config}))
            os.replace(tmp, folder / "topic.json")
        return TopicSpec(name, partitions, config, 1)

    def delete_topic(self, name: str) -> None:
        folder = self._topic_folder(name)
        with self._locked():
            if not (folder / "topic.json").exists():
                raise UnknownTopicError(name)
            grave = self.root / "topics" / f".deleted-{name}-{uuid.uuid4().hex[:8]}"
            os.rename(folder, grave)
            shutil.rmtree(grave, ignore_errors=True)
            t = self._topics.pop(name, None)
            if t:
                t.close()
        for g in self.list_groups():
            self.group(g).forget_topic(name)

    def describe_topic(self, name: str) -> TopicSpec:
        return self.topic(name).spec

    def list_topics(self) -> list[str]:
        base = self.root / "topics"
        return sorted(n for n in os.listdir(base) if not n.startswith((".", "__")) and (base / n / "topic.json").exists())

    def list_groups(self) -> list[str]:
        return sorted(os.listdir(self.root / "groups"))

    def topic(self, name: str) -> _Topic:
        """The topic ``name`` (its folder checked afresh, so a deleted topic is noticed)."""
        path = self._topic_meta.get(name)
        if path is None:  # (the path as a string, once: building it costs more than the stat)
            path = self._topic_meta[name] = str(self._topic_folder(name) / "topic.json")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            with self._tlock:
                t = self._topics.pop(name, None)
                if t:
                    t.close()
            raise UnknownTopicError(name) from None
        with self._tlock:
            t = self._topics.get(name)
            if t is None or t.ino != st.st_ino:
                meta = orjson.loads(Path(path).read_bytes())
                spec = TopicSpec(meta["name"], meta["partitions"], meta["config"], 1)
                if t:
                    t.close()
                t = self._topics[name] = _Topic(spec, Path(path).parent, st.st_ino)
            return t

    def partition(self, tp: TopicPartition) -> PartitionLog:
        """The partition ``tp`` (UnknownTopicError if the topic or partition does not exist)."""
        t = self.topic(tp.topic)
        if not 0 <= tp.partition < len(t.partitions):
            raise UnknownTopicError(tp.topic, f"partition {tp.partition} does not exist (it has {len(t.partitions)})")
        return t.partitions[tp.partition]

    def group(self, group_id: str) -> GroupStore:
        with self._tlock:
            g = self._groups.get(group_id)
            if g is None:
                if not _LEGAL.match(group_id):
                    raise InvalidConfigError(f"illegal group id '{group_id}': use a-z, A-Z, 0-9, '.', '_' and '-'")
                g = self._groups[group_id] = GroupStore(self.root / "groups" / group_id)
            return g

    # -- clients ----------------------------------------------------------------------------
    def producer(self, *, transactional_id: str | None = None, **config: Any) -> Producer:
        from .producer import EmbeddedProducer

        return EmbeddedProducer(self, transactional_id=transactional_id)

    def consumer(self, group_id: str | None = None, *, auto_offset_reset: str = "earliest", **config: Any) -> Consumer:
        from .consumer import EmbeddedConsumer

        if auto_offset_reset not in ("earliest", "latest", "error"):
            raise InvalidConfigError(f"auto_offset_reset must be 'earliest', 'latest' or 'error', not '{auto_offset_reset}'")
        check = config.get("check_crcs", config.get("check.crcs", True))
        return EmbeddedConsumer(self, group_id, auto_offset_reset, check_crcs=str(check).lower() not in ("false", "0"))

    def maintain(self) -> None:
        """Apply retention and compaction to every topic now."""
        for name in self.list_topics():
            for p in self.topic(name).partitions:
                p.maintain()

    def roll(self, topic: str) -> None:
        """Start new segments in every partition of ``topic`` (older ones become compactable)."""
        for p in self.topic(topic).partitions:
            p.roll()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._topics.values():
            t.close()
        self._topics.clear()
        os.close(self._lock_fd)
