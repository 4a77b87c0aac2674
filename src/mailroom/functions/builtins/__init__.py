"""ksqlDB's built-in functions, by family."""

from __future__ import annotations

from ..registry import FunctionRegistry
from . import aggregates, collections, datetime, json, math, nulls, strings, table

FAMILIES = (strings, math, datetime, collections, json, nulls, aggregates, table)


def register_all(reg: FunctionRegistry) -> FunctionRegistry:
    for fam in FAMILIES:
        fam.register(reg)
    return reg
