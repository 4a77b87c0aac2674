import datetime as dt
from decimal import Decimal

import msgpack
import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionError


def run(agg, *rows):
    s = agg.initialize()
    for r in rows:
        s = agg.aggregate(s, *(r if isinstance(r, tuple) else (r,)))
        s = msgpack.unpackb(msgpack.packb(s), strict_map_key=False)  # the state survives the store
    return s


def test_count_and_undo(reg):
    c = reg.resolve_aggregate("COUNT", [])
    assert c.return_type == T.BIGINT
    s = run(c, (), (), ())
    assert c.result(c.undo(s)) == 2
    c2 = reg.resolve_aggregate("COUNT", [T.STRING])
    assert c2.result(run(c2, "a", None, "b")) == 2


def test_sum_avg_types_and_undo(reg):
    s = reg.resolve_aggregate("SUM", [T.INT])
    assert s.return_type == T.INT and s.result(run(s, 1, None, 4)) == 5
    d = reg.resolve_aggregate("SUM", [T.decimal(4, 2)])
    st = run(d, Decimal("1.10"), Decimal("2.05"))
    assert d.result(st) == Decimal("3.15") and d.result(d.undo(st, Decimal("1.10"))) == Decimal("2.05")
    a = reg.resolve_aggregate("AVG", [T.BIGINT])
    st = run(a, 1, 2, 6)
    assert a.return_type == T.DOUBLE and a.result(st) == 3.0 and a.result(a.undo(st, 6)) == 1.5
    assert a.result(a.merge(run(a, 1), run(a, 3))) == 2.0


def test_min_max_have_no_undo(reg):
    m = reg.resolve_aggregate("MAX", [T.TIMESTAMP])
    st = run(m, dt.datetime(2020, 1, 1), None, dt.datetime(2021, 1, 1))
    assert m.result(st) == dt.datetime(2021, 1, 1)
    assert m.undo is None and not m.supports_undo
    assert reg.resolve_aggregate("MIN", [T.decimal(3, 1)]).return_type == T.decimal(3, 1)


def test_latest_earliest(reg):
    lt = reg.resolve_aggregate("LATEST_BY_OFFSET", [T.STRING])
    assert lt.result(run(lt, "a", "b", None)) == "b"
    lt2 = reg.resolve_aggregate("LATEST_BY_OFFSET", [T.STRING, T.BOOLEAN], literal_args=(False,))
    assert lt2.result(run(lt2, ("a",), (None,))) is None
    ea = reg.resolve_aggregate("EARLIEST_BY_OFFSET", [T.INT, T.INT], literal_args=(2,))
    assert ea.return_type == T.array(T.INT) and ea.result(run(ea, 1, 2, 3)) == [1, 2]


def test_collect_topk_histogram(reg):
    cl = reg.resolve_aggregate("COLLECT_LIST", [T.INT])
    st = run(cl, 1, 2, 1)
    assert cl.result(st) == [1, 2, 1] and cl.result(cl.undo(st, 1)) == [2, 1]
    cs = reg.resolve_aggregate("COLLECT_SET", [T.STRING])
    assert cs.result(run(cs, "a", "b", "a")) == ["a", "b"]
    tk = reg.resolve_aggregate("TOPK", [T.INT, T.INT], literal_args=(2,))
    assert tk.return_type == T.array(T.INT) and tk.result(run(tk, 1, 5, 3, 5)) == [5, 5]
    tkd = reg.resolve_aggregate("TOPKDISTINCT", [T.INT, T.INT], literal_args=(2,))
    assert tkd.result(run(tkd, 1, 5, 3, 5)) == [5, 3]
    with pytest.raises(FunctionError):
        reg.resolve_aggregate("TOPK", [T.INT, T.INT])
    h = reg.resolve_aggregate("HISTOGRAM", [T.STRING])
    st = run(h, "a", "b", "a")
    assert h.result(st) == {"a": 2, "b": 1} and h.result(h.undo(st, "b")) == {"a": 2}


def test_stats_and_attr(reg):
    sd = reg.resolve_aggregate("STDDEV_SAMP", [T.INT])
    assert sd.result(run(sd, 2, 4, 4, 4, 5, 5, 7, 9)) == pytest.approx(2.138089935)
    sp = reg.resolve_aggregate("STDDEV_POP", [T.DOUBLE])
    assert sp.result(run(sp, 2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0)) == pytest.approx(2.0)
    co = reg.resolve_aggregate("CORRELATION", [T.DOUBLE, T.DOUBLE])
    assert co.result(run(co, (1.0, 2.0), (2.0, 4.0), (3.0, 6.0))) == pytest.approx(1.0)
    at = reg.resolve_aggregate("ATTR", [T.STRING])
    st = run(at, "x", "x", "y")
    assert at.result(st) is None and at.result(at.undo(st, "y")) == "x"
    cd = reg.resolve_aggregate("COUNT_DISTINCT", [T.STRING])
    st = run(cd, "a", "b", "a", None)
    assert cd.result(st) == 2 and cd.result(cd.undo(cd.undo(st, "a"), "a")) == 1


def test_topk_with_other_columns_gives_structs_in_arrival_order_on_ties(reg):
    tk = reg.resolve_aggregate("TOPK", [T.INT, T.STRING, T.INT], literal_args=(3,))
    assert tk.return_type == T.array(T.struct([("sort_col", T.INT), ("col0", T.STRING)]))
    st = tk.initialize()
    for v, name in ((0, "zero"), (100, "one"), (99, "two"), (None, "three"), (100, None)):
        st = tk.aggregate(st, v, name)
    assert tk.result(st) == [{"sort_col": 100, "col0": "one"}, {"sort_col": 100, "col0": None},
                             {"sort_col": 99, "col0": "two"}]
    assert tk.result(msgpack.unpackb(msgpack.packb(st))) == tk.result(st)  # state stores as msgpack


def test_collect_limits_come_from_the_query_properties(reg):
    cs = reg.resolve_aggregate("COLLECT_SET", [T.INT], config={"ksql.functions.collect_set.limit": 1})
    assert cs.result(run(cs, 0, 100, 0)) == [0]
    cl = reg.resolve_aggregate("COLLECT_LIST", [T.INT], config={"ksql.functions.collect_list.limit": "2"})
    assert cl.result(run(cl, 1, 2, 3)) == [1, 2] and cl.result(cl.aggregate_many(cl.initialize(), [1, 2, 3])) == [1, 2]
    fresh = reg.resolve_aggregate("COLLECT_LIST", [T.INT])  # one query's setting does not leak into the next
    assert fresh.result(run(fresh, 1, 2, 3)) == [1, 2, 3]
    with pytest.raises(FunctionError, match="must be an integer"):
        reg.resolve_aggregate("COLLECT_SET", [T.INT], config={"ksql.functions.collect_set.limit": "many"})


def test_array_and_map_states_are_marked_for_format_checks(reg):
    assert reg.resolve_aggregate("TOPK", [T.INT, T.INT], literal_args=(2,)).intermediate_base == "ARRAY"
    assert reg.resolve_aggregate("HISTOGRAM", [T.STRING]).intermediate_base == "MAP"
    assert reg.resolve_aggregate("SUM", [T.INT]).intermediate_base is None
