"""A keyed batch of fixed-width records encoded as one frame per partition, in one buffer.

The general encoder (:func:`.frame.encode`) takes each partition's columns as Arrow arrays and
hands back a list of buffers a frame. For the producer's commonest batch (keys of one width,
values of one width, no headers: ids and padded or fixed-size payloads) this module writes
every partition's frame straight into one preallocated buffer instead: the records are
gathered from where the list's conversion left them (:class:`.columns.FixedColumn`) into their
places in the frames, each record copied once; the offsets come from a cached template; the
CRC is computed over each frame's bytes in place. Each frame is then written with one
``writev`` of one buffer.

The bytes are exactly :func:`.frame.encode`'s (tests compare them), so readers see no
difference.
"""

from __future__ import annotations

import struct

import numpy as np

from .columns import FixedColumn
from .frame import (
    FLAG_KEYS,
    FLAG_ONE_TIMESTAMP,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    crc32c_of,
)

_CRC = struct.Struct("<I")  # the header's CRC field (at byte 8)
_ZEROS = bytes(8)
_TEMPLATE_RECORDS = 16_384
#: width -> the offsets 0, w, 2w, ... as int32 bytes (a template each frame copies a prefix of)
_OFFSETS: dict[int, memoryview] = {}
#: 0, 1, 2, ... (sliced, never written)
_ARANGE = np.arange(_TEMPLATE_RECORDS, dtype=np.intp)


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _offsets(width: int, count: int) -> memoryview:
    """The offsets of ``count`` records of ``width`` bytes, as ``count + 1`` int32s' bytes."""
    t = _OFFSETS.get(width)
    if t is None or len(t) < 4 * (count + 1):
        records = max(count + 1, _TEMPLATE_RECORDS)
        if records * width > 0x7FFFFFFF:
            return memoryview(np.arange(0, (count + 1) * width, width, dtype="<i4").tobytes())
        t = memoryview(np.arange(0, records * width, width, dtype="<i4").tobytes())
        if len(_OFFSETS) > 32:
            _OFFSETS.clear()
        _OFFSETS[width] = t
    return t[: 4 * (count + 1)]


def fixed_frames(keys: FixedColumn, values: FixedColumn, order: np.ndarray, counts: list[int],
                 ts: np.ndarray, one_timestamp: bool) -> list[memoryview | None]:
    """Every partition's frame of a keyed batch whose keys and values each have one width.

    ``order`` is the records sorted by partition (stable) and ``counts`` how many records each
    partition has (its run in ``order``); ``ts`` every record's timestamp (``one_timestamp``:
    all the same). Returns partition p's whole frame at index p (None if it has no record):
    a writable view of the shared buffer, whose base offset the appender sets in place.
    """
    kw, vw, n = keys.width, values.width, keys.n
    if not one_timestamp:  # every record's timestamp, in partition order
        ts_o = np.ascontiguousarray(ts[order], dtype="<i8")
        ts_s = memoryview(ts_o).cast("B")
    # where each frame and its columns lie in the buffer. Each frame starts where its value
    # data falls on a multiple of vw bytes from the buffer's start, so one array of vw-byte
    # rows spans every frame's values and each piece of the conversion is scattered straight
    # into place (frames need no alignment in the buffer: their file position aligns them)
    layout = []  # (partition, start, count, run start in order, key offsets at, value offsets at, length, max ts)
    pos = a = 0
    stamp = int(ts[0]) if one_timestamp else -1
    for p, c in enumerate(counts):
        if c:
            one = one_timestamp
            if not one:  # (a frame whose records share one timestamp stores it once, as encode does)
                run = ts_o[a : a + c]
                one = bool(run[0] == run[-1] and (c < 3 or (run == run[0]).all()))
                stamp = int(run[0]) if one else -1
            koffs_at = HEADER_SIZE if one else HEADER_SIZE + 8 * c
            voffs_at = _pad8(koffs_at + 4 * (c + 1) + c * kw)
            vdata_at = voffs_at + 4 * (c + 1)
            start = pos + (-(pos + vdata_at)) % vw
            length = _pad8(vdata_at + c * vw)
            layout.append((p, start, c, a, koffs_at, voffs_at, length, stamp))
            pos = start + length
            a += c
    buf = np.empty(pos, dtype=np.uint8)
    # each record's row: a partition's records, in order, from its first value row on
    rowbase = np.repeat(np.asarray([(s + vo + 4 * (c + 1)) // vw - a for _, s, c, a, _, vo, _, _ in layout],
                                   dtype=np.intp), [q[2] for q in layout])
    rowbase += _ARANGE[:n] if n <= _TEMPLATE_RECORDS else np.arange(n, dtype=np.intp)
    dest = np.empty(n, dtype=np.intp)
    dest[order] = rowbase
    vitem = np.dtype(f"V{vw}")
    rows = np.ndarray((pos // vw,), vitem, buf, 0, (vw,))
    for first, count, src in values.pieces(vitem):
        rows[dest[first : first + count]] = src
    ksrc = keys.rows_if_one_piece()
    # every key in partition order, gathered at once (then each frame's run copied in)
    kdata = memoryview(ksrc[order] if ksrc is not None else keys.take(order).buffers()[2]).cast("B")
    mv = memoryview(buf)
    frames: list[memoryview | None] = [None] * len(counts)
    for p, start, c, a, koffs_at, voffs_at, length, max_ts in layout:
        f = mv[start : start + length]
        flags = FLAG_KEYS
        if koffs_at == HEADER_SIZE:
            flags |= FLAG_ONE_TIMESTAMP
        else:
            f[HEADER_SIZE:koffs_at] = ts_s[8 * a : 8 * (a + c)]
            max_ts = int(ts_o[a : a + c].max())
        kdata_at = koffs_at + 4 * (c + 1)
        f[koffs_at:kdata_at] = _offsets(kw, c)
        kend = kdata_at + c * kw
        f[kdata_at:kend] = kdata[a * kw : (a + c) * kw]
        f[kend:voffs_at] = _ZEROS[: voffs_at - kend]  # (padding)
        vdata_at = voffs_at + 4 * (c + 1)
        f[voffs_at:vdata_at] = _offsets(vw, c)
        vend = vdata_at + c * vw
        f[vend:] = _ZEROS[: length - vend]
        HEADER.pack_into(f, 0, MAGIC, length, 0, flags, 0, 0, c, c - 1, max_ts, 0)
        _CRC.pack_into(f, 8, crc32c_of(f[24:], crc32c_of(f[12:16])))
        frames[p] = f
    return frames
