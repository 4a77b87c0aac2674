"""WHENCONDITION and WHENRESULT: ksqlDB's test-only scalar functions from case-expression.json,
used to check that CASE evaluates its branches lazily: each returns its first argument and
raises when its second argument is false.

    WHENCONDITION(BOOLEAN, BOOLEAN) -> BOOLEAN
    WHENRESULT(INT, BOOLEAN) -> INT
"""

from typing import Optional

from mailroom.functions.api import udf

_AUTHOR = "ksqlDB QTT (ported)"


class NotLazyError(RuntimeError):
    """Raised when a branch that should not run was evaluated."""


@udf(name="whencondition", description="Returns the first argument; raises if the second is false.",
     author=_AUTHOR, version="1")
def when_condition(value: Optional[bool], success: Optional[bool]) -> bool:
    if not success:
        raise NotLazyError("WHENCONDITION was evaluated when it should not have been")
    return value


@udf(name="whenresult", sql_types=["INT", "BOOLEAN"], returns="INT",
     description="Returns the first argument; raises if the second is false.", author=_AUTHOR, version="1")
def when_result(value: Optional[int], success: Optional[bool]) -> int:
    if not success:
        raise NotLazyError("WHENRESULT was evaluated when it should not have been")
    return value
