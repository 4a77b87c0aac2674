"""The conformance runner's comparison rules that mirror ksqlDB's (Jackson doubles, inexact mode)."""

from decimal import Decimal

from mailroom.sql.qtt import _JavaExponent, same


def test_double_java_writes_in_exponent_form_matches_an_integer() -> None:
    assert same(1000000000000, _JavaExponent("1.0E12"))
    assert not same(1000000000001, _JavaExponent("1.0E12"))
    assert not same(1, Decimal("1.0"))  # an integer where a DOUBLE was written in plain form still differs


def test_inexact_numeric_comparison_uses_six_decimal_places() -> None:
    assert same({"D": Decimal("8634.659796579544")}, {"D": Decimal("8634.659796579546")}, approx=True)
    assert not same({"D": Decimal("8634.659796579544")}, {"D": Decimal("8634.659796579546")})
    assert not same(Decimal("1.5"), Decimal("1.6"), approx=True)
