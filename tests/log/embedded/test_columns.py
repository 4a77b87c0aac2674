"""The producer's column conversions: fixed-width records used in place, everything else via Arrow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mailroom.log.embedded.columns import FixedColumn, ViewColumn, column, fixed_column, gather, to_arrow, widths
from mailroom.log.partitioner import murmur2_batch, partitions_for


@pytest.mark.parametrize(
    ("width", "n"),
    # MessagePack's bin8 / bin16 / bin32 record headers; fixarray / array16 / array32 list headers
    [(1, 20_000), (10, 20_000), (13, 7), (200, 20_000), (255, 15), (256, 16), (70_000, 20), (3, 70_000)],
)
def test_fixed_width_records_are_taken_in_any_order_exactly(width, n) -> None:
    rng = np.random.default_rng(width)
    records = [rng.bytes(width) for _ in range(n)]
    col = fixed_column(records)
    assert col is not None and len(col) == n and col.width == width
    order = rng.permutation(n)
    got = col.take(order)
    assert got.type == pa.binary() and got.to_pylist() == [records[i] for i in order]
    # hashed where they lie, chunk by chunk: the same as hashing the list
    hashed = np.concatenate([murmur2_batch(rows) for _, rows in col.chunks])
    assert (hashed == murmur2_batch(records)).all()
    # a second list of the same shape (its layout is known by then: checked, not assumed)
    again = [r[::-1] for r in records]
    assert fixed_column(again).take(order).to_pylist() == [again[i] for i in order]


@pytest.mark.parametrize(
    "col",
    [
        [b"ab", b"abc", b"ab"],  # widths differ in the middle
        [b"ab", b"abc", b"a", b"ab"],  # ... where the quick look does not see
        [b"ab", None, b"ab"],  # a null
        [b"ab", b"cd", None, b"ef", b"gh"],
        [b"ab", bytearray(b"cd"), b"ef"],  # not bytes
        [b"ab", b"cd", "ef", b"gh", b"ij"],  # a str hidden between bytes
        [b"ab", b"cd", 12345, b"gh", b"ij"],  # a number
        [b"ab", b"cd", 2**70, b"gh", b"ij"],  # one msgspec cannot encode
        [b"ab", b"cd", object(), b"gh", b"ij"],  # ... nor this
        [b"ab", b"cd", [b"ef"], b"gh", b"ij"],  # a nested list
        [b"ab", b"c", b"de", b"fg"],  # widths that make up for each other (2 + 1 + 2... )
        [b"ab", b"a", b"abc", b"ab", b"ab"],  # ... the total is that of one width
        [b"x" * 300, b"x" * 299, b"x" * 301, b"x" * 300],  # the same with bin16 headers
        [b"", b"", b""],  # no width
        (b"ab", b"cd"),  # not a list
        [],
    ],
)
def test_anything_but_one_width_of_bytes_is_refused(col) -> None:
    assert fixed_column(col) is None


def test_to_arrow_keeps_nulls_and_takes_what_arrow_takes() -> None:
    arr = to_arrow([b"a", None, b"", b"xyz" * 10])
    assert arr.type == pa.binary() and arr.to_pylist() == [b"a", None, b"", b"xyz" * 10]
    assert widths(arr) == (0, 30)
    # polars refuses bytearray and memoryview; Arrow's converter takes them, as before
    assert to_arrow([bytearray(b"ab"), memoryview(b"cd")]).to_pylist() == [b"ab", b"cd"]
    with pytest.raises((TypeError, pa.ArrowException)):
        to_arrow([b"a", 3])


def test_gather_of_a_sliced_fixed_width_array() -> None:
    arr = pa.array([b"pad"] * 3 + [b"%04d" % i for i in range(100)], pa.binary()).slice(3)
    order = np.arange(100)[::-1].copy()
    assert gather(arr, order, widths(arr)).to_pylist() == [b"%04d" % i for i in range(100)][::-1]


def test_partitions_of_strided_rows_match_the_list() -> None:
    keys = [b"key-%06d" % i for i in range(1000)]
    padded = np.frombuffer(b"".join(k + b"!!" for k in keys), np.uint8).reshape(1000, 12)[:, :10]
    assert (partitions_for(padded, 7) == partitions_for(keys, 7)).all()
    with pytest.raises(TypeError):
        murmur2_batch(np.zeros(4, np.uint8))


@pytest.mark.parametrize(
    "col",
    [
        [b"ab", b"abc", b"a", b"ab"],  # one width at a glance, not throughout: converted once
        [b"x" * 20, None, b"y" * 20],  # a null
        [b"short", b"a much longer record"],
        [bytearray(b"ab"), b"cd"],  # polars refuses: Arrow's converter takes it
        pa.array([b"a", None], pa.binary()),
    ],
)
def test_a_column_not_of_one_width_comes_back_as_arrow(col) -> None:
    got = column(col)
    assert not isinstance(got, FixedColumn) and got.type == pa.binary()
    want = col.to_pylist() if isinstance(col, pa.Array) else [None if x is None else bytes(x) for x in col]
    assert got.to_pylist() == want


def _mixed(n: int, seed: int) -> list[bytes | None]:
    """Records of many widths: empty, inline in their views (up to 12 B), in polars' data
    buffers (several of them at this size), and null."""
    rng = np.random.default_rng(seed)
    out: list[bytes | None] = []
    for w in rng.integers(-1, 300, n).tolist():
        out.append(None if w < 0 else rng.bytes(w))
    return out


@pytest.mark.parametrize("nulls", [True, False])
def test_view_column_takes_records_of_any_width_in_any_order(nulls) -> None:
    n = 20_000
    records = _mixed(n, 3)
    if not nulls:
        records = [b"" if r is None else r for r in records]
    col = column(records, views=True)
    assert isinstance(col, ViewColumn) and len(col) == n
    order = np.random.default_rng(4).permutation(n)
    got = col.take(order)
    assert got.type == pa.binary() and got.null_count == (sum(r is None for r in records))
    assert got.to_pylist() == [records[i] for i in order]
    # the same column the general path (views cast to binary, then Arrow's take) builds
    general = column(records)
    assert got.equals(gather(general, order, widths(general)))
    # a sub-selection works too (not only permutations)
    some = order[:100]
    assert col.take(some).to_pylist() == [records[i] for i in some]


@pytest.mark.parametrize(
    "col, kind",
    [
        ([b"ab", b"cd", b"ef"], FixedColumn),  # one width: still used in place
        ([b"ab", b"abc", b"ab"], ViewColumn),  # one width at a glance only
        ([b"", b"x" * 40, None], ViewColumn),
        ([bytearray(b"ab"), b"cd"], pa.Array),  # polars refuses: Arrow's converter
        ((b"ab", b"cde"), pa.Array),  # not a list
        (pa.array([b"a", None], pa.binary()), pa.Array),
    ],
)
def test_views_are_kept_only_for_lists_polars_converts(col, kind) -> None:
    got = column(col, views=True)
    assert isinstance(got, kind)
    want = col.to_pylist() if isinstance(col, pa.Array) else [None if x is None else bytes(x) for x in col]
    taken = got.take(np.arange(len(want))) if not isinstance(got, pa.Array) else got
    assert taken.to_pylist() == want
