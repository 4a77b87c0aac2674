"""Reading one partition of the embedded log from a position, in batches, without locks.

A reader holds a read-only descriptor of the segment it is in and the byte position of the next
frame. It serves only whole, CRC-valid frames; a frame still being written (cut short at the
end of the file) is simply not there yet. Segments deleted by retention or replaced by
compaction stay readable through the descriptor already open (POSIX keeps the old inode).

Reads copy each frame once, into a pooled buffer, and hand its columns out as zero-copy Arrow
views of it. Segments are read with ``pread`` rather than ``mmap``: measured, checking the CRC
over a mapping costs as much as copying and checking (page faults instead of the copy), and a
mapping turns a segment truncated under a reader (a writer setting a torn tail aside) into a
SIGBUS that kills the process, where ``pread`` just returns fewer bytes.
"""

from __future__ import annotations

import bisect
import os
import sys
import threading

import numpy as np
import pyarrow as pa

from ...errors import CorruptLogError
from . import frame as fr
from .partition import PartitionLog
from .segment import index_floor, read_index

#: bytes read at a time when frames are small: small enough that a chunk is still in the CPU
#: cache when its CRCs are checked and its columns handed out (4 MB chunks measured ~20% slower)
READ_CHUNK = 2 * 1024 * 1024
#: a frame at least this big (its length known from its header, read with the frame before) is
#: read on its own, exactly: a fixed-size chunk would end in the middle of the next frame and
#: copy that part twice (frames of a 10k-record batch are ~0.5 MB: a 2 MB chunk wasted ~15%)
OWN_READ_BYTES = 128 * 1024
#: size of the pooled read buffers (a frame up to this size is read into one, bigger ones get
#: a buffer of their own)
BUFFER_BYTES = 4 * 1024 * 1024
#: read buffers kept for reuse, shared by every reader of the process: a buffer that was used
#: before is warm (no page faults, no zeroing, often still in the CPU cache) where a fresh one
#: costs a fault per page. A buffer is reused only once nothing refers to it any more, and the
#: most recently used free one first: it is the likeliest to still be in the CPU cache (a copy
#: into a cold buffer costs a memory read for every line it writes).
POOL_BUFFERS = 16
#: a read this small (a reader at the tail of a live topic) gets a buffer of its own size: with
#: many readers each holding its last chunk the pool runs dry, and a fresh 4 MB buffer per small
#: read costs far more (zeroing it) than the read
SMALL_READ = 64 * 1024
_pool: list[bytearray] = []  # least recently used first
_pool_lock = threading.Lock()


def _free_buffer() -> memoryview:
    """A BUFFER_BYTES buffer that no batch, array or reader refers to any more."""
    with _pool_lock:  # (taken under the lock: the view made here marks the buffer as in use)
        for i in range(len(_pool) - 1, -1, -1):
            b = _pool[i]
            if sys.getrefcount(b) <= 3:  # the pool's list, the local name, getrefcount's argument
                if i != len(_pool) - 1:
                    del _pool[i]
                    _pool.append(b)
                return memoryview(b)
        b = bytearray(BUFFER_BYTES)
        _pool.append(b)
        if len(_pool) > POOL_BUFFERS:
            del _pool[0]
        return memoryview(b)


class OffsetOutOfRange(Exception):
    """The requested offset is below the log start or beyond the end."""


class PartitionReader:
    """A cursor over one partition."""

    def __init__(self, plog: PartitionLog, check_crcs: bool = True) -> None:
        self.plog = plog
        #: verify each frame's CRC as it is read (a frame still being written is told apart by
        #: its length alone; the CRC catches damage on disk)
        self.check_crcs = check_crcs
        self._cbuf: memoryview | None = None
        self._cstart = 0
        self._fd = -1
        self._size = 0
        self._base = -1
        self._pos = 0
        #: length of the frame at ``_pos`` when its header came with the previous read, else 0
        self._next_len = 0
        #: and its record count (0: not known)
        self._next_count = 0
        #: (position, header, decoded frame) of a frame a poll took only part of: the next poll
        #: goes on with it without checking its CRC and decoding it again
        self._held: tuple[int, fr.FrameHeader, fr.DecodedFrame] | None = None
        self.next_offset = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _open(self, base: int) -> None:
        self.close()
        self._cbuf = None
        self._fd = os.open(self.plog.segment_path(base), os.O_RDONLY)
        self._size = 0  # the segment's size as last seen (a lower bound: it only grows)
        self._base = base
        self._pos = 0
        self._next_len = self._next_count = 0
        self._held = None

    def seek(self, offset: int) -> None:
        """Position at ``offset``; raises OffsetOutOfRange outside [start, end]."""
        segs = self.plog.segments()
        start = segs[0] if segs else 0
        if offset < start:
            raise OffsetOutOfRange(offset)
        if offset > self.plog.end_offset():
            raise OffsetOutOfRange(offset)
        if not segs:
            self.close()
            self._base, self._pos, self.next_offset = -1, 0, offset
            return
        i = bisect.bisect_right(segs, offset) - 1
        base = segs[max(i, 0)]
        try:
            self._open(base)
        except FileNotFoundError:  # deleted by retention meanwhile: look again
            self.plog._dir_mtime = -1
            return self.seek(max(offset, self.plog.start_offset()))
        path = self.plog.segment_path(base)
        entry_off, pos = index_floor(read_index(path), offset)
        if entry_off >= 0:
            try:  # the index is a hint: use it only if it points at the frame it names
                head = fr.parse_header(os.pread(self._fd, fr.HEADER_SIZE, pos))
                if head.base_offset != entry_off:
                    pos = 0
            except fr.FrameError:
                pos = 0
        self._pos = pos
        self._next_len = self._next_count = 0
        self._held = None
        self._cbuf = None
        self.next_offset = offset

    def read(self, max_records: int, max_bytes: int | None = None, split: bool = True) -> list[fr.DecodedFrame]:
        """Up to ``max_records`` records from the current position, as decoded frames.

        A frame that does not fit the records still wanted is split only when it would be the
        first one read (and ``split``): otherwise the read ends before it, with fewer records.
        """
        if max_bytes is None:
            max_bytes = READ_CHUNK
        out: list[fr.DecodedFrame] = []
        n = 0
        if self._fd < 0:
            segs = self.plog.segments()
            if not segs:
                return out
            i = bisect.bisect_right(segs, self.next_offset) - 1
            self._open(segs[max(i, 0)])
        stop = False
        while n < max_records and not stop:
            buf = self._cached()  # (a whole frame left from the last read: no need to look at the file)
            if buf is None:
                want = max(max_bytes, fr.HEADER_SIZE)
                if self._next_len >= OWN_READ_BYTES:  # one big frame: read it and the next header
                    if (n or not split) and self._next_count > max_records - n:
                        break  # it would not fit whole: not even read (see below)
                    want = self._next_len + fr.HEADER_SIZE
                size = self._size
                if self._pos + want > size:  # (segments only grow: a size seen before still holds)
                    size = self._size = os.fstat(self._fd).st_size
                if self._pos >= size:
                    if not self._advance_segment(size):
                        break
                    continue
                want = min(size - self._pos, want)
                buf = self._pread(want)
                if len(buf) < want:  # shorter than seen before (a torn tail set aside): look again next time
                    self._size = self._pos + len(buf)
                self._cbuf, self._cstart = buf, self._pos
            p = 0
            progressed = False
            next_len = next_count = 0  # the length (and record count) of the frame at p, once known
            while p < len(buf) and n < max_records:
                held = self._held
                if held is not None and held[0] == self._pos + p:  # the rest of a frame begun before
                    _, head, dec = held
                    self._held = None
                else:
                    try:
                        head = fr.parse_header(buf, p)
                    except fr.FrameError as e:
                        if e.incomplete and p:
                            break
                        if e.incomplete:
                            return out  # a header still being written
                        raise CorruptLogError(str(self.plog.segment_path(self._base)), self._pos + p, str(e)) from None
                    if p + head.length > len(buf):
                        if p:
                            next_len, next_count = head.length, head.count
                            break  # read the rest of it in the next chunk
                        size = self._size = os.fstat(self._fd).st_size  # (a cached chunk starts with a whole frame)
                        if self._pos + head.length > size:
                            return out  # still being written (or torn, until a writer repairs it)
                        buf = self._pread(head.length)  # a frame bigger than a chunk
                        self._cbuf, self._cstart = buf, self._pos
                    try:
                        if self.check_crcs:
                            fr.verify(buf, p, head)
                    except fr.FrameError as e:
                        raise CorruptLogError(str(self.plog.segment_path(self._base)), self._pos + p, str(e)) from None
                    if head.last_offset < self.next_offset:
                        p += head.length
                        progressed = True
                        continue
                    dec = fr.decode(buf, p, head)
                # (a frame's first offset is its base offset: no numpy scalar needed to compare)
                lo = int(np.searchsorted(dec.offsets, self.next_offset)) if head.base_offset < self.next_offset else 0
                count = head.count
                hi = min(count, lo + (max_records - n))
                if hi < count and (n or not split):
                    # it does not fit what is left of the budget: leave it whole for the next
                    # read (decoded and checked already) rather than split it, so no frame's
                    # buffer is pinned by an unserved remainder (fewer pooled buffers in use:
                    # warmer in the CPU cache when reused)
                    next_len = head.length
                    self._held = (self._pos + p, head, dec)
                    stop = True
                    break
                whole = dec
                last = head.base_offset + head.last_delta
                if lo or hi < count:
                    dec = _slice(dec, lo, hi)
                    if hi < count:
                        last = int(dec.offsets[-1])
                out.append(dec)
                n += hi - lo
                self.next_offset = last + 1
                progressed = True
                if hi == count:
                    p += head.length
                else:
                    next_len = head.length
                    self._held = (self._pos + p, head, whole)
                    break  # the rest of this frame next time
            self._next_len, self._next_count = next_len, next_count
            self._pos += p
            rest = len(buf) - p
            if rest < fr.HEADER_SIZE or next_len > rest:
                # no whole frame left (all served, or just the next header read with a big
                # frame): let the buffer go back to the pool with its batches. Held on to, it
                # kept one buffer a partition out of the pool: a longer rotation of buffers,
                # colder in the CPU cache when reused.
                self._cbuf = None
            if not progressed:
                break
        return out

    def _pread(self, length: int) -> memoryview:
        """``length`` bytes at the position, into a pooled buffer no batch refers to any more.

        Reusing buffers keeps reads off fresh memory (new pages cost a fault and zeroing each).
        """
        if length > BUFFER_BYTES or length <= SMALL_READ:
            return memoryview(os.pread(self._fd, length, self._pos))
        self._cbuf = None  # our own reference to the last buffer does not count
        b = _free_buffer()[:length]
        return b[: os.preadv(self._fd, [b], self._pos)]

    def _cached(self) -> memoryview | None:
        """The rest of the last chunk read, if it still holds a whole frame at the position
        (a poll takes fewer records than a chunk holds: the next one goes on from memory)."""
        cbuf = self._cbuf
        if cbuf is None:
            return None
        start = self._pos - self._cstart
        if start < 0 or start + fr.HEADER_SIZE > len(cbuf):
            self._cbuf = None
            return None
        mv = memoryview(cbuf)[start:]
        try:
            head = fr.parse_header(mv)
        except fr.FrameError:
            self._cbuf = None
            return None
        if head.length > len(mv):
            self._cbuf = None
            self._next_len, self._next_count = head.length, head.count
            return None
        return mv

    def _advance_segment(self, size: int) -> bool:
        """At the end of the current segment: move to the next one if it exists."""
        segs = self.plog.segments()
        i = bisect.bisect_right(segs, self._base)
        if i >= len(segs):
            return False
        if os.fstat(self._fd).st_size > size:
            return True  # appended to just before the roll: read that first
        try:
            self._open(segs[i])
        except FileNotFoundError:
            self.plog._dir_mtime = -1
            return False
        self.next_offset = max(self.next_offset, segs[i])
        return True


def _slice(dec: fr.DecodedFrame, lo: int, hi: int) -> fr.DecodedFrame:
    return fr.DecodedFrame(
        dec.header,
        dec.offsets[lo:hi],
        dec.timestamps[lo:hi],
        dec.keys.slice(lo, hi - lo),
        dec.values.slice(lo, hi - lo),
        dec.headers[lo:hi] if dec.headers else None,
    )


#: Frames with at least this many records are served as batches of their own (zero-copy);
#: smaller ones are joined so that consumers do not get a storm of tiny batches.
OWN_BATCH_RECORDS = 1024


def group_frames(frames: list[fr.DecodedFrame]) -> list[list[fr.DecodedFrame]]:
    """Consecutive frames of one partition, grouped into the batches to serve them as."""
    runs: list[list[fr.DecodedFrame]] = []
    small: list[fr.DecodedFrame] = []
    for f in frames:
        if len(f.offsets) >= OWN_BATCH_RECORDS:
            if small:
                runs.append(small)
                small = []
            runs.append([f])
        else:
            small.append(f)
    if small:
        runs.append(small)
    return runs


def concat_frames(frames: list[fr.DecodedFrame]) -> tuple[np.ndarray, np.ndarray, pa.Array, pa.Array, list | None]:
    """Columns of several frames of one partition joined into one batch."""
    if len(frames) == 1:
        f = frames[0]
        return f.offsets, f.timestamps, f.keys, f.values, f.headers
    offsets = np.concatenate([f.offsets for f in frames])
    ts = np.concatenate([f.timestamps for f in frames])
    keys = pa.concat_arrays([f.keys for f in frames])
    values = pa.concat_arrays([f.values for f in frames])
    headers = None
    if any(f.headers for f in frames):
        headers = [h for f in frames for h in (f.headers or [None] * len(f.offsets))]
    return offsets, ts, keys, values, headers
