"""The on-disk record batch ("frame") of the embedded log.

A frame holds one producer call's records for one partition, laid out as columns so that both
writing and reading touch each record only inside C code (numpy / Arrow / crc32c):

    header   48 bytes, little-endian:
             magic b"MRB1" | length u32 (whole frame) | crc32c u32 (of bytes 12..16 and 24..length:
             everything but the base offset, as in Kafka, so assigning offsets needs no new CRC)
             | flags u16 | reserved u16 | base_offset i64 | count u32 | last_delta u32
             | max_timestamp i64 | txn_id i64
    body     timestamps      i64[count]            unless FLAG_ONE_TIMESTAMP (then max_timestamp is
                                                   every record's: a producer's batch usually has one)
             offset deltas   i32[count]            if FLAG_OFFSET_DELTAS (after compaction)
             key offsets     i32[count+1]          if FLAG_KEYS
             key validity    bitmap, 8-byte padded if FLAG_NULL_KEYS
             key data
             value offsets   i32[count+1]
             value validity  bitmap, 8-byte padded if FLAG_NULL_VALUES
             value data
             headers         u32 length + msgpack  if FLAG_HEADERS
             padding         to a multiple of 8 bytes

Offsets and validity bitmaps are Arrow's own layout, so a reader hands the frame's bytes to
Arrow as a BinaryArray without copying. A frame is valid only when its length fits the file and
its CRC matches: a frame torn by a killed writer is detected on open and never served.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import numpy as np
import pyarrow as pa

try:  # the same CRC-32C, 2-3x faster where the CPU has AVX-512 carry-less multiply
    from crc32c_rs import crc32c as crc32c_of
except ImportError:  # pragma: no cover - the plain hardware (SSE4.2) implementation
    from crc32c import crc32c as crc32c_of

MAGIC = b"MRB1"
HEADER = struct.Struct("<4sIIHHqIIqq")
HEADER_SIZE = HEADER.size  # 48
_I32 = struct.Struct("<i")
_CRC_FLAGS = struct.Struct("<HH")  # header bytes 12..16 (flags, reserved): covered by the CRC
_CRC_TAIL = struct.Struct("<IIqq")  # header bytes 24..48 (count .. txn_id): covered by the CRC
_ZEROS = bytes(8)
_BINARY = pa.binary()
_from_buffers = pa.Array.from_buffers

FLAG_KEYS = 1
FLAG_NULL_KEYS = 2
FLAG_NULL_VALUES = 4
FLAG_HEADERS = 8
FLAG_OFFSET_DELTAS = 16
FLAG_TRANSACTIONAL = 32
FLAG_ONE_TIMESTAMP = 64


@dataclass(slots=True)
class FrameHeader:
    """The fixed part of a frame."""

    length: int
    crc: int
    flags: int
    base_offset: int
    count: int
    last_delta: int
    max_timestamp: int
    txn_id: int

    @property
    def last_offset(self) -> int:
        """The offset of the frame's last record (compacted frames have gaps, so not base + count - 1)."""
        return self.base_offset + self.last_delta


class FrameError(ValueError):
    """Bytes that are not a valid frame; ``incomplete`` when they may just be cut short."""

    def __init__(self, reason: str, incomplete: bool = False) -> None:
        super().__init__(reason)
        self.incomplete = incomplete


def parse_header(buf: bytes | memoryview, pos: int = 0) -> FrameHeader:
    """The header at ``pos``; FrameError(incomplete=True) if fewer than HEADER_SIZE bytes remain."""
    if len(buf) - pos < HEADER_SIZE:
        raise FrameError("truncated frame header", incomplete=True)
    magic, length, crc, flags, _r, base, count, last_delta, max_ts, txn = HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}")
    if length < HEADER_SIZE + (4 if flags & FLAG_ONE_TIMESTAMP else 8) * count:
        raise FrameError(f"frame length {length} too small for {count} records")
    return FrameHeader(length, crc, flags, base, count, last_delta, max_ts, txn)


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _column(items: Sequence[bytes | None] | pa.Array, null_flag: int) -> tuple[list, int]:
    """Offsets, validity and data buffers of one binary column, and the flag bits it needs."""
    if isinstance(items, pa.Array):
        return _arrow_column(items, null_flag)
    n = len(items)
    nulls = None in items
    flags = 0
    parts: list[bytes] = []
    if nulls:
        flags |= null_flag
        valid = np.fromiter((x is not None for x in items), dtype=bool, count=n)
        items = [x if x is not None else b"" for x in items]
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > 0x7FFFFFFF:
        raise FrameError("column of more than 2 GiB in one frame")
    parts.append(offsets.astype("<i4").tobytes())
    if nulls:
        bitmap = np.packbits(valid, bitorder="little").tobytes()
        parts.append(bitmap + b"\0" * (_pad8(len(bitmap)) - len(bitmap)))
    parts.append(b"".join(items))
    return parts, flags


def _arrow_column(arr: pa.Array, null_flag: int) -> tuple[list, int]:
    """The same buffers taken straight from an Arrow binary array (no per-record work)."""
    n = len(arr)
    validity, obuf, dbuf = arr.buffers()
    offsets = np.frombuffer(obuf, dtype="<i4", count=n + 1, offset=4 * arr.offset)
    first, last = int(offsets[0]), int(offsets[-1])
    parts: list = [(offsets - first if first else offsets).tobytes()]
    flags = 0
    if arr.null_count:
        flags |= null_flag
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        bitmap = np.packbits(valid, bitorder="little").tobytes()
        parts.append(bitmap + b"\0" * (_pad8(len(bitmap)) - len(bitmap)))
    parts.append(memoryview(dbuf)[first:last] if dbuf is not None else b"")
    return parts, flags


def encode(
    base_offset: int,
    timestamps: np.ndarray,
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[list[tuple[str, bytes | None]] | None] | None = None,
    *,
    offset_deltas: np.ndarray | None = None,
    txn_id: int = 0,
    transactional: bool = False,
) -> list[bytes]:
    """A frame as a list of buffers (write them with one ``os.writev``)."""
    count = len(values)
    ts = timestamps if isinstance(timestamps, np.ndarray) else np.asarray(timestamps, dtype="<i8")
    flags = FLAG_TRANSACTIONAL if transactional else 0
    # (a zero stride: a producer's broadcast batch stamp, one timestamp by construction)
    if count and (ts.strides[0] == 0 or ts[0] == ts[-1] and (count < 3 or (ts == ts[0]).all())):
        flags |= FLAG_ONE_TIMESTAMP  # 8 bytes a record fewer to write, read and check
        body: list[bytes] = []
        max_ts = int(ts[0])
    else:
        ts = np.ascontiguousarray(ts, dtype="<i8")
        body = [ts.tobytes()]
        max_ts = int(ts.max()) if count else -1
    if offset_deltas is not None:
        flags |= FLAG_OFFSET_DELTAS
        body.append(np.ascontiguousarray(offset_deltas, dtype="<i4").tobytes())
    if keys is not None:
        flags |= FLAG_KEYS
        parts, f = _column(keys, FLAG_NULL_KEYS)
        flags |= f
        body += parts
        # pad the key data so the value offsets that follow stay 8-byte aligned in the frame
        so_far = HEADER_SIZE
        for b in body:
            so_far += len(b)
        body.append(_ZEROS[: _pad8(so_far) - so_far])
    parts, f = _column(values, FLAG_NULL_VALUES)
    flags |= f
    body += parts
    if headers is not None and any(h for h in headers):
        flags |= FLAG_HEADERS
        blob = msgpack.packb([h or None for h in headers], use_bin_type=True)
        body += [struct.pack("<I", len(blob)), blob]
    length = HEADER_SIZE
    for b in body:
        length += len(b)
    if length & 7:  # frames stay 8-byte aligned in the file, so their columns do too
        body.append(_ZEROS[: _pad8(length) - length])
        length = _pad8(length)
    last_delta = int(offset_deltas[-1]) if offset_deltas is not None and count else max(count - 1, 0)
    # the CRC, computed as the header is packed (what reseal computes, without a second pack)
    crc = crc32c_of(_CRC_TAIL.pack(count, last_delta, max_ts, txn_id), crc32c_of(_CRC_FLAGS.pack(flags, 0)))
    for b in body:
        crc = crc32c_of(b, crc)
    return [HEADER.pack(MAGIC, length, crc, flags, 0, base_offset, count, last_delta, max_ts, txn_id), *body]


def _crc(head: bytes | memoryview, body: Sequence[bytes | memoryview]) -> int:
    crc = crc32c_of(head[24:HEADER_SIZE], crc32c_of(head[12:16]))
    for b in body:
        crc = crc32c_of(b, crc)
    return crc


def reseal(frame: list[bytes]) -> list[bytes]:
    """The frame with its CRC computed anew (after a change to a covered header field)."""
    head = bytearray(frame[0][:HEADER_SIZE])
    struct.pack_into("<I", head, 8, _crc(head, [frame[0][HEADER_SIZE:], *frame[1:]]))
    return [bytes(head), *frame[1:]]


def with_base_offset(frame: list[bytes], base_offset: int) -> list[bytes]:
    """The same frame renumbered to start at ``base_offset`` (the CRC does not cover it)."""
    head = bytearray(frame[0])
    struct.pack_into("<q", head, 16, base_offset)
    return [bytes(head), *frame[1:]]


def verify(buf: bytes | memoryview, pos: int, header: FrameHeader) -> None:
    """Raise FrameError unless the frame at ``pos`` is whole and its CRC matches."""
    end = pos + header.length
    if end > len(buf):
        raise FrameError("frame cut short", incomplete=True)
    mv = memoryview(buf)
    if crc32c_of(mv[pos + 24 : end], crc32c_of(mv[pos + 12 : pos + 16])) != header.crc:
        raise FrameError("CRC mismatch")


@dataclass(slots=True)
class DecodedFrame:
    """A frame's columns, mostly zero-copy views of the bytes they were read from."""

    header: FrameHeader
    offsets: np.ndarray
    timestamps: np.ndarray
    keys: pa.Array
    values: pa.Array
    headers: list | None


def decode(buf: bytes | memoryview, pos: int, header: FrameHeader, pbuf: pa.Buffer | None = None,
           offsets: np.ndarray | None = None, stamps: np.ndarray | None = None) -> DecodedFrame:
    """Decode the (verified) frame at ``pos`` of ``buf``.

    Runs once a frame on every read: the common layout (keys and values without nulls, no
    headers) is spelled out inline, a few calls fewer than the general path. A reader that
    decodes several frames of one read may pass ``buf`` as an Arrow buffer (``pbuf``); for a
    frame without offset deltas, its offsets (a slice of one ``arange`` for them all); and for
    a frame of one timestamp, ``count`` int64s to fill with it (a slice of one array).
    """
    n = header.count
    flags = header.flags
    if pbuf is None:
        pbuf = pa.py_buffer(buf)
    p = pos + HEADER_SIZE
    if flags & FLAG_ONE_TIMESTAMP:
        timestamps = np.empty(n, dtype=np.int64) if stamps is None else stamps
        timestamps.fill(header.max_timestamp)  # (np.full, without its Python-level overhead)
    else:
        timestamps = np.frombuffer(buf, dtype="<i8", count=n, offset=p)
        p += 8 * n
    base = header.base_offset
    if flags & FLAG_OFFSET_DELTAS:
        deltas = np.frombuffer(buf, dtype="<i4", count=n, offset=p)
        offsets = base + deltas.astype(np.int64)
        p += 4 * n
    elif offsets is None:
        offsets = np.arange(base, base + n, dtype=np.int64)
    obytes = 4 * (n + 1)
    if flags & (FLAG_NULL_KEYS | FLAG_NULL_VALUES | FLAG_HEADERS) or not flags & FLAG_KEYS:
        return _decode_general(buf, pbuf, pos, p, header, offsets, timestamps)
    data = p + obytes
    size = _I32.unpack_from(buf, data - 4)[0]  # the last offset (the first is 0)
    keys = _from_buffers(_BINARY, n, [None, pbuf.slice(p, obytes), pbuf.slice(data, size)])
    p = pos + _pad8(data + size - pos)
    data = p + obytes
    size = _I32.unpack_from(buf, data - 4)[0]
    values = _from_buffers(_BINARY, n, [None, pbuf.slice(p, obytes), pbuf.slice(data, size)])
    return DecodedFrame(header, offsets, timestamps, keys, values, None)


def _decode_general(buf, pbuf: pa.Buffer, pos: int, p: int, header: FrameHeader, offsets: np.ndarray,
                    timestamps: np.ndarray) -> DecodedFrame:
    """The rest of :func:`decode` for frames with null keys or values, headers, or no keys."""
    n = header.count
    flags = header.flags
    if flags & FLAG_KEYS:
        keys, p = _read_column(buf, pbuf, p, n, flags & FLAG_NULL_KEYS)
        p = pos + _pad8(p - pos)
    else:
        keys = pa.nulls(n, pa.binary())
    values, p = _read_column(buf, pbuf, p, n, flags & FLAG_NULL_VALUES)
    hdrs = None
    if flags & FLAG_HEADERS:
        (blen,) = struct.unpack_from("<I", buf, p)
        raw = msgpack.unpackb(buf[p + 4 : p + 4 + blen], raw=False)
        hdrs = [[(k, v) for k, v in h] if h else None for h in raw]
    return DecodedFrame(header, offsets, timestamps, keys, values, hdrs)


def _read_column(buf: bytes, pbuf: pa.Buffer, p: int, n: int, has_nulls: int) -> tuple[pa.Array, int]:
    data_len = _I32.unpack_from(buf, p + 4 * n)[0]  # the last offset (the first is 0)
    obuf = pbuf.slice(p, 4 * (n + 1))
    p += 4 * (n + 1)
    validity = None
    if has_nulls:
        blen = (n + 7) // 8
        validity = pbuf.slice(p, blen)
        p += _pad8(blen)
    arr = pa.Array.from_buffers(_BINARY, n, [validity, obuf, pbuf.slice(p, data_len)])
    return arr, p + data_len
