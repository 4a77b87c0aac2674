"""Reading one partition of the embedded log from a position, in batches, without locks.

A reader holds a read-only descriptor of the segment it is in and the byte position of the next
frame. It serves only whole, CRC-valid frames; a frame still being written (cut short at the
end of the file) is simply not there yet. Segments deleted by retention or replaced by
compaction stay readable through the descriptor already open (POSIX keeps the old inode).

Reads copy each frame once, into a pooled buffer at the file's alignment, and hand its columns
out as zero-copy Arrow views of it. Big frames (a producer's batches) take a short path of their
own: several a read, little Python a frame (see ``PartitionReader._big_frames``). Segments are
read with ``pread`` rather than ``mmap``: measured, checking the CRC over a mapping costs as
much as copying and checking (page faults instead of the copy), and a mapping turns a segment
truncated under a reader (a writer setting a torn tail aside) into a SIGBUS that kills the
process, where ``pread`` just returns fewer bytes.
"""

from __future__ import annotations

import bisect
import mmap
import os
import sys
import threading

import numpy as np
import pyarrow as pa

from ...errors import CorruptLogError
from . import frame as fr
from .partition import PartitionLog
from .segment import index_floor, read_index

HEADER_SIZE = fr.HEADER_SIZE
MAGIC = fr.MAGIC
ONE_TIMESTAMP = fr.FLAG_ONE_TIMESTAMP
_GAPS = fr.FLAG_OFFSET_DELTAS  # (a compacted frame: its offsets are not base, base + 1, ...)
#: bytes read at a time when big frames follow one another (see PartitionReader._big_frames):
#: 1-2 MB reads measured ~15% faster a byte than 0.5 MB ones, and 4 MB no faster than 2
READ_SPAN = 2 * 1024 * 1024

#: bytes read at a time when frames are small: small enough that a chunk is still in the CPU
#: cache when its CRCs are checked and its columns handed out (4 MB chunks measured ~20% slower)
READ_CHUNK = 2 * 1024 * 1024
#: a frame at least this big (its length known from its header, read with the frame before) is
#: read whole, exactly, with the frames like it that follow (PartitionReader._big_frames): a
#: fixed-size chunk would end in the middle of a frame and copy that part twice (frames of a
#: 10k-record batch are ~0.5 MB: a 2 MB chunk wasted ~15%)
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
#: reads land in a buffer at the same offset modulo this as they have in the file. The kernel
#: copies page cache to a buffer at up to half speed when the two are misaligned to each other
#: (measured on AMD Zen 4 with ``rep movsb``: 8.6 GB/s at a 16-byte skew, 3 GB/s at 8, 15
#: GB/s aligned). A ``bytearray``'s data starts wherever malloc put it (16 bytes into a page
#: for a big one), so the copy speed depended on each frame's position: the buffers are
#: anonymous mappings (page-aligned) and each read is placed to match the file's alignment.
ALIGN = 64
_pool: list[mmap.mmap] = []  # least recently used first
_pool_lock = threading.Lock()


def _aligned(size: int) -> mmap.mmap:
    """A fresh page-aligned buffer of ``size`` bytes (plus room to match a file's alignment).

    Private: an anonymous mapping is shared with a forked child by default, and a child's
    reads would land in its parent's batches.
    """
    return mmap.mmap(-1, size + ALIGN, flags=mmap.MAP_PRIVATE)


def _free_buffer() -> memoryview:
    """A BUFFER_BYTES (+ ALIGN) buffer that no batch, array or reader refers to any more."""
    with _pool_lock:  # (taken under the lock: the view made here marks the buffer as in use)
        for i in range(len(_pool) - 1, -1, -1):
            b = _pool[i]
            if sys.getrefcount(b) <= 3:  # the pool's list, the local name, getrefcount's argument
                if i != len(_pool) - 1:
                    del _pool[i]
                    _pool.append(b)
                return memoryview(b)
        b = _aligned(BUFFER_BYTES)
        _pool.append(b)
        if len(_pool) > POOL_BUFFERS:
            del _pool[0]
        return memoryview(b)


_SEEDS: dict[tuple[int, int], int] = {}


def _crc_seed(flags: int, reserved: int) -> int:
    """The CRC of a header's bytes 12..16 (flags, reserved), where a frame's CRC starts: a
    handful of values, each computed once (a call and a slice fewer a frame)."""
    seed = _SEEDS.get((flags, reserved))
    if seed is None:
        if len(_SEEDS) > 256:
            _SEEDS.clear()
        seed = _SEEDS[(flags, reserved)] = fr.crc32c_of(fr._CRC_FLAGS.pack(flags, reserved))
    return seed


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
        #: the whole buffer the last read went into (None: one of its own size) and where in it
        #: that read's bytes start (see _big_frames)
        self._room: memoryview | None = None
        self._skew = 0
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
        # (no offset up to the last segment's base is past the end: the end, which costs a
        # look at that segment's tail, is needed only beyond it)
        if (not segs or offset > segs[-1]) and offset > self.plog.end_offset():
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
        Damage (CorruptLogError) is raised once the frames before it are served: by this read
        if it has none, else by the next.
        """
        if (not split and self._next_count > max_records and self._next_len >= OWN_READ_BYTES
                and self._cbuf is None and self._held is None):
            return []  # the next frame (its header came with the last read) would not fit whole (see below)
        out: list[fr.DecodedFrame] = []
        try:
            return self._read(out, max_records, READ_CHUNK if max_bytes is None else max_bytes, split)
        except CorruptLogError:
            if out:  # (the position is that of the damage, or of frames skipped on the way to it)
                return out
            raise

    def _read(self, out: list[fr.DecodedFrame], max_records: int, max_bytes: int, split: bool) -> list[fr.DecodedFrame]:
        n = 0
        if self._fd < 0:
            segs = self.plog.segments()
            if not segs:
                return out
            i = bisect.bisect_right(segs, self.next_offset) - 1
            self._open(segs[max(i, 0)])
        check = self.check_crcs
        unpack = fr.HEADER.unpack_from
        crc32c_of = fr.crc32c_of
        stop = False
        while n < max_records and not stop:
            if self._next_len >= OWN_READ_BYTES and self._cbuf is None and self._held is None:
                n = self._big_frames(out, n, max_records)
                if n >= max_records:
                    break
            # (a whole frame left from the last read: no need to look at the file)
            buf = self._cached() if self._cbuf is not None else None
            if buf is None:
                want = max(max_bytes, HEADER_SIZE)
                if self._next_len >= OWN_READ_BYTES:  # one big frame: read it and the next header
                    if (n or not split) and self._next_count > max_records - n:
                        break  # it would not fit whole: not even read (see below)
                    want = self._next_len + HEADER_SIZE
                size = self._size
                if self._pos + want > size:  # (segments only grow: a size seen before still holds)
                    size = self._size = os.fstat(self._fd).st_size
                if self._pos >= size:
                    if not self._advance_segment(size):
                        break
                    continue
                want = min(size - self._pos, want)
                buf = self._pread(want)
                self._room = None
                if len(buf) < want:  # shorter than seen before (a torn tail set aside): look again next time
                    self._size = self._pos + len(buf)
                self._cbuf, self._cstart = buf, self._pos
            p = 0
            end = len(buf)
            progressed = False
            next_len = next_count = 0  # the length (and record count) of the frame at p, once known
            while p < end and n < max_records:
                held = self._held
                if held is not None and held[0] == self._pos + p:  # the rest of a frame begun before
                    _, head, dec = held
                    self._held = None
                else:
                    # (the header's fields straight from the buffer: this loop runs once a frame,
                    # and a FrameHeader is made only for a frame that is served)
                    if end - p < HEADER_SIZE:
                        if p:
                            break
                        return out  # a header still being written
                    magic, length, crc, flags, _r, base, count, last_delta, max_ts, txn = unpack(buf, p)
                    if magic != MAGIC or length < HEADER_SIZE + (4 if flags & ONE_TIMESTAMP else 8) * count:
                        self._corrupt(buf, p)
                    if p + length > end:
                        if p:
                            next_len, next_count = length, count
                            break  # read the rest of it in the next chunk
                        size = self._size = os.fstat(self._fd).st_size  # (a cached chunk starts with a whole frame)
                        if self._pos + length > size:
                            return out  # still being written (or torn, until a writer repairs it)
                        buf = self._pread(length)  # a frame bigger than a chunk
                        self._room = None
                        self._cbuf, self._cstart = buf, self._pos
                        end = len(buf)
                        if end < length:  # truncated since the fstat (a torn tail set aside)
                            self._size = self._pos + end
                            return out
                    if check and crc32c_of(buf[p + 24 : p + length], _crc_seed(flags, _r)) != crc:
                        raise CorruptLogError(str(self.plog.segment_path(self._base)), self._pos + p, "CRC mismatch")
                    if base + last_delta < self.next_offset:
                        p += length
                        progressed = True
                        continue
                    head = fr.FrameHeader(length, crc, flags, base, count, last_delta, max_ts, txn)
                    dec = fr.decode(buf, p, head)
                # (a frame's first offset is its base offset: no numpy scalar needed to compare)
                base = head.base_offset
                lo = int(np.searchsorted(dec.offsets, self.next_offset)) if base < self.next_offset else 0
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
                last = base + head.last_delta
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
            rest = end - p
            if rest < HEADER_SIZE or next_len > rest:
                # no whole frame left (all served, or just the next header read with a big
                # frame): let the buffer go back to the pool with its batches. Held on to, it
                # kept one buffer a partition out of the pool: a longer rotation of buffers,
                # colder in the CPU cache when reused.
                self._cbuf = None
            if not progressed:
                break
        return out

    def _big_frames(self, out: list[fr.DecodedFrame], n: int, max_records: int) -> int:
        """Big frames (a producer's batches, as a rule) read several at a time, whole.

        What the loop in :meth:`read` does for them, without its bookkeeping (this runs once a
        frame), and with fewer, longer reads: a 0.5 MB read costs ~15% more a byte than a 2 MB
        one (the kernel's per-call work), where the records are only copied. The frames after
        the next one (whose length and count came with the last read) are taken to be like it,
        as a producer's batches are: as many as the records wanted make up are read at once,
        up to READ_SPAN bytes. A frame the read cuts short is finished in place with a second
        read into the same buffer, so no byte is copied twice; bytes read past the last frame
        wanted are read again next time (a guess a little long: a few KB).

        Appends to ``out`` and returns the records read so far (``n`` plus these). Stops
        before a frame that does not fit whole, or one not all written yet; leaves anything
        unusual (a small frame, one to skip or split, damage) to that loop, from memory.
        """
        fd, check, unpack = self._fd, self.check_crcs, fr.HEADER.unpack_from
        pos, size, flen, fcount = self._pos, self._size, self._next_len, self._next_count
        next_offset = self.next_offset
        while flen >= OWN_READ_BYTES and fcount <= max_records - n:
            k = min((max_records - n) // (fcount or 1), READ_SPAN // flen) or 1
            want = k * flen + HEADER_SIZE
            if pos + want > size:
                size = self._size = os.fstat(fd).st_size
                if pos + flen > size:
                    break  # not all written yet (or torn): the loop in read looks at it
                want = min(want, size - pos)
            self._pos = pos
            buf = self._pread(want)
            room, skew = self._room, self._skew  # (the whole pooled buffer, and where buf starts in it)
            self._room = None  # (not kept past this read: the pool takes it back with its batches)
            got = len(buf)
            if got < flen:  # truncated since the fstat (a torn tail set aside)
                self._size = pos + got
                break
            p = 0
            flen = fcount = 0  # the frame after the last one served: unknown until its header is read
            heads: list[tuple[int, fr.FrameHeader]] = []  # (position, header) of each frame to serve
            while got - p >= HEADER_SIZE:
                magic, length, crc, flags, _r, base, count, last_delta, max_ts, txn = unpack(buf, p)
                if (magic != MAGIC or length < OWN_READ_BYTES or base < next_offset
                        or length < HEADER_SIZE + 4 * count):
                    # a small frame, one to skip or split, a bad header: for the general loop
                    # (from memory: it reads the file again only for what it needs)
                    return self._hand_over(out, buf, heads, pos, p, next_offset, n)
                if count > max_records - n:
                    flen, fcount = length, count  # does not fit: left for the next read
                    break
                end = p + length
                if end > got:  # cut short by the read: finish it in place (with the next header)
                    more = min(end + HEADER_SIZE, size - pos) - got
                    if end > size - pos:
                        size = self._size = os.fstat(fd).st_size
                        more = min(end + HEADER_SIZE, size - pos) - got
                    if room is None or skew + got + more > len(room) or got + more < end:
                        flen, fcount = length, count  # (no room, or not all written yet): read it next time
                        break
                    tail = room[skew + got : skew + got + more]
                    done = os.preadv(fd, [tail], pos + got)
                    buf = room[skew : skew + got + done]
                    got += done
                    if got < end:  # truncated meanwhile
                        self._size = pos + got
                        flen, fcount = length, count
                        break
                if check and fr.crc32c_of(buf[p + 24 : end], _crc_seed(flags, _r)) != crc:
                    return self._hand_over(out, buf, heads, pos, p, next_offset, n)  # (it says what is wrong)
                heads.append((p, fr.FrameHeader(length, crc, flags, base, count, last_delta, max_ts, txn)))
                n += count
                next_offset = base + last_delta + 1
                p = end
            self._serve(out, buf, heads)
            pos += p
        self._pos, self._next_len, self._next_count, self.next_offset = pos, flen, fcount, next_offset
        return n

    def _hand_over(self, out: list[fr.DecodedFrame], buf: memoryview, heads: list[tuple[int, fr.FrameHeader]],
                   pos: int, p: int, next_offset: int, n: int) -> int:
        """Serve the frames checked so far, and leave the read (at ``pos``, from ``p`` on) to the
        general loop of :meth:`_read`, from memory; returns ``n``."""
        self._serve(out, buf, heads)
        self._cbuf, self._cstart = buf, pos
        self._pos, self._next_len, self._next_count, self.next_offset = pos + p, 0, 0, next_offset
        return n

    @staticmethod
    def _serve(out: list[fr.DecodedFrame], buf: memoryview, heads: list[tuple[int, fr.FrameHeader]]) -> None:
        """Decode the checked frames at ``heads`` of one read into ``out``: with one Arrow
        buffer over the read, and one ``arange`` for the offsets of frames that follow one
        another without gaps (as a producer's do), sliced for each."""
        if not heads:
            return
        pbuf = pa.py_buffer(buf)
        if len(heads) == 1:
            out.append(fr.decode(buf, heads[0][0], heads[0][1], pbuf))
            return
        first = heads[0][1].base_offset
        last = heads[-1][1]
        total = last.base_offset + last.count - first
        offsets = np.arange(first, first + total, dtype=np.int64)
        stamps = np.empty(total, dtype=np.int64)  # (for frames of one timestamp: a slice each, filled)
        for p, head in heads:
            a = head.base_offset - first
            b = a + head.count
            if head.flags & _GAPS or head.count != head.last_delta + 1:  # (its own offsets)
                out.append(fr.decode(buf, p, head, pbuf, None, stamps[a:b]))
            else:
                out.append(fr.decode(buf, p, head, pbuf, offsets[a:b], stamps[a:b]))

    def _corrupt(self, buf: memoryview, p: int) -> None:
        """Raise CorruptLogError for the bad header at ``p`` (parse_header says what is wrong)."""
        try:
            fr.parse_header(buf, p)
        except fr.FrameError as e:
            raise CorruptLogError(str(self.plog.segment_path(self._base)), self._pos + p, str(e)) from None
        raise CorruptLogError(str(self.plog.segment_path(self._base)), self._pos + p, "bad frame header")

    def _pread(self, length: int) -> memoryview:
        """``length`` bytes at the position, into a pooled buffer no batch refers to any more.

        Reusing buffers keeps reads off fresh memory (new pages cost a fault and zeroing each).
        """
        if length <= SMALL_READ:
            self._room = None
            return memoryview(os.pread(self._fd, length, self._pos))
        self._cbuf = None  # our own reference to the last buffer does not count
        self._room = None
        skew = self._pos % ALIGN  # (8-byte aligned, as frames are: so are their columns)
        buf = memoryview(_aligned(length)) if length > BUFFER_BYTES else _free_buffer()
        b = buf[skew : skew + length]
        self._room, self._skew = buf, skew  # (for a read that finishes a frame in place)
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
