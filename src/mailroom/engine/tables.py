"""The table side of the DSL: source tables, table operations, grouped tables and joins.

:class:`~.topology.Topology` and :class:`~.topology.Table` / :class:`~.topology.Stream` call
into here (the builders are kept out of topology.py, which several operator families share).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .aggregators import Aggregator, CountAggregator, SumAggregator, aggregator
from .operators.aggregate import AggregateNode
from .operators.source_sink import SinkNode, SourceNode
from .operators.table_join import (
    INNER,
    LEFT,
    OUTER,
    FkResponseNode,
    FkRightChangeNode,
    FkSubscribeNode,
    FkSubscriptionNode,
    StreamTableJoinNode,
    TableJoinSideNode,
)
from .operators.table_ops import (
    LIST_MSGPACK,
    AggregateStoreGetter,
    FilterGetter,
    MapValuesGetter,
    MaterializeNode,
    NullNode,
    ReduceAggregator,
    StoreGetter,
    TableAggregateGetter,
    TableAggregateNode,
    TableFilterNode,
    TableMapValuesNode,
    TableRepartitionMapNode,
    TableSourceNode,
    ValueGetter,
)
from .serdes import JSON, MSGPACK, STRING, Serde

if TYPE_CHECKING:
    from .topology import Stream, Table, Topology


def _spec(*args, **kw):
    from .topology import NodeSpec

    return NodeSpec(*args, **kw)


def _table(top: Topology, node: str, store: str | None, getter: ValueGetter | None) -> Table:
    from .topology import Table

    t = Table(top, node, store)
    t._getter = getter
    return t


def _stream(top: Topology, node: str) -> Stream:
    from .topology import Stream

    return Stream(top, node)


# -- what a table is made of ----------------------------------------------------------------------------
def getter_of(table: Table) -> ValueGetter:
    """How a task reads ``table``'s current values (for joins)."""
    g = getattr(table, "_getter", None)
    if g is not None:
        return g
    spec = table._top.nodes[table._node]
    node = spec.factory()
    if isinstance(node, AggregateNode):  # a stream aggregation
        return AggregateStoreGetter(node.store_name, node.agg)
    raise TypeError(f"table '{table._node}' ({type(node).__name__}) cannot be looked up: windowed tables cannot be joined")


def key_serde_of(top: Topology, node: str) -> Serde:
    """The serde of the keys at ``node``, as they were partitioned: the key serde of the source
    topic it descends from (through its first parents). Internal topics should encode keys
    with it so that records land in the partition of the same key of that source."""
    seen = set()
    while node not in seen:
        seen.add(node)
        spec = top.nodes[node]
        if spec.source_topic is not None:
            inst = spec.factory()
            return getattr(inst, "key_serde", MSGPACK)
        if not spec.parents:
            break
        node = spec.parents[0]
    return MSGPACK


def _internal_topic(top: Topology, suffix: str) -> str:
    top.internal_topics[suffix] = {}
    return "{app}-" + suffix


# -- source tables ----------------------------------------------------------------------------------------
def source_table(top: Topology, topic: str, key_serde: Serde = STRING, value_serde: Serde = JSON, name: str | None = None,
                 prepare=None) -> Table:
    name = name or top._name("TABLE-SOURCE")
    if any(s.source_topic == topic for s in top.nodes.values()):
        raise ValueError(f"topic '{topic}' is already a source of this topology")
    store = f"{name}-store"
    top._add(_spec(name, lambda: TableSourceNode(name, topic, key_serde, value_serde, store, prepare), source_topic=topic, stores=[(store, "kv")]))
    return _table(top, name, store, StoreGetter(store))


# -- stateless table operations -----------------------------------------------------------------------------
def table_filter(table: Table, predicate, name: str | None = None) -> Table:
    top = table._top
    name = name or top._name("KTABLE-FILTER")
    top._add(_spec(name, lambda: TableFilterNode(name, predicate), [table._node]))
    parent = _maybe_getter(table)
    return _table(top, name, None, None if parent is None else FilterGetter(parent, predicate))


def table_map_values(table: Table, fn: Callable[[Any], Any], name: str | None = None) -> Table:
    if not callable(fn):
        raise TypeError("Table.map_values takes a function of the value")
    top = table._top
    name = name or top._name("KTABLE-MAPVALUES")
    top._add(_spec(name, lambda: TableMapValuesNode(name, fn), [table._node]))
    parent = _maybe_getter(table)
    return _table(top, name, None, None if parent is None else MapValuesGetter(parent, fn))


def _maybe_getter(table: Table) -> ValueGetter | None:
    try:
        return getter_of(table)
    except TypeError:
        return None


# -- grouped tables -------------------------------------------------------------------------------------------
class GroupedTable:
    """A table re-grouped by a new key, ready to aggregate. Each change of a row subtracts its
    old value from its old group and adds its new value to its new group."""

    def __init__(self, table: Table, selector: str | Callable[[Any, Any], Any], name: str | None = None) -> None:
        self._table = table
        self._selector = selector
        self._name = name

    def _aggregate(self, kind: str, agg: Aggregator, name: str | None, delete_empty: bool = False) -> Table:
        top = self._table._top
        name = name or top._name(kind)
        base = self._name or f"{name}-groupby"
        sel = self._selector
        mapper = base + "-select"
        top._add(_spec(mapper, lambda: TableRepartitionMapNode(mapper, sel), [self._table._node]))
        topic = _internal_topic(top, f"{base}-repartition")
        sink = base + "-repartition-sink"
        top._add(_spec(sink, lambda: SinkNode(sink, topic, MSGPACK, LIST_MSGPACK), [mapper], sink_topic=topic))
        src = base + "-repartition-source"
        top._add(_spec(src, lambda: SourceNode(src, topic, MSGPACK, LIST_MSGPACK), source_topic=topic))
        store = f"{name}-store"
        top._add(_spec(name, lambda: TableAggregateNode(name, store, agg, delete_empty), [src], stores=[(store, "kv")]))
        return _table(top, name, store, TableAggregateGetter(store, agg))

    def count(self, *, name: str | None = None) -> Table:
        """Rows per group."""
        return self._aggregate("KTABLE-COUNT", CountAggregator(), name)

    def sum(self, field: str, *, name: str | None = None) -> Table:
        """Sum of a value field over the group's rows."""
        return self._aggregate("KTABLE-SUM", SumAggregator(field), name)

    def aggregate(
        self,
        initializer: Callable[[], Any],
        adder: Callable[[Any, Any, Any], Any],
        subtractor: Callable[[Any, Any, Any], Any],
        *,
        name: str | None = None,
    ) -> Table:
        """``adder(key, value, aggregate)`` for a row joining the group, ``subtractor(key, value,
        aggregate)`` for one leaving it (or changing: the old value is subtracted first)."""
        return self._aggregate("KTABLE-AGGREGATE", aggregator(initializer, adder, subtractor), name)

    def reduce(self, adder: Callable[[Any, Any], Any], subtractor: Callable[[Any, Any], Any], *, name: str | None = None) -> Table:
        """``adder(aggregate, value)`` / ``subtractor(aggregate, value)``; the first row starts it.
        A group whose last row leaves is deleted."""
        return self._aggregate("KTABLE-REDUCE", ReduceAggregator(adder, subtractor), name, delete_empty=True)


# -- joins -------------------------------------------------------------------------------------------------------
def _hole(top: Topology, parent: str, name: str) -> str:
    """A node that takes a parent's records and passes nothing on: it only puts the parent in
    the same sub-topology as the node it feeds (co-partitioning)."""
    top._add(_spec(name, lambda: NullNode(name), [parent]))
    return name


def stream_table_join(stream: Stream, table: Table, joiner, left: bool, name: str | None = None) -> Stream:
    top = stream._top
    name = name or top._name("KSTREAM-LEFTJOIN" if left else "KSTREAM-JOIN")
    getter = getter_of(table)
    node = stream._node
    if stream._key_changed:  # repartition the stream by its new key, as the table is partitioned
        kser = key_serde_of(top, table._node)
        topic = _internal_topic(top, f"{name}-repartition")
        sink = name + "-repartition-sink"
        top._add(_spec(sink, lambda: SinkNode(sink, topic, kser, MSGPACK), [node], sink_topic=topic))
        src = name + "-repartition-source"
        top._add(_spec(src, lambda: SourceNode(src, topic, kser, LIST_MSGPACK), source_topic=topic))
        node = src
    hole = _hole(top, table._node, name + "-table")
    top._add(_spec(name, lambda: StreamTableJoinNode(name, getter, joiner, left), [node, hole]))
    return _stream(top, name)


def table_table_join(left: Table, right: Table, joiner, kind: str, name: str | None = None) -> Table:
    if left._top is not right._top:
        raise ValueError("both tables must belong to the same topology")
    top = left._top
    name = name or top._name({INNER: "KTABLE-JOIN", LEFT: "KTABLE-LEFTJOIN", OUTER: "KTABLE-OUTERJOIN"}[kind])
    lg, rg = getter_of(left), getter_of(right)
    this, other = name + "-this", name + "-other"
    top._add(_spec(this, lambda: TableJoinSideNode(this, rg, joiner, kind, True), [left._node]))
    top._add(_spec(other, lambda: TableJoinSideNode(other, lg, joiner, kind, False), [right._node]))
    store = f"{name}-store"
    top._add(_spec(name, lambda: MaterializeNode(name, store), [this, other], stores=[(store, "kv")]))
    return _table(top, name, store, StoreGetter(store))


def fk_join(left: Table, right: Table, joiner, foreign_key, kind: str, name: str | None = None) -> Table:
    if kind == OUTER:
        raise ValueError("a foreign-key join is inner or left (as in Kafka Streams)")
    if left._top is not right._top:
        raise ValueError("both tables must belong to the same topology")
    top = left._top
    name = name or top._name("KTABLE-FK-JOIN" if kind == INNER else "KTABLE-FK-LEFTJOIN")
    lg, rg = getter_of(left), getter_of(right)
    lser, rser = key_serde_of(top, left._node), key_serde_of(top, right._node)
    sub_topic = _internal_topic(top, f"{name}-subscription-registration-topic")
    resp_topic = _internal_topic(top, f"{name}-subscription-response-topic")
    # left side: subscriptions out, local rows (deletes, no foreign key) on
    subscribe = name + "-subscribe"
    top._add(_spec(subscribe, lambda: FkSubscribeNode(subscribe, sub_topic, foreign_key, joiner, kind, rser), [left._node], sink_topic=sub_topic))
    # right side: subscription store, answers to subscriptions and to right changes
    sub_store = f"{name}-subscription-store"
    sub_src = name + "-subscription-source"
    top._add(_spec(sub_src, lambda: SourceNode(sub_src, sub_topic, rser, LIST_MSGPACK), source_topic=sub_topic))
    sub_node = name + "-subscription"
    top._add(_spec(sub_node, lambda: FkSubscriptionNode(sub_node, resp_topic, sub_store, rg, lser), [sub_src], sink_topic=resp_topic, stores=[(sub_store, "kv")]))
    rchange = name + "-right-change"
    top._add(_spec(rchange, lambda: FkRightChangeNode(rchange, resp_topic, sub_store, lser), [right._node], sink_topic=resp_topic))
    link = name + "-right-link"
    top._add(_spec(link, lambda: NullNode(link), [sub_node, rchange]))
    # left side again: answers joined with the current left rows, materialized
    resp_src = name + "-response-source"
    top._add(_spec(resp_src, lambda: SourceNode(resp_src, resp_topic, lser, LIST_MSGPACK), source_topic=resp_topic))
    resolve = name + "-response"
    top._add(_spec(resolve, lambda: FkResponseNode(resolve, lg, joiner, kind), [resp_src]))
    store = f"{name}-store"
    top._add(_spec(name, lambda: MaterializeNode(name, store), [subscribe, resolve], stores=[(store, "kv")]))
    return _table(top, name, store, StoreGetter(store))
