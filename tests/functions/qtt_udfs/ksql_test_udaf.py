"""TEST_UDAF: ksqlDB's test-only aggregate, from test-custom-udaf.json: a sum that supports undo
(so it works on tables), with a STRUCT overload summing the fields A and B.

    TEST_UDAF(BIGINT) -> BIGINT
    TEST_UDAF(INT) -> INT
    TEST_UDAF(DOUBLE) -> DOUBLE
    TEST_UDAF(STRUCT<A INT, B INT>) -> STRUCT<A INT, B INT>

NULL values are skipped. The initial value is 0 (or {A: 0, B: 0}).
"""

from typing import Optional

from mailroom.functions.api import udaf

_DESC = "Test UDAF: a sum with undo."
_AUTHOR = "ksqlDB QTT (ported)"


class _Sum:
    zero: object = 0

    def initialize(self):
        return self.zero

    def aggregate(self, state, value):
        return state if value is None else state + value

    def undo(self, state, value):
        return state if value is None else state - value

    def merge(self, a, b):
        return a + b

    def map(self, state):
        return state


@udaf(name="test_udaf", description=_DESC, author=_AUTHOR, version="1")
class TestUdafLong(_Sum):
    def aggregate(self, state: int, value: Optional[int]) -> int:
        return super().aggregate(state, value)

    def undo(self, state: int, value: Optional[int]) -> int:
        return super().undo(state, value)

    def map(self, state: int) -> int:
        return state


@udaf(name="test_udaf", sql_types=["INT"], returns="INT", description=_DESC)
class TestUdafInt(_Sum):
    def aggregate(self, state: int, value: Optional[int]) -> int:
        return super().aggregate(state, value)

    def undo(self, state: int, value: Optional[int]) -> int:
        return super().undo(state, value)


@udaf(name="test_udaf", description=_DESC)
class TestUdafDouble(_Sum):
    zero = 0.0

    def aggregate(self, state: float, value: Optional[float]) -> float:
        return super().aggregate(state, value)

    def undo(self, state: float, value: Optional[float]) -> float:
        return super().undo(state, value)

    def map(self, state: float) -> float:
        return state


_STRUCT = "STRUCT<A INT, B INT>"


@udaf(name="test_udaf", sql_types=[_STRUCT], returns=_STRUCT, description=_DESC)
class TestUdafStruct:
    def initialize(self) -> dict:
        return {"A": 0, "B": 0}

    def _combine(self, state: dict, value: Optional[dict], sign: int) -> dict:
        if value is None:
            return state
        return {f: (state.get(f) or 0) + sign * (value.get(f) or 0) for f in ("A", "B")}

    def aggregate(self, state: dict, value: Optional[dict]) -> dict:
        return self._combine(state, value, 1)

    def undo(self, state: dict, value: Optional[dict]) -> dict:
        return self._combine(state, value, -1)

    def merge(self, a: dict, b: dict) -> dict:
        return self._combine(a, b, 1)

    def map(self, state: dict) -> dict:
        return dict(state)
