"""Joins in SQL: stream-stream (WITHIN), stream-table, table-table (and foreign-key) onto the
engine's join operators.

Each input's rows are re-keyed by ``ALIAS.COLUMN`` (a map_values right after its source) so the
joined row holds every column of every side, qualified; the scope resolves ``A.X`` and, when
unambiguous, ``X``. The record key after a join is the value of the join expression. Which
output column carries it (ksqlDB's rules):

* FULL OUTER joins, and joins where neither join expression is a plain column, get a
  *synthetic* key column ``ROWKEY`` (``ROWKEY_n`` if a source already has such a name): its value
  is the join key (COALESCE of the two sides), and it must be selected (``SELECT ROWKEY AS ID``).
* otherwise either join expression that is a column (``L.A`` or ``R.A``) may be selected; the
  first one the projection names becomes the key column.

Stream-stream joins run on :class:`KsqlStreamJoinNode` (here, not the engine's
``StreamJoinNode``): ksqlDB's Kafka Streams semantics differ from the engine's operator in ways
the tests pin down -- without ``GRACE PERIOD`` left/outer joins emit their NULL results eagerly
(the legacy behaviour), with it an out-of-order record whose window already closed is emitted
with NULL at once instead of being dropped, and each side's window store expires by its own
observed time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.batch import Batch
from ..engine.codec import pack, unpack
from ..engine.node import Node
from ..engine.operators.aggregate import decode_key, encode_key
from ..formats.types import SqlType
from . import ast as A
from .expressions import Scope, render
from .metastore import PSEUDO_COLUMNS, WINDOWEND, WINDOWSTART, SqlError

if TYPE_CHECKING:
    from .planner import Planner

#: ksqlDB's default grace for joins without GRACE PERIOD (Kafka Streams' legacy 24h, less the window)
LEGACY_GRACE_MS = 24 * 3600_000

_INNER, _LEFT, _OUTER = "inner", "left", "outer"


@dataclass
class _Input:
    """One input of a join: a source, or the result of the joins before (n-way joins)."""

    sides: list  # list[_Side]
    #: scope entries (name, row key, type, alias)
    entries: list[tuple[str, str, SqlType, str | None]]
    node: Any  # engine Stream or Table
    is_table: bool
    #: expressions whose value is the record key (qualified column refs)
    key_equiv: list[A.Expr] = field(default_factory=list)
    #: the synthetic key column's row entry, if the key is one
    synthetic: str | None = None
    is_join: bool = False

    def scope(self) -> Scope:
        s = Scope()
        for name, key, t, alias in self.entries:
            s.add(name, key, t, alias)
        return s

    @property
    def aliases(self) -> list[str]:
        return [s.alias for s in self.sides]

    @property
    def window(self):
        return self.sides[0].src.window if len(self.sides) == 1 else None


def plan_join(planner: Planner, top: Any, j: A.Join):
    """Plan a (possibly n-way) join: (sides, scope, stream or table, is_table). Sets
    ``planner._join_key_exprs`` (the key column candidates) and ``planner._join_synthetic``."""
    res = _plan(planner, top, j)
    planner._join_key_exprs = res.key_candidates  # type: ignore[attr-defined]
    planner._join_synthetic = res.inp.synthetic  # type: ignore[attr-defined]
    inp = res.inp
    return inp.sides, inp.scope(), inp.node, inp.is_table


@dataclass
class _Result:
    inp: _Input
    key_candidates: list[A.Expr]


def _plan(planner: Planner, top: Any, j: A.Join) -> _Result:
    from .planner import _Side

    if isinstance(j.left, A.Join):
        left = _plan(planner, top, j.left).inp
    elif isinstance(j.left, A.SourceRef):
        left = _source_input(planner, top, j.left)
    else:
        raise SqlError(f"unsupported FROM clause: {type(j.left).__name__}", j.left.pos)
    if not isinstance(j.right, A.SourceRef):
        raise SqlError("Joins are left-deep: the right side of a JOIN must be a stream or table", j.right.pos)
    rsrc = planner.meta.get(j.right.name, j.right.pos)
    for s in left.sides:
        if s.src.name == rsrc.name:
            raise SqlError(f"Can not join '{s.src.name}' to '{rsrc.name}': self joins are not yet supported.", j.right.pos)
    ralias = j.right.alias or j.right.name
    if ralias in left.aliases:
        raise SqlError(f"Duplicate source alias: {ralias}", j.right.pos)
    right = _source_input(planner, top, j.right)
    _check_formats(left, right, j)
    kind = j.kind
    # -- the ON condition: one expression of each side ---------------------------------------------
    cond = j.on
    if isinstance(cond, A.BinaryOp) and cond.op == "AND":
        raise SqlError(f"Invalid join condition: joins on multiple conditions are not yet supported. Got {render(_qualify_all(cond, left, right))}.", cond.pos)
    if not (isinstance(cond, A.BinaryOp) and cond.op == "="):
        raise SqlError(f"Unsupported join expression: {render(cond)}. Only equality joins (=) are supported.", cond.pos)
    for r in _refs(cond, []):  # unknown qualifiers first (as ksqlDB reports them)
        if r.source is not None and r.source not in left.aliases and r.source not in right.aliases:
            raise SqlError(f"Failed to prepare statement: '{r.source}' is not a valid stream/table name or alias.", r.pos)
    a = _which_side(cond.left, cond, left, right)
    b = _which_side(cond.right, cond, left, right)
    qa = _qualify(cond.left, a, left, right)
    qb = _qualify(cond.right, b, left, right)
    cond_text = f"{render(qa)} = {render(qb)}"
    if a == b:
        bad = cond.right
        raise SqlError(f"Invalid comparison expression '{render(bad)}' in join '{render(_qualify_all(cond, left, right))}'. "
                       "Each side of the join comparision must contain references from exactly one source.", cond.pos)
    lexpr, rexpr = (qa, qb) if a == 0 else (qb, qa)
    lscope, rscope = left.scope(), right.scope()
    lc = _compile_on(planner, lexpr, lscope)
    rc = _compile_on(planner, rexpr, rscope)
    _check_key_type(lc.type, lexpr)
    if lc.type is not None and rc.type is not None and not _comparable(lc.type, rc.type):
        from ..functions.typing_rules import type_name

        raise SqlError(f"Invalid join condition: types don't match. Got {render(lexpr)}{{{type_name(lc.type)}}} = "
                       f"{render(rexpr)}{{{type_name(rc.type)}}}.", cond.pos)
    _check_windows(left, right)
    l_is_key = _is_key(lexpr, left, lscope)
    r_is_key = _is_key(rexpr, right, rscope)
    for inp, is_key in ((left, l_is_key), (right, r_is_key)):
        if inp.window is not None and not is_key:
            raise SqlError("Implicit repartitioning of windowed sources is not supported. See https://github.com/confluentinc/ksql/issues/4385.", cond.pos)
    lw, rw = left.window, right.window
    if lw is not None and rw is not None and lw.kind != "SESSION" and (lw.kind != rw.kind or lw.size_ms != rw.size_ms):
        raise SqlError("Implicit repartitioning of windowed sources is not supported. See https://github.com/confluentinc/ksql/issues/4385.", cond.pos)
    # -- the output key ----------------------------------------------------------------------------------
    entries = left.entries + right.entries
    sides = left.sides + [_Side(rsrc, ralias, right.node, right.is_table)]
    fk = False
    if left.is_table and right.is_table:
        if j.within is not None:
            raise SqlError("A window definition was provided for a Table-Table join. These joins are not windowed. Please drop the window definition (ie, the WITHIN clause) and try to resubmit your query.", j.within.pos)
        if not r_is_key:
            raise SqlError(f"Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {cond_text}.", cond.pos)
        if not l_is_key:
            if left.is_join:
                raise SqlError(f"Invalid join condition: foreign-key table-table joins are not supported as part of n-way joins. Got {cond_text}.", cond.pos)
            if kind not in ("INNER", "LEFT"):
                raise SqlError(f"Invalid join type: full-outer join not supported for foreign-key table-table join. Got {render(cond)}." if kind == "FULL"
                               else f"Invalid join type: right join not supported for foreign-key table-table join. Got {cond_text}.", cond.pos)
            fk = True
    elif left.is_table and not right.is_table:
        raise SqlError(f"Invalid join order: table-stream joins are not supported; only stream-table joins. Got {left.aliases[-1]} {kind} JOIN {ralias}.", j.pos)
    elif not right.is_table:
        if j.within is None:
            raise SqlError("Stream-Stream joins must have a WITHIN clause specified. None was provided. To learn about how to specify a WITHIN clause with a stream-stream join, please visit: https://docs.confluent.io/current/ksql/docs/syntax-reference.html#create-stream-as-select", j.pos)
    else:  # stream-table
        if j.within is not None:
            raise SqlError("A window definition was provided for a Stream-Table join. These joins are not windowed. Please drop the window definition (i.e. the WITHIN clause) and try to resubmit your query.", j.within.pos)
        if kind == "FULL":
            raise SqlError("Full outer joins between streams and tables are not supported.", j.pos)
        if kind == "RIGHT":
            raise SqlError("Invalid join type: right join not supported for stream-table join.", j.pos)
        if not r_is_key:
            raise SqlError(f"Invalid join condition: stream-table joins require to join on the table's primary key. Got {cond_text}.", cond.pos)

    synthetic = None
    if fk:
        key_candidates = list(left.key_equiv[:1]) if left.key_equiv else []
        key_equiv = list(left.key_equiv)
    elif kind == "FULL" or (not isinstance(lexpr, A.ColumnRef) and not isinstance(rexpr, A.ColumnRef)):
        synthetic = _synthetic_name(entries)
        entries = entries + [(synthetic, synthetic, lc.type or rc.type or SqlType.STRING, None)]
        key_candidates = [A.ColumnRef(synthetic, pos=j.pos)]
        key_equiv = [A.ColumnRef(synthetic, pos=j.pos)]
    else:
        key_candidates = [e for e in (lexpr, rexpr) if isinstance(e, A.ColumnRef)]
        key_equiv = list(key_candidates)

    lfn, rfn = lc.fn, rc.fn

    def merge(lv, rv, syn=synthetic):
        row: dict[str, Any] = {}
        if lv is not None:
            row.update(lv)
        if rv is not None:
            row.update(rv)
        if syn is not None:
            k = lfn(lv) if lv is not None else None
            row[syn] = k if k is not None else (rfn(rv) if rv is not None else None)
        return row

    # -- the engine side -----------------------------------------------------------------------------------
    lnode, rnode = left.node, right.node
    if fk:
        node = (lnode.join if kind == "INNER" else lnode.left_join)(rnode, merge, foreign_key=lambda v: None if v is None else lfn(v))
        is_table = True
    elif left.is_table and right.is_table:
        if kind == "RIGHT":
            node = rnode.left_join(lnode, lambda r, lv: merge(lv, r))
        else:
            node = {"INNER": lnode.join, "LEFT": lnode.left_join, "FULL": lnode.outer_join}[kind](rnode, merge)
        is_table = True
    elif right.is_table:  # stream-table
        if not l_is_key:
            lnode = lnode.select_key(lambda k, v: lfn(v))
        node = (lnode.join if kind == "INNER" else lnode.left_join)(rnode, merge)
        is_table = False
    else:  # stream-stream
        if not l_is_key:
            lnode = lnode.select_key(lambda k, v: lfn(v))
        if not r_is_key:
            rnode = rnode.select_key(lambda k, v: rfn(v))
        w = j.within
        if w.grace_ms is None:
            grace, legacy = max(LEGACY_GRACE_MS - (w.before_ms + w.after_ms), 0), True
        else:
            grace, legacy = w.grace_ms, False
        if kind == "RIGHT":
            node = stream_stream_join(rnode, lnode, lambda r, lv: merge(lv, r), _LEFT, w.after_ms, w.before_ms, grace, legacy)
        else:
            node = stream_stream_join(lnode, rnode, merge, {"INNER": _INNER, "LEFT": _LEFT, "FULL": _OUTER}[kind],
                                      w.before_ms, w.after_ms, grace, legacy)
        is_table = False
    inp = _Input(sides, entries, node, is_table, key_equiv, synthetic, True)
    return _Result(inp, key_candidates)


# -- inputs ---------------------------------------------------------------------------------------------
def _source_input(planner: Planner, top: Any, ref: A.SourceRef) -> _Input:
    from .planner import _Side

    src = planner.meta.get(ref.name, ref.pos)
    alias = ref.alias or ref.name
    node, is_table = planner._source_node(top, src)
    cols = [(c.name, c.type) for c in src.all_columns()] + list(PSEUDO_COLUMNS.items())
    if src.window is not None:
        cols += [(WINDOWSTART, SqlType.BIGINT), (WINDOWEND, SqlType.BIGINT)]
    entries = [(name, f"{alias}.{name}", t, alias) for name, t in cols]
    prefix = alias + "."

    def qualify(row):
        if row is None:
            return None
        return {prefix + k: v for k, v in row.items()}

    if not is_table:  # a stream record without a value (its key only) joins nothing
        from . import planner as _planner

        marker = getattr(_planner, "NULL_VALUE", None)
        if marker is not None:
            node = node.filter(lambda k, v, m=marker: v is not None and m not in v)
    node = node.map_values(qualify)
    key_equiv: list[A.Expr] = [A.ColumnRef(src.key_columns[0].name, alias)] if len(src.key_columns) == 1 else []
    return _Input([_Side(src, alias, node, is_table)], entries, node, is_table, key_equiv)


# -- the ON condition -------------------------------------------------------------------------------------
def _refs(e: A.Expr, out: list[A.ColumnRef], lambda_params: frozenset = frozenset()) -> list[A.ColumnRef]:
    if isinstance(e, A.ColumnRef):
        if not (e.source is None and e.name in lambda_params):
            out.append(e)
        return out
    if isinstance(e, A.Lambda):
        return _refs(e.body, out, lambda_params | frozenset(e.params))
    for v in vars(e).values():
        if isinstance(v, A.Expr):
            _refs(v, out, lambda_params)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, A.Expr):
                    _refs(x, out, lambda_params)
                elif isinstance(x, tuple):
                    for y in x:
                        if isinstance(y, A.Expr):
                            _refs(y, out, lambda_params)
    return out


def _side_of_ref(r: A.ColumnRef, left: _Input, right: _Input) -> int:
    """0: the left input, 1: the right one."""
    if r.source is not None:
        if r.source in left.aliases:
            where = 0
        elif r.source in right.aliases:
            where = 1
        else:
            raise SqlError(f"Failed to prepare statement: '{r.source}' is not a valid stream/table name or alias.", r.pos)
        inp = left if where == 0 else right
        if not any(a == r.source and n == r.name for n, _, _, a in inp.entries):
            raise SqlError(f"JOIN ON column '{r.source}.{r.name}' cannot be resolved.", r.pos)
        return where
    hits = []
    for where, inp in ((0, left), (1, right)):
        for n, _, _, a in inp.entries:
            if n == r.name:  # (alias None: a synthetic key column of the joins before)
                hits.append((where, a))
    if not hits:
        raise SqlError(f"JOIN ON column '{r.name}' cannot be resolved.", r.pos)
    if len(hits) > 1:
        raise SqlError(f"Column '{r.name}' is ambiguous. Could be " + " or ".join(f"{a}.{r.name}" for _, a in hits) + ".", r.pos,
                       preparing=True)
    return hits[0][0]


def _which_side(e: A.Expr, cond: A.Expr, left: _Input, right: _Input) -> int:
    sides = {_side_of_ref(r, left, right) for r in _refs(e, [])}
    if len(sides) != 1:
        raise SqlError(f"Invalid comparison expression '{render(e)}' in join '{render(_qualify_all(cond, left, right))}'. "
                       "Each side of the join comparision must contain references from exactly one source.", e.pos)
    return sides.pop()


def _qualify(e: A.Expr, where: int, left: _Input, right: _Input) -> A.Expr:
    """``e`` with every column reference qualified by its source alias."""
    from .planner import _map_children

    inp = left if where == 0 else right

    def go(x: A.Expr) -> A.Expr:
        if isinstance(x, A.ColumnRef):
            if x.source is not None:
                return x
            for n, _, _, a in inp.entries:
                if n == x.name and a is not None:
                    return A.ColumnRef(x.name, a, pos=x.pos)
            return x
        if isinstance(x, A.Lambda):
            return x
        return _map_children(x, go)

    return go(e)


def _qualify_all(e: A.Expr, left: _Input, right: _Input) -> A.Expr:
    """Column references qualified where they resolve (for messages)."""
    from .planner import _map_children

    def go(x: A.Expr) -> A.Expr:
        if isinstance(x, A.ColumnRef):
            if x.source is not None:
                return x
            for inp in (left, right):
                for n, _, _, a in inp.entries:
                    if n == x.name and a is not None:
                        return A.ColumnRef(x.name, a, pos=x.pos)
            return x
        if isinstance(x, A.Lambda):
            return x
        return _map_children(x, go)

    return go(e)


def _compile_on(planner: Planner, e: A.Expr, scope: Scope):
    try:
        return planner.compiler.compile(e, scope)
    except SqlError as ex:
        msg = ex.message
        if "cannot be resolved" in msg and not msg.startswith("JOIN ON"):
            raise SqlError("JOIN ON " + msg[0].lower() + msg[1:] if msg.startswith("Column") else msg, ex.pos) from None
        raise


def _is_key(e: A.Expr, inp: _Input, scope: Scope) -> bool:
    """Whether ``e`` is (a column equal to) the input's record key."""
    if not isinstance(e, A.ColumnRef):
        return False
    try:
        target = scope.resolve(e)[0]
    except SqlError:
        return False
    for k in inp.key_equiv:
        try:
            if scope.resolve(k)[0] == target:
                return True
        except SqlError:
            continue
    return False


def _check_key_type(t: SqlType | None, e: A.Expr) -> None:
    if t is None:
        return
    if _has_map(t):
        name = render(e).replace(".", "_")
        raise SqlError("Map keys, including types that contain maps, are not supported as they may lead to unexpected "
                       f"behavior due to inconsistent serialization. Key column name: `{name}`. Column type: {_type_text(t)}. "
                       "See https://github.com/confluentinc/ksql/issues/6621 for more.", e.pos)


def _type_text(t: SqlType) -> str:
    """A type as ksqlDB prints it in schemas (struct field names back-quoted)."""
    from ..functions.typing_rules import type_name

    if t.base == "ARRAY":
        return f"ARRAY<{_type_text(t.element)}>"
    if t.base == "MAP":
        return f"MAP<STRING, {_type_text(t.element)}>"
    if t.base == "STRUCT":
        return "STRUCT<" + ", ".join(f"`{f.name}` {_type_text(f.type)}" for f in t.fields) + ">"
    return type_name(t)


def _comparable(a: SqlType, b: SqlType) -> bool:
    if a == b:
        return True
    from ..functions.typing_rules import is_numeric

    return is_numeric(a) and is_numeric(b)


def _has_map(t: SqlType) -> bool:
    if t.base == "MAP":
        return True
    if t.element is not None and _has_map(t.element):
        return True
    return any(_has_map(f.type) for f in t.fields)


def _check_formats(left: _Input, right: _Input, j: A.Join) -> None:
    srcs = [s.src for s in left.sides] + [s.src for s in right.sides]
    kafka = [s.name for s in srcs if s.value_format == "KAFKA"]
    if kafka:
        raise SqlError(f"Source(s) {', '.join(kafka)} are using the 'KAFKA' value format. This format does not yet support JOIN.", j.pos)


def _check_windows(left: _Input, right: _Input) -> None:
    lw, rw = left.window, right.window
    if (lw is None) == (rw is None):
        if lw is not None and (lw.kind == "SESSION") != (rw.kind == "SESSION"):
            raise SqlError("Incompatible windowed sources.\n"
                           f"Left source: {lw.kind}\nRight source: {rw.kind}\n"
                           "Session windowed sources can only be joined to other session windowed sources, and may still not result in "
                           "expected behaviour as session bounds must be an exact match for the join to work\n"
                           "Hopping and tumbling windowed sources can only be joined to other hopping and tumbling windowed sources")
        return
    ws, ns = (left, right) if lw is not None else (right, left)
    raise SqlError("Can not join windowed source to non-windowed source.\n"
                   f"`{ws.sides[0].src.name}` is {ws.window.kind} windowed\n`{ns.sides[-1].src.name}` is not windowed")


def _synthetic_name(entries) -> str:
    names = {n for n, _, _, _ in entries}
    if "ROWKEY" not in names and not any(n.startswith("ROWKEY_") for n in names):
        return "ROWKEY"
    top = 0
    for n in names:
        if n.startswith("ROWKEY_") and n[7:].isdigit():
            top = max(top, int(n[7:]))
    return f"ROWKEY_{top + 1}"


# -- key columns in the projection (called by the planner) -----------------------------------------
def missing_key_message(sink_name: str, candidates: list[A.Expr], synthetic: str | None) -> str:
    if synthetic is not None:
        return (f"Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\n"
                f"The query used to build `{sink_name}` must include the join expression {synthetic} in its projection (eg, SELECT {synthetic}...).\n"
                f"{synthetic} was added as a synthetic key column because the join criteria did not match any source column. "
                "This expression must be included in the projection and may be aliased.")
    texts = [render(c) for c in candidates]
    if len(texts) == 1:
        return f"The query used to build `{sink_name}` must include the join expression {texts[0]} in its projection (eg, SELECT {texts[0]}...)."
    return (f"The query used to build `{sink_name}` must include the join expressions {' or '.join(texts)} in its projection "
            f"(eg, SELECT {texts[0]}...).")


def pick_join_key(planner: Planner, items: list[tuple[str, A.Expr]], scope: Scope, sink_name: str,
                  transient: bool) -> tuple[list[A.Expr], dict[int, str]]:
    """The key column of a join's projection: the first item naming a key candidate. Returns
    (key expressions, {0: item name}) for the planner's key handling; raises ksqlDB's errors when
    the projection lacks the key or names it twice."""
    from .planner import _same_column

    cands = list(getattr(planner, "_join_key_exprs", []))
    synthetic = getattr(planner, "_join_synthetic", None)
    chosen: tuple[str, A.Expr] | None = None
    for c in cands:  # the left join expression first, then the right one
        for name, e in items:
            if _same_column(e, c, scope):
                chosen = (name, c)
                break
        if chosen is not None:
            break
    if chosen is None:
        if transient or not cands:
            return [], {}
        raise SqlError(missing_key_message(sink_name, cands, synthetic))
    if not transient:
        dup = sorted(name for name, e in items if _same_column(e, chosen[1], scope))
        if len(dup) > 1:
            raise SqlError(f"The projection contains a key column (`{chosen[0]}`) more than once, aliased as: {' and '.join(dup)}.")
    return [chosen[1]], {0: chosen[0]}


# -- stream-stream joins -----------------------------------------------------------------------------------
_SIDE_TAG = "join_side"
_LEFT_SIDE, _RIGHT_SIDE = 0, 1
_TS = struct.Struct(">Q")


def _ts_key(t: int) -> bytes:
    return _TS.pack(t + (1 << 63))


class _SideNode(Node):
    """Tags each batch of one join input with its side."""

    def __init__(self, name: str, side: int) -> None:
        super().__init__(name)
        self.side = side

    def process(self, batch: Batch) -> None:
        self.forward(Batch(batch.keys, batch.values, batch.timestamps, batch.offsets, batch.topic, batch.partition,
                           batch.headers, None, {**batch.extra, _SIDE_TAG: self.side}))


class KsqlStreamJoinNode(Node):
    """A windowed stream-stream join with Kafka Streams' (as ksqlDB runs it) semantics.

    A left record at ``t`` joins the right records in ``[t - before, t + after]``; the result has
    the later timestamp. Each side's records are kept in a window store (retention before + after +
    grace) that expires by *its own* latest timestamp. Unmatched records of the outer side(s):

    * legacy mode (no GRACE PERIOD): joined with NULL at once;
    * otherwise: kept until their window closes (``t + after|before + grace < stream time``), then
      joined with NULL (checked whenever a record advances stream time); a record whose window had
      already closed when it arrived is joined with NULL at once.
    """

    def __init__(self, name: str, before: int, after: int, grace: int, joiner, kind: str, legacy: bool,
                 stores: tuple[str, str], pending: str | None) -> None:
        super().__init__(name)
        self.before, self.after, self.grace = before, after, grace
        self.joiner = joiner
        self.kind = kind
        self.legacy = legacy
        self.store_names = stores
        self.pending_name = pending
        self.emits_null = (kind in (_LEFT, _OUTER), kind == _OUTER)
        self.range = ((before, after), (after, before))  # (back, ahead) per side
        self.look = (after, before)
        self.retention = before + after + grace
        self.stream_time = -(1 << 62)
        self.min_time = 1 << 62

    def init(self, ctx) -> None:
        super().init(ctx)
        seg = max(self.retention // 2, 60_000)
        self.stores = tuple(ctx.window_store(n, self.retention, seg) for n in self.store_names)
        self.pending = ctx.kv_store(self.pending_name) if self.pending_name else None

    def _report(self, batch: Batch, i: int, reason: str) -> None:
        self.ctx.processing_log.report(reason, operator=self.name, topic=batch.topic, partition=batch.partition,
                                       offset=None if batch.offsets is None else int(batch.offsets[i]))

    def _join(self, side: int, v, ov):
        return self.joiner(v, ov) if side == _LEFT_SIDE else self.joiner(ov, v)

    def process(self, batch: Batch) -> None:
        side = batch.extra.get(_SIDE_TAG)
        other = 1 - side
        back, ahead = self.range[side]
        mine, theirs = self.stores[side], self.stores[other]
        out_k: list = []
        out_v: list = []
        out_ts: list = []
        out_h: list = []
        hs = batch.headers
        for i, (k, v, t) in enumerate(zip(batch.keys, batch.rows(), batch.timestamps.tolist())):
            h = hs[i] if hs else None
            if k is None:
                self.ctx.null_keys(self.name, batch, [i])
                continue
            if v is None:
                self.ctx.count("null-value-records-skipped")
                continue
            self.stream_time = max(self.stream_time, t)
            kb = encode_key(k)
            mine.advance(t)
            raw = mine.get(kb, t)
            mine.put(kb, t, pack([*([] if raw is None else unpack(raw)), v]))
            if self.pending is not None and t == self.stream_time:
                self._emit_closed(out_k, out_v, out_ts, out_h)
            lo, hi = max(0, t - back), max(0, t + ahead)
            lo = max(lo, theirs.observed_time - theirs.retention_ms + 1)
            matched = False
            if hi >= lo:
                for to, oraw in list(theirs.fetch(kb, lo, hi)):
                    if self.pending is not None:
                        pk = self._pending_key(other, kb, to)
                        if self.pending.get(pk) is not None:
                            self.pending.delete(pk)
                    for ov in unpack(oraw):
                        matched = True
                        try:
                            res = self._join(side, v, ov)
                        except Exception as e:  # noqa: BLE001 - a failing joiner skips the pair
                            self._report(batch, i, f"{type(e).__name__}: {e}")
                            continue
                        out_k.append(k)
                        out_v.append(res)
                        out_ts.append(max(t, to))
                        out_h.append(h)
            if matched or not self.emits_null[side]:
                continue
            if self.pending is None or hi < self.stream_time:
                try:
                    res = self._join(side, v, None)
                except Exception as e:  # noqa: BLE001
                    self._report(batch, i, f"{type(e).__name__}: {e}")
                    continue
                out_k.append(k)
                out_v.append(res)
                out_ts.append(t)
                out_h.append(h)
            else:
                pk = self._pending_key(side, kb, t)
                praw = self.pending.get(pk)
                self.pending.put(pk, pack([*([] if praw is None else unpack(praw)), v]))
                self.min_time = min(self.min_time, t)
        if out_k:
            self.forward(Batch(out_k, out_v, np.asarray(out_ts, dtype=np.int64),
                               headers=out_h if any(x for x in out_h) else None))

    @staticmethod
    def _pending_key(side: int, kb: bytes, t: int) -> bytes:
        # ordered by timestamp, then side (right first, as Kafka Streams' boolean), then key
        return _ts_key(t) + bytes([1 if side == _LEFT_SIDE else 0]) + kb

    def _emit_closed(self, out_k: list, out_v: list, out_ts: list, out_h: list) -> None:
        if self.min_time + self.after + self.grace >= self.stream_time:
            return
        done = []
        for pk, raw in list(self.pending.range(None, None)):
            t = _TS.unpack_from(pk)[0] - (1 << 63)
            side = _LEFT_SIDE if pk[8] == 1 else _RIGHT_SIDE
            self.min_time = t
            if t + self.look[side] + self.grace >= self.stream_time:
                continue
            k = decode_key(pk[9:])
            for v in unpack(raw):
                try:
                    res = self._join(side, v, None)
                except Exception as e:  # noqa: BLE001
                    self.ctx.processing_log.report(f"{type(e).__name__}: {e}", operator=self.name)
                    continue
                out_k.append(k)
                out_v.append(res)
                out_ts.append(t)
                out_h.append(None)
            done.append(pk)
        for pk in done:
            self.pending.delete(pk)
        if not done and not list(self.pending.range(None, None)):
            self.min_time = 1 << 62


def stream_stream_join(left, right, joiner, kind: str, before: int, after: int, grace: int, legacy: bool, name: str | None = None):
    """Wire a :class:`KsqlStreamJoinNode` into the topology (repartitioning re-keyed inputs)."""
    from ..engine.topology import NodeSpec, Stream

    top = left._top
    if left._key_changed:
        left = left.repartition()
    if right._key_changed:
        right = right.repartition()
    name = name or top._name({_INNER: "KSTREAM-JOIN", _LEFT: "KSTREAM-LEFTJOIN", _OUTER: "KSTREAM-OUTERJOIN"}[kind])
    this, that = f"{name}-this", f"{name}-other"
    top._add(NodeSpec(this, lambda: _SideNode(this, _LEFT_SIDE), [left._node]))
    top._add(NodeSpec(that, lambda: _SideNode(that, _RIGHT_SIDE), [right._node]))
    ls, rs = f"{name}-this-store", f"{name}-other-store"
    ps = f"{name}-outer-store" if kind != _INNER and not legacy else None
    stores = [(ls, "window"), (rs, "window")] + ([(ps, "kv")] if ps else [])
    top._add(NodeSpec(name, lambda: KsqlStreamJoinNode(name, before, after, grace, joiner, kind, legacy, (ls, rs), ps),
                      [this, that], stores=stores))
    return Stream(top, name, False)
