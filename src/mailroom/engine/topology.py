"""The Python DSL: build a topology of streams and tables, then run it with :class:`~.app.App`
(or the :class:`~.driver.TestDriver`).

    import polars as pl
    from mailroom.engine import Topology, TimeWindows
    from mailroom.engine.serdes import JsonColumnsSerde

    top = Topology()
    events = top.stream("email-events", value_serde=JsonColumnsSerde({"domain": pl.String, "type": pl.String}))
    (events.filter(pl.col("type") == "delivered")
           .group_by("domain")                       # new key: goes through a repartition topic
           .count()
           .to_stream()
           .to("delivered-per-domain"))

A topology is a description: each task instantiates its own nodes from it (each with its own
state). It splits into sub-topologies at repartition topics; a task runs one sub-topology for
one partition number of all that sub-topology's (co-partitioned) source topics.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .aggregators import Aggregator, CountAggregator, LatestAggregator, ReduceAggregator, SumAggregator, aggregator
from .node import Node
from .processor import Processor
from .operators.aggregate import AggregateNode
from .operators.repartition import BatchRepartitionSink, BatchRepartitionSource, CountCombineNode
from .operators.source_sink import SinkNode, SourceNode
from .operators.stateless import FilterNode, FlatMapNode, MapNode, MapValuesNode, PeekNode, SelectKeyNode
from .operators.table import ToStreamNode
from .operators.windowed_aggregate import WindowedAggregateNode
from .serdes import JSON, MSGPACK, STRING, Serde
from .windows import TimeWindows


@dataclass
class NodeSpec:
    """How to make one node, and where it sits."""

    name: str
    factory: Callable[[], Node]
    parents: list[str] = field(default_factory=list)
    source_topic: str | None = None
    sink_topic: str | None = None
    stores: list[tuple[str, str]] = field(default_factory=list)  # (store name, "kv" | "window")


@dataclass
class SubTopology:
    """A connected part of the topology: its nodes (in creation order) and source topics."""

    id: int
    nodes: list[str]
    source_topics: list[str]


class Topology:
    """A graph of streams and tables under construction."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeSpec] = {}
        self.internal_topics: dict[str, dict[str, str]] = {}  # suffix -> topic config (app id prefixed later)
        self._seq = itertools.count()

    def _name(self, kind: str) -> str:
        return f"{kind}-{next(self._seq):010d}"

    def _add(self, spec: NodeSpec) -> str:
        if spec.name in self.nodes:
            raise ValueError(f"a node named '{spec.name}' already exists in this topology")
        self.nodes[spec.name] = spec
        return spec.name

    # -- entry points -----------------------------------------------------------------------------
    def stream(
        self,
        topic: str,
        *,
        key_serde: Serde = STRING,
        value_serde: Serde = JSON,
        timestamp_field: str | None = None,
        prepare: Callable | None = None,
        name: str | None = None,
    ) -> Stream:
        """Records of ``topic`` as a stream. ``timestamp_field`` takes event time from a value field;
        ``prepare(batch) -> (batch, [(position, reason)])`` may rewrite each decoded batch
        (values, keys, event time) and reject records (see :class:`SourceNode`)."""
        name = name or self._name("SOURCE")
        if any(s.source_topic == topic for s in self.nodes.values()):
            raise ValueError(f"topic '{topic}' is already a source of this topology: reuse that stream")
        self._add(NodeSpec(name, lambda: SourceNode(name, topic, key_serde, value_serde, timestamp_field, prepare), source_topic=topic))
        return Stream(self, name)

    def table(self, topic: str, *, key_serde: Serde = STRING, value_serde: Serde = JSON, prepare: Callable | None = None,
              name: str | None = None) -> Table:
        """Records of ``topic`` as a table (materialized): the latest value per key; a NULL value
        deletes the key. ``prepare`` as for :meth:`stream` (tombstones are not passed to it). See :mod:`.tables`."""
        from .tables import source_table

        return source_table(self, topic, key_serde, value_serde, name, prepare)

    # -- structure ------------------------------------------------------------------------------------
    def subtopologies(self) -> list[SubTopology]:
        """The connected parts, in order of their first node."""
        parent = {n: n for n in self.nodes}

        def find(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for spec in self.nodes.values():
            for p in spec.parents:
                parent[find(spec.name)] = find(p)
        groups: dict[str, list[str]] = {}
        for n in self.nodes:
            groups.setdefault(find(n), []).append(n)
        out = []
        for i, members in enumerate(groups.values()):
            topics = [self.nodes[n].source_topic for n in members if self.nodes[n].source_topic]
            out.append(SubTopology(i, members, topics))
        return out

    def describe(self) -> str:
        """A readable listing of the sub-topologies and their nodes."""
        lines = []
        for sub in self.subtopologies():
            lines.append(f"Sub-topology {sub.id} (sources: {', '.join(sub.source_topics)})")
            for n in sub.nodes:
                spec = self.nodes[n]
                extra = f" <- {', '.join(spec.parents)}" if spec.parents else ""
                if spec.sink_topic:
                    extra += f" -> topic {spec.sink_topic}"
                if spec.stores:
                    extra += f" [stores: {', '.join(s for s, _ in spec.stores)}]"
                lines.append(f"  {n}{extra}")
        return "\n".join(lines)


class Stream:
    """An append-only stream of (key, value) records."""

    def __init__(self, top: Topology, node: str, key_changed: bool = False) -> None:
        self._top = top
        self._node = node
        self._key_changed = key_changed
        self._repartition_sink: str | None = None  # this stream comes out of that repartition sink

    def _then(self, kind: str, make: Callable[[str], Node], name: str | None = None, key_changed: bool | None = None) -> Stream:
        name = name or self._top._name(kind)
        self._top._add(NodeSpec(name, lambda: make(name), [self._node]))
        return Stream(self._top, name, self._key_changed if key_changed is None else key_changed)

    def filter(self, predicate: pl.Expr | Callable[[Any, Any], bool], *, name: str | None = None) -> Stream:
        """Keep records where ``predicate`` holds: a polars expression over the value's columns
        (vectorized), or ``predicate(key, value) -> bool``."""
        return self._then("FILTER", lambda n: FilterNode(n, predicate), name)

    def map_values(self, fn: Callable[[Any], Any] | list[pl.Expr] | dict[str, pl.Expr], *, name: str | None = None) -> Stream:
        """New values: expressions (a list, or {column: expression}) or ``fn(value)``."""
        return self._then("MAPVALUES", lambda n: MapValuesNode(n, fn), name)

    def map(self, fn: Callable[[Any, Any], tuple[Any, Any]], *, name: str | None = None) -> Stream:
        """New (key, value) pairs: ``fn(key, value) -> (key, value)``. Changes the key."""
        return self._then("MAP", lambda n: MapNode(n, fn), name, key_changed=True)

    def flat_map(self, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]], *, name: str | None = None) -> Stream:
        """Zero or more (key, value) pairs per record. Changes the key."""
        return self._then("FLATMAP", lambda n: FlatMapNode(n, fn), name, key_changed=True)

    def select_key(self, key: str | pl.Expr | Callable[[Any, Any], Any], *, name: str | None = None) -> Stream:
        """A new key: a value column, an expression, or ``fn(key, value)``."""
        return self._then("KEY-SELECT", lambda n: SelectKeyNode(n, key), name, key_changed=True)

    def process(self, processor: type[Processor] | Callable[[], Processor], *, stores: Sequence[str] | None = None,
                name: str | None = None) -> Stream:
        """Run a custom :class:`~.processor.Processor` (made anew for each task by calling
        ``processor()``); what it emits is the new stream. ``stores`` defaults to its class's."""
        name = name or self._top._name("PROCESSOR")
        declared = list(stores if stores is not None else getattr(processor, "stores", ()))

        def make(n: str) -> Processor:
            node = processor()
            node.name = n
            return node

        self._top._add(NodeSpec(name, lambda: make(name), [self._node], stores=[(s, "kv") for s in declared]))
        return Stream(self._top, name, True)

    def peek(self, fn: Callable[[Any, Any], None], *, name: str | None = None) -> Stream:
        """Call ``fn(key, value)`` on each record, passing it on."""
        return self._then("PEEK", lambda n: PeekNode(n, fn), name)

    def merge(self, other: Stream, *, name: str | None = None) -> Stream:
        """Both streams' records, as one stream."""
        name = name or self._top._name("MERGE")
        self._top._add(NodeSpec(name, lambda: Node(name), [self._node, other._node]))
        return Stream(self._top, name, self._key_changed or other._key_changed)

    def to(self, topic: str, *, key_serde: Serde = STRING, value_serde: Serde = JSON, name: str | None = None) -> None:
        """Write the records to ``topic`` (partitioned by key)."""
        name = name or self._top._name("SINK")
        self._top._add(NodeSpec(name, lambda: SinkNode(name, topic, key_serde, value_serde), [self._node], sink_topic=topic))

    def repartition(self, *, name: str | None = None) -> Stream:
        """Send the records through an internal topic so they land in the partition of their key."""
        base = name or self._top._name("REPARTITION")
        suffix = f"{base}-repartition"
        self._top.internal_topics[suffix] = {}
        topic = "{app}-" + suffix
        sink = base + "-sink"
        # columnar batches, one log record per (batch, partition): see operators/repartition.py
        self._top._add(NodeSpec(sink, lambda: BatchRepartitionSink(sink, topic), [self._node], sink_topic=topic))
        src = base + "-source"
        self._top._add(NodeSpec(src, lambda: BatchRepartitionSource(src, topic), source_topic=topic))
        out = Stream(self._top, src, False)
        out._repartition_sink = sink  # (an aggregation may put a combiner before it)
        return out

    def group_by_key(self) -> GroupedStream:
        """Group by the current key (repartitioning first if an operator changed it)."""
        s = self.repartition() if self._key_changed else self
        return GroupedStream(s)

    def group_by(self, key: str | pl.Expr | Callable[[Any, Any], Any]) -> GroupedStream:
        """Group by a new key (a column, an expression or a function): select_key + group_by_key."""
        return self.select_key(key).group_by_key()

    # -- joins: with a Table (stream-table, in .tables) or a Stream (windowed stream-stream) -----------
    def join(self, other: Table | Stream, joiner: Callable[[Any, Any], Any], *, window=None, name: str | None = None, **kw: Any) -> Stream:
        """Inner join. With a :class:`Table`: each record is joined with the table's current value
        for its key at arrival (no match: dropped; table updates trigger nothing); the stream is
        repartitioned first if its key changed. With a :class:`Stream`: a windowed join (``window``)."""
        if isinstance(other, Table):
            from .tables import stream_table_join

            return stream_table_join(self, other, joiner, False, name)
        return self._stream_stream_join(other, joiner, "inner", window=window, name=name, **kw)

    def left_join(self, other: Table | Stream, joiner: Callable[[Any, Any], Any], *, window=None, name: str | None = None, **kw: Any) -> Stream:
        """Left join: like :meth:`join`, records without a match are joined with None."""
        if isinstance(other, Table):
            from .tables import stream_table_join

            return stream_table_join(self, other, joiner, True, name)
        return self._stream_stream_join(other, joiner, "left", window=window, name=name, **kw)

    def outer_join(self, other: Stream, joiner: Callable[[Any, Any], Any], *, window=None, name: str | None = None) -> Stream:
        """Windowed outer join of two streams: unmatched records of either side are joined with None
        once their window closes (``joiner(left, None)`` / ``joiner(None, right)``)."""
        return self._stream_stream_join(other, joiner, "outer", window=window, name=name)

    def _stream_stream_join(self, other: Stream, joiner, kind: str, *, window=None, name: str | None = None, **kw: Any) -> Stream:
        """Windowed stream-stream joins (``window``: a :class:`~.windows.JoinWindows`); see
        :mod:`.operators.stream_join`."""
        if kw:
            raise TypeError(f"unexpected arguments for a stream-stream join: {sorted(kw)}")
        if window is None:
            raise TypeError("a stream-stream join needs window=JoinWindows(...)")
        from .operators.stream_join import stream_join

        return stream_join(self, other, joiner, window, kind, name)


class GroupedStream:
    """A stream grouped by key, ready to aggregate."""

    def __init__(self, stream: Stream) -> None:
        self._s = stream

    def _aggregate(self, kind: str, agg: Aggregator, name: str | None, ttl_ms: int | None = None) -> Table:
        top = self._s._top
        name = name or top._name(kind)
        store = f"{name}-store"
        stores = [(store, "kv")] + ([(store + "-expiry", "kv")] if ttl_ms is not None else [])
        top._add(NodeSpec(name, lambda: AggregateNode(name, store, agg, ttl_ms), [self._s._node], stores=stores))
        return Table(top, name, store)

    def count(self, *, ttl_ms: int | None = None, name: str | None = None) -> Table:
        """Records per key. ``ttl_ms``: forget a key not updated for that long (stream time),
        emitting a tombstone for it (see :meth:`aggregate`).

        After a re-key, each batch is counted per key before the repartition topic (a combiner),
        so that topic carries a count per distinct key and batch rather than every record."""
        if ttl_ms is None and self._s._repartition_sink is not None:
            self._combine_before(self._s._repartition_sink, CountCombineNode)
        return self._aggregate("COUNT", CountAggregator(), name, ttl_ms)

    def _combine_before(self, sink: str, make: Callable[[str], Node]) -> None:
        """Put a combiner node right before the repartition sink ``sink`` (in the same place of
        the node order, so sub-topologies, tasks and internal topics keep their names)."""
        top = self._s._top
        spec = top.nodes[sink]
        name = sink + "-combine"
        if name in top.nodes:
            return
        combine = NodeSpec(name, lambda: make(name), list(spec.parents))
        spec.parents = [name]
        nodes = {}
        for n, sp in top.nodes.items():
            if n == sink:
                nodes[name] = combine
            nodes[n] = sp
        top.nodes = nodes

    def sum(self, field: str, *, ttl_ms: int | None = None, name: str | None = None) -> Table:
        """Sum of a value field per key."""
        return self._aggregate("SUM", SumAggregator(field), name, ttl_ms)

    def aggregate(
        self,
        initializer: Callable[[], Any],
        adder: Callable[[Any, Any, Any], Any],
        *,
        ttl_ms: int | None = None,
        name: str | None = None,
    ) -> Table:
        """``adder(key, value, aggregate) -> aggregate``, from ``initializer()``.

        ``ttl_ms`` is a state TTL: a key whose last update (by event time) is more than
        ``ttl_ms`` behind stream time is deleted, and the table emits a tombstone for it whose
        old value is the last aggregate: e.g. "a message with no final event for 4 hours"::

            state = events.group_by_key().aggregate(dict, track, ttl_ms=4 * 3600_000)
            stuck = state.to_stream(with_old=True).filter(lambda k, v: v["new"] is None)
        """
        return self._aggregate("AGGREGATE", aggregator(initializer, adder), name, ttl_ms)

    def reduce(self, reducer: Callable[[Any, Any], Any], *, ttl_ms: int | None = None, name: str | None = None) -> Table:
        """``reducer(aggregate, value) -> aggregate``; the first value starts it."""
        return self._aggregate("REDUCE", ReduceAggregator(reducer), name, ttl_ms)

    def latest(self, *, ttl_ms: int | None = None, name: str | None = None) -> Table:
        """The latest value per key (in arrival order): the same table as
        ``reduce(lambda old, new: new)``, computed a batch at a time without calling Python per
        record (e.g. the current state of each message)::

            state = events.group_by_key().latest()
        """
        return self._aggregate("REDUCE", LatestAggregator(), name, ttl_ms)

    def windowed_by(self, windows: TimeWindows) -> WindowedGroupedStream:
        """Aggregate per time window (tumbling or hopping), or per session (:class:`SessionWindows`)."""
        from .windows import SessionWindows

        if isinstance(windows, SessionWindows):
            from .operators.session_aggregate import SessionWindowedGroupedStream

            return SessionWindowedGroupedStream(self._s, windows)
        return WindowedGroupedStream(self._s, windows)


class WindowedGroupedStream:
    """A grouped stream, windowed."""

    def __init__(self, stream: Stream, windows: TimeWindows) -> None:
        self._s = stream
        self._w = windows

    def _aggregate(self, kind: str, agg: Aggregator, name: str | None, emit_final: bool, final_within_retention: bool = False) -> Table:
        top = self._s._top
        name = name or top._name(kind)
        store = f"{name}-store"
        stores = [(store, "window")] + ([(store + "-suppress", "kv")] if emit_final else [])
        top._add(NodeSpec(name, lambda: WindowedAggregateNode(name, store, self._w, agg, emit_final, final_within_retention=final_within_retention),
                          [self._s._node], stores=stores))
        return Table(top, name, store)

    def count(self, *, emit_final: bool = False, name: str | None = None) -> Table:
        """Records per key and window; ``emit_final``: only each window's final count, when it closes."""
        return self._aggregate("WINDOW-COUNT", CountAggregator(), name, emit_final)

    def sum(self, field: str, *, emit_final: bool = False, name: str | None = None) -> Table:
        return self._aggregate("WINDOW-SUM", SumAggregator(field), name, emit_final)

    def aggregate(self, initializer, adder, *, emit_final: bool = False, name: str | None = None) -> Table:
        return self._aggregate("WINDOW-AGGREGATE", aggregator(initializer, adder), name, emit_final)


class Table:
    """A changelog: the latest value per key (made by an aggregation)."""

    def __init__(self, top: Topology, node: str, store: str | None) -> None:
        self._top = top
        self._node = node
        self.store_name = store

    def to_stream(self, *, with_old: bool = False, name: str | None = None) -> Stream:
        """The table's changes as a stream (a deleted key becomes a NULL value).

        ``with_old``: each value is ``{"old": previous value, "new": new value}`` instead, so a
        deletion still tells what was deleted (``new`` is None)."""
        name = name or self._top._name("TOSTREAM")
        self._top._add(NodeSpec(name, lambda: ToStreamNode(name, with_old), [self._node]))
        return Stream(self._top, name)

    # -- table operations and joins (built in .tables) ------------------------------------------------
    def filter(self, predicate: pl.Expr | Callable[[Any, Any], bool], *, name: str | None = None) -> Table:
        """Rows where ``predicate(key, value)`` (or an expression) holds; a row that stops
        matching is deleted (a tombstone is emitted if it matched before)."""
        from .tables import table_filter

        return table_filter(self, predicate, name)

    def map_values(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Table:
        """New values ``fn(value)`` for each row (deletes stay deletes)."""
        from .tables import table_map_values

        return table_map_values(self, fn, name)

    def group_by(self, key: str | Callable[[Any, Any], Any], *, name: str | None = None):
        """Re-group the rows by a value column or ``key(key, value)``: a :class:`~.tables.GroupedTable`."""
        from .tables import GroupedTable

        return GroupedTable(self, key, name)

    def join(self, other: Table, joiner: Callable[[Any, Any], Any], *, foreign_key=None, name: str | None = None) -> Table:
        """Inner join with another table: by key, or with ``foreign_key`` (a column of this table's
        value or ``fn(value)``) on the other table's key. ``joiner(this_value, other_value)``."""
        from .tables import fk_join, table_table_join

        if foreign_key is not None:
            return fk_join(self, other, joiner, foreign_key, "inner", name)
        return table_table_join(self, other, joiner, "inner", name)

    def left_join(self, other: Table, joiner: Callable[[Any, Any], Any], *, foreign_key=None, name: str | None = None) -> Table:
        """Left join (every row of this table; ``other_value`` None where there is no match)."""
        from .tables import fk_join, table_table_join

        if foreign_key is not None:
            return fk_join(self, other, joiner, foreign_key, "left", name)
        return table_table_join(self, other, joiner, "left", name)

    def outer_join(self, other: Table, joiner: Callable[[Any, Any], Any], *, name: str | None = None) -> Table:
        """Outer join by key (either value may be None)."""
        from .tables import table_table_join

        return table_table_join(self, other, joiner, "outer", name)
