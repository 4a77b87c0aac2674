"""One partition of the embedded log: appending, tail recovery, retention and compaction.

Every process that opens the log shares the partition through its folder. Writers append under
an exclusive ``flock`` on the folder's ``.lock`` file, so offsets stay dense and ordered however
many processes produce. Before each append a writer checks whether the active segment grew or
rolled under another process and catches up by reading the new frame headers, verifying them.

Crash safety: a frame is written with one ``writev`` call and is acknowledged only after it
returns; once it has, the bytes are in the OS page cache and survive the process being killed.
A writer killed in the middle of ``writev`` leaves a frame cut short at the tail. The next
writer (under the lock) finds it, moves those bytes aside into ``<segment>.torn`` (nothing is
thrown away) and truncates the segment to its last whole frame. Readers never serve a frame
that is not whole and CRC-valid.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

from ...errors import CorruptLogError
from . import frame as fr
from .segment import (
    INDEX_DTYPE,
    TORN_SUFFIX,
    index_floor,
    index_path,
    iter_headers,
    list_segments,
    read_index,
    segment_name,
)

log = logging.getLogger("mailroom.log.embedded")

_INDEX_ENTRY = struct.Struct("<qq")  # one INDEX_DTYPE entry: (offset, position)
_BASE = struct.Struct("<q")  # a frame header's base offset (at byte 16)
_LENGTH = struct.Struct("<I")  # a frame header's length (at byte 4) and last offset delta (at byte 28)
DEFAULT_SEGMENT_BYTES = 256 * 1024 * 1024
DEFAULT_INDEX_INTERVAL = 64 * 1024
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
DEFAULT_DELETE_RETENTION_MS = 24 * 3600 * 1000


class TopicSettings:
    """A topic's config parsed once, with Kafka's defaults."""

    def __init__(self, config: dict[str, str]) -> None:
        policy = config.get("cleanup.policy", "delete")
        self.compact = "compact" in policy
        self.delete = "delete" in policy
        self.retention_ms = int(config.get("retention.ms", DEFAULT_RETENTION_MS))
        self.retention_bytes = int(config.get("retention.bytes", -1))
        self.segment_bytes = int(config.get("segment.bytes", DEFAULT_SEGMENT_BYTES))
        self.segment_ms = int(config.get("segment.ms", 7 * 24 * 3600 * 1000))
        self.max_message_bytes = int(config.get("max.message.bytes", 1048588))
        self.delete_retention_ms = int(config.get("delete.retention.ms", DEFAULT_DELETE_RETENTION_MS))
        self.min_compaction_lag_ms = int(config.get("min.compaction.lag.ms", 0))
        self.index_interval = int(config.get("index.interval.bytes", DEFAULT_INDEX_INTERVAL))


class PartitionLog:
    """The segments of one partition, as seen by this process."""

    def __init__(self, folder: Path, topic: str, partition: int, settings: TopicSettings) -> None:
        self.folder = folder
        self._folder_str = str(folder)  # (os.stat of a str: no Path conversion every append)
        self.topic = topic
        self.partition = partition
        self.settings = settings
        self._lock_fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._thread_lock = threading.RLock()
        self._segments: list[int] = []
        self._dir_mtime = -1
        # writer state, valid only while holding the lock
        self._active_base = -1
        self._active_fd = -1
        self._index_fd = -1
        self._active_size = 0
        self._next_offset = 0
        self._last_index_pos = -1
        self._active_opened = 0.0
        self._max_ts_cache: dict[tuple[int, int, int], int] = {}
        self._rolled = False

    # -- segments ---------------------------------------------------------------------
    def segments(self) -> list[int]:
        """Base offsets of the segments, refreshed when the folder changed."""
        mtime = os.stat(self._folder_str).st_mtime_ns
        if mtime != self._dir_mtime:
            # list first, then publish the mtime: another thread that sees the new mtime must
            # also see the new list (the other order served it the stale, even empty, list: a
            # consumer then found its committed offset "out of range" and reset to the start)
            segs = list_segments(self.folder)
            self._segments = segs
            self._dir_mtime = mtime
            return segs
        return self._segments

    def segment_path(self, base: int) -> Path:
        return self.folder / segment_name(base)

    def start_offset(self) -> int:
        """The first offset still held (the log start offset)."""
        segs = self.segments()
        return segs[0] if segs else 0

    def end_offset(self) -> int:
        """The offset after the last whole record (the high watermark). Needs no lock."""
        segs = self.segments()
        if not segs:
            return 0
        path = self.segment_path(segs[-1])
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # rolled or deleted under us: look again
            self._dir_mtime = -1
            return self.end_offset()
        try:
            size = os.fstat(fd).st_size
            _, pos = index_floor(read_index(path), 1 << 62)
            end = segs[-1]
            for _p, head in iter_headers(fd, pos, size):
                if _p + head.length > size:
                    break
                end = head.last_offset + 1
            return end
        finally:
            os.close(fd)

    # -- locking ------------------------------------------------------------------------
    @contextmanager
    def locked(self):
        """Hold the partition's writer lock (across threads and processes)."""
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._sync()
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _sync(self) -> None:
        """Catch up with what other processes did since this one last held the lock."""
        segs = self.segments()
        if not segs:
            self._create_segment(0)
            return
        st = os.fstat(self._active_fd) if self._active_fd >= 0 else None
        # st_nlink == 0: our active segment was deleted or replaced (its path names another file)
        if segs[-1] != self._active_base or st is None or st.st_nlink == 0:
            self._open_active(segs[-1])
            return
        size = st.st_size
        if size != self._active_size:
            self._scan_tail(self._active_size, self._next_offset)

    def _active_path(self) -> Path:
        return self.segment_path(self._active_base)

    def _close_active(self) -> None:
        for fd in (self._active_fd, self._index_fd):
            if fd >= 0:
                os.close(fd)
        self._active_fd = self._index_fd = -1

    def _create_segment(self, base: int) -> None:
        self._close_active()
        self._active_base = base
        self._active_fd = os.open(self._active_path(), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._index_fd = os.open(index_path(self._active_path()), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._active_size = os.fstat(self._active_fd).st_size
        self._next_offset = base
        self._last_index_pos = -1
        self._active_opened = time.time()
        self._dir_mtime = -1
        if self._active_size:
            self._scan_tail(0, base)

    def _open_active(self, base: int) -> None:
        """Open the last segment and recover its tail, starting from its last index entry."""
        self._create_segment_fds(base)
        index = read_index(self._active_path())
        size = os.fstat(self._active_fd).st_size
        start_off, start_pos = base, 0
        if len(index):
            off, pos = int(index["offset"][-1]), int(index["pos"][-1])
            head = next(iter_headers(self._active_fd, pos, size), None)
            if head is not None and head[1].base_offset == off and pos < size:
                start_off, start_pos = off, pos
                self._last_index_pos = pos
            else:  # the index does not fit the segment: rebuild it while scanning
                log.warning("rebuilding index of %s", self._active_path())
                os.ftruncate(self._index_fd, 0)
        self._active_size = start_pos
        self._next_offset = start_off
        self._scan_tail(start_pos, start_off)

    def _create_segment_fds(self, base: int) -> None:
        self._close_active()
        self._active_base = base
        self._active_fd = os.open(self._active_path(), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._index_fd = os.open(index_path(self._active_path()), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._last_index_pos = -1
        self._active_opened = time.time()

    def _scan_tail(self, pos: int, next_offset: int) -> None:
        """Verify the frames from ``pos`` to the end of the active segment; set torn bytes aside."""
        fd = self._active_fd
        size = os.fstat(fd).st_size
        while pos < size:
            try:
                raw = os.pread(fd, fr.HEADER_SIZE, pos)
                head = fr.parse_header(raw)
                body = os.pread(fd, head.length, pos)
                fr.verify(body, 0, head)
            except fr.FrameError as e:
                self._set_aside(pos, size, str(e))
                break
            if head.count:
                next_offset = head.last_offset + 1
            self._maybe_index(head.base_offset, pos)
            pos += head.length
        self._active_size = pos
        self._next_offset = max(next_offset, self._active_base)

    def _set_aside(self, pos: int, size: int, reason: str) -> None:
        path = self._active_path()
        torn = path.with_suffix(path.suffix + TORN_SUFFIX)
        data = os.pread(self._active_fd, size - pos, pos)
        with open(torn, "ab") as f:
            f.write(data)
        os.ftruncate(self._active_fd, pos)
        index = read_index(path)
        keep = index[index["pos"] < pos]
        if len(keep) != len(index) or os.fstat(self._index_fd).st_size % INDEX_DTYPE.itemsize:
            os.ftruncate(self._index_fd, 0)
            os.write(self._index_fd, keep.tobytes())
            self._last_index_pos = int(keep["pos"][-1]) if len(keep) else -1
        log.warning(
            "%s: %d bytes at the tail (from byte %d: %s) were not a whole record batch, left by a "
            "writer that stopped mid-write; they were never acknowledged and are kept in %s",
            path, size - pos, pos, reason, torn,
        )

    def _maybe_index(self, offset: int, pos: int) -> None:
        if self._last_index_pos < 0 or pos - self._last_index_pos >= self.settings.index_interval:
            os.write(self._index_fd, _INDEX_ENTRY.pack(offset, pos))
            self._last_index_pos = pos

    # -- appending ------------------------------------------------------------------------
    def append_frame(self, frame: list[bytes], before_write: Callable[[int, int], None] | None = None) -> int:
        """Append an encoded frame (its base offset is fixed here); returns that base offset.

        Call while holding :meth:`locked`. ``before_write(segment_base, position)`` is called
        with where the frame will land, just before it is written (the transaction journal
        records it, so a replay after a crash can tell whether the frame made it).
        """
        self._maybe_roll()
        base = self._next_offset
        if before_write is not None:
            before_write(self._active_base, self._active_size)
        head = frame[0]
        if _BASE.unpack_from(head, 16)[0] != base:  # (the CRC does not cover the base offset)
            if type(head) is memoryview and not head.readonly:  # (a framer's buffer: set in place)
                _BASE.pack_into(head, 16, base)
            else:
                head = b"".join((head[:16], _BASE.pack(base), head[24:]))  # (any bytes-like header)
                frame = [head, *frame[1:]]
        pos = self._active_size
        total = _LENGTH.unpack_from(head, 4)[0]  # (the header's length field: the whole frame)
        written = os.writev(self._active_fd, frame)
        if written != total:  # a short write (disk full?): undo it so no torn frame stays behind
            os.ftruncate(self._active_fd, pos)
            raise OSError(errno.ENOSPC, f"short write to {self._active_path()} ({written} of {total} bytes)")
        self._active_size = pos + total
        self._next_offset = base + _LENGTH.unpack_from(head, 28)[0] + 1  # base + last delta + 1
        self._maybe_index(base, pos)
        return base

    def append(
        self,
        timestamps: np.ndarray,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None,
        headers: Sequence | None = None,
    ) -> int:
        """Append records as one frame; returns the first record's offset."""
        return self.append_encoded(fr.encode(0, timestamps, values, keys, headers))

    def append_encoded(self, frame: list) -> int:
        """Append an encoded frame (see :func:`.frame.encode`) under the lock; returns its base offset."""
        with self._thread_lock:  # (what locked() does, without a generator per append)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._sync()
                base = self.append_frame(frame)
                rolled, self._rolled = self._rolled, False
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if rolled:  # the broker-less log applies retention and compaction as segments roll
            self.maintain()
        return base

    def sync(self) -> None:
        """fsync the active segment (for ``fsync=True`` logs: survive power loss too)."""
        with self.locked():
            os.fsync(self._active_fd)

    def next_offset(self) -> int:
        """The offset the next append gets. Call while holding :meth:`locked`."""
        return self._next_offset

    def _maybe_roll(self) -> None:
        s = self.settings
        if self._active_size and (
            self._active_size >= s.segment_bytes or (time.time() - self._active_opened) * 1000 >= s.segment_ms
        ):
            self._create_segment(self._next_offset)
            self._rolled = True

    def roll(self) -> None:
        """Start a new segment now (if the active one holds anything)."""
        with self.locked():
            if self._active_size:
                self._create_segment(self._next_offset)

    # -- maintenance --------------------------------------------------------------------------
    def maintain(self, now_ms: int | None = None) -> None:
        """Apply retention (delete old segments) and compaction to the sealed segments."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self.locked():
            self._maybe_roll()
            if self.settings.delete:
                self._apply_retention(now_ms)
            if self.settings.compact:
                self._compact(now_ms)

    def _sealed(self) -> list[int]:
        return [b for b in self.segments() if b != self._active_base]

    def _segment_max_ts(self, base: int) -> int:
        path = self.segment_path(base)
        st = os.stat(path)
        key = (base, st.st_ino, st.st_size)
        if key not in self._max_ts_cache:
            fd = os.open(path, os.O_RDONLY)
            try:
                self._max_ts_cache[key] = max((h.max_timestamp for _, h in iter_headers(fd, 0, st.st_size)), default=-1)
            finally:
                os.close(fd)
        return self._max_ts_cache[key]

    def _delete_segment(self, base: int) -> None:
        path = self.segment_path(base)
        for p in (path, index_path(path), path.with_suffix(path.suffix + TORN_SUFFIX)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        self._dir_mtime = -1

    def _apply_retention(self, now_ms: int) -> None:
        s = self.settings
        sealed = self._sealed()
        if s.retention_ms >= 0:
            for base in list(sealed):
                if self._segment_max_ts(base) < now_ms - s.retention_ms:
                    self._delete_segment(base)
                    sealed.remove(base)
                else:
                    break
        if s.retention_bytes >= 0:
            sizes = {b: os.stat(self.segment_path(b)).st_size for b in sealed}
            total = sum(sizes.values()) + self._active_size
            for base in list(sealed):
                if total - sizes[base] < s.retention_bytes:
                    break
                total -= sizes[base]
                self._delete_segment(base)

    def close(self) -> None:
        self._close_active()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def read_segment(self, base: int) -> list[fr.DecodedFrame]:
        """Every frame of a sealed segment, decoded (verifying CRCs)."""
        path = self.segment_path(base)
        data = path.read_bytes()
        frames, pos = [], 0
        while pos < len(data):
            try:
                head = fr.parse_header(data, pos)
                fr.verify(data, pos, head)
            except fr.FrameError as e:
                raise CorruptLogError(str(path), pos, str(e)) from None
            frames.append(fr.decode(data, pos, head))
            pos += head.length
        return frames

    def _compact(self, now_ms: int) -> None:
        """Keep only the last record of each key in the sealed segments (Kafka's log cleaner).

        Tombstones (null values) are kept for ``delete.retention.ms`` so consumers can see the
        delete, then dropped.
        """
        s = self.settings
        sealed = self._sealed()
        if not sealed:
            return
        decoded = {b: self.read_segment(b) for b in sealed}
        keys, offsets = [], []
        for frames in decoded.values():
            for f in frames:
                keys.append(f.keys)
                offsets.append(f.offsets)
        if not offsets:
            return
        import pyarrow as pa

        table = pl.from_arrow(pa.table({"k": pa.concat_arrays(keys), "o": np.concatenate(offsets)}))
        latest = set(table.group_by("k").agg(pl.col("o").max())["o"].to_list())
        latest_arr = np.fromiter(latest, dtype=np.int64, count=len(latest))
        for base, frames in decoded.items():
            if not frames:
                continue
            seg_offsets = np.concatenate([f.offsets for f in frames])
            seg_ts = np.concatenate([f.timestamps for f in frames])
            values = pa.concat_arrays([f.values for f in frames])
            keep = np.isin(seg_offsets, latest_arr)
            young = seg_ts > now_ms - s.min_compaction_lag_ms if s.min_compaction_lag_ms > 0 else np.zeros(len(keep), bool)
            keep |= young
            tomb = values.is_null().to_numpy(zero_copy_only=False)
            expired_tomb = tomb & (seg_ts < now_ms - s.delete_retention_ms)
            keep &= ~expired_tomb
            if keep.all():
                continue
            self._rewrite(base, frames, keep)

    def _rewrite(self, base: int, frames: list[fr.DecodedFrame], keep: np.ndarray) -> None:
        import pyarrow as pa

        path = self.segment_path(base)
        tmp = path.with_suffix(".cleaned")
        idx = np.nonzero(keep)[0]
        offsets = np.concatenate([f.offsets for f in frames])[idx]
        ts = np.concatenate([f.timestamps for f in frames])[idx]
        keys = pa.concat_arrays([f.keys for f in frames]).take(pa.array(idx)).to_pylist()
        values = pa.concat_arrays([f.values for f in frames]).take(pa.array(idx)).to_pylist()
        hdrs = None
        if any(f.headers for f in frames):
            allh = [h for f in frames for h in (f.headers or [None] * len(f.offsets))]
            hdrs = [allh[i] for i in idx]
        index_entries = []
        with open(tmp, "wb") as out:
            if len(idx):
                first = int(offsets[0])
                frame = fr.encode(first, ts, values, keys, hdrs, offset_deltas=(offsets - first).astype(np.int32))
                index_entries.append((first, 0))
                out.write(b"".join(frame))
            out.flush()
            os.fsync(out.fileno())
        itmp = index_path(tmp)
        itmp.write_bytes(np.array(index_entries, dtype=INDEX_DTYPE).tobytes())
        os.replace(itmp, index_path(path))
        os.replace(tmp, path)  # readers holding the old file keep reading the old inode
        self._dir_mtime = -1
        log.info("compacted %s: kept %d of %d records", path, len(idx), len(keep))
