"""Table functions: EXPLODE, CUBE_EXPLODE."""

from __future__ import annotations

import itertools
from typing import Any

from ..registry import FunctionRegistry, Overload


def _explode(a: list | None) -> list:
    return [] if a is None else list(a)


def _cube(a: list | None) -> list[list]:
    if a is None:
        return []
    n = len(a)
    out = []
    for mask in itertools.product([False, True], repeat=n):
        out.append([None if m else v for v, m in zip(a, mask)])
    # ksqlDB: combinations that are identical because of NULL inputs are emitted once
    seen, uniq = set(), []
    for row in out:
        k = repr(row)
        if k not in seen:
            seen.add(k)
            uniq.append(row)
    return uniq


def register(reg: FunctionRegistry) -> None:
    reg.register_table("EXPLODE", Overload(["ARRAY<T>"], "T", _explode, strict=False),
                       description="One row per element of an array.", author="mailroom", version="1", category="TABLE")
    reg.register_table("CUBE_EXPLODE", Overload(["ARRAY<T>"], "ARRAY<T>", _cube, strict=False),
                       description="One row per combination of the elements and NULL (a grouping cube).",
                       author="mailroom", version="1", category="TABLE")
