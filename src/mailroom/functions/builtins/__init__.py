"""ksqlDB's built-in functions, by family."""

from __future__ import annotations

from ..registry import FunctionRegistry
from . import aggregates, collections, datetime, json, math, nulls, percentiles, ranked, strings, table

FAMILIES = (strings, math, datetime, collections, json, nulls, aggregates, ranked, percentiles, table)


def register_all(reg: FunctionRegistry) -> FunctionRegistry:
    for fam in FAMILIES:
        fam.register(reg)
    return reg
