"""Atomic "outputs + input offsets" commits for the embedded log.

A transactional producer buffers its records in memory until commit, so an aborted (or
crashed) transaction never reaches a partition. Commit then:

1. under the group's lock, checks that the consumer still owns the partitions whose offsets it
   commits (a member that missed a rebalance is refused: CommitFailedError, nothing written);
2. appends the whole transaction (every partition's frame, and the offsets) to the journal
   ``transactions/<id>/journal`` as one CRC-checked record: this is the commit point;
3. appends each frame to its partition, first noting in the journal where it will land;
4. commits the offsets, then empties the journal.

A process killed after step 2 leaves the journal behind; the next producer with the same
transactional id replays it on start, skipping the frames whose noted position already holds
them, so the transaction ends fully applied exactly once. Starting that producer also bumps the
id's epoch, which fences the old instance (its next commit raises ProducerFencedError).
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import struct
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

import crc32c
import msgpack

from ...errors import CommitFailedError, InvalidConfigError, ProducerFencedError
from ..base import TopicPartition
from . import frame as fr

if TYPE_CHECKING:
    from .groups import Member
    from .log import EmbeddedLog

_REC = struct.Struct("<II")
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class TransactionCoordinator:
    """The journal and epoch of one transactional id."""

    def __init__(self, log: EmbeddedLog, transactional_id: str) -> None:
        if not _LEGAL.match(transactional_id):
            raise InvalidConfigError(f"illegal transactional id '{transactional_id}': use a-z, A-Z, 0-9, '.', '_' and '-'")
        self.log = log
        self.folder = log.root / "transactions" / transactional_id
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._tlock = threading.Lock()
        with self._locked():
            self.epoch = self._read_epoch() + 1
            (self.folder / "epoch").write_text(str(self.epoch))
            self._recover()

    @contextmanager
    def _locked(self):
        with self._tlock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _read_epoch(self) -> int:
        try:
            return int((self.folder / "epoch").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def check_epoch(self) -> None:
        if self._read_epoch() != self.epoch:
            raise ProducerFencedError(
                f"producer with transactional id '{self.folder.name}' was fenced: a newer instance started"
            )

    @property
    def _journal(self):
        return self.folder / "journal"

    def _append(self, fd: int, obj: dict) -> None:
        body = msgpack.packb(obj, use_bin_type=True)
        os.write(fd, _REC.pack(len(body), crc32c.crc32c(body)) + body)

    def _read_journal(self) -> list[dict]:
        try:
            data = self._journal.read_bytes()
        except FileNotFoundError:
            return []
        out, p = [], 0
        while p + _REC.size <= len(data):
            length, crc = _REC.unpack_from(data, p)
            body = data[p + _REC.size : p + _REC.size + length]
            if len(body) < length or crc32c.crc32c(body) != crc:
                break
            out.append(msgpack.unpackb(body, raw=False))
            p += _REC.size + length
        return out

    def commit(
        self,
        pending: dict[TopicPartition, list[tuple]],
        offsets: dict[TopicPartition, int],
        group: str | None,
        member: Member | None,
    ) -> None:
        """Apply a transaction atomically (see the module docstring)."""
        store = self.log.group(group) if group else None
        with self._locked():
            self.check_epoch()
            lock = store.locked() if store else _null()
            with lock:
                if member is not None and offsets:
                    lost = member.not_owned(offsets)
                    if lost:
                        raise CommitFailedError(
                            f"transaction aborted: the consumer no longer owns {lost[:3]} (the group rebalanced)"
                        )
                parts = []
                for tp, chunks in pending.items():
                    for ts, values, keys, headers in chunks:
                        frame = fr.encode(0, ts, values, keys, headers, transactional=True)
                        parts.append([tp.topic, tp.partition, b"".join(frame)])
                entry = {
                    "txn": random.getrandbits(62) + 1,
                    "parts": parts,
                    "group": group,
                    "offsets": [[tp.topic, tp.partition, int(o)] for tp, o in offsets.items()],
                }
                fd = os.open(self._journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    self._append(fd, entry)  # the commit point
                    self._apply(fd, entry, {})
                    os.ftruncate(fd, 0)
                finally:
                    os.close(fd)

    def _apply(self, fd: int, entry: dict, landed: dict[int, tuple[int, int]]) -> None:
        txn = entry["txn"]
        for i, (topic, partition, blob) in enumerate(entry["parts"]):
            plog = self.log.partition(TopicPartition(topic, partition))
            if i in landed and _frame_at(plog, *landed[i], txn):
                continue
            frame = _with_txn(blob, txn)
            with plog.locked():
                plog.append_frame(frame, lambda seg, pos, i=i: self._append(fd, {"part": i, "seg": seg, "pos": pos}))
        if entry["offsets"] and entry["group"]:
            offs = {TopicPartition(t, p): o for t, p, o in entry["offsets"]}
            self.log.group(entry["group"]).commit(offs, only_forward=True)

    def _recover(self) -> None:
        records = self._read_journal()
        entry, landed = None, {}
        for r in records:
            if "txn" in r:
                entry, landed = r, {}
            elif "part" in r:
                landed[r["part"]] = (r["seg"], r["pos"])
        if entry is not None:
            fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND, 0o644)
            try:
                self._apply(fd, entry, landed)
            finally:
                os.close(fd)
        if self._journal.exists():
            os.truncate(self._journal, 0)

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


@contextmanager
def _null():
    yield


def _with_txn(blob: bytes, txn: int) -> list[bytes]:
    """The journal's frame bytes, tagged with the transaction id."""
    head = bytearray(blob[: fr.HEADER_SIZE])
    struct.pack_into("<q", head, 40, txn)
    return fr.reseal([bytes(head), blob[fr.HEADER_SIZE :]])


def _frame_at(plog, seg: int, pos: int, txn: int) -> bool:
    """Whether the frame of transaction ``txn`` already sits at (segment, position)."""
    try:
        fd = os.open(plog.segment_path(seg), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        head = fr.parse_header(os.pread(fd, fr.HEADER_SIZE, pos))
        fr.verify(os.pread(fd, head.length, pos), 0, head)
        return head.txn_id == txn
    except fr.FrameError:
        return False
    finally:
        os.close(fd)
