"""VAR_ARG: ksqlDB's test-only aggregate with variadic column arguments, from variadic-udaf.json.

    VAR_ARG(BIGINT, STRING...) -> BIGINT

Per row it adds the BIGINT column's value and the length of each STRING argument (NULLs count 0);
it starts at 0 and supports undo.

The engine passes the trailing literal arguments of the call as the constructor's
``literal_args`` rather than to ``aggregate`` (``VAR_ARG(FIRST, 'a', SECOND, '3')``: '3'), so
those count as constant STRING arguments of every row.
"""

from typing import Optional

from mailroom.functions.api import udaf


def _weight(v: object) -> int:
    if v is None:
        return 0
    if isinstance(v, str):
        return len(v)
    return int(v)


@udaf(name="var_arg", sql_types=["BIGINT", "STRING"], returns="BIGINT",
      description="Test UDAF with variadic column arguments.", author="ksqlDB QTT (ported)", version="1")
class VarArg:
    def __init__(self, literal_args: tuple = ()) -> None:
        self.constants = [v for v in literal_args]

    def _row(self, first: Optional[int], strings: tuple) -> int:
        return _weight(first) + sum(_weight(s) for s in list(strings) + self.constants)

    def initialize(self) -> int:
        return 0

    def aggregate(self, state: int, first: Optional[int], *strings: Optional[str]) -> int:
        return state + self._row(first, strings)

    def undo(self, state: int, first: Optional[int], *strings: Optional[str]) -> int:
        return state - self._row(first, strings)

    def merge(self, a: int, b: int) -> int:
        return a + b

    def map(self, state: int) -> int:
        return state
