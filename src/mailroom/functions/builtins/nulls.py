"""NULL handling: COALESCE, IFNULL, NULLIF."""

from __future__ import annotations

from typing import Any

from ..registry import FunctionError, FunctionRegistry
from ..typing_rules import common_type_of
from ._util import O, scalar


def _coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None:
            return a
    return None


def _common(types: list[Any]) -> Any:
    t = common_type_of(types)
    if t is None:
        raise FunctionError("cannot infer the result type: the arguments are all NULL or of incompatible types")
    return t


def register(reg: FunctionRegistry) -> None:
    sc = lambda name, *ovs, d="": scalar(reg, name, *ovs, description=d, category="NULLS")  # noqa: E731
    sc("COALESCE", O(["T", "T"], "T", _coalesce, variadic=1, strict=False), d="The first non-NULL argument.")
    sc("IFNULL", O(["T", "T"], "T", lambda a, b: b if a is None else a, strict=False), d="IFNULL(x, alt): alt when x is NULL.")
    sc("NULLIF", O(["T", "T"], "T", lambda a, b: None if a is not None and a == b else a, strict=False),
       d="NULLIF(x, y): NULL when x = y, else x.")
    sc("AS_VALUE", O(["T"], "T", lambda a: a, strict=False),
       d="AS_VALUE(key column): a copy of a key column in the value (ksqlDB's key-to-value projection).")
