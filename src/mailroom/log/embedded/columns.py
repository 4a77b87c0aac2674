"""A producer's columns (lists of bytes, or Arrow arrays) turned into frame-ready buffers fast.

Converting a Python list of bytes is most of a producer's cost: every record is a separate
object in memory. When the records all have one width (fixed-size keys: ids, UUIDs; padded
values), msgspec's MessagePack encoder copies them into one buffer, back to back behind a
small header each (a C loop over the list: faster than ``b"".join``), and numpy proves
from the headers that every record has that width; they are then used where the encoder put
them: hashed there and gathered by partition straight into the frames (:class:`FixedColumn`).
Other lists go to polars, which converts a list (in Rust, about twice as fast as Arrow's
converter, touching each record once) into Arrow binary views, handed over through Arrow's C
stream without a copy. A keyed batch's values of varying widths (JSON payloads) keep polars'
views: the views are put in partition order and each record is copied once, by Arrow's
cast, into the frames' contiguous column (:class:`ViewColumn`). Other lists become one Arrow
binary array, and whatever polars will not take as bytes (bytearray, str...) goes to Arrow's
converter, which decides as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

BINARY = pa.binary()
_OLDEST = pl.CompatLevel.oldest()  # polars hands binary columns to Arrow as large_binary
_LIMIT = 0x7FFFFFFF  # a frame's columns use int32 offsets
_encode = msgspec.msgpack.Encoder().encode  # (holds the GIL throughout: safe from any thread)


def _polars_views_factory():
    """polars' own list-of-bytes constructor, without ``pl.Series``' type inference in Python
    (~5 us a call, which a producer pays twice a batch); ``pl.Series`` if it is not there."""
    try:
        new_binary = type(pl.Series([b""], dtype=pl.Binary)._s).new_binary
        if pa.chunked_array(new_binary("", [b"ab", None], True)).to_pylist() == [b"ab", None]:
            return lambda col: new_binary("", col, True)
    except Exception:  # noqa: BLE001 - a polars without it: the public constructor
        pass
    return lambda col: pl.Series(col, dtype=pl.Binary)


#: a list of bytes (or None) as polars' binary views, exportable to Arrow without a copy;
#: raises TypeError for anything else (str, bytearray...)
_polars_views = _polars_views_factory()


def _views(col: list) -> pa.ChunkedArray:
    """A list of bytes as Arrow binary views (polars' conversion, handed over without a copy)."""
    return pa.chunked_array(_polars_views(col))


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
    """A list's records, all of one width, where the conversion left them (no copy).

    The records are rows of ``width`` bytes in one or more strided pieces of buffers (the
    MessagePack encoding puts them back to back, each behind its header: one piece), hashed
    where they lie and gathered by partition straight into the frames: no intermediate
    column is built.
    """

    __slots__ = ("n", "width", "_pieces")

    def __init__(self, n: int, width: int, pieces: list[tuple[int, int, object, int, int]]) -> None:
        self.n, self.width = n, width
        self._pieces = pieces  # (first record, count, buffer, byte offset of the first, row stride)

    def __len__(self) -> int:
        return self.n

    @property
    def chunks(self) -> list[tuple[int, np.ndarray]]:
        """(first record, its rows as an (count, width) uint8 array) for each piece."""
        w = self.width
        return [(first, np.ndarray((count, w), np.uint8, buf, pos, (stride, 1)))
                for first, count, buf, pos, stride in self._pieces]

    def pieces(self, item: np.dtype | None = None) -> list[tuple[int, int, np.ndarray]]:
        """(first record, count, its records as a 1-D array of one ``V{width}`` item each) a piece."""
        item = np.dtype(f"V{self.width}") if item is None else item
        return [(first, count, np.ndarray((count,), item, buf, pos, (stride,)))
                for first, count, buf, pos, stride in self._pieces]

    def rows_if_one_piece(self) -> np.ndarray | None:
        """Every record as a 1-D ``V{width}`` array (read in place) if they lie in one piece."""
        if len(self._pieces) != 1:
            return None
        return self.pieces()[0][2]

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


def column(col: Sequence[bytes | None] | pa.Array, views: bool = False) -> FixedColumn | ViewColumn | pa.Array:
    """A producer's column, converted once: its records in place (:class:`FixedColumn`) when
    they all have one width, else an Arrow binary array; or, with ``views`` (for a column
    that is only ever gathered, as a keyed batch's values are), polars' binary views as they
    are (:class:`ViewColumn`), whatever the records' widths."""
    fixed = _fixed(col)
    if fixed is not None:
        return fixed
    if views and type(col) is list and col:
        try:
            chunked = _views(col)
        except Exception:  # noqa: BLE001 - not a list of bytes: Arrow's converter judges it
            pass
        else:
            if chunked.num_chunks == 1 and chunked.type == _BINARY_VIEW and not chunked.chunk(0).offset:
                return ViewColumn(chunked.chunk(0), col)
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
    return _fixed(col)


def _msgpack_heads(n: int, w: int) -> tuple[bytes, bytes]:
    """MessagePack's header of an array of ``n`` items, and of one bin item of ``w`` bytes."""
    if n < 16:
        array = bytes([0x90 | n])  # fixarray
    else:
        array = b"\xdc" + n.to_bytes(2, "big") if n < 0x10000 else b"\xdd" + n.to_bytes(4, "big")
    if w < 0x100:
        item = bytes([0xC4, w])  # bin8
    else:
        item = b"\xc5" + w.to_bytes(2, "big") if w < 0x10000 else b"\xc6" + w.to_bytes(4, "big")
    return array, item


def _fixed(col: object) -> FixedColumn | None:
    """The column in place if its records are bytes of one width, else None.

    The list is encoded by msgspec's MessagePack encoder, the fastest way from Python objects
    to one buffer (a C loop over the list, faster than ``b"".join`` and than polars'
    conversion, by a third for short records): the records land back to back, each after a
    header of its own. That every header says "bin of w bytes", at the place it must be if
    every record before it had w bytes, proves every record is one of w bytes: anything else
    (None, str, numbers, another width) is encoded otherwise and shifts all that follows.
    Cheap to refuse: a list whose first, middle and last records differ in width (or are not
    bytes) is not encoded at all.
    """
    if type(col) is not list or not col:
        return None
    n = len(col)
    first, mid, last = col[0], col[n // 2], col[-1]
    if type(first) is not bytes or type(mid) is not bytes or type(last) is not bytes:
        return None
    w = len(first)
    if not w or len(mid) != w or len(last) != w or n * w > _LIMIT:
        return None
    try:
        raw = _encode(col)
    except Exception:  # noqa: BLE001 - not encodable (an object, a huge int...): the general path judges it
        return None
    array, item = _msgpack_heads(n, w)
    h, start = len(item), len(array)
    if len(raw) != start + n * (h + w) or raw[:start] != array:
        return None
    if h == 2:  # (bin8: the two header bytes as one little-endian uint16 a record)
        heads = np.ndarray((n,), "<u2", raw, start, (h + w,))
        ok = bool((heads == (item[0] | item[1] << 8)).all())
    else:
        heads = np.ndarray((n, h), np.uint8, raw, start, (h + w, 1))
        ok = bool((heads == np.frombuffer(item, np.uint8)).all())
    if not ok:
        return None
    return FixedColumn(n, w, [(0, n, raw, start + h, h + w)])


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
