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


def murmur2_batch(keys: Sequence[bytes] | pa.Array) -> np.ndarray:
    """murmur2 of every key (a list of bytes or an Arrow binary array without nulls), as uint32
    (Java's int bits)."""
    n = len(keys)
    out = np.empty(n, dtype=np.uint32)
    if n == 0:
        return out
    if isinstance(keys, pa.Array):  # Arrow: lengths and bytes straight from its buffers
        offs = np.frombuffer(keys.buffers()[1], dtype="<i4", count=n + 1, offset=4 * keys.offset).astype(np.int64)
        data = keys.buffers()[2]
        buf = np.frombuffer(data, dtype=np.uint8) if data is not None and data.size else np.zeros(1, np.uint8)
        starts = offs[:-1]
        lengths = np.diff(offs)
    else:
        lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
        buf = np.frombuffer(b"".join(keys), dtype=np.uint8)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
    with np.errstate(over="ignore"):
        for length in np.unique(lengths):
            idx = np.nonzero(lengths == length)[0]
            out[idx] = _hash_equal_length(buf, starts[idx], int(length))
    return out


def _hash_equal_length(buf: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    n = len(starts)
    h = np.full(n, (_SEED ^ length) & 0xFFFFFFFF, dtype=np.uint32)
    if length:
        if n > 1 and starts[0] + n * length <= len(buf) and (np.diff(starts) == length).all():
            rows = buf[starts[0] : starts[0] + n * length].reshape(n, length)  # back to back: no gather
        else:
            rows = buf[starts[:, None] + np.arange(length)]
    nblocks = length // 4
    if nblocks:
        # the 4-byte blocks as little-endian uint32 columns, in one copy
        blocks = np.ascontiguousarray(rows[:, : 4 * nblocks]).view("<u4")
        for b in range(nblocks):
            k = blocks[:, b] * _M
            k ^= k >> 24
            k *= _M
            h *= _M
            h ^= k
    tail = length & 3
    base = length & ~3
    if tail:
        t = rows[:, base:].astype(np.uint32)
        if tail == 3:
            h ^= t[:, 2] << 16
        if tail >= 2:
            h ^= t[:, 1] << 8
        h ^= t[:, 0]
        h *= _M
    h ^= h >> 13
    h *= _M
    h ^= h >> 15
    return h


def partitions_for(keys: Sequence[bytes], num_partitions: int) -> np.ndarray:
    """The partition of each (non-null) key, as Kafka's default partitioner picks it."""
    return ((murmur2_batch(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(num_partitions)).astype(np.int32)


def partition_for(key: bytes, num_partitions: int) -> int:
    """The partition of one key, as Kafka's default partitioner picks it."""
    return int(partitions_for([key], num_partitions)[0])
