"""Segment files of one partition: naming, the sparse offset index, and frame scanning.

A partition is a folder of segments ``<base offset, 20 digits>.log``, each with a sparse index
``<base>.index`` of (offset, byte position) pairs written every ``index.interval.bytes`` so a
reader can seek without scanning the whole segment. The index is a hint: it is checked against
the segment and rebuilt when it does not fit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .frame import HEADER_SIZE, FrameError, FrameHeader, parse_header

SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TORN_SUFFIX = ".torn"
INDEX_DTYPE = np.dtype([("offset", "<i8"), ("pos", "<i8")])


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}{SUFFIX}"


def index_path(segment: Path) -> Path:
    return segment.with_suffix(INDEX_SUFFIX)


def list_segments(folder: Path) -> list[int]:
    """Base offsets of the folder's segments, ascending."""
    return sorted(int(n[: -len(SUFFIX)]) for n in os.listdir(folder) if n.endswith(SUFFIX) and n[:-len(SUFFIX)].isdigit())


def read_index(segment: Path) -> np.ndarray:
    """The segment's index entries (a whole number of them, whatever a crash left)."""
    try:
        raw = index_path(segment).read_bytes()
    except FileNotFoundError:
        return np.empty(0, dtype=INDEX_DTYPE)
    usable = len(raw) - len(raw) % INDEX_DTYPE.itemsize
    return np.frombuffer(raw[:usable], dtype=INDEX_DTYPE)


def index_floor(index: np.ndarray, offset: int) -> tuple[int, int]:
    """(offset, position) of the last index entry at or before ``offset``; (-1, 0) if none."""
    if not len(index):
        return -1, 0
    i = int(np.searchsorted(index["offset"], offset, side="right")) - 1
    if i < 0:
        return -1, 0
    return int(index["offset"][i]), int(index["pos"][i])


def iter_headers(fd: int, start: int, end: int, chunk: int = 1 << 20) -> Iterator[tuple[int, FrameHeader]]:
    """(position, header) of each frame from ``start`` up to ``end``, reading headers only.

    Stops (without raising) at a header that is cut short or invalid: the caller verifies
    what it needs.
    """
    pos = start
    while pos + HEADER_SIZE <= end:
        try:
            head = parse_header(os.pread(fd, HEADER_SIZE, pos))
        except FrameError:
            return
        yield pos, head
        pos += head.length
