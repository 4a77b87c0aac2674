from decimal import Decimal
from typing import Optional, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionError, FunctionRegistry, udaf, udf, udtf

X = TypeVar("X")


@pytest.fixture
def r():
    return FunctionRegistry()


def test_udf_from_hints_and_metadata(r):
    @udf(name="domain_of", description="Domain of an address", author="mail-team", version="1.2", registry=r)
    def domain_of(address: str) -> str:
        """The part after @."""
        return address.rsplit("@", 1)[-1]

    res = r.resolve_scalar("DOMAIN_OF", [T.STRING])
    assert res.return_type == T.STRING and res.fn("a@example.com") == "example.com"
    assert res.fn(None) is None  # non-Optional parameter: NULL in, NULL out, no call
    d = r.describe("domain_of")
    assert (d["author"], d["version"], d["description"]) == ("mail-team", "1.2", "Domain of an address")
    assert d["overloads"][0]["signature"] == "DOMAIN_OF(address STRING) -> STRING"
    assert d["overloads"][0]["description"] == "The part after @."


def test_overloads_optional_and_variadic(r):
    @udf(name="f", registry=r)
    def f_int(x: int) -> str:
        return "bigint"

    @udf(name="f", registry=r)
    def f_str(x: Optional[str]) -> str:
        return "string:" + str(x)

    @udf(name="joinall", registry=r)
    def joinall(sep: str, *parts: str) -> str:
        return sep.join(parts)

    assert r.resolve_scalar("f", [T.BIGINT]).fn(1) == "bigint"
    assert r.resolve_scalar("f", [T.INT]).fn(1) == "bigint"  # INT widens to BIGINT
    assert r.resolve_scalar("f", [T.STRING]).fn(None) == "string:None"
    assert r.resolve_scalar("joinall", [T.STRING, T.STRING, T.STRING]).fn("-", "a", "b") == "a-b"
    assert len(r.describe("f")["overloads"]) == 2


def test_explicit_sql_types_and_generics(r):
    @udf(name="scale_up", sql_types=["DECIMAL(10, 2)"], returns="DECIMAL(12, 2)", registry=r)
    def scale_up(x: Decimal) -> Decimal:
        return x * 100

    res = r.resolve_scalar("scale_up", [T.decimal(10, 2)])
    assert res.return_type == T.decimal(12, 2) and res.fn(Decimal("1.50")) == Decimal("150.00")

    @udf(name="first_of", registry=r)
    def first_of(xs: list[X]) -> X:
        return xs[0]

    assert r.resolve_scalar("first_of", [T.array(T.DATE)]).return_type == T.DATE
    with pytest.raises(FunctionError, match="DECIMAL"):
        @udf(name="bad", registry=r)
        def bad(x: Decimal) -> Decimal:
            return x


def test_vectorized_udf(r):
    @udf(name="plus_one", vectorized=True, sql_types=[T.BIGINT], returns=T.BIGINT, registry=r)
    def plus_one(xs):
        return pc.add(xs, 1)

    res = r.resolve_scalar("plus_one", [T.BIGINT])
    assert res.vectorized is not None
    assert res.vectorized(pa.array([1, 2, None])).to_pylist() == [2, 3, None]
    assert res.fn(41) == 42

    @udf(name="double_it", vectorized=True, sql_types=[T.DOUBLE], returns=T.DOUBLE, registry=r)
    def double_it(s):
        return pl.Series(s) * 2 if not isinstance(s, pl.Series) else s * 2

    assert r.resolve_scalar("double_it", [T.DOUBLE]).fn(1.5) == 3.0


def test_configurable_udf(r):
    @udf(name="greet", config=True, registry=r)
    def greet(cfg: dict, name: str) -> str:
        return cfg.get("ksql.functions.greet.prefix", "hi") + " " + name

    res = r.resolve_scalar("greet", [T.STRING])
    assert res.fn("bob") == "hi bob"
    r.config["ksql.functions.greet.prefix"] = "hello"
    r.config["ksql.functions.other.prefix"] = "nope"
    assert res.fn("bob") == "hello bob"


def test_udaf_and_udtf(r):
    @udaf(name="sum_len", description="sum of lengths", registry=r)
    class SumLen:
        def initialize(self) -> int:
            return 0

        def aggregate(self, state: int, s: str) -> int:
            return state + len(s)

        def undo(self, state: int, s: str) -> int:
            return state - len(s)

        def merge(self, a: int, b: int) -> int:
            return a + b

        def map(self, state: int) -> int:
            return state

    a = r.resolve_aggregate("SUM_LEN", [T.STRING])
    assert a.return_type == T.BIGINT
    s = a.aggregate(a.aggregate(a.initialize(), "ab"), "cde")
    assert a.result(s) == 5 and a.result(a.undo(s, "ab")) == 3 and a.merge(1, 2) == 3

    @udtf(name="chars", registry=r)
    def chars(s: str) -> list[str]:
        return list(s)

    t = r.resolve_table("chars", [T.STRING])
    assert t.return_type == T.STRING and t.fn("ab") == ["a", "b"] and t.fn(None) == []
