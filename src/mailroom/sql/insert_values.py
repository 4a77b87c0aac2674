"""INSERT INTO ... VALUES: one record, serialized in the target's formats, produced to its topic."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import ast as A
from .expressions import Scope, cast_function
from .metastore import ROWTIME, SqlError
from .serdes import serdes_for

if TYPE_CHECKING:
    from .executor import SqlExecutor


def insert_values(ex: SqlExecutor, s: A.InsertValues) -> None:
    src = ex.meta.find(s.target)
    if src is None:
        raise SqlError(f"Cannot insert values into an unknown stream/table: `{s.target}`{ex.meta.alternatives(s.target)}", s.target_pos)
    if src.source_only:
        raise SqlError(f"Cannot insert values into read-only {src.kind.lower()}: {src.name}", s.pos)
    header_names = [h.name for h in src.header_columns]
    if header_names and (not s.columns or any(c in header_names for c in s.columns)):
        names = header_names if not s.columns else [c for c in s.columns if c in header_names]
        raise SqlError(f"Cannot insert into HEADER columns: {', '.join(names)}", s.pos)
    cols = s.columns or [c.name for c in src.key_columns + src.value_columns]
    if len(cols) != len(s.values):
        raise SqlError(f"Expected a value for each column. Expected Columns: {cols}. Got {[_text(v) for v in s.values]}", s.pos)
    row = {}
    ts = None
    scope = Scope()
    for name, expr in zip(cols, s.values):
        c = ex.planner.compiler.compile(expr, scope)
        v = c.fn({})
        if name == ROWTIME:
            ts = v
            continue
        col = src.column(name)
        if col is None:
            raise SqlError(f"Column name {name} does not exist.", expr.pos)
        if v is not None and c.type is not None and c.type != col.type:
            conv = cast_function(c.type, col.type)
            if conv is None:
                raise SqlError(f"Expected type {col.type} for field {name} but got {v!r}({c.type})", expr.pos)
            v = conv(v)
        row[name] = v
    kser, vser = serdes_for(src)
    kvals = [row.get(c.name) for c in src.key_columns]
    key = None if not kvals else (kvals[0] if len(kvals) == 1 else tuple(kvals))
    kb = kser.encode([key])[0] if src.key_columns else None
    vb = vser.encode([row])[0]
    ex.runtime.produce(src.topic, kb, vb, int(ts if ts is not None else time.time() * 1000))


def _text(e: A.Expr) -> str:
    from .expressions import render

    return render(e)
