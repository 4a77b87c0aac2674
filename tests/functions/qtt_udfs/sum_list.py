"""SUM_LIST: ksqlDB's test-only aggregate from sum.json: the running sum of every element of
every array (NULL arrays and NULL elements skipped), with undo.

    SUM_LIST(ARRAY<DOUBLE>) -> DOUBLE
    SUM_LIST(ARRAY<INT>) -> INT
    SUM_LIST(ARRAY<BIGINT>) -> BIGINT
"""

from typing import Optional

from mailroom.functions.api import udaf

_DESC = "Sums the elements of the arrays."


class _SumList:
    zero: object = 0

    def initialize(self):
        return self.zero

    def aggregate(self, state, values):
        return state + sum(v for v in values or () if v is not None)

    def undo(self, state, values):
        return state - sum(v for v in values or () if v is not None)

    def merge(self, a, b):
        return a + b


@udaf(name="sum_list", sql_types=["ARRAY<DOUBLE>"], returns="DOUBLE", description=_DESC,
      author="ksqlDB QTT (ported)", version="1")
class SumListDouble(_SumList):
    zero = 0.0

    def aggregate(self, state: float, values: Optional[list[float]]) -> float:
        return float(super().aggregate(state, values))

    def undo(self, state: float, values: Optional[list[float]]) -> float:
        return float(super().undo(state, values))

    def map(self, state: float) -> float:
        return state


@udaf(name="sum_list", sql_types=["ARRAY<INT>"], returns="INT", description=_DESC)
class SumListInt(_SumList):
    def aggregate(self, state: int, values: Optional[list[int]]) -> int:
        return super().aggregate(state, values)

    def undo(self, state: int, values: Optional[list[int]]) -> int:
        return super().undo(state, values)

    def map(self, state: int) -> int:
        return state


@udaf(name="sum_list", sql_types=["ARRAY<BIGINT>"], returns="BIGINT", description=_DESC)
class SumListLong(_SumList):
    def aggregate(self, state: int, values: Optional[list[int]]) -> int:
        return super().aggregate(state, values)

    def undo(self, state: int, values: Optional[list[int]]) -> int:
        return super().undo(state, values)

    def map(self, state: int) -> int:
        return state
