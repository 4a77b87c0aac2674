"""TEST_UDF: ksqlDB's test-only scalar function, ported from the behaviour udf.json shows.

Each overload returns the name of the overload the resolver picked, so the cases check overload
resolution (INT vs BIGINT, a fixed overload beating the variadic one, untyped NULL arguments);
the STRUCT overload returns the struct's ``A`` field.

    TEST_UDF(INT, STRING) -> STRING               'doStuffIntString'
    TEST_UDF(BIGINT, STRING) -> STRING            'doStuffLongString'
    TEST_UDF(BIGINT, BIGINT, STRING) -> STRING    'doStuffLongLongString'
    TEST_UDF(BIGINT...) -> STRING                 'doStuffLongVarargs'
    TEST_UDF(STRUCT<A STRING>) -> STRING          the field A
"""

from typing import Optional

from mailroom.functions.api import udf

_DESC = "Test UDF: reports which overload was chosen."


# the hint int means BIGINT: the INT overload names its SQL types explicitly
@udf(name="test_udf", sql_types=["INT", "STRING"], description=_DESC, author="ksqlDB QTT (ported)", version="1")
def do_stuff_int_string(arg1: Optional[int], arg2: Optional[str]) -> str:
    return "doStuffIntString"


@udf(name="test_udf", description=_DESC)
def do_stuff_long_string(arg1: Optional[int], arg2: Optional[str]) -> str:
    return "doStuffLongString"


@udf(name="test_udf", description=_DESC)
def do_stuff_long_long_string(arg1: Optional[int], arg2: Optional[int], arg3: Optional[str]) -> str:
    return "doStuffLongLongString"


@udf(name="test_udf", description=_DESC)
def do_stuff_long_varargs(*longs: Optional[int]) -> str:
    return "doStuffLongVarargs"


@udf(name="test_udf", sql_types=["STRUCT<A STRING>"], returns="STRING", description=_DESC)
def do_stuff_struct(struct: Optional[dict]) -> Optional[str]:
    return None if struct is None else struct.get("A")
