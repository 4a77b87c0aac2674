"""Kafka's default partitioner (murmur2), vectorized.

The same key must land in the same partition whatever backend wrote it, so both the embedded
log and the Kafka backend partition keyed records exactly like Kafka's Java producer:
``toPositive(murmur2(key)) % partitions``. The hash runs over whole batches with numpy: keys are
grouped by length and each group is hashed as one 2-D array, so there is no per-key Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_M = np.uint32(0x5BD1E995)
_SEED = 0x9747B28C


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 hash of one key, as a signed 32-bit int (as Java returns it)."""
    h = int(murmur2_batch([key])[0])
    return h - (1 << 32) if h >= (1 << 31) else h


def murmur2_batch(keys: Sequence[bytes] | pa.Array | np.ndarray) -> np.ndarray:
    """murmur2 of every key (a list of bytes, an Arrow binary array without nulls, or the rows
    of a 2-D uint8 array: keys of one width), as uint32 (Java's int bits)."""
    n = len(keys)
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    if isinstance(keys, np.ndarray):  # one key a row, rows may be strided (read in place)
        if keys.ndim != 2 or keys.dtype != np.uint8:
            raise TypeError(f"keys as an array must be 2-D uint8 rows, not {keys.ndim}-D {keys.dtype}")
        with np.errstate(over="ignore"):
            return _hash_equal_length(keys if keys.shape[1] else None, n, keys.shape[1])
    if isinstance(keys, pa.Array):  # Arrow: lengths and bytes straight from its buffers
        bufs = keys.buffers()
        offs = np.frombuffer(bufs[1], dtype="<i4", count=n + 1, offset=4 * keys.offset)
        data = bufs[2]
        buf = np.frombuffer(data, dtype=np.uint8) if data is not None and data.size else np.zeros(1, np.uint8)
        lengths = np.diff(offs)
        first = int(offs[0])
    else:
        lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
        joined = b"".join(keys)
        buf = np.frombuffer(joined, dtype=np.uint8) if joined else np.zeros(1, np.uint8)
        offs = None
        first = 0
    shortest, longest = int(lengths.min()), int(lengths.max())
    with np.errstate(over="ignore"):
        if shortest == longest:  # one length (the usual case): the keys lie back to back
            rows = buf[first : first + n * shortest].reshape(n, shortest) if shortest else None
            return _hash_equal_length(rows, n, shortest)
        if offs is None:
            starts = np.zeros(n, dtype=np.int64)
            np.cumsum(lengths[:-1], out=starts[1:])
        else:
            starts = offs[:-1].astype(np.int64)
        out = np.empty(n, dtype=np.uint32)
        for length in np.unique(lengths).tolist():
            idx = np.flatnonzero(lengths == length)
            rows = buf[starts[idx, None] + np.arange(length)] if length else None
            out[idx] = _hash_equal_length(rows, len(idx), length)
    return out


def _hash_equal_length(rows: np.ndarray | None, n: int, length: int) -> np.ndarray:
    """murmur2 of ``n`` keys of ``length`` bytes each, given as the rows of a uint8 array."""
    h0 = (_SEED ^ length) & 0xFFFFFFFF
    nblocks = length // 4
    if not nblocks:
        h = np.full(n, h0, dtype=np.uint32)
    else:
        # every 4-byte block of every key at once (little-endian), mixed in one pass: (blocks, keys).
        # The blocks are read through a strided view of the rows' bytes (no copy of the keys):
        # block b of key i is the uint32 at byte i * stride + 4 * b
        src = rows if rows.strides[1] == 1 else np.ascontiguousarray(rows)
        # copied first, then mixed in place: numpy copies a strided, unaligned view ~7x faster
        # than a ufunc reads one (the ufunc buffers it in small pieces)
        if nblocks <= 4:  # (short keys: a copy a block beats as_strided's Python overhead)
            k = np.empty((nblocks, n), dtype=np.uint32)
            for b in range(nblocks):
                k[b] = src[:, 4 * b : 4 * b + 4].view("<u4")[:, 0]
        else:
            first = src[:, :4].view("<u4")[:, 0]  # each key's first block
            blocks = np.lib.stride_tricks.as_strided(first, (nblocks, n), (4, src.strides[0]), writeable=False)
            k = blocks.copy(order="C")
        k *= _M
        t = k >> 24
        k ^= t
        k *= _M
        h = k[0] ^ np.uint32((h0 * 0x5BD1E995) & 0xFFFFFFFF)  # the first block on the seed: a constant
        for b in range(1, nblocks):  # the running hash depends on the previous block: one at a time
            h *= _M
            h ^= k[b]
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= np.left_shift(rows[:, base + 2], 16, dtype=np.uint32)
        if tail >= 2:  # bytes base and base + 1 as one little-endian uint16 (one pass, not two)
            pair = rows[:, base : base + 2] if rows.strides[1] == 1 else np.ascontiguousarray(rows[:, base : base + 2])
            h ^= pair.view("<u2")[:, 0].copy()  # (copied first: see above)
        else:
            h ^= rows[:, base]
        h *= _M
    t = h >> 13
    h ^= t
    h *= _M
    np.right_shift(h, 15, out=t)
    h ^= t
    return h


def partitions_for(keys: Sequence[bytes] | pa.Array | np.ndarray, num_partitions: int) -> np.ndarray:
    """The partition of each (non-null) key, as Kafka's default partitioner picks it (keys as
    :func:`murmur2_batch` takes them)."""
    h = murmur2_batch(keys)
    if 0 < num_partitions <= 0x80000000 and num_partitions & (num_partitions - 1) == 0:
        h &= np.uint32(min(num_partitions - 1, 0x7FFFFFFF))  # a power of two: a mask, not a division
    else:
        h &= np.uint32(0x7FFFFFFF)
        h %= np.uint32(num_partitions)
    return h.astype(np.int32)


def partition_for(key: bytes, num_partitions: int) -> int:
    """The partition of one key, as Kafka's default partitioner picks it."""
    return int(partitions_for([key], num_partitions)[0])
