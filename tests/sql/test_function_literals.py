"""A STRING literal among DATE/TIME/TIMESTAMP function arguments is read as that type (ksqlDB)."""

from __future__ import annotations

import datetime as dt

import pytest

from mailroom.formats.types import SqlType
from mailroom.functions import builtin_registry
from mailroom.sql.expressions import ExpressionCompiler, Scope
from mailroom.sql.metastore import SqlError
from mailroom.sql.parser import parse_expression


def _compile(text: str):
    scope = Scope()
    scope.add("D1", "D1", SqlType.DATE)
    scope.add("D2", "D2", SqlType.DATE)
    scope.add("T1", "T1", SqlType.TIMESTAMP)
    return ExpressionCompiler(builtin_registry()).compile(parse_expression(text), scope)


def test_greatest_reads_a_string_literal_as_a_date() -> None:
    c = _compile("GREATEST(D1, D2, null, '2022-06-14')")
    assert c.type == SqlType.DATE
    assert c.fn({"D1": dt.date(2022, 3, 1), "D2": None}) == dt.date(2022, 6, 14)
    assert c.fn({"D1": dt.date(2022, 7, 1), "D2": None}) == dt.date(2022, 7, 1)
    t = _compile("LEAST(T1, '2020-01-01T00:00:00')")
    assert t.type == SqlType.TIMESTAMP and t.fn({"T1": dt.datetime(2021, 1, 1)}) == dt.datetime(2020, 1, 1)


def test_a_string_that_is_not_a_date_still_fails_to_resolve() -> None:
    with pytest.raises(SqlError, match="does not accept parameters"):
        _compile("GREATEST(D1, 'not a date')")


def test_array_of_numbers_and_a_decimal_string_widens_to_decimal() -> None:
    from decimal import Decimal

    scope = Scope()
    scope.add("A", "A", SqlType.INT)
    scope.add("B", "B", SqlType.BIGINT)
    c = ExpressionCompiler(builtin_registry()).compile(parse_expression("ARRAY[null, 10, '2e1', A, B]"), scope)
    assert c.type == SqlType.array(SqlType.decimal(19, 0))
    assert c.fn({"A": 30, "B": 40}) == [None, Decimal(10), Decimal(20), Decimal(30), Decimal(40)]
    with pytest.raises(SqlError, match='invalid input syntax for type INTEGER: "not a number"'):
        ExpressionCompiler(builtin_registry()).compile(parse_expression("ARRAY[1, 'not a number']"), scope)


def test_array_of_structs_with_different_fields_takes_every_field() -> None:
    scope = Scope()
    scope.add("A", "A", SqlType.INT)
    scope.add("B", "B", SqlType.BIGINT)
    c = ExpressionCompiler(builtin_registry()).compile(
        parse_expression("ARRAY[null, STRUCT(x := A, y := B), STRUCT(y := A, z := B)]"), scope)
    assert c.type == SqlType.array(SqlType.struct([("X", SqlType.INT), ("Y", SqlType.BIGINT), ("Z", SqlType.BIGINT)]))
    assert c.fn({"A": 30, "B": 40}) == [None, {"X": 30, "Y": 40, "Z": None}, {"X": None, "Y": 30, "Z": 40}]
    with pytest.raises(SqlError, match="elements must share a type"):
        ExpressionCompiler(builtin_registry()).compile(parse_expression("ARRAY[STRUCT(x := A), STRUCT(x := 'a')]"), scope)


def test_arithmetic_on_a_null_lambda_argument_nulls_the_whole_call() -> None:
    """ksqlDB runs lambdas as Java: x + 5 on a NULL element fails, so TRANSFORM yields NULL."""
    scope = Scope()
    scope.add("XS", "XS", SqlType.array(SqlType.INT))
    errors: list[str] = []
    c = ExpressionCompiler(builtin_registry(), on_error=errors.append).compile(parse_expression("TRANSFORM(XS, x => x + 5)"), scope)
    assert c.fn({"XS": [3, 6]}) == [8, 11] and not errors
    assert c.fn({"XS": [5, None]}) is None and len(errors) == 1
    ts = ExpressionCompiler(builtin_registry()).compile(parse_expression("TRANSFORM(XS, x => ABS(x))"), scope)
    assert ts.fn({"XS": [-5, None]}) == [5, None]  # a function call handles NULL itself
