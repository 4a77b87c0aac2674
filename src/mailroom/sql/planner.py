"""The planner: a SELECT onto the engine's DSL (a Topology), with the output's schema.

Records flow through the topology as (key, row): ``row`` is a dict of every column by name
(joined rows add ``ALIAS.NAME`` entries), the key is the key column's value (a tuple for
several key columns, a :class:`~mailroom.engine.Windowed` for windowed results). Each source
builds its rows in the source node's ``prepare`` hook (pseudo-columns, headers, event time).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ..engine import Processor, SessionWindows, TimeWindows, Topology, Windowed
from ..engine.aggregators import aggregator
from ..engine.batch import Batch
from ..engine.serdes import WindowedSerde
from ..formats.types import Column, SqlType
from ..functions.registry import FunctionError, FunctionRegistry
from ..functions.typing_rules import type_name
from . import ast as A
from .expressions import Compiled, ExpressionCompiler, Scope, render
from .metastore import (
    PSEUDO_COLUMNS,
    ROWOFFSET,
    ROWPARTITION,
    ROWTIME,
    WINDOWEND,
    WINDOWSTART,
    DataSource,
    HeaderColumn,
    MetaStore,
    SqlError,
    WindowInfo,
)
from .serdes import ColumnarValueSerde, KeySerde, ValueSerde, serdes_for
from .columnar import SqlAggregator, VectorFilter, VectorMapValues, VectorRekey
from .vectorized import Unsupported, VectorCompiler, dtype_of

_RESERVED_NAMES = {ROWTIME, WINDOWSTART, WINDOWEND, ROWPARTITION, ROWOFFSET}
_GK = "\0GK"
#: marks the row of a stream record whose value is NULL (projections keep it NULL)
NULL_VALUE = "\0NULL"
_AGG = "\0AGG"
#: the columnar paths (vectorized WHERE / projections / aggregate arguments, batch decode, batch
#: folding of aggregates); MAILROOM_SQL_ROW_PATH=1 turns them off (for comparisons and as an escape hatch)
COLUMNAR = os.environ.get("MAILROOM_SQL_ROW_PATH", "") in ("", "0")


@dataclass
class OutputColumn:
    name: str
    type: SqlType
    fn: Callable[[dict], Any]
    key: bool = False


@dataclass
class Plan:
    """What a query compiles to: its topology (ending in a sink, if it has one) and the schema."""

    topology: Topology
    key_columns: list[Column]
    value_columns: list[Column]
    is_table: bool
    window: WindowInfo | None
    source_topics: list[str]
    #: for transient queries: the node to read results from (a stream of (key, row))
    sources: list[DataSource] = field(default_factory=list)
    partitions: int = 1


class _Side:
    """One input of a query: its engine stream/table, scope entries and metadata."""

    def __init__(self, src: DataSource, alias: str, node: Any, is_table: bool) -> None:
        self.src = src
        self.alias = alias
        self.node = node
        self.is_table = is_table


class Planner:
    """Plans queries against a metastore, compiling expressions with a function registry."""

    def __init__(self, metastore: MetaStore, registry: FunctionRegistry, *, on_error: Callable[[str], None] | None = None) -> None:
        self.meta = metastore
        self.registry = registry
        #: the session's properties (the executor shares its dict): function configuration
        self.properties: dict[str, Any] = {}
        self.on_error = on_error or (lambda msg: None)
        self.compiler = ExpressionCompiler(registry, metastore.types, self.on_error)

    def _vectorize(self, build: Callable[[VectorCompiler], list]) -> tuple[list, dict] | None:
        """``build``'s polars expressions and the columns they read, or None when an expression
        has no vectorized form (the row path is used)."""
        if not COLUMNAR:
            return None
        vc = VectorCompiler(self.compiler)
        try:
            return build(vc), vc.columns
        except (Unsupported, SqlError, FunctionError, ValueError, TypeError):
            return None

    def _uncast(self, call: A.FunctionCall, r: Any) -> Any:
        """The aggregate resolved for arguments already in its parameter types (the columnar
        arguments are cast on the column), so no per-value implicit cast wraps it."""
        try:
            return self.registry.resolve_aggregate(call.name, list(r.param_types), _literal_args(call), self.properties)
        except FunctionError:
            return r

    # -- sources ------------------------------------------------------------------------------
    def _source_node(self, top: Topology, src: DataSource, joined: bool = False):
        kser, vser = serdes_for(src)
        if COLUMNAR and not src.is_table and src.window is None and _basic(src.value_columns):
            # decoded a batch at a time into columns (a batch the fast path cannot read: per record)
            vser = ColumnarValueSerde(src.value_columns, src.value_format, src.value_props)
        key_serde: Any = kser
        if src.window is not None:
            key_serde = WindowedSerde(kser, session=src.window.kind == "SESSION", size_ms=src.window.size_ms)
        prepare = make_prepare(src)
        if src.is_table:
            return top.table(src.topic, key_serde=key_serde, value_serde=vser, prepare=prepare), True
        return top.stream(src.topic, key_serde=key_serde, value_serde=vser, prepare=prepare), False

    def scope_of(self, src: DataSource, alias: str | None = None, qualify: bool = False) -> Scope:
        scope = Scope()
        self._fill_scope(scope, src, alias, qualify)
        return scope

    def _fill_scope(self, scope: Scope, src: DataSource, alias: str | None, qualify: bool) -> None:
        cols = [(c.name, c.type) for c in src.all_columns()]
        cols += list(PSEUDO_COLUMNS.items())
        if src.window is not None:
            cols += [(WINDOWSTART, SqlType.BIGINT), (WINDOWEND, SqlType.BIGINT)]
        for name, t in cols:
            key = f"{alias}.{name}" if qualify else name
            scope.add(name, key, t, alias)

    # -- entry point --------------------------------------------------------------------------
    def plan(self, q: A.Query, sink_name: str | None, *, sink_props: dict[str, Any] | None = None,
             sink: DataSource | None = None, transient: bool = False) -> tuple[Plan, Any, list[OutputColumn]]:
        """Plan ``q``. Returns the plan, the final engine stream (for a sink or a transient reader)
        and the output columns. The caller attaches the sink (see :meth:`attach_sink`)."""
        top = Topology()
        sides, scope, stream, is_table = self._from(top, q.from_)
        primary = sides[0].src
        window = primary.window
        if q.where is not None:
            pred = self.compiler.predicate(q.where, scope)
            if not is_table:  # a stream record without a value never passes a WHERE (as ksqlDB's filter)
                pred = lambda row, p=pred: row is not None and NULL_VALUE not in row and p(row)  # noqa: E731
            vec = None if is_table else self._vectorize(lambda vc: [vc.compile(q.where, scope).as_type(SqlType.BOOLEAN)])
            if vec is not None:  # columnar: one polars expression over the batch
                (pexpr,), cols = vec
                stream = stream._then("FILTER", lambda n: VectorFilter(n, pexpr, cols, NULL_VALUE, pred))
            else:
                stream = stream.filter(lambda k, v, p=pred: p(v))
        if self._is_aggregate(q):
            kafka = [s.src.name for s in sides if s.src.value_format == "KAFKA"]
            if q.group_by and kafka:
                raise SqlError(f"Source(s) {', '.join(kafka)} are using the 'KAFKA' value format. This format does not yet support GROUP BY.", q.pos)
            stream, outputs, window = self._aggregate(q, scope, stream, is_table, sink_name or "", primary,
                                                      single_source=len(sides) == 1)
            is_table = True
        else:
            if q.having is not None:
                raise SqlError("HAVING requires a GROUP BY clause.", q.having.pos)
            stream, outputs = self._project(q, scope, stream, is_table, sides, sink_name or "", transient)
        key_cols = [Column(o.name, o.type) for o in outputs if o.key]
        value_cols = [Column(o.name, o.type) for o in outputs if not o.key]
        if not value_cols and not transient:
            raise SqlError("The projection contains no value columns.", q.pos)
        plan = Plan(top, key_cols, value_cols, is_table, window, [s.src.topic for s in sides], [s.src for s in sides],
                    max(s.src.partitions for s in sides))
        return plan, stream, outputs

    # -- FROM -----------------------------------------------------------------------------------
    def _from(self, top: Topology, rel: A.Relation):
        if isinstance(rel, A.SourceRef):
            src = self.meta.get(rel.name, rel.pos)
            node, is_table = self._source_node(top, src)
            alias = rel.alias or rel.name
            scope = Scope()
            self._fill_scope(scope, src, alias, qualify=False)
            return [_Side(src, alias, node, is_table)], scope, node, is_table
        if isinstance(rel, A.Join):
            return self._join(top, rel)
        raise SqlError(f"unsupported FROM clause: {type(rel).__name__}", rel.pos)

    def _join(self, top: Topology, j: A.Join):
        from .joins import plan_join

        return plan_join(self, top, j)

    # -- projection without aggregation -----------------------------------------------------------
    def _select_items(self, q: A.Query, scope: Scope, sides: list[_Side], transient: bool) -> list[tuple[str, A.Expr]]:
        items: list[tuple[str, A.Expr]] = []
        names: set[str] = set()
        auto = 0
        joined = len(sides) > 1
        field_aliases = _FieldAliases(c.name for side in sides for c in side.src.all_columns())
        for it in q.select:
            if isinstance(it, A.AllColumns):
                if joined and it.source is None and getattr(self, "_join_synthetic", None):
                    items.append((self._join_synthetic, A.ColumnRef(self._join_synthetic, pos=it.pos)))
                for side in sides:
                    if it.source is not None and it.source != side.alias:
                        continue
                    cols = side.src.all_columns()
                    if q.partition_by is not None and not joined:
                        # ksqlDB repartitions first: the old key columns follow the value columns
                        n = len(side.src.key_columns)
                        cols = cols[n:] + cols[:n]
                    for c in cols:
                        name = f"{side.alias}_{c.name}" if joined else c.name
                        items.append((name, A.ColumnRef(c.name, side.alias if joined else None, pos=it.pos)))
                    if joined and q.partition_by is not None:  # ksqlDB: a repartitioned join's * has the pseudo columns
                        for pc in PSEUDO_COLUMNS:
                            items.append((f"{side.alias}_{pc}", A.ColumnRef(pc, side.alias, pos=it.pos)))
                    if side.src.window is not None and transient:
                        items.append((WINDOWSTART, A.ColumnRef(WINDOWSTART, pos=it.pos)))
                        items.append((WINDOWEND, A.ColumnRef(WINDOWEND, pos=it.pos)))
                continue
            alias = it.alias
            if alias is None:
                if isinstance(it.expr, A.ColumnRef):
                    alias = f"{it.expr.source}_{it.expr.name}" if (joined and it.expr.source and it.expr.name in scope.ambiguous) else it.expr.name
                elif isinstance(it.expr, A.Dereference):
                    alias = field_aliases.next(it.expr.field)
                else:
                    alias, auto = auto_column_name(names, auto)
            if it.alias is not None and it.alias in _RESERVED_NAMES:
                raise SqlError(f"`{it.alias}` is a reserved column name. You cannot use it as an alias for a column.", it.pos)
            if alias in names:
                t = self._type_of_item(it.expr, scope)
                raise SqlError(f"Duplicate value columns found in schema: `{alias}`" + (f" {type_name(t)}" if t else ""), it.pos)
            names.add(alias)
            items.append((alias, it.expr))
        return items

    def _project(self, q: A.Query, scope: Scope, stream, is_table: bool, sides: list[_Side], sink_name: str, transient: bool):
        items = self._select_items(q, scope, sides, transient)
        primary = sides[0].src
        key_names = [c.name for c in primary.key_columns]
        outputs: list[OutputColumn] = []
        table_functions = [(n, e) for n, e in items if isinstance(e, A.FunctionCall) and self.registry.kind_of(e.name) == "TABLE"]
        if q.partition_by is not None:
            if is_table:
                raise SqlError("Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.", q.pos)
            return self._partition_by(q, scope, stream, items, sink_name, transient, key_names)
        # every expression is typed first: ksqlDB reports a function it cannot resolve before a
        # key column missing from the projection
        for name, e in items:
            if (name, e) not in table_functions:
                self.compiler.compile(e, scope)
        # the key columns carried over: the source's (or the join's) key, found in the projection
        key_exprs = self._key_exprs(sides)
        key_found: dict[int, str] = {}
        for name, e in items:
            for ki, ke in enumerate(key_exprs):
                if _same_column(e, ke, scope):
                    if ki in key_found and len(sides) == 1 and not transient:
                        raise SqlError(f"The projection contains a key column (`{render(ke)}`) more than once, "
                                       f"aliased as: {key_found[ki]} and {name}.", q.pos)
                    key_found.setdefault(ki, name)
        if len(sides) > 1:  # a join: one key column, the (left, else right) join expression the projection names
            from .joins import pick_join_key

            key_exprs, key_found = pick_join_key(self, items, scope, sink_name, transient)
        for name, e in items:
            if any(name == key_found.get(ki) for ki in range(len(key_exprs))) and not transient:
                c = self.compiler.compile(e, scope)
                outputs.append(OutputColumn(name, c.type or SqlType.STRING, c.fn, key=True))
        if not transient and len(key_found) < len(key_exprs) and key_exprs:
            if len(sides) > 1:
                opts = " or ".join(render(x) for x in key_exprs)
                raise SqlError(f"The query used to build `{sink_name}` must include the join expressions {opts} in its projection (eg, SELECT {render(key_exprs[0])}...).", q.pos)
            # ksqlDB names every key column of the source, not only the missing ones
            required = [render(x) for x in key_exprs]
            what = "key column" if len(required) == 1 else "key columns"
            raise SqlError(f"The query used to build `{sink_name}` must include the {what} {_and_list(required)} in its projection (eg, SELECT {', '.join(required)}...).", q.pos)
        for name, e in items:
            if any(o.name == name for o in outputs):
                continue
            if (name, e) in table_functions:
                continue
            c = self.compiler.compile(e, scope)
            outputs.append(OutputColumn(name, c.type or SqlType.STRING, c.fn))
        key_out = [o for o in outputs if o.key]
        val_out = [o for o in outputs if not o.key]
        if table_functions:
            if is_table:
                raise SqlError("Table source is not supported with table functions", q.pos)
            return self._explode(stream, scope, items, table_functions, key_out, val_out, outputs)

        keys, vals = key_out, val_out

        def project(row, vals=val_out, keys=key_out):
            if row is None or NULL_VALUE in row:
                return None
            out = {o.name: o.fn(row) for o in keys}
            for o in vals:
                out[o.name] = o.fn(row)
            return out

        if is_table:
            return stream.map_values(project), outputs
        exprs = {o.name: e for name, e in items for o in outputs if o.name == name}
        vec = self._vectorize(lambda vc: [(o.name, vc.compile(exprs[o.name], scope).as_type(o.type)) for o in keys + vals]
                              ) if len(exprs) == len(outputs) else None
        if vec is not None:
            vexprs, cols = vec
            return stream._then("MAPVALUES", lambda n: VectorMapValues(n, vexprs, cols, NULL_VALUE, project)), outputs
        return stream.map_values(project), outputs

    def _single_source_name(self, q: A.Query) -> str | None:
        rel = q.from_
        return (rel.alias or rel.name) if isinstance(rel, A.SourceRef) else None

    def _key_exprs(self, sides: list[_Side]) -> list[A.Expr]:
        if len(sides) == 1:
            s = sides[0]
            return [A.ColumnRef(c.name) for c in s.src.key_columns]
        return list(getattr(self, "_join_key_exprs", []))

    def _explode(self, stream, scope, items, table_functions, key_out, val_out, outputs):
        """Table functions (EXPLODE ...): one output row per element; several functions zip,
        shorter ones padded with NULL (ksqlDB's rule)."""
        tfs = []
        for name, e in table_functions:
            args = [self.compiler.compile(a, scope) for a in e.args]
            try:
                r = self.registry.resolve_table(e.name, [a.type for a in args])
            except FunctionError as ex:
                raise SqlError(str(ex), e.pos) from None
            tfs.append((name, r.fn, [a.fn for a in args]))
            outputs.append(OutputColumn(name, r.return_type, lambda row: None))
        order = [n for n, _ in items]
        outputs.sort(key=lambda o: order.index(o.name) if o.name in order else -1)
        onerr = self.on_error

        def explode(key, row):
            if row is None:
                return []
            lists = []
            for _, fn, afns in tfs:
                try:
                    lists.append(fn(*[f(row) for f in afns]) or [])
                except Exception as ex:  # noqa: BLE001
                    onerr(f"table function failed: {ex}")
                    lists.append([])
            n = max((len(x) for x in lists), default=0)
            base = {o.name: o.fn(row) for o in key_out + val_out}
            out = []
            for i in range(n):
                r = dict(base)
                for (name, _, _), vals in zip(tfs, lists):
                    r[name] = vals[i] if i < len(vals) else None
                out.append((key, r))
            return out

        return stream.flat_map(explode).repartition() if False else stream.flat_map(explode), outputs

    def _partition_by(self, q: A.Query, scope: Scope, stream, items, sink_name: str, transient: bool,
                      source_keys: list[str] | None = None):
        pexprs = q.partition_by or []
        if not pexprs:
            raise SqlError("PARTITION BY requires at least one expression", q.pos)
        nulls = [e for e in pexprs if isinstance(e, A.Literal) and e.value is None]
        if nulls and len(pexprs) > 1:
            raise SqlError("Cannot PARTITION BY multiple columns including NULL", q.pos)
        null_key = bool(nulls)
        pcs = []
        if not null_key:
            aliases = {n for n, e in items if not (isinstance(e, A.ColumnRef) and e.name == n)}
            for e in pexprs:
                try:
                    pcs.append(self.compiler.compile(e, scope))
                except SqlError as ex:
                    m = re.match(r"Column '(.+)' cannot be resolved\.", ex.message)
                    if not m:
                        raise
                    col = m.group(1)
                    extra = (f" '{col}' must be a column in the source schema since PARTITION BY is applied on the input."
                             if col in aliases else "")
                    raise SqlError(f"PARTITION BY column '{col}' cannot be resolved.{extra}", e.pos) from None
        outputs: list[OutputColumn] = []
        used: set[int] = set()
        auto = 0
        key_names = []
        # key expressions over more than the source's key columns: NULL for a record without a
        # value (ksqlDB evaluates them on the value; ROWTIME too)
        from_value: set[str] = set()
        for i, (pe, pc) in enumerate(zip(pexprs, pcs)):
            name = None
            for n, e in items:
                if render(e) == render(pe) or _same_column(e, pe, scope):
                    if name is None:
                        name = n
                        used.add(id(e))
                    elif not transient:
                        raise SqlError(f"The projection contains a key column (`{render(pe)}`) more than once, aliased as: {name} and {n}.", q.pos)
            if name is None:
                if isinstance(pe, A.ColumnRef):
                    name = pe.name
                elif isinstance(pe, A.Dereference):
                    name = pe.field
                else:
                    name = f"KSQL_COL_{auto}"
                    auto += 1
                star = any(isinstance(it, A.AllColumns) for it in q.select)
                if not transient and not star:
                    src_name = self._single_source_name(q)
                    # ksqlDB names every partitioning expression, not only the missing ones
                    required = [render(_qualify(x, src_name)) for x in pexprs]
                    what = "partitioning expression" if len(required) == 1 else "partitioning expressions"
                    raise SqlError(f"The query used to build `{sink_name}` must include the {what} {_and_list(required)} "
                                   f"in its projection (eg, SELECT {', '.join(required)}...).", q.pos)
            key_names.append(name)
            if any(r.name not in (source_keys or ()) for r in _column_refs(pe)):
                from_value.add(name)
            outputs.append(OutputColumn(name, pc.type or SqlType.STRING, pc.fn, key=True))
        for n, e in items:
            if id(e) in used:
                continue
            c = self.compiler.compile(e, scope)
            outputs.append(OutputColumn(n, c.type or SqlType.STRING, c.fn))
        keys = [o for o in outputs if o.key]
        vals = [o for o in outputs if not o.key]

        def rekey(k, row):
            if row is None:
                return None, None
            nk = None
            no_value = NULL_VALUE in row
            if keys:
                kv = [None if no_value and o.name in from_value else o.fn(row) for o in keys]
                nk = kv[0] if len(kv) == 1 else tuple(kv)
            if no_value:
                return nk, None
            out = {o.name: o.fn(row) for o in keys}
            for o in vals:
                out[o.name] = o.fn(row)
            return nk, out

        return stream.map(rekey), outputs

    # -- aggregation --------------------------------------------------------------------------------
    def _is_aggregate(self, q: A.Query) -> bool:
        if q.group_by:
            return True
        found = []
        for it in q.select:
            if isinstance(it, A.SelectItem):
                self._find_aggs(it.expr, found)
        return bool(found)

    def check_table_aggregation(self, q: A.Query) -> None:
        """CREATE TABLE AS SELECT with aggregates needs a GROUP BY (ksqlDB names the calls, with
        COUNT(*) as it rewrites it: COUNT(ROWTIME))."""
        if q.group_by:
            return
        found: list[A.FunctionCall] = []
        for it in q.select:
            if not isinstance(it, A.SelectItem) or self._column_outside_aggs(it.expr):
                return  # a non-aggregate column: planning says so (ksqlDB's first complaint)
            self._find_aggs(it.expr, found)
        if found:
            calls = ", ".join(f"{c.name.upper()}(ROWTIME)" if c.star or not c.args else render(c) for c in found)
            raise SqlError(f"CREATE TABLE AS SELECT statement does not support aggregate function [{calls}] without a GROUP BY clause.", q.pos)

    def _type_of_item(self, e: A.Expr, scope: Scope) -> SqlType | None:
        """A select item's type for a message (an aggregate call's result type), or None."""
        try:
            if isinstance(e, A.FunctionCall) and self.registry.is_aggregate(e.name):
                types = [] if e.star else [self.compiler.compile(a, scope).type for a in e.args]
                return self.registry.resolve_aggregate(e.name, types, _literal_args(e), self.properties).return_type
            return self.compiler.compile(e, scope).type
        except (SqlError, FunctionError):
            return None

    def _column_outside_aggs(self, e: A.Expr) -> bool:
        if isinstance(e, A.ColumnRef):
            return True
        if isinstance(e, A.FunctionCall) and self.registry.is_aggregate(e.name):
            return False
        return any(self._column_outside_aggs(c) for c in _children(e))

    def _check_functions(self, e: A.Expr) -> None:
        """Unknown functions are reported before anything else is said of a query."""
        if isinstance(e, A.FunctionCall) and self.registry.kind_of(e.name) is None:
            raise SqlError(f"Can't find any functions with the name '{e.name.upper()}'", e.pos)
        for child in _children(e):
            self._check_functions(child)

    def _find_aggs(self, e: A.Expr, out: list[A.FunctionCall]) -> None:
        if isinstance(e, A.FunctionCall) and self.registry.is_aggregate(e.name):
            out.append(e)
            return
        for child in _children(e):
            self._find_aggs(child, out)

    def _aggregate(self, q: A.Query, scope: Scope, stream, is_table: bool, sink_name: str, primary: DataSource,
                   single_source: bool = False):
        group = list(q.group_by or [])
        for g in group:
            found: list = []
            self._find_aggs(g, found)
            if found:
                raise SqlError(f"GROUP BY does not support aggregate functions: {found[0].name.upper()} is an aggregate function.", g.pos)
        if q.emit == "FINAL" and q.window is None:
            raise SqlError("EMIT FINAL is only supported for windowed aggregations.", q.pos)
        seen_groups: set[str] = set()
        for g in group:
            r = render(_qualify(g, self._single_source_name(q)))
            if r in seen_groups:
                raise SqlError(f"Duplicate GROUP BY expression: {r}", g.pos)
            seen_groups.add(r)
        if any(isinstance(it, A.AllColumns) for it in q.select):  # SELECT *: every column, named
            expanded: list[Any] = []
            for it in q.select:
                if isinstance(it, A.AllColumns):
                    expanded.extend(A.SelectItem(A.ColumnRef(c.name, pos=it.pos), pos=it.pos) for c in primary.all_columns())
                else:
                    expanded.append(it)
            q = _copy_query(q, select=expanded)
        aggs: list[A.FunctionCall] = []
        for it in q.select:
            self._find_aggs(it.expr, aggs)
        for c in aggs:
            inner: list[A.FunctionCall] = []
            for a in c.args:
                self._find_aggs(a, inner)
            if inner:
                raise SqlError(f"Aggregate functions can not be nested: {c.name.upper()}({inner[0].name.upper()}())", c.pos)
        if q.having is not None:
            self._find_aggs(q.having, aggs)
        for it in q.select:
            self._check_functions(it.expr)
        if group and not aggs:
            raise SqlError("GROUP BY requires aggregate functions in either the SELECT or HAVING clause.", q.pos)
        # dedupe identical calls
        uniq: dict[str, int] = {}
        calls: list[A.FunctionCall] = []
        for c in aggs:
            r = render(c)
            if r not in uniq:
                uniq[r] = len(calls)
                calls.append(c)
        compiled_aggs = []
        arg_exprs: list[list[A.Expr]] = []  # each aggregate's value arguments (for the columnar path)
        for c in calls:
            if c.star:
                args: list[Compiled] = []
            else:
                args = []
                literal_args = []
                for a in c.args:
                    args.append(self.compiler.compile(a, scope))
            lits = [a.value for a in c.args if isinstance(a, A.Literal)][0:]
            try:
                arg_types = [a.type for a in args]
                resolved = self.registry.resolve_aggregate(c.name, arg_types, _literal_args(c), self.properties)
            except FunctionError as ex:
                # ksqlDB names aggregates in upper case in its messages (scalars in lower case)
                raise SqlError(str(ex).replace(f"'{c.name.lower()}'", f"'{c.name.upper()}'"), c.pos) from None
            if resolved.intermediate_base and getattr(primary, "value_format", None) == "DELIMITED":
                raise SqlError("One of the functions used in the statement has an intermediate type that the value format "
                               "can not handle. Please remove the function or change the format.", c.pos)
            n_lits = len(_literal_args(c))
            value_fns = [a.fn for a in args[: len(args) - n_lits]] if n_lits else [a.fn for a in args]
            compiled_aggs.append((resolved, value_fns))
            arg_exprs.append([] if c.star else list(c.args[: len(c.args) - n_lits]))
        gcs = [self.compiler.compile(g, scope) for g in group]
        # post-aggregation scope: group keys and aggregate results
        post = Scope()
        for i, (g, gc) in enumerate(zip(group, gcs)):
            post.add(_GK + str(i), _GK + str(i), gc.type or SqlType.STRING)
            if isinstance(g, A.ColumnRef):
                post.add(g.name, _GK + str(i), gc.type or SqlType.STRING, g.source)
        for j, (resolved, _) in enumerate(compiled_aggs):
            post.add(_AGG + str(j), _AGG + str(j), resolved.return_type)
        windowed = q.window is not None
        if windowed:
            post.add(WINDOWSTART, WINDOWSTART, SqlType.BIGINT)
            post.add(WINDOWEND, WINDOWEND, SqlType.BIGINT)
        group_text = {render(g): i for i, g in enumerate(group)}
        agg_text = uniq

        def rewrite(e: A.Expr) -> A.Expr:
            r = render(e)
            if r in agg_text and isinstance(e, A.FunctionCall):
                return A.ColumnRef(_AGG + str(agg_text[r]), pos=e.pos)
            if r in group_text:
                return A.ColumnRef(_GK + str(group_text[r]), pos=e.pos)
            if isinstance(e, A.ColumnRef) and e.name in (WINDOWSTART, WINDOWEND):
                return e
            return _map_children(e, rewrite)

        items = self._select_items(q, scope, [_Side(primary, primary.name, None, is_table)], False)
        if windowed and not single_source:
            # ksqlDB cannot resolve the window bounds of a windowed aggregation over a join
            # (https://github.com/confluentinc/ksql/issues/5931): say so as it does
            for _name, e in items:
                bound = _window_bound_ref(e)
                if bound is not None:
                    raise SqlError(f"SELECT column '{bound.name}' cannot be resolved.", bound.pos)
        outputs: list[OutputColumn] = []
        key_names: dict[int, str] = {}
        non_group = []
        for name, e in items:
            re_ = rewrite(e)
            if isinstance(re_, A.ColumnRef) and re_.name.startswith(_GK) and int(re_.name[len(_GK):]) in key_names:
                raise SqlError(f"The projection contains a key column more than once: `{key_names[int(re_.name[len(_GK):])]}` and `{name}`.", q.pos)
            if isinstance(re_, A.ColumnRef) and re_.name.startswith(_GK) and int(re_.name[len(_GK):]) not in key_names:
                key_names[int(re_.name[len(_GK):])] = name
                outputs.append(OutputColumn(name, gcs[int(re_.name[len(_GK):])].type or SqlType.STRING,
                                            (lambda row, k=re_.name: row.get(k)), key=True))
                continue
            bad = _loose_columns(re_)
            if bad:
                non_group.append(render(e))
                continue
            c = self.compiler.compile(re_, post)
            outputs.append(OutputColumn(name, c.type or SqlType.STRING, c.fn))
        if non_group:
            raise SqlError("Non-aggregate SELECT expression(s) not part of GROUP BY: " + ", ".join(dict.fromkeys(non_group))
                           + "\nEither add the column(s) to the GROUP BY or remove them from the SELECT.", q.pos)
        # key columns in GROUP BY order, whatever the projection's order
        gk_order = {name: i for i, name in key_names.items()}
        keys_sorted = sorted((o for o in outputs if o.key), key=lambda o: gk_order.get(o.name, 0))
        outputs = keys_sorted + [o for o in outputs if not o.key]
        if group and len(key_names) < len(group):
            missing = [render(group[i]) for i in range(len(group)) if i not in key_names]
            raise SqlError(f"The query used to build `{sink_name}` must include the grouping expression{'s' if len(missing) > 1 else ''} "
                           f"{_and_list(missing)} in its projection (eg, SELECT {', '.join(missing)}...).", q.pos)
        having = None
        if q.having is not None:
            rh = rewrite(q.having)
            loose = _loose_columns(rh)
            if loose:
                raise SqlError(f"Non-aggregate HAVING expression not part of GROUP BY: {', '.join(dict.fromkeys(loose))}", q.having.pos)
            hc = self.compiler.compile(rh, post)
            having = hc.fn
        # the engine side
        gfns = [gc.fn for gc in gcs]
        onerr = self.on_error

        def group_key(k, row):
            if not gfns:
                return None if False else ""  # one group (no GROUP BY): ksqlDB keys it by nothing
            vals = [f(row) for f in gfns]
            if any(v is None for v in vals):
                return None
            return vals[0] if len(vals) == 1 else tuple(vals)

        n = len(compiled_aggs)

        def init():
            return [r.initialize() for r, _ in compiled_aggs]

        def add(key, row, state):
            out = list(state)
            for i, (r, fns) in enumerate(compiled_aggs):
                try:
                    out[i] = r.aggregate(out[i], *[f(row) for f in fns])
                except Exception as ex:  # noqa: BLE001 - a failing UDAF skips the value
                    onerr(f"aggregate {r.name} failed: {ex}")
            return out

        def sub(key, row, state):
            out = list(state)
            for i, (r, fns) in enumerate(compiled_aggs):
                if r.undo is None:
                    continue
                try:
                    out[i] = r.undo(out[i], *[f(row) for f in fns])
                except Exception as ex:  # noqa: BLE001
                    onerr(f"aggregate {r.name} undo failed: {ex}")
            return out

        def merge(key, a, b):
            return [r.merge(x, y) for (r, _), x, y in zip(compiled_aggs, a, b)]

        # A stream's records are reduced, before grouping, to their aggregates' argument values
        # (ksqlDB's Aggregate-Prepare step): evaluated once per record, not once per window a
        # hopping window puts it in, and only they travel through the repartition topic.
        def prepare_args(row):
            if row is None or NULL_VALUE in row:  # a stream's null value: not aggregated (as ksqlDB)
                return None
            vals = []
            for r, fns in compiled_aggs:
                try:
                    vals.append([f(row) for f in fns])
                except Exception as ex:  # noqa: BLE001 - as in add: this aggregate skips the record
                    onerr(f"aggregate {r.name} failed: {ex}")
                    vals.append(None)
            return vals

        def add_prepared(key, vals, state):
            if vals is None:
                return state
            if isinstance(vals, dict):  # a row of the columnar arguments
                vals = [[vals[f"__a{i}_{j}"] for j in range(len(xs))] for i, xs in enumerate(arg_exprs)]
            out = list(state)
            for i, (r, _) in enumerate(compiled_aggs):
                if vals[i] is None:
                    continue
                try:
                    out[i] = r.aggregate(out[i], *vals[i])
                except Exception as ex:  # noqa: BLE001 - a failing UDAF skips the value
                    onerr(f"aggregate {r.name} failed: {ex}")
            return out

        emit_final = q.emit == "FINAL"
        if is_table:
            if windowed:
                raise SqlError("Windowing not supported for table aggregations.", q.window.pos)
            missing_undo = [r.name for r, _ in compiled_aggs if r.undo is None]
            if missing_undo:
                names = ", ".join(missing_undo[:-1]) + " and " + missing_undo[-1] if len(missing_undo) > 1 else missing_undo[0]
                raise SqlError(f"The aggregation functions {names} cannot be applied to a table source, only to a stream source.", q.pos)
            table = stream.group_by(group_key).aggregate(init, add, sub)
        else:
            names = [[f"__a{i}_{j}" for j in range(len(xs))] for i, xs in enumerate(arg_exprs)]
            by_key = bool(group) and single_source and _is_source_key(group, primary, scope)

            def build(vc: VectorCompiler) -> list:
                out = []
                for (r, _), xs, ns in zip(compiled_aggs, arg_exprs, names):
                    for x, nm, pt in zip(xs, ns, r.param_types):
                        # in the parameter's type (an implicit INT -> DOUBLE done on the column)
                        out.append((nm, vc.compile(x, scope).as_type(pt if isinstance(pt, SqlType) else None)))
                keys = [] if by_key else [vc.compile(g, scope).expr for g in group]
                return [out, keys]

            vec = self._vectorize(build)
            if vec is not None:  # the arguments (and group key) of a whole batch at once, as columns
                (vexprs, vkeys), cols = vec
                if by_key:
                    grouped = stream._then("MAPVALUES", lambda n: VectorMapValues(n, vexprs, cols, NULL_VALUE, prepare_args, drop_nulls=True)).group_by_key()
                else:
                    grouped = stream._then("MAP", lambda n: VectorRekey(n, vkeys, vexprs, cols, NULL_VALUE, lambda k, row: (group_key(k, row), prepare_args(row)),
                                                                         drop_nulls=True), key_changed=True).group_by_key()
            elif by_key:
                # already keyed and partitioned by it: no repartition (as ksqlDB)
                grouped = stream.map_values(prepare_args).filter(_has_value).group_by_key()
            else:
                grouped = stream.map(lambda k, row: (group_key(k, row), prepare_args(row))).filter(_has_value).group_by_key()
            # folds each batch per key (the same results as add_prepared per record)
            sql_agg = SqlAggregator([r for r, _ in compiled_aggs], names, onerr,
                                    [self._uncast(c, r) for c, (r, _) in zip(calls, compiled_aggs)] if vec is not None else None)
            if windowed:
                w = q.window
                # no GRACE PERIOD: 24 hours, but a final result (EMIT FINAL) comes at the window's end
                grace = w.grace_ms if w.grace_ms is not None else (0 if emit_final else 24 * 3600_000)
                if w.kind == "SESSION":
                    table = grouped.windowed_by(SessionWindows(w.size_ms, grace)).aggregate(init, add_prepared, merge, emit_final=emit_final)
                else:
                    tw = TimeWindows(w.size_ms, w.advance_ms or w.size_ms, grace, w.retention_ms)
                    # final results as ksqlDB gives them: none for a window that a jump in stream
                    # time took past the store's retention at the record that closed it
                    table = grouped.windowed_by(tw)._aggregate("WINDOW-AGGREGATE", sql_agg if COLUMNAR else aggregator(init, add_prepared),
                                                               None, emit_final, final_within_retention=True)
            else:
                table = grouped._aggregate("AGGREGATE", sql_agg, None) if COLUMNAR else grouped.aggregate(init, add_prepared)
        window = None
        if windowed:
            window = WindowInfo(q.window.kind, q.window.size_ms if q.window.kind != "SESSION" else None)

        def result_row(key, state):
            row: dict[str, Any] = {}
            k = key
            if isinstance(key, Windowed):
                row[WINDOWSTART] = key.start
                row[WINDOWEND] = key.end
                k = key.key
            if len(gfns) == 1:
                row[_GK + "0"] = k
            elif gfns:
                for i, x in enumerate(k):
                    row[_GK + str(i)] = x
            for i, (r, _) in enumerate(compiled_aggs):
                try:
                    row[_AGG + str(i)] = r.result(state[i])
                except Exception as ex:  # noqa: BLE001
                    onerr(f"aggregate {r.name} result failed: {ex}")
                    row[_AGG + str(i)] = None
            return row

        val_outs = [o for o in outputs if not o.key]
        key_outs = [o for o in outputs if o.key]

        def finish(k, state):
            if state is None:
                return None
            row = result_row(k, state)
            if having is not None and having(row) is not True:
                return None
            out = {o.name: o.fn(row) for o in key_outs}
            for o in val_outs:
                out[o.name] = o.fn(row)
            return out

        if having is None and not is_table and not windowed:
            # a stream's aggregate is never deleted, nor filtered out: each change is its new row
            # (no old value read from the store and decoded at each commit)
            return table.to_stream().flat_map(lambda k, state: [(k, finish(k, state))]), outputs, window
        changes = table.to_stream(with_old=True)

        def to_rows(k, change, fin=finish):
            new = fin(k, change["new"])
            if new is not None:  # (the old row matters only for a row that is no longer out)
                return [(k, new)]
            old = fin(k, change["old"]) if change["old"] is not None else None
            if old is None:
                return []  # HAVING filtered a row that was never out: nothing to retract
            return [(k, new)]

        return changes.flat_map(to_rows), outputs, window

    # -- sinks ----------------------------------------------------------------------------------------
    def attach_sink(self, stream, sink: DataSource, outputs: list[OutputColumn], plan: Plan) -> None:
        """Write the query's (key, row) records to the sink's topic in its formats."""
        kser, vser = serdes_for(sink)
        key_serde: Any = kser
        if sink.window is not None:
            key_serde = WindowedSerde(kser, session=sink.window.kind == "SESSION", size_ms=sink.window.size_ms)
        if hasattr(stream, "to_stream") and not hasattr(stream, "to"):
            stream = stream.to_stream()  # a table's changes (deletions as tombstones)
        ts_col = sink.timestamp_column
        if ts_col is not None:
            conv = timestamp_converter(sink.column(ts_col).type if sink.column(ts_col) else SqlType.BIGINT, sink.timestamp_format)
            stream = stream.process(lambda: _Restamp(ts_col, conv))
        stream.to(sink.topic, key_serde=key_serde, value_serde=vser)


class _Restamp(Processor):
    """Sets each output record's timestamp from a column (the sink's TIMESTAMP property)."""

    def __init__(self, column: str, conv: Callable[[Any], int | None]) -> None:
        super().__init__("RESTAMP")
        self.column, self.conv = column, conv

    def process(self, batch: Batch) -> None:
        ts = batch.timestamps.copy()
        for i, row in enumerate(batch.rows()):
            if row is not None:
                try:
                    t = self.conv(row.get(self.column))
                except Exception:  # noqa: BLE001 - keep the record's own time
                    t = None
                if t is not None:
                    ts[i] = t
        self.forward(Batch(batch.keys, batch.values, ts, batch.offsets, batch.topic, batch.partition, batch.headers))


def _qualify(e: A.Expr, source: str | None) -> A.Expr:
    """The expression with its column references qualified by ``source`` (as ksqlDB prints them)."""
    if source is None:
        return e
    if isinstance(e, A.ColumnRef):
        return A.ColumnRef(e.name, e.source or source, pos=e.pos)
    return _map_children(e, lambda c: _qualify(c, source))


def _and_list(items: list[str]) -> str:
    """a, b and c (ksqlDB's way of listing names in messages)."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _copy_query(q: A.Query, **changes: Any) -> A.Query:
    import copy

    out = copy.copy(q)
    for k, v in changes.items():
        setattr(out, k, v)
    return out


_NUMBERED = re.compile(r"(.*?)(?:_(\d+))?")


def auto_column_name(names, auto: int) -> tuple[str, int]:
    """ksqlDB's name for an unaliased expression: ``KSQL_COL_<n>`` for the first n from ``auto``
    not already taken; returns it and the next n to try."""
    while f"KSQL_COL_{auto}" in names:
        auto += 1
    return f"KSQL_COL_{auto}", auto + 1


class _FieldAliases:
    """ksqlDB's names for unaliased struct fields (``s->b``): the field's name, or with ``_1``,
    ``_2``, ... when a source column or an earlier field took it (numbered names such as ``B_1``
    count as ``B``'s)."""

    def __init__(self, source_columns: Any) -> None:
        self.used: dict[str, set[int]] = {}
        for name in source_columns:
            base, num = _NUMBERED.fullmatch(name).groups()  # type: ignore[union-attr]
            self.used.setdefault(base, set()).add(int(num) if num is not None else 0)
        self.next_index: dict[str, int] = {}

    def next(self, field: str) -> str:
        base = _NUMBERED.fullmatch(field).group(1)  # type: ignore[union-attr]
        used = self.used.get(base, set())
        i = self.next_index.get(base, 0)
        while i in used:
            i += 1
        self.next_index[base] = i + 1
        return base if i == 0 else f"{base}_{i}"


def _column_refs(e: A.Expr) -> list[A.ColumnRef]:
    """Every column reference in ``e`` (lambda parameters included)."""
    if isinstance(e, A.ColumnRef):
        return [e]
    return [r for c in _children(e) for r in _column_refs(c)]


def _has_value(key: Any, value: Any) -> bool:
    """A stream record without a value is not aggregated (Kafka Streams skips null values)."""
    return value is not None


def _literal_args(c: A.FunctionCall) -> list[Any]:
    """Trailing literal arguments of an aggregate (e.g. TOPK(col, 3): k)."""
    lits = []
    for a in reversed(c.args[1:]):
        if isinstance(a, A.Literal):
            lits.insert(0, a.value)
        else:
            break
    return lits


def _children(e: A.Expr) -> list[A.Expr]:
    out = []
    for v in vars(e).values():
        if isinstance(v, A.Expr):
            out.append(v)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, A.Expr):
                    out.append(x)
                elif isinstance(x, tuple):
                    out.extend(y for y in x if isinstance(y, A.Expr))
    return out


def _map_children(e: A.Expr, fn: Callable[[A.Expr], A.Expr]) -> A.Expr:
    import copy

    new = copy.copy(e)
    for k, v in vars(e).items():
        if k == "pos":
            continue
        if isinstance(v, A.Lambda):
            setattr(new, k, v)
        elif isinstance(v, A.Expr):
            setattr(new, k, fn(v))
        elif isinstance(v, list):
            nv = []
            for x in v:
                if isinstance(x, A.Lambda):
                    nv.append(x)
                elif isinstance(x, A.Expr):
                    nv.append(fn(x))
                elif isinstance(x, tuple):
                    nv.append(tuple(fn(y) if isinstance(y, A.Expr) and not isinstance(y, A.Lambda) else y for y in x))
                else:
                    nv.append(x)
            setattr(new, k, nv)
    return new


def _window_bound_ref(e: A.Expr) -> A.ColumnRef | None:
    """The first WINDOWSTART / WINDOWEND reference in ``e``, if any."""
    if isinstance(e, A.ColumnRef):
        return e if e.name in (WINDOWSTART, WINDOWEND) else None
    if isinstance(e, A.Lambda):
        return _window_bound_ref(e.body)
    for c in _children(e):
        found = _window_bound_ref(c)
        if found is not None:
            return found
    return None


def _loose_columns(e: A.Expr, lambda_params: frozenset = frozenset()) -> list[str]:
    """Column references left after rewriting grouped expressions: not part of the GROUP BY."""
    if isinstance(e, A.ColumnRef):
        if e.name.startswith(("\0",)) or e.name in (WINDOWSTART, WINDOWEND) or e.name in lambda_params:
            return []
        return [render(e)]
    if isinstance(e, A.Lambda):
        return _loose_columns(e.body, lambda_params | frozenset(e.params))
    out = []
    for c in _children(e):
        out.extend(_loose_columns(c, lambda_params))
    return out


def _is_source_key(group: list[A.Expr], src: DataSource, scope: Scope) -> bool:
    """Whether GROUP BY names exactly the (single) key column of an unwindowed source."""
    return (len(group) == 1 and len(src.key_columns) == 1 and src.window is None
            and _same_column(group[0], A.ColumnRef(src.key_columns[0].name), scope))


def _basic(columns: list[Column]) -> bool:
    """Whether every column has a type the columnar path holds (BOOLEAN, INT, BIGINT, DOUBLE, STRING)."""
    try:
        for c in columns:
            dtype_of(c.type)
    except Unsupported:
        return False
    return bool(columns)


def _same_column(e: A.Expr, key: A.Expr, scope: Scope) -> bool:
    if not isinstance(e, A.ColumnRef) or not isinstance(key, A.ColumnRef):
        return False
    try:
        return scope.resolve(e)[0] == scope.resolve(key)[0]
    except SqlError:
        return False


# -- rows from records ---------------------------------------------------------------------------------
def timestamp_converter(t: SqlType, fmt: str | None) -> Callable[[Any], int | None]:
    """A function turning a TIMESTAMP column's value into epoch ms."""
    if t.base == "TIMESTAMP":
        epoch = dt.datetime(1970, 1, 1)
        return lambda v: None if v is None else int((v - epoch).total_seconds() * 1000) if isinstance(v, dt.datetime) else int(v)
    if t.base == "STRING":
        if not fmt:
            raise SqlError("A TIMESTAMP column of type STRING needs a TIMESTAMP_FORMAT")
        from ..functions.builtins._javatime import parse_timestamp_ms  # type: ignore[attr-defined]

        return lambda v: None if v is None else parse_timestamp_ms(v, fmt)
    return lambda v: None if v is None else int(v)


def make_prepare(src: DataSource) -> Callable[[Batch], tuple[Batch, list[tuple[int, str]]]]:
    """The source node hook that turns decoded (key, value) records into rows."""
    key_names = [c.name for c in src.key_columns]
    nkeys = len(key_names)
    headers = list(src.header_columns)
    windowed = src.window is not None
    is_table = src.is_table
    ts_col = src.timestamp_column
    ts_conv = None
    if ts_col is not None:
        col = src.column(ts_col)
        ts_conv = timestamp_converter(col.type if col else SqlType.BIGINT, src.timestamp_format)

    key_dtype = None
    if nkeys == 1:
        try:
            key_dtype = dtype_of(src.key_columns[0].type)
        except Unsupported:
            key_dtype = None
    ts_int = ts_col is not None and (col := src.column(ts_col)) is not None and col.type.base in ("INT", "BIGINT")
    columnar_ok = (not windowed and not headers and nkeys <= 1 and (nkeys == 0 or key_dtype is not None)
                   and (ts_col is None or ts_int))

    def prepare_columns(batch: Batch) -> tuple[Batch, list[tuple[int, str]]] | None:
        """The rows of a columnar batch as columns (the row path's dicts, column by column)."""
        df: pl.DataFrame = batch.values  # type: ignore[assignment]
        ts = batch.timestamps.copy()
        bad: list[tuple[int, str]] = []
        if ts_col is not None:
            tcol = df[ts_col]
            nulls = tcol.is_null().to_numpy()
            if nulls.any():
                bad = [(int(i), f"Failed to extract timestamp: column {ts_col} is NULL") for i in np.nonzero(nulls)[0]]
            ts = np.where(nulls, ts, tcol.fill_null(0).cast(pl.Int64).to_numpy())
        extra = []
        if nkeys == 1:
            try:
                extra.append(pl.Series(key_names[0], batch.keys, dtype=key_dtype, strict=True))
            except Exception:  # noqa: BLE001 - keys of another type: the row path
                return None
        extra.append(pl.Series(ROWTIME, ts, dtype=pl.Int64))
        extra.append(pl.Series(ROWPARTITION, np.full(len(ts), batch.partition, dtype=np.int64)))
        offs = batch.offsets
        extra.append(pl.Series(ROWOFFSET, offs, dtype=pl.Int64) if offs is not None
                     else pl.Series(ROWOFFSET, [None] * len(ts), dtype=pl.Int64))
        out = Batch(list(batch.keys), df.with_columns(extra), ts, offs, batch.topic, batch.partition, batch.headers,
                    batch.old_values)
        return out, bad

    def prepare(batch: Batch) -> tuple[Batch, list[tuple[int, str]]]:
        if columnar_ok and batch.columnar:
            done = prepare_columns(batch)
            if done is not None:
                return done
        rows = []
        bad: list[tuple[int, str]] = []
        ts = batch.timestamps.copy()
        offsets = batch.offsets
        part = batch.partition
        values = batch.rows()
        keys = []
        for i, (k, v) in enumerate(zip(batch.keys, values)):
            if windowed and isinstance(k, Windowed):
                wk = k
                k = k.key
            else:
                wk = None
            keys.append(k if not windowed else wk)
            if v is None:
                if is_table:  # a table's tombstone stays a deletion
                    rows.append(None)
                    continue
                row = {NULL_VALUE: True}  # a stream record without a value: its key still counts
            else:
                row = dict(v)
            if nkeys == 1:
                row[key_names[0]] = k
            elif nkeys > 1:
                kk = k if isinstance(k, (tuple, list)) else (None,) * nkeys
                for name, x in zip(key_names, kk):
                    row[name] = x
            if wk is not None:
                row[WINDOWSTART] = wk.start
                row[WINDOWEND] = wk.end
            if headers:
                hs = (batch.headers[i] if batch.headers else None) or []
                for h in headers:
                    if h.key is None:
                        row[h.name] = [{"KEY": hk, "VALUE": hv} for hk, hv in hs]
                    else:
                        row[h.name] = next((hv for hk, hv in reversed(hs) if hk == h.key), None)
            if ts_conv is not None:
                try:
                    t = ts_conv(row.get(ts_col))
                except Exception as ex:  # noqa: BLE001
                    bad.append((i, f"Failed to extract timestamp from column {ts_col}: {ex}"))
                    rows.append(None)
                    continue
                if t is None:
                    bad.append((i, f"Failed to extract timestamp: column {ts_col} is NULL"))
                    rows.append(None)
                    continue
                ts[i] = t
            row[ROWTIME] = int(ts[i])
            row[ROWPARTITION] = part
            row[ROWOFFSET] = None if offsets is None else int(offsets[i])
            rows.append(row)
        out = Batch(keys, rows, ts, offsets, batch.topic, batch.partition, batch.headers, batch.old_values)
        return out, bad

    return prepare
