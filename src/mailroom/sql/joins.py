"""Joins in SQL: stream-stream (WITHIN), stream-table, table-table (and foreign-key) onto the
engine's join operators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import ast as A
from .metastore import SqlError

if TYPE_CHECKING:
    from .planner import Planner


def plan_join(planner: Planner, top: Any, j: A.Join):
    raise SqlError("JOIN is not supported by mailroom's SQL layer yet", j.pos)
