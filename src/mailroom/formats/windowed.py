"""Windowed keys, laid out as Kafka Streams writes them (and ksqlDB reads them).

* time window (TUMBLING, HOPPING): ``inner key bytes + 8-byte big-endian window start (ms)``
* session window: ``inner key bytes + 8-byte big-endian window end (ms) + 8-byte BE start (ms)``

The inner key is whatever the key format produced. Too-short input is a
:class:`~mailroom.errors.SerdeError`. The ``*_batch`` variants work on lists with numpy.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mailroom.errors import SerdeError

TIME_SUFFIX = 8
SESSION_SUFFIX = 16
_Q = struct.Struct(">q")
_QQ = struct.Struct(">qq")


class WindowedKey(NamedTuple):
    """A decoded windowed key: the inner key bytes, window start, and end (None for time
    windows, whose end is start + size and not on the wire)."""

    key: bytes
    start: int
    end: int | None = None


def _err(reason: str, topic: str | None, partition: int | None, offset: int | None, fmt: str) -> SerdeError:
    return SerdeError(reason, topic=topic, partition=partition, offset=offset, format=fmt)


def encode_time_windowed(key: bytes, start: int) -> bytes:
    """``key`` + 8-byte BE ``start``."""
    return bytes(key) + _Q.pack(start)


def encode_session_windowed(key: bytes, start: int, end: int) -> bytes:
    """``key`` + 8-byte BE ``end`` + 8-byte BE ``start`` (Kafka Streams' SessionKeySchema order)."""
    return bytes(key) + _QQ.pack(end, start)


def decode_time_windowed(
    data: bytes, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
) -> WindowedKey:
    """Split a time-windowed key into (inner key, start)."""
    if data is None or len(data) < TIME_SUFFIX:
        n = 0 if data is None else len(data)
        raise _err(f"time-windowed key needs at least {TIME_SUFFIX} bytes, got {n}", topic, partition, offset, "WINDOWED")
    data = bytes(data)
    return WindowedKey(data[:-TIME_SUFFIX], _Q.unpack_from(data, len(data) - TIME_SUFFIX)[0], None)


def decode_session_windowed(
    data: bytes, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
) -> WindowedKey:
    """Split a session-windowed key into (inner key, start, end)."""
    if data is None or len(data) < SESSION_SUFFIX:
        n = 0 if data is None else len(data)
        raise _err(
            f"session-windowed key needs at least {SESSION_SUFFIX} bytes, got {n}", topic, partition, offset, "WINDOWED"
        )
    data = bytes(data)
    end, start = _QQ.unpack_from(data, len(data) - SESSION_SUFFIX)
    return WindowedKey(data[:-SESSION_SUFFIX], start, end)


def encode_time_windowed_batch(keys: Sequence[bytes], starts: Sequence[int] | np.ndarray) -> list[bytes]:
    """:func:`encode_time_windowed` over lists (the suffixes are built with numpy)."""
    if len(keys) != len(starts):
        raise ValueError(f"{len(keys)} keys but {len(starts)} starts")
    suf = np.asarray(starts, dtype=">i8").tobytes()
    return [bytes(k) + suf[i * 8 : i * 8 + 8] for i, k in enumerate(keys)]


def encode_session_windowed_batch(
    keys: Sequence[bytes], starts: Sequence[int] | np.ndarray, ends: Sequence[int] | np.ndarray
) -> list[bytes]:
    """:func:`encode_session_windowed` over lists."""
    if not len(keys) == len(starts) == len(ends):
        raise ValueError(f"{len(keys)} keys, {len(starts)} starts, {len(ends)} ends")
    pairs = np.empty((len(keys), 2), dtype=">i8")
    pairs[:, 0] = np.asarray(ends, dtype=np.int64)
    pairs[:, 1] = np.asarray(starts, dtype=np.int64)
    suf = pairs.tobytes()
    return [bytes(k) + suf[i * 16 : i * 16 + 16] for i, k in enumerate(keys)]


def decode_time_windowed_batch(
    values: Sequence[bytes], *, topic: str | None = None, partition: int | None = None, offsets: Sequence[int] | None = None
) -> tuple[list[bytes], np.ndarray]:
    """Decode many time-windowed keys: (inner keys, starts as int64 array).

    Raises SerdeError at the first too-short key (with its offset when ``offsets`` is given).
    """
    _check_lengths(values, TIME_SUFFIX, "time", topic, partition, offsets)
    suffixes = b"".join([v[-TIME_SUFFIX:] for v in values])
    starts = np.frombuffer(suffixes, dtype=">i8").astype(np.int64)
    return [bytes(v[:-TIME_SUFFIX]) for v in values], starts


def decode_session_windowed_batch(
    values: Sequence[bytes], *, topic: str | None = None, partition: int | None = None, offsets: Sequence[int] | None = None
) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Decode many session-windowed keys: (inner keys, starts, ends) with int64 arrays."""
    _check_lengths(values, SESSION_SUFFIX, "session", topic, partition, offsets)
    suffixes = b"".join([v[-SESSION_SUFFIX:] for v in values])
    pairs = np.frombuffer(suffixes, dtype=">i8").astype(np.int64).reshape(-1, 2)
    return [bytes(v[:-SESSION_SUFFIX]) for v in values], pairs[:, 1].copy(), pairs[:, 0].copy()


def _check_lengths(
    values: Sequence[bytes], need: int, kind: str, topic: str | None, partition: int | None, offsets: Sequence[int] | None
) -> None:
    lens = np.fromiter((-1 if v is None else len(v) for v in values), dtype=np.int64, count=len(values))
    short = np.flatnonzero(lens < need)
    if len(short):
        i = int(short[0])
        off = offsets[i] if offsets is not None else None
        got = "null" if lens[i] < 0 else f"{int(lens[i])} bytes"
        raise _err(
            f"{kind}-windowed key #{i} needs at least {need} bytes, got {got}"
            + (f" ({len(short)} short keys in the batch)" if len(short) > 1 else ""),
            topic,
            partition,
            off,
            "WINDOWED",
        )
