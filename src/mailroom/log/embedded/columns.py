"""A producer's columns (lists of bytes, or Arrow arrays) turned into frame-ready buffers fast.

Converting a Python list of bytes is most of a producer's cost: every record is a separate
object in memory. Polars converts a list (in Rust, about twice as fast as Arrow's converter,
touching each record once) into Arrow binary views, handed over through Arrow's C stream
without a copy. When the records all have one width (fixed-size keys: ids, UUIDs; padded
values), which numpy then proves from the views, they are used where polars put them: hashed
there and gathered by partition straight into each frame's contiguous column
(:class:`FixedColumn`). A keyed batch's values of varying widths (JSON payloads) keep polars'
views too: the views are put in partition order and each record is copied once, by Arrow's
cast, into the frames' contiguous column (:class:`ViewColumn`). Other lists become one Arrow
binary array, and whatever polars will not take as bytes (bytearray, str...) goes to Arrow's
converter, which decides as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

BINARY = pa.binary()
_OLDEST = pl.CompatLevel.oldest()  # polars hands binary columns to Arrow as large_binary
_LIMIT = 0x7FFFFFFF  # a frame's columns use int32 offsets


def to_arrow(col: Sequence[bytes | None] | pa.Array) -> pa.Array:
    """A column of bytes as an Arrow binary array (one native pass; Arrow input is kept)."""
    if isinstance(col, pa.Array):
        return col if col.type == BINARY else col.cast(BINARY)
    if type(col) is list or type(col) is tuple:
        try:
            big = pl.Series(col, dtype=pl.Binary).to_arrow(compat_level=_OLDEST)
        except Exception:  # noqa: BLE001 - whatever polars refuses, Arrow's converter judges
            pass
        else:
            arr = _narrow(big)
            if arr is not None:
                return arr
    return pa.array(col, type=BINARY)


def _narrow(big: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """A large_binary array as a binary one sharing its data (None past 2 GiB)."""
    if isinstance(big, pa.ChunkedArray):
        big = big.combine_chunks()
    n = len(big)
    validity, obuf, dbuf = big.buffers()
    offsets = np.frombuffer(obuf, dtype="<i8", count=n + 1, offset=8 * big.offset)
    if n and offsets[-1] > _LIMIT:
        return None
    if big.offset:  # (polars' arrays start at 0; a validity bitmap would need shifting)
        return big.cast(BINARY)
    narrow = pa.py_buffer(offsets.astype("<i4"))
    return pa.Array.from_buffers(BINARY, n, [validity, narrow, dbuf], null_count=big.null_count)


class FixedColumn:
    """A list's records, all of one width, where polars' conversion left them (no copy).

    Polars stores binary data as Arrow's binary views: a 16-byte view per record that holds a
    record of up to 12 bytes itself, or points into data buffers that hold longer records back
    to back, in order. Either way the records are rows of ``width`` bytes in a few strided
    arrays, hashed where they lie and gathered by partition straight into the frame's
    contiguous column: no intermediate column is built.
    """

    __slots__ = ("n", "width", "_arr", "_pieces")

    def __init__(self, n: int, width: int, arr: pa.Array, pieces: list[tuple[int, int, object, int]]) -> None:
        self.n, self.width, self._arr = n, width, arr
        self._pieces = pieces  # (first record, count, buffer, byte offset of the first, row stride)

    def __len__(self) -> int:
        return self.n

    @property
    def chunks(self) -> list[tuple[int, np.ndarray]]:
        """(first record, its rows as an (count, width) uint8 array) for each piece."""
        w = self.width
        return [(first, np.ndarray((count, w), np.uint8, buf, pos, (stride, 1)))
                for first, count, buf, pos, stride in self._pieces]

    def take(self, order: np.ndarray) -> pa.Array:
        """The records in ``order`` (a permutation of all of them), as a contiguous binary array."""
        n, w = self.n, self.width
        item = np.dtype(f"V{w}")  # one item a record: numpy copies each with one memcpy
        if len(self._pieces) == 1:
            _, count, buf, pos, stride = self._pieces[0]
            data = np.ndarray((count,), item, buf, pos, (stride,))[order]  # (reads rows in place)
        else:  # each piece's records go where the order puts them
            where = np.empty(n, dtype=np.intp)
            where[order] = np.arange(n)
            data = np.empty(n, dtype=item)
            for first, count, buf, pos, stride in self._pieces:
                data[where[first : first + count]] = np.ndarray((count,), item, buf, pos, (stride,))
        offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
        return pa.Array.from_buffers(BINARY, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


_BINARY_VIEW = pa.binary_view()
#: where polars put each record of a batch shape: (records, width, data buffer sizes) ->
#: (each view's buffer index and offset as one uint64, first record of each buffer); batches
#: of one shape get one layout, so it is worked out once (and checked every time)
_LAYOUTS: dict[tuple, tuple[np.ndarray, list[int]]] = {}


def _layout(views: np.ndarray, n: int, w: int, sizes: tuple[int, ...]) -> tuple[np.ndarray, list[int]] | None:
    """The layout of a batch of this shape (None if the views do not fit one)."""
    key = (n, w, sizes)
    hit = _LAYOUTS.get(key)
    if hit is None:  # records back to back from each buffer's start, in order, as polars writes them
        if int(views[:, 2].max()) >= len(sizes):
            return None
        counts = np.bincount(views[:, 2], minlength=len(sizes))
        if (counts * w > np.asarray(sizes)).any():
            return None
        starts = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        buf = np.repeat(np.arange(len(sizes), dtype=np.uint64), counts)
        offset = (np.arange(n, dtype=np.uint64) - np.repeat(starts[:-1].astype(np.uint64), counts)) * np.uint64(w)
        hit = (buf | offset << np.uint64(32), starts.tolist())
        if len(_LAYOUTS) >= 64:
            _LAYOUTS.clear()
        _LAYOUTS[key] = hit
    return hit


def column(col: Sequence[bytes | None] | pa.Array, views: bool = False) -> FixedColumn | ViewColumn | pa.Array:
    """A producer's column, converted once: its records in place (:class:`FixedColumn`) when
    they all have one width, else an Arrow binary array; or, with ``views`` (for a column
    that is only ever gathered, as a keyed batch's values are), polars' binary views as they
    are (:class:`ViewColumn`), whatever the records' widths."""
    fixed, arr = _fixed(col)
    if fixed is not None:
        return fixed
    if views and arr is None and type(col) is list and col:
        try:
            chunked = pa.chunked_array(pl.Series(col, dtype=pl.Binary))  # (Arrow's C stream: no copy)
        except Exception:  # noqa: BLE001 - not a list of bytes: Arrow's converter judges it
            pass
        else:
            if chunked.num_chunks == 1 and chunked.type == _BINARY_VIEW:
                arr = chunked.chunk(0)
    if arr is not None:  # converted already, just not of one width: no second conversion
        if views and not arr.offset:
            return ViewColumn(arr, col)
        try:
            return arr.cast(BINARY)
        except pa.ArrowInvalid:  # (more than 2 GiB: Arrow's converter splits it)
            pass
    return to_arrow(col)


_VIEW = np.dtype("V16")


class ViewColumn:
    """A list's records of any widths as polars' binary views, gathered straight from them.

    Casting the views to one Arrow binary array and then taking the records in partition
    order copies every record twice, once each in Arrow's cast and take. Here numpy gathers
    the 16-byte views (not the records) into the order, and Arrow's cast of those views copies
    each record once, straight into the partition-ordered contiguous column that the frames
    are sliced from.
    """

    __slots__ = ("n", "_arr", "_col")

    def __init__(self, arr: pa.Array, col: Sequence[bytes | None]) -> None:
        self.n, self._arr, self._col = len(arr), arr, col  # (arr: binary_view, at offset 0)

    def __len__(self) -> int:
        return self.n

    def take(self, order: np.ndarray) -> pa.Array:
        """The records in ``order`` (indices into them), as a contiguous binary array."""
        arr, n = self._arr, len(order)
        bufs = arr.buffers()
        views = np.frombuffer(bufs[1], dtype=_VIEW, count=self.n)[order]  # (checks the indices)
        validity = None
        if arr.null_count:
            valid = arr.is_valid().to_numpy(zero_copy_only=False)[order]
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        ordered = pa.Array.from_buffers(_BINARY_VIEW, n, [validity, pa.py_buffer(views), *bufs[2:]],
                                        null_count=arr.null_count if n == self.n else -1)
        try:
            return ordered.cast(BINARY)
        except pa.ArrowInvalid:  # (more than 2 GiB: as the general path always did)
            whole = to_arrow(self._col)
            return gather(whole, order, widths(whole))


def fixed_column(col: object) -> FixedColumn | None:
    """The records of a list of bytes that all have one width (and no None), in place; None
    for anything else."""
    return _fixed(col)[0]


def _fixed(col: object) -> tuple[FixedColumn | None, pa.Array | None]:
    """(the column in place if of one width, else None; polars' binary views if converted).

    Cheap to refuse: a list whose first, middle and last records differ in width (or are not
    bytes) is not converted at all.
    """
    if type(col) is not list or not col:
        return None, None
    n = len(col)
    first, mid, last = col[0], col[n // 2], col[-1]
    if type(first) is not bytes or type(mid) is not bytes or type(last) is not bytes:
        return None, None
    w = len(first)
    if not w or len(mid) != w or len(last) != w or n * w > _LIMIT:
        return None, None
    try:
        chunked = pa.chunked_array(pl.Series(col, dtype=pl.Binary))  # (Arrow's C stream: no copy)
    except Exception:  # noqa: BLE001 - not a list of bytes: the general path judges it
        return None, None
    if chunked.num_chunks != 1 or chunked.type != _BINARY_VIEW:
        return None, None
    arr = chunked.chunk(0)
    if arr.null_count or arr.offset:
        return None, arr
    bufs = arr.buffers()
    views = np.frombuffer(bufs[1], dtype="<u4", count=4 * n).reshape(n, 4)  # length | prefix | buffer | offset
    if not (views[:, 0] == w).all():
        return None, arr
    if w <= 12:  # each record inside its view, at bytes 4..4+w
        return FixedColumn(n, w, arr, [(0, n, bufs[1], 4, 16)]), arr
    # longer records lie in the data buffers: every view's (buffer, offset) is checked against
    # the layout "buffer b holds records s_b.. back to back from its start", which proves the rows
    data = bufs[2:]
    if any(b is None for b in data):
        return None, arr
    layout = _layout(views, n, w, tuple(b.size for b in data))
    if layout is None:
        return None, arr
    placed, starts = layout
    if not (np.frombuffer(bufs[1], dtype="<u8", count=2 * n)[1::2] == placed).all():
        return None, arr
    pieces = [(a, b - a, buf, 0, w) for a, b, buf in zip(starts, starts[1:], data) if b > a]
    return FixedColumn(n, w, arr, pieces), arr


def _rows_to_arrow(rows: np.ndarray) -> pa.Array:
    """Contiguous ``V{w}`` rows as an Arrow binary array (no copy of the data)."""
    n, w = len(rows), rows.dtype.itemsize
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    return pa.Array.from_buffers(BINARY, n, [None, pa.py_buffer(offsets), pa.py_buffer(rows)])


def widths(arr: pa.Array) -> tuple[int, int]:
    """The shortest and the longest record of a binary column (nulls count as 0)."""
    if len(arr) == 0 or arr.null_count == len(arr):
        return 0, 0
    offsets = np.frombuffer(arr.buffers()[1], dtype="<i4", count=len(arr) + 1, offset=4 * arr.offset)
    lengths = np.diff(offsets)
    return int(lengths.min()), int(lengths.max())


def gather(arr: pa.Array, order: np.ndarray, w: tuple[int, int]) -> pa.Array:
    """``arr.take(order)``. A column whose records all have one width (fixed-size keys: ids,
    numbers, UUIDs) is gathered as rows by numpy, several times faster than Arrow's take,
    which copies record by record."""
    n = len(arr)
    if w[0] != w[1] or w[0] == 0 or arr.null_count or n * w[0] > _LIMIT:
        return arr.take(pa.array(order))
    first = int(np.frombuffer(arr.buffers()[1], dtype="<i4", count=1, offset=4 * arr.offset)[0])
    rows = np.frombuffer(arr.buffers()[2], dtype=f"V{w[0]}", count=n, offset=first)
    return _rows_to_arrow(np.take(rows, order, mode="clip"))  # (order is a permutation: no index to check)
