import pytest

from mailroom.errors import MailroomError
from mailroom.formats.types import SqlType as T
from mailroom.functions import (
    FunctionError, FunctionRegistry, LambdaType, Overload, UnknownFunctionError, arithmetic_type, can_widen, common_type,
)


def test_widening_rules():
    assert can_widen(T.INT, T.BIGINT) and can_widen(T.BIGINT, T.DOUBLE) and can_widen(T.INT, T.decimal(10, 0))
    assert not can_widen(T.BIGINT, T.INT) and not can_widen(T.DOUBLE, T.decimal(38, 2))
    assert not can_widen(T.BIGINT, T.decimal(10, 0)) and can_widen(T.decimal(5, 2), T.decimal(7, 3))
    assert can_widen(None, T.STRING)
    assert can_widen(T.array(T.INT), T.array(T.BIGINT)) and not can_widen(T.STRING, T.INT)


def test_common_and_arithmetic_types():
    assert common_type(T.INT, T.BIGINT) == T.BIGINT
    assert common_type(T.INT, T.DOUBLE) == T.DOUBLE
    assert common_type(T.decimal(5, 2), T.decimal(4, 3)) == T.decimal(6, 3)
    assert common_type(T.INT, T.decimal(5, 2)) == T.decimal(12, 2)
    assert common_type(T.STRING, T.INT) is None
    assert common_type(None, T.DATE) == T.DATE
    assert arithmetic_type("+", T.INT, T.BIGINT) == T.BIGINT
    assert arithmetic_type("*", T.INT, T.DOUBLE) == T.DOUBLE
    assert arithmetic_type("+", T.decimal(4, 2), T.decimal(3, 1)) == T.decimal(5, 2)
    assert arithmetic_type("*", T.decimal(4, 2), T.decimal(3, 1)) == T.decimal(8, 3)
    assert arithmetic_type("/", T.decimal(4, 2), T.decimal(3, 1)) == T.decimal(9, 6)


def test_exact_match_beats_cast(reg):
    r = reg.resolve_scalar("ABS", [T.INT])
    assert r.return_type == T.INT and r.fn(-3) == 3
    r = reg.resolve_scalar("abs", [T.decimal(5, 2)])
    assert r.return_type == T.decimal(5, 2)


def test_implicit_widening_converts_values():
    reg = FunctionRegistry()
    reg.register_scalar("HALF", Overload([T.DOUBLE], T.DOUBLE, lambda x: x / 2))
    r = reg.resolve_scalar("half", [T.INT])
    assert r.return_type == T.DOUBLE
    out = r.fn(3)
    assert out == 1.5 and isinstance(out, float)


def test_ambiguous_and_no_match_errors(reg):
    with pytest.raises(FunctionError, match="ambiguous method parameters \\(INTEGER, BIGINT\\)"):
        reg.resolve_scalar("GREATEST", [T.INT, T.BIGINT])
    with pytest.raises(FunctionError) as e:
        reg.resolve_scalar("DATEADD", [T.DATE, T.INT, T.DATE])
    assert "Function 'dateadd' does not accept parameters (DATE, INTEGER, DATE)." in str(e.value)
    assert "DATEADD(STRING, INTEGER, DATE) -> DATE" in str(e.value)
    with pytest.raises(FunctionError, match="does not accept parameters \\(\\)"):
        reg.resolve_scalar("GREATEST", [])
    assert reg.resolve_scalar("GREATEST", [T.INT, T.BIGINT, T.decimal(30, 18), T.DOUBLE, None]).return_type == T.DOUBLE


def test_unknown_function(reg):
    with pytest.raises(UnknownFunctionError) as e:
        reg.resolve_scalar("NO_SUCH_FN", [])
    assert isinstance(e.value, MailroomError) and "NO_SUCH_FN" in str(e.value)


def test_generic_and_variadic(reg):
    r = reg.resolve_scalar("ARRAY_MAX", [T.array(T.STRING)])
    assert r.return_type == T.STRING and r.fn(["a", None, "c"]) == "c"
    r = reg.resolve_scalar("COALESCE", [None, T.INT, T.BIGINT])
    assert r.return_type == T.BIGINT and r.fn(None, 1, 2) == 1
    r = reg.resolve_scalar("CONCAT", [T.STRING] * 5)
    assert r.fn("a", None, "b", "c", "") == "abc"


def test_middle_variadic_packs_list():
    reg = FunctionRegistry()
    reg.register_scalar("MID", Overload([T.INT, T.STRING, T.DOUBLE], T.STRING, lambda a, xs, d: f"{a}{''.join(xs)}{d}", variadic=1))
    assert reg.resolve_scalar("mid", [T.INT, T.STRING, T.STRING, T.DOUBLE]).fn(1, "x", "y", 2.0) == "1xy2.0"
    assert reg.resolve_scalar("mid", [T.INT, T.DOUBLE]).fn(1, 2.0) == "12.0"


def test_lambda_typing(reg):
    assert reg.lambda_param_types("TRANSFORM", [T.array(T.INT)], 1) == [T.INT]
    assert reg.lambda_param_types("REDUCE", [T.array(T.INT), T.BIGINT], 2) == [T.BIGINT, T.INT]
    assert reg.lambda_param_types("FILTER", [T.map(T.DOUBLE)], 1) == [T.STRING, T.DOUBLE]
    r = reg.resolve_scalar("TRANSFORM", [T.array(T.INT), LambdaType([T.INT], T.STRING)])
    assert r.return_type == T.array(T.STRING)
    assert r.fn([1, 2], lambda x: str(x * 2)) == ["2", "4"]
    r = reg.resolve_scalar("REDUCE", [T.array(T.INT), T.INT, LambdaType([T.INT, T.INT], T.INT)])
    assert r.return_type == T.INT and r.fn([3, 6], 2, lambda s, x: s + x) == 11
    with pytest.raises(FunctionError):
        reg.lambda_param_types("TRANSFORM", [T.STRING], 1)


def test_metadata(reg):
    names = [f.name for f in reg.list_functions()]
    assert "SUBSTRING" in names and "COUNT" in names and "EXPLODE" in names
    kinds = {f.name: f.kind for f in reg.list_functions()}
    assert kinds["COUNT"] == "AGGREGATE" and kinds["EXPLODE"] == "TABLE" and kinds["LEN"] == "SCALAR"
    d = reg.describe("substring")
    assert d["name"] == "SUBSTRING" and len(d["overloads"]) == 4
    assert any(o["signature"] == "SUBSTRING(STRING, INTEGER, INTEGER) -> STRING" for o in d["overloads"])


def test_duplicate_overload_rejected():
    reg = FunctionRegistry()
    reg.register_scalar("F", Overload([T.INT], T.INT, abs))
    with pytest.raises(FunctionError, match="already has an overload"):
        reg.register_scalar("F", Overload([T.INT], T.INT, abs))
    with pytest.raises(FunctionError, match="already exists"):
        reg.register_aggregate("F", Overload([T.INT], T.INT, abs))


def test_candidates_ranked_like_ksqldb_udf_index():
    # non-variadic beats variadic; then more parameters; then fewer generic parameters
    reg = FunctionRegistry()
    reg.register_scalar("F", Overload([T.INT], T.STRING, lambda a: "fixed"),
                        Overload([T.INT], T.STRING, lambda a, xs: "var", variadic=0, pack_varargs=True))
    assert reg.resolve_scalar("f", [T.INT]).fn(1) == "fixed"
    reg.register_scalar("G", Overload([T.INT, T.INT], T.STRING, lambda a, xs: "two", variadic=1),
                        Overload([T.INT], T.STRING, lambda xs: "one", variadic=0))
    assert reg.resolve_scalar("g", [T.INT, T.INT]).fn(1, 2) == "two"
    reg.register_scalar("H", Overload(["T"], T.STRING, lambda a: "generic"), Overload([T.BIGINT], T.STRING, lambda a: "bigint"))
    assert reg.resolve_scalar("h", [T.BIGINT]).fn(1) == "bigint"
    # equally good after implicit casts: DECIMAL and DOUBLE both take (INT, DECIMAL) -- ambiguous,
    # even though DOUBLE is concrete (ksqlDB does not rank a DECIMAL parameter below it)
    reg.register_scalar("K", Overload(["DECIMAL"], T.STRING, lambda a: "dec"), Overload([T.DOUBLE], T.STRING, lambda a: "dbl"))
    with pytest.raises(FunctionError, match=r"ambiguous method parameters \(INTEGER\)"):
        reg.resolve_scalar("k", [T.INT])
    assert reg.resolve_scalar("k", [T.decimal(4, 2)]).fn(1) == "dec"  # exact, no cast needed


def test_greatest_of_int_bigint_decimal_is_ambiguous(reg):
    with pytest.raises(FunctionError) as e:
        reg.resolve_scalar("GREATEST", [T.INT, T.BIGINT, T.decimal(50, 30)])
    assert "Function 'greatest' cannot be resolved due to ambiguous method parameters (INTEGER, BIGINT, DECIMAL(50, 30))." in str(e.value)
    with pytest.raises(FunctionError, match="ambiguous"):
        reg.resolve_scalar("LEAST", [T.decimal(5, 2), T.INT])
