"""A CREATE ... AS SELECT as ksqlDB prints it in its error messages ("Statement: ..."): each
select item on its own line with its alias, columns qualified by their source, and the query's
clauses on lines of their own.

    CREATE TABLE OUTPUT AS SELECT
      TEST.F2 F2,
      COUNT(*) KSQL_COL_0
    FROM TEST TEST
    GROUP BY TEST.F2
    EMIT CHANGES

Only single-source queries without a window are printed (``format_create_as`` gives None for the
rest): the other forms are not needed by any message yet.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import ast as A
from .expressions import render


def format_create_as(stmt: A.CreateAsSelect, source_columns: list[str]) -> str | None:
    """``stmt`` in ksqlDB's form, or None when it is not a form this prints. ``source_columns``
    are the source's column names (the struct-field aliases avoid them)."""
    from .planner import _FieldAliases, auto_column_name  # the planner's own alias rules

    q = stmt.query
    if not isinstance(q.from_, A.SourceRef) or q.window is not None:
        return None
    alias = q.from_.alias or q.from_.name
    items: list[str] = []
    names: set[str] = set()
    fields = _FieldAliases(source_columns)
    auto = 0
    for it in q.select:
        if not isinstance(it, A.SelectItem):
            return None
        name = it.alias
        if name is None:
            if isinstance(it.expr, A.ColumnRef):
                name = it.expr.name
            elif isinstance(it.expr, A.Dereference):
                name = fields.next(it.expr.field)
            else:
                name, auto = auto_column_name(names, auto)
        names.add(name)
        items.append(f"  {_text(it.expr, alias)} {name}")
    with_ = f" WITH ({', '.join(f'{k}={_prop(v)}' for k, v in stmt.props.items())})" if stmt.props else ""
    lines = [f"CREATE {stmt.kind} {stmt.name}{with_} AS SELECT", ",\n".join(items), f"FROM {q.from_.name} {alias}"]
    if q.where is not None:
        lines.append(f"WHERE {_text(q.where, alias)}")
    if q.group_by:
        lines.append("GROUP BY " + ", ".join(_text(g, alias) for g in q.group_by))
    if q.partition_by:
        lines.append("PARTITION BY " + ", ".join(_text(p, alias) for p in q.partition_by))
    if q.having is not None:
        lines.append(f"HAVING {_text(q.having, alias)}")
    lines.append(f"EMIT {q.emit or 'CHANGES'}")
    return "\n".join(lines)


def _text(e: A.Expr, alias: str) -> str:
    return render(_qualified(e, alias))


def _qualified(e: Any, alias: str) -> Any:
    """``e`` with every unqualified column reference qualified by ``alias``."""
    if isinstance(e, A.ColumnRef):
        return e if e.source else A.ColumnRef(e.name, alias, pos=e.pos)
    if isinstance(e, list):
        return [_qualified(x, alias) for x in e]
    if isinstance(e, A.Expr) and dataclasses.is_dataclass(e) and not isinstance(e, A.Lambda):
        return dataclasses.replace(e, **{f.name: _qualified(getattr(e, f.name), alias)
                                         for f in dataclasses.fields(e) if f.init and f.name != "pos"})
    return e


def _prop(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
