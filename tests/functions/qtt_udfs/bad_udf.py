"""BAD_UDF: ksqlDB's test-only scalar function that fails on purpose (group-by.json,
partition-by.json, table-functions.json). The engine turns the exception into NULL plus a
processing-log entry.

    BAD_UDF(BOOLEAN) -> INT    raises when the argument is true, else 0
    BAD_UDF(INT) -> INT        always raises
    BAD_UDF(STRING) -> STRING  fails every other call (the 1st, 3rd, ...), else the argument

The STRING overload keeps a call counter; ksqlDB makes a UDF instance per query, while a Python
UDF is one function for the whole registry, so the counter runs across queries (see
``reset_counter``).
"""

import threading
from typing import Optional

from mailroom.functions.api import udf

_DESC = "Test UDF that throws."
_lock = threading.Lock()
_calls = 0


class BadUdfError(RuntimeError):
    """The failure BAD_UDF raises on purpose."""


def reset_counter() -> None:
    global _calls
    with _lock:
        _calls = 0


@udf(name="bad_udf", sql_types=["BOOLEAN"], returns="INT", description=_DESC, author="ksqlDB QTT (ported)", version="1")
def might_blow_up(should_throw: Optional[bool]) -> int:
    if should_throw:
        raise BadUdfError("boom!")
    return 0


@udf(name="bad_udf", sql_types=["INT"], returns="INT", description=_DESC)
def blow_up(arg: Optional[int]) -> int:
    raise BadUdfError("boom!")


@udf(name="bad_udf", description=_DESC)
def every_other(arg: Optional[str]) -> str:
    global _calls
    with _lock:
        n = _calls
        _calls += 1
    if n % 2 == 0:
        raise BadUdfError("boom!")
    return arg
