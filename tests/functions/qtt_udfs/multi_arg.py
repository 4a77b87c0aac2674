"""MULTI_ARG, FOUR_ARG, FIVE_ARG: ksqlDB's test-only aggregates with several column arguments
followed by initial (constant) arguments, from multi-arg-udaf.json.

    MULTI_ARG(BIGINT, STRING, INT, STRING...) -> BIGINT
    FOUR_ARG(BIGINT, STRING, STRING, STRING, INT, STRING...) -> BIGINT
    FIVE_ARG(BIGINT, STRING, STRING, STRING, INT, INT, STRING...) -> BIGINT

The leading arguments are columns; the INT and the STRINGs after it are the initial arguments and
must be literals. The aggregate starts at ``init + sum(len(s) for s in the STRINGs)`` and adds,
per row, each BIGINT/INT column's value and each STRING column's length (NULLs count 0).

How the engine hands the arguments over: the trailing literal arguments of the call arrive as the
constructor's ``literal_args`` and are not passed to ``aggregate``; when a column argument is
itself a literal (``MULTI_ARG(FIRST, 'hello', 5, ...)``) it is among them too. The initial INT is
therefore the last non-STRING literal: literals before it are constant column values, and the
STRINGs after it are the variadic initial arguments.
"""

from typing import Any, Optional

from mailroom.functions.api import udaf

_MISSING: Any = object()
_DESC = "Test UDAF with several column arguments and initial arguments."
_AUTHOR = "ksqlDB QTT (ported)"


def _weight(v: Any) -> int:
    if v is None or v is _MISSING:
        return 0
    if isinstance(v, str):
        return len(v)
    return int(v)


class _MultiArg:
    columns = 2

    def __init__(self, literal_args: tuple = ()) -> None:
        lits = list(literal_args)
        i = len(lits)
        while i > 0 and isinstance(lits[i - 1], str):
            i -= 1
        if i == 0:
            raise ValueError(f"{type(self).__name__}: the initial INT argument must be a literal")
        self.constant_columns = lits[: i - 1]
        self.init = int(lits[i - 1])
        self.var_args = lits[i:]

    def _row(self, values: tuple) -> int:
        cols = [v for v in values if v is not _MISSING][: self.columns - len(self.constant_columns)]
        return sum(_weight(v) for v in cols + self.constant_columns)

    def initialize(self) -> int:
        return self.init + sum(len(s) for s in self.var_args)

    def merge(self, a: int, b: int) -> int:
        return a + b

    def map(self, state: int) -> int:
        return state


@udaf(name="multi_arg", sql_types=["BIGINT", "STRING", "INT", "STRING"], returns="BIGINT",
      description=_DESC, author=_AUTHOR, version="1")
class MultiArg(_MultiArg):
    columns = 2

    def aggregate(self, state: int, first: Optional[int] = _MISSING, second: Optional[str] = _MISSING,
                  init: int = 0, *var_args: str) -> int:
        return state + self._row((first, second))

    def undo(self, state: int, first: Optional[int] = _MISSING, second: Optional[str] = _MISSING,
             init: int = 0, *var_args: str) -> int:
        return state - self._row((first, second))


@udaf(name="four_arg", sql_types=["BIGINT", "STRING", "STRING", "STRING", "INT", "STRING"], returns="BIGINT",
      description=_DESC, author=_AUTHOR, version="1")
class FourArg(_MultiArg):
    columns = 4

    def aggregate(self, state: int, first: Optional[int] = _MISSING, second: Optional[str] = _MISSING,
                  third: Optional[str] = _MISSING, fourth: Optional[str] = _MISSING,
                  init: int = 0, *var_args: str) -> int:
        return state + self._row((first, second, third, fourth))

    def undo(self, state: int, first: Optional[int] = _MISSING, second: Optional[str] = _MISSING,
             third: Optional[str] = _MISSING, fourth: Optional[str] = _MISSING,
             init: int = 0, *var_args: str) -> int:
        return state - self._row((first, second, third, fourth))


@udaf(name="five_arg", sql_types=["BIGINT", "STRING", "STRING", "STRING", "INT", "INT", "STRING"], returns="BIGINT",
      description=_DESC, author=_AUTHOR, version="1")
class FiveArg(_MultiArg):
    columns = 5

    def aggregate(self, state: int, first: Optional[int] = _MISSING, second: Optional[str] = _MISSING,
                  third: Optional[str] = _MISSING, fourth: Optional[str] = _MISSING, fifth: Optional[int] = _MISSING,
                  init: int = 0, *var_args: str) -> int:
        return state + self._row((first, second, third, fourth, fifth))

    def undo(self, state: int, first: Optional[int] = _MISSING, second: Optional[str] = _MISSING,
             third: Optional[str] = _MISSING, fourth: Optional[str] = _MISSING, fifth: Optional[int] = _MISSING,
             init: int = 0, *var_args: str) -> int:
        return state - self._row((first, second, third, fourth, fifth))
