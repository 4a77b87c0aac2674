"""The Python ports of ksqlDB's test-only functions (tests/functions/qtt_udfs), checked directly
through the registry. The conformance files exercise them end to end:

    mailroom qtt <query-validation-tests>/udf.json --udf-dir tests/functions/qtt_udfs
"""

from decimal import Decimal
from pathlib import Path

import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionError
from mailroom.functions.api import builtin_registry, load_folder

FOLDER = Path(__file__).parent / "qtt_udfs"

SCALARS = {"TEST_UDF", "BAD_UDF", "WHENCONDITION", "WHENRESULT"}
AGGREGATES = {"TEST_UDAF", "SUM_LIST", "MULTI_ARG", "FOUR_ARG", "FIVE_ARG", "VAR_ARG"}
TABLES = {"TEST_UDTF", "THROWING_UDTF"}

STRUCT_A = T.parse("STRUCT<A STRING>")
STRUCT_AB = T.parse("STRUCT<A INT, B INT>")
DEC = T.decimal(20, 10)


def _load():
    reg = builtin_registry()
    return reg, load_folder(FOLDER, reg)


@pytest.fixture(scope="module")
def loaded():
    return _load()


@pytest.fixture(scope="module")
def r(loaded):
    return loaded[0]


def run_agg(res, rows, undo=()):
    """Aggregate ``rows`` (tuples of values) from the initial state; the results after each row."""
    state = res.initialize()
    out = []
    for row in rows:
        state = res.aggregate(state, *row)
        out.append(res.result(state))
    for row in undo:
        state = res.undo(state, *row)
        out.append(res.result(state))
    return out


# --- loading ----------------------------------------------------------------------------------


def test_folder_loads_without_failures(loaded):
    reg, report = loaded
    assert report.ok, [str(f) for f in report.failed]
    assert set(report.loaded) == SCALARS | AGGREGATES | TABLES
    for name in SCALARS:
        assert reg.kind_of(name) == "SCALAR"
    for name in AGGREGATES:
        assert reg.kind_of(name) == "AGGREGATE"
    for name in TABLES:
        assert reg.kind_of(name) == "TABLE"


def test_loading_leaves_other_registries_alone(loaded):
    assert not builtin_registry().has("TEST_UDF")


def test_describe_shows_the_ported_signatures(r):
    assert r.get_info("test_udf").signatures() == [
        "TEST_UDF(arg1 INTEGER, arg2 STRING) -> STRING",
        "TEST_UDF(arg1 BIGINT, arg2 STRING) -> STRING",
        "TEST_UDF(arg1 BIGINT, arg2 BIGINT, arg3 STRING) -> STRING",
        "TEST_UDF(longs BIGINT...) -> STRING",
        "TEST_UDF(struct STRUCT<A STRING>) -> STRING",
    ]
    assert r.get_info("multi_arg").signatures() == [
        "MULTI_ARG(first BIGINT, second STRING, init INTEGER, var_args STRING...) -> BIGINT"]
    assert r.get_info("var_arg").signatures() == ["VAR_ARG(first BIGINT, strings STRING...) -> BIGINT"]
    assert r.describe("test_udaf")["author"] == "ksqlDB QTT (ported)"


# --- scalar functions -------------------------------------------------------------------------


def test_test_udf_picks_overloads(r):
    def call(types, *vals):
        res = r.resolve_scalar("test_udf", types)
        assert res.return_type == T.STRING
        return res.fn(*vals)

    assert call([T.INT, T.STRING], 1, "x") == "doStuffIntString"
    assert call([T.BIGINT, T.STRING], 1, "x") == "doStuffLongString"
    # untyped NULL arguments: the fixed overloads beat the variadic one, and still get called
    assert call([T.BIGINT, None], 0, None) == "doStuffLongString"
    assert call([T.BIGINT, T.BIGINT, None], 0, 0, None) == "doStuffLongLongString"
    assert call([T.BIGINT] * 5, 0, 0, 0, 0, 0) == "doStuffLongVarargs"
    assert call([T.BIGINT], 0) == "doStuffLongVarargs"
    assert call([STRUCT_A], {"A": "expect-result"}) == "expect-result"
    assert call([STRUCT_A], None) is None


def test_test_udf_rejects_other_types(r):
    with pytest.raises(FunctionError, match="does not accept parameters"):
        r.resolve_scalar("test_udf", [T.STRING, T.STRING])


def test_bad_udf_boolean_and_int(r):
    res = r.resolve_scalar("bad_udf", [T.BOOLEAN])
    assert res.return_type == T.INT
    assert res.fn(False) == 0
    with pytest.raises(Exception, match="boom"):
        res.fn(True)
    res = r.resolve_scalar("bad_udf", [T.INT])
    assert res.return_type == T.INT
    with pytest.raises(Exception, match="boom"):
        res.fn(1)


def test_bad_udf_string_fails_every_other_call():
    reg, report = _load()  # a fresh load: the call counter starts at 0
    assert report.ok
    res = reg.resolve_scalar("bad_udf", [T.STRING])
    assert res.return_type == T.STRING
    got = []
    for v in ["d1", "d2", "d1", "d2", "d1"]:
        try:
            got.append(res.fn(v))
        except Exception:  # noqa: BLE001 - the failure is the point
            got.append("<error>")
    assert got == ["<error>", "d2", "<error>", "d2", "<error>"]


def test_when_functions_fail_when_evaluated_with_false(r):
    cond = r.resolve_scalar("whencondition", [T.BOOLEAN, T.BOOLEAN])
    res = r.resolve_scalar("whenresult", [T.INT, T.BOOLEAN])
    assert (cond.return_type, res.return_type) == (T.BOOLEAN, T.INT)
    assert cond.fn(False, True) is False and res.fn(300, True) == 300
    with pytest.raises(Exception, match="should not"):
        cond.fn(True, False)
    with pytest.raises(Exception, match="should not"):
        res.fn(100, False)


# --- table functions --------------------------------------------------------------------------

SIMPLE = [T.INT, T.BIGINT, T.DOUBLE, T.BOOLEAN, T.STRING, DEC, STRUCT_A]
EXPECTED_STRINGS = ["1", "2", "3.1", "true", "foo", "123.4560000000", "Struct{A=bar}"]


def test_test_udtf_simple_params(r):
    res = r.resolve_table("test_udtf", SIMPLE)
    assert res.return_type == T.STRING
    assert res.fn(1, 2, 3.1, True, "foo", Decimal("123.4560000000"), {"A": "bar"}) == EXPECTED_STRINGS


def test_test_udtf_array_and_map_params(r):
    res = r.resolve_table("test_udtf", [T.array(t) for t in SIMPLE])
    assert res.return_type == T.STRING
    vals = [1, 2, 3.1, True, "foo", Decimal("123.4560000000"), {"A": "bar"}]
    assert res.fn(*[[v] for v in vals]) == EXPECTED_STRINGS
    res = r.resolve_table("test_udtf", [T.map(t) for t in SIMPLE])
    assert res.fn(*[{"k": v} for v in vals]) == EXPECTED_STRINGS


@pytest.mark.parametrize("arg, ret, value", [
    (T.INT, T.INT, 10), (T.BIGINT, T.BIGINT, 2), (T.DOUBLE, T.DOUBLE, 3.1), (T.BOOLEAN, T.BOOLEAN, True),
    (T.STRING, T.STRING, "foo"), (DEC, T.decimal(30, 10), Decimal("123.456")), (STRUCT_A, STRUCT_A, {"A": "bar"}),
])
def test_test_udtf_returns_its_argument(r, arg, ret, value):
    res = r.resolve_table("test_udtf", [arg])
    assert res.return_type == ret
    assert res.fn(value) == [value]
    assert res.fn(None) == []  # e.g. BAD_UDF failed: no rows


def test_throwing_udtf(r):
    res = r.resolve_table("throwing_udtf", [T.BOOLEAN])
    assert res.return_type == T.BOOLEAN
    assert res.fn(False) == [False]
    with pytest.raises(Exception, match="asked me to throw"):
        res.fn(True)


# --- aggregates -------------------------------------------------------------------------------


def test_every_aggregate_supports_undo(r):
    cases = {
        "TEST_UDAF": [[T.BIGINT], [T.INT], [T.DOUBLE], [STRUCT_AB]],
        "SUM_LIST": [[T.array(T.INT)], [T.array(T.BIGINT)], [T.array(T.DOUBLE)]],
        "MULTI_ARG": [[T.BIGINT, T.STRING, T.INT]],
        "VAR_ARG": [[T.BIGINT, T.STRING]],
    }
    for name, overloads in cases.items():
        for types in overloads:
            lits = (5,) if name == "MULTI_ARG" else ()
            assert r.resolve_aggregate(name, types, lits).supports_undo, (name, types)


def test_test_udaf_sums_ints_and_longs(r):
    res = r.resolve_aggregate("test_udaf", [T.INT])
    assert res.return_type == T.INT
    assert run_agg(res, [(-2147483647,), (5,), (2000,), (100,), (None,)]) == [
        -2147483647, -2147483642, -2147481642, -2147481542, -2147481542]
    res = r.resolve_aggregate("test_udaf", [T.BIGINT])
    assert res.return_type == T.BIGINT
    # test_udaf on a table: west gets 2 and 3, then bob (1) moves in and is deleted again
    assert run_agg(res, [(2,), (3,), (1,)], undo=[(1,)]) == [2, 5, 6, 5]
    res = r.resolve_aggregate("test_udaf", [T.DOUBLE])
    assert res.return_type == T.DOUBLE and run_agg(res, [(1.5,), (2.0,)], undo=[(1.5,)]) == [1.5, 3.5, 2.0]


def test_test_udaf_sums_struct_fields(r):
    res = r.resolve_aggregate("test_udaf", [STRUCT_AB])
    assert res.return_type == STRUCT_AB
    assert run_agg(res, [({"A": 1, "B": 2},), ({"A": 2, "B": 3},)], undo=[({"A": 1, "B": 2},)]) == [
        {"A": 1, "B": 2}, {"A": 3, "B": 5}, {"A": 2, "B": 3}]
    assert res.merge({"A": 1, "B": 1}, {"A": 2, "B": 2}) == {"A": 3, "B": 3}


def test_sum_list(r):
    res = r.resolve_aggregate("sum_list", [T.array(T.DOUBLE)])
    assert res.return_type == T.DOUBLE
    assert run_agg(res, [([1.0, 1.0],), ([2.0, 2.0],), ([922337203685.0, 1.0],), ([1.0, 1.0, None],)]) == [
        2.0, 6.0, 922337203692.0, 922337203694.0]
    for t in (T.INT, T.BIGINT):
        res = r.resolve_aggregate("sum_list", [T.array(t)])
        assert res.return_type == t
        assert run_agg(res, [([1, 1],), ([2, 2],), ([100, 100],), ([100, 100, None],), (None,)],
                       undo=[([100, 100],)]) == [2, 6, 206, 406, 406, 206]


FIRST_SECOND = [(6, "hi"), (2, "a"), (None, "hello"), (5, "world"), (5, None), (3, "test"), (2, "testing"),
                (21, "aggregate"), (None, "function"), (3, "ksql"), (6, "test")]
KEYS = [0, 100, 0, 100, 0, 100, 100, 0, 100, 100, 100]


def run_grouped(make, rows):
    """Aggregate rows per key (as the cases do with GROUP BY id); the result after each row."""
    states, out = {}, []
    for key, row in zip(KEYS, rows):
        res = states.setdefault(key, make())
        res.state = res.aggregate(getattr(res, "state", res.initialize()), *row)
        out.append(res.result(res.state))
    return out


def test_multi_arg(r):
    types = [T.BIGINT, T.STRING, T.INT, T.STRING, T.STRING, T.STRING]
    assert r.resolve_aggregate("multi_arg", types, (5, "10", "20", "3")).return_type == T.BIGINT
    assert run_grouped(lambda: r.resolve_aggregate("multi_arg", types, (5, "10", "20", "3")), FIRST_SECOND) == [
        18, 13, 23, 23, 28, 30, 39, 58, 47, 54, 64]
    # no variadic initial arguments
    assert run_grouped(lambda: r.resolve_aggregate("multi_arg", types[:3], (5,)), FIRST_SECOND) == [
        13, 8, 18, 18, 23, 25, 34, 53, 42, 49, 59]
    # a column argument given as a literal ('hello') arrives with the literals, not per row
    firsts = [(f,) for f, _ in FIRST_SECOND]
    assert run_grouped(lambda: r.resolve_aggregate("multi_arg", types, ("hello", 5, "10", "20", "3")), firsts) == [
        21, 17, 26, 27, 36, 35, 42, 62, 47, 55, 66]
    res = r.resolve_aggregate("multi_arg", types, (5, "10", "20", "3"))
    assert run_agg(res, [(6, "hi")], undo=[(6, "hi")]) == [18, 10]


@pytest.mark.parametrize("types", [
    [T.BIGINT, T.STRING],
    [T.STRING, T.INT, T.STRING, T.STRING, T.STRING],
    [T.BIGINT, T.INT, T.STRING, T.STRING, T.STRING],
])
def test_multi_arg_rejects_missing_arguments(r, types):
    with pytest.raises(FunctionError, match=r"does not accept parameters"):
        r.resolve_aggregate("multi_arg", types, ())


def test_four_and_five_arg(r):
    lits = (5, "10", "20", "3")
    four = r.resolve_aggregate("four_arg", [T.BIGINT, T.STRING, T.STRING, T.STRING, T.INT] + [T.STRING] * 3, lits)
    assert four.return_type == T.BIGINT
    assert run_agg(four, [(6, "hi", "apples", None), (None, "hello", "bananas", "Venus")]) == [24, 41]
    five_types = [T.BIGINT, T.STRING, T.STRING, T.STRING, T.INT, T.INT] + [T.STRING] * 3
    five = r.resolve_aggregate("five_arg", five_types, lits)
    assert run_agg(five, [(6, "hi", "apples", None, 9), (None, "hello", "bananas", "Venus", 1)]) == [33, 51]
    # a literal INT column before the initial INT: the initial one is the last non-STRING literal
    five = r.resolve_aggregate("five_arg", five_types, (9, 5, "10", "20", "3"))
    assert run_agg(five, [(6, "hi", "apples", None)]) == [33]


def test_var_arg(r):
    res = r.resolve_aggregate("var_arg", [T.BIGINT, T.STRING, T.STRING, T.STRING])
    assert res.return_type == T.BIGINT
    rows = [(f, s, "hello", "world") for f, s in FIRST_SECOND]
    assert run_grouped(lambda: r.resolve_aggregate("var_arg", [T.BIGINT] + [T.STRING] * 3), rows) == [
        18, 13, 33, 33, 48, 50, 69, 88, 87, 104, 124]
    # no variadic arguments
    firsts = [(f,) for f, _ in FIRST_SECOND]
    assert run_grouped(lambda: r.resolve_aggregate("var_arg", [T.BIGINT]), firsts) == [
        6, 2, 6, 7, 11, 10, 12, 32, 12, 15, 21]
    # VAR_ARG(FIRST, 'hello', '10', '20', SECOND, '3'): the trailing '3' arrives as a literal
    rows = [(f, "hello", "10", "20", s) for f, s in FIRST_SECOND]
    assert run_grouped(lambda: r.resolve_aggregate("var_arg", [T.BIGINT] + [T.STRING] * 5, ("3",)), rows) == [
        18, 13, 33, 33, 48, 50, 69, 88, 87, 104, 124]
    assert run_agg(res, [(6, "hi", "hello", "world")], undo=[(6, "hi", "hello", "world")]) == [18, 0]


@pytest.mark.parametrize("types", [[T.STRING, T.STRING], [T.BIGINT, T.INT]])
def test_var_arg_rejects_wrong_types(r, types):
    with pytest.raises(FunctionError, match=r"does not accept parameters"):
        r.resolve_aggregate("var_arg", types)
