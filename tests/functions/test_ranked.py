"""MAX_BY / MIN_BY: the value of the row with the greatest / least ordering value."""

import msgpack
import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionError


def run(agg, *rows):
    s = agg.initialize()
    for r in rows:
        s = agg.aggregate(s, *r)
        s = msgpack.unpackb(msgpack.packb(s), strict_map_key=False)  # the state survives the store
    return s


def test_max_by_picks_the_value_of_the_highest_rank_whatever_the_order(reg):
    m = reg.resolve_aggregate("MAX_BY", [T.STRING, T.INT])
    assert m.return_type == T.STRING
    assert m.result(run(m, ("injected", 1), ("delivered", 6), ("deferred", 5))) == "delivered"
    assert m.result(run(m, ("deferred", 5), ("injected", 1))) == "deferred"
    assert m.result(m.initialize()) is None
    assert m.undo is None  # like MAX: streams only


def test_ties_go_to_the_later_row_and_null_orderings_are_skipped(reg):
    m = reg.resolve_aggregate("MAX_BY", [T.STRING, T.BIGINT])
    assert m.result(run(m, ("delivered", 6), ("bounced", 6))) == "bounced"
    assert m.result(run(m, ("a", 1), ("opened", None))) == "a"
    mn = reg.resolve_aggregate("MIN_BY", [T.BIGINT, T.BIGINT])
    assert mn.result(run(mn, (10, 3), (20, 1), (30, 1), (40, 2))) == 30


def test_null_values_skipped_unless_asked_to_keep_them(reg):
    skip = reg.resolve_aggregate("MAX_BY", [T.BIGINT, T.BIGINT])
    assert skip.result(run(skip, (250, 1), (None, 2))) == 250
    keep = reg.resolve_aggregate("MAX_BY", [T.BIGINT, T.BIGINT, T.BOOLEAN], literal_args=(False,))
    assert keep.result(run(keep, (250, 1), (None, 2))) is None
    assert keep.result(run(keep, (None, 2), (250, 1))) is None


def test_merge_and_generic_types(reg):
    m = reg.resolve_aggregate("MAX_BY", [T.array(T.STRING), T.STRING])
    assert m.return_type == T.array(T.STRING)
    a, b = run(m, (["x"], "b")), run(m, (["y"], "c"), (["z"], "a"))
    assert m.result(m.merge(a, b)) == ["y"] and m.result(m.merge(a, m.initialize())) == ["x"]
    d = reg.resolve_aggregate("MAX_BY", [T.STRING, T.DOUBLE])
    assert d.result(run(d, ("lo", 1.5), ("hi", 2.5))) == "hi"


def test_wrong_arguments_are_a_clear_error(reg):
    with pytest.raises(FunctionError):
        reg.resolve_aggregate("MAX_BY", [T.STRING])
