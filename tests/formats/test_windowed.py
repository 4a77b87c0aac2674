"""Windowed keys: Kafka Streams byte layouts, round trips, batches, short input."""

from __future__ import annotations

import numpy as np
import pytest

from mailroom.errors import SerdeError
from mailroom.formats import (
    decode_session_windowed,
    decode_session_windowed_batch,
    decode_time_windowed,
    decode_time_windowed_batch,
    encode_session_windowed,
    encode_session_windowed_batch,
    encode_time_windowed,
    encode_time_windowed_batch,
)


def test_time_window_layout() -> None:
    data = encode_time_windowed(b"k1", 0x0102)
    assert data == b"k1" + b"\x00" * 6 + b"\x01\x02"
    key = decode_time_windowed(data)
    assert key == (b"k1", 0x0102, None)
    assert key.key == b"k1" and key.start == 258 and key.end is None


def test_session_window_layout_end_before_start() -> None:
    data = encode_session_windowed(b"k", start=1, end=2)
    assert data == b"k" + b"\x00" * 7 + b"\x02" + b"\x00" * 7 + b"\x01"
    assert decode_session_windowed(data) == (b"k", 1, 2)


def test_empty_inner_key_and_negative_times() -> None:
    assert decode_time_windowed(encode_time_windowed(b"", -1)) == (b"", -1, None)
    assert encode_time_windowed(b"", -1) == b"\xff" * 8


def test_too_short() -> None:
    with pytest.raises(SerdeError, match="at least 8 bytes, got 7") as ei:
        decode_time_windowed(b"\x00" * 7, topic="w", partition=1, offset=5)
    assert "topic=w" in str(ei.value) and ei.value.offset == 5
    with pytest.raises(SerdeError, match="at least 16 bytes"):
        decode_session_windowed(b"\x00" * 15)


def test_batches_round_trip() -> None:
    keys = [f"key{i}".encode() for i in range(1000)]
    starts = np.arange(1000, dtype=np.int64) * 60_000 - 5
    enc = encode_time_windowed_batch(keys, starts)
    assert enc[7] == encode_time_windowed(keys[7], int(starts[7]))
    dk, ds = decode_time_windowed_batch(enc)
    assert dk == keys and ds.tolist() == starts.tolist()
    ends = starts + 10
    senc = encode_session_windowed_batch(keys, starts, ends)
    assert senc[3] == encode_session_windowed(keys[3], int(starts[3]), int(ends[3]))
    sk, ss, se = decode_session_windowed_batch(senc)
    assert sk == keys and ss.tolist() == starts.tolist() and se.tolist() == ends.tolist()


def test_batch_too_short_names_offset() -> None:
    vals = [encode_time_windowed(b"a", 1), b"\x01", encode_time_windowed(b"b", 2)]
    with pytest.raises(SerdeError, match="#1") as ei:
        decode_time_windowed_batch(vals, topic="t", offsets=[7, 8, 9])
    assert ei.value.offset == 8
