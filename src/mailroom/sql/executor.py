"""The statement executor: runs parsed statements against a metastore and a runtime.

    ex = SqlExecutor(InMemoryRuntime())
    ex.execute_script("CREATE STREAM s (id STRING KEY, n INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
                      "CREATE TABLE counts AS SELECT id, COUNT(*) AS c FROM s GROUP BY id;")

Every statement returns a :class:`Result` (a message, and rows for SHOW/DESCRIBE/...). Errors
raise :class:`~.metastore.SqlError` saying what is wrong and where.
"""

from __future__ import annotations

import collections
import itertools
import logging
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..formats.types import Column, SqlType
from ..functions.registry import FunctionError, FunctionRegistry
from . import ast as A
from .metastore import DataSource, HeaderColumn, MetaStore, SqlError, WindowInfo
from .planner import Planner
from .runtime import Runtime
from .serdes import serdes_for

_processing_log = logging.getLogger("mailroom.processing")

_FORMATS = {"JSON", "KAFKA", "DELIMITED", "NONE", "AVRO", "PROTOBUF", "JSON_SR", "PROTOBUF_NOSR"}
_KNOWN_PROPS = {
    "KAFKA_TOPIC", "PARTITIONS", "REPLICAS", "KEY_FORMAT", "VALUE_FORMAT", "FORMAT", "TIMESTAMP", "TIMESTAMP_FORMAT",
    "WRAP_SINGLE_VALUE", "WINDOW_TYPE", "WINDOW_SIZE", "RETENTION", "KEY_DELIMITER", "VALUE_DELIMITER",
    "VALUE_AVRO_SCHEMA_FULL_NAME", "KEY_SCHEMA_ID", "VALUE_SCHEMA_ID", "KEY_SCHEMA_FULL_NAME", "VALUE_SCHEMA_FULL_NAME",
    "KEY_PROTOBUF_NULLABLE_REPRESENTATION", "VALUE_PROTOBUF_NULLABLE_REPRESENTATION", "SOURCE_CONNECTOR",
}


@dataclass
class Result:
    """What a statement returned."""

    statement: str
    message: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    query_id: str | None = None
    source: DataSource | None = None


@dataclass
class PersistentQuery:
    id: str
    sql: str
    sink: str | None
    sources: list[str]
    state: str = "RUNNING"


class SqlExecutor:
    """Executes statements; keeps the metastore, properties, variables and running queries."""

    def __init__(self, runtime: Runtime, registry: FunctionRegistry | None = None, *, properties: dict[str, Any] | None = None) -> None:
        if registry is None:
            from ..functions import default_registry

            registry = default_registry()
        self.runtime = runtime
        self.registry = registry
        self.meta = MetaStore()
        self.properties: dict[str, Any] = dict(properties or {})
        self.variables: dict[str, str] = {}
        self.queries: dict[str, PersistentQuery] = {}
        self._ids = itertools.count(0)
        #: the latest expression errors (a failing function yields NULL and is reported here and
        #: to the "mailroom.processing" logger; bounded, so a long-running server does not grow)
        self.errors: collections.deque[str] = collections.deque(maxlen=1000)
        self.planner = Planner(self.meta, registry, on_error=self._expression_error)
        self.planner.properties = self.properties  # function configuration (ksql.functions.*)

    def _expression_error(self, message: str) -> None:
        self.errors.append(message)
        _processing_log.warning("expression error (the value became NULL): %s", message)

    # -- entry points -----------------------------------------------------------------------------
    def execute_script(self, text: str) -> list[Result]:
        from .parser import parse

        return [self.execute(stmt) for stmt in parse(text, self.variables)]

    def execute(self, stmt: A.Statement) -> Result:
        method = getattr(self, "_" + type(stmt).__name__, None)
        if method is None:
            raise SqlError(f"{type(stmt).__name__} statements are not supported yet", stmt.pos)
        return method(stmt)

    # -- sources ----------------------------------------------------------------------------------
    def _CreateSource(self, s: A.CreateSource) -> Result:
        existing = self.meta.find(s.name)
        if existing is not None:
            if s.if_not_exists:
                return Result(s.text, f"A {existing.kind.lower()} with the same name already exists")
            if not s.or_replace:
                raise SqlError(f"Cannot add {s.kind.lower()} '{s.name}': A {existing.kind.lower()} with the same name already exists", s.pos)
            if existing.source_only:
                raise SqlError(f"Cannot add {s.kind.lower()} '{s.name}': CREATE OR REPLACE is not supported on source {s.kind.lower()}s.", s.pos)
        if s.or_replace and s.source:
            raise SqlError(f"Cannot add {s.kind.lower()} '{s.name}': CREATE OR REPLACE is not supported on source {s.kind.lower()}s.", s.pos)
        props = s.props
        self._check_props(props, s.pos)
        topic = props.get("KAFKA_TOPIC")
        if topic is None:
            raise SqlError("Missing required property \"KAFKA_TOPIC\" which has no default value.", s.pos)
        key_cols, value_cols, header_cols = [], [], []
        for c in s.columns:
            if c.map_keys and (c.key or c.primary_key):
                raise SqlError(f"Map keys, including types that contain maps, are not supported as they may lead to unexpected "
                               f"behavior due to inconsistent serialization. Key column name: `{c.name}`. Column type: "
                               f"{c.declared}. See https://github.com/confluentinc/ksql/issues/6621 for more.", c.pos)
            t = self.planner.compiler.resolve_type(c.type, c.pos)
            if c.headers and str(t) != "ARRAY<STRUCT<KEY STRING, VALUE BYTES>>":
                from .serdes import ksql_type

                raise SqlError(f"Invalid type for HEADERS column: expected ARRAY<STRUCT<`KEY` STRING, `VALUE` BYTES>>, got {ksql_type(t)}", c.pos)
            if c.header_key is not None and t.base != "BYTES":
                from .serdes import ksql_type

                raise SqlError(f"Invalid type for HEADER('{c.header_key}') column: expected BYTES, got {ksql_type(t)}", c.pos)
            if c.headers or c.header_key is not None:
                header_cols.append(HeaderColumn(c.name, t, c.header_key))
            elif c.key or c.primary_key:
                if s.kind == "STREAM" and c.primary_key:
                    raise SqlError(f"Column `{c.name}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.", c.pos)
                if s.kind == "TABLE" and c.key:
                    raise SqlError(f"Column `{c.name}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.", c.pos)
                key_cols.append(Column(c.name, t))
            else:
                value_cols.append(Column(c.name, t))
        names = [c.name for c in s.columns]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise SqlError(f"Duplicate column names: {dup}", s.pos)
        if s.kind == "TABLE" and not key_cols:
            raise SqlError(f"Tables require a PRIMARY KEY. Please define the PRIMARY KEY.", s.pos)
        src = DataSource(s.kind, s.name, topic, key_cols, value_cols, header_columns=header_cols, sql=s.text, source_only=s.source)
        self._apply_formats(src, props, s.pos)
        resolve = self.planner.compiler.resolve_type
        if src.value_format in ("JSON", "JSON_SR") and any(resolve(k, c.pos) != SqlType.STRING for c in s.columns
                                                            if not (c.key or c.primary_key) for k in c.map_keys):
            raise SqlError("JSON only supports MAP types with STRING keys", s.pos)
        window_type = props.get("WINDOW_TYPE")
        if window_type:
            size = props.get("WINDOW_SIZE")
            if str(window_type).upper() == "SESSION" and size:
                raise SqlError("'WINDOW_SIZE' should not be set for SESSION windows.", s.pos)
            src.window = WindowInfo(str(window_type).upper(), _duration_ms(size) if size else None)
        if props.get("TIMESTAMP"):
            col = str(props["TIMESTAMP"]).upper()
            if src.column(col) is None:
                raise SqlError(f"The TIMESTAMP column set in the WITH clause does not exist in the schema: '{col}'", s.pos)
            src.timestamp_column = col
            src.timestamp_format = props.get("TIMESTAMP_FORMAT")
        if not self.runtime.topic_exists(topic):
            parts = props.get("PARTITIONS")
            if parts is None:
                raise SqlError(f"Topic '{topic}' does not exist. If you want to create a new topic for the {s.kind.lower()} "
                               f"please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause "
                               f"(and optionally 'REPLICAS'). For example: CREATE {s.kind} {s.name} (...) WITH (KAFKA_TOPIC='{topic}', "
                               f"PARTITIONS=2, REPLICAS=1, ...);", s.pos)
            self.runtime.create_topic(topic, int(parts))
        src.partitions = self.runtime.topic_partitions(topic)
        serdes_for(src)  # validates the formats against the schema
        self.meta.add(src, replace=s.or_replace)
        return Result(s.text, f"{s.kind.title()} created", source=src)

    def _check_props(self, props: dict[str, Any], pos) -> None:
        unknown = [k for k in props if k not in _KNOWN_PROPS]
        if unknown:
            raise SqlError(f"Invalid config variable(s) in the WITH clause: {','.join(unknown)}", pos)
        if "FORMAT" in props and ("KEY_FORMAT" in props or "VALUE_FORMAT" in props):
            raise SqlError("Cannot supply both 'FORMAT' and 'KEY_FORMAT' or 'VALUE_FORMAT' properties, as 'FORMAT' sets both key and value formats.", pos)

    def _apply_formats(self, src: DataSource, props: dict[str, Any], pos, inherit: DataSource | None = None) -> None:
        fmt = props.get("FORMAT")
        default_key = self.properties.get("ksql.persistence.default.format.key", "KAFKA")
        kf = props.get("KEY_FORMAT", fmt or (inherit.key_format if inherit else default_key))
        vf = props.get("VALUE_FORMAT", fmt or (inherit.value_format if inherit else None))
        if vf is None:
            raise SqlError("Missing required property \"VALUE_FORMAT\" which has no default value.", pos)
        kf, vf = str(kf).upper(), str(vf).upper()
        for f in (kf, vf):
            if f not in _FORMATS:
                raise SqlError(f"Unknown format: {f}", pos)
        src.key_format, src.value_format = kf, vf
        if "WRAP_SINGLE_VALUE" in props:
            if len(src.value_columns) != 1:
                raise SqlError("'WRAP_SINGLE_VALUE' is only valid for single-field value schemas", pos)
            if vf == "DELIMITED" and bool(props["WRAP_SINGLE_VALUE"]):
                raise SqlError("Format 'DELIMITED' does not support 'WRAP_SINGLE_VALUE' set to 'true'.", pos)
            src.value_props["wrapped"] = bool(props["WRAP_SINGLE_VALUE"])
        elif len(src.value_columns) == 1 and "ksql.persistence.wrap.single.values" in self.properties:
            src.value_props["wrapped"] = str(self.properties["ksql.persistence.wrap.single.values"]).lower() == "true"
        for key, f in (("KEY_DELIMITER", kf), ("VALUE_DELIMITER", vf)):
            if key in props and f != "DELIMITED":
                raise SqlError(f"{f} does not support the following configs: [delimiter]", pos)
        if inherit is not None:  # the same format goes on with the same delimiter
            if kf == inherit.key_format and "delimiter" in inherit.key_props:
                src.key_props.setdefault("delimiter", inherit.key_props["delimiter"])
            if vf == inherit.value_format and "delimiter" in inherit.value_props:
                src.value_props.setdefault("delimiter", inherit.value_props["delimiter"])
        for side, key in (("key", "KEY_DELIMITER"), ("value", "VALUE_DELIMITER")):
            if key in props:
                d = str(props[key])
                if d.strip() == "":
                    raise SqlError(f"Failed to prepare statement: Configuration {key} is invalid: Delimiter cannot be empty, if you meant to have a tab or space for delimiter, please use the special values 'TAB' or 'SPACE'\nExample valid value: ';'", pos)
                if len(d) > 1 and d.upper() not in ("TAB", "SPACE"):
                    raise SqlError(f"Failed to prepare statement: Configuration {key} is invalid: Invalid delimiter value: '{d}'. Delimiter must be a single character or TAB,SPACE\nExample valid value: ';'", pos)
                d = {"TAB": "\t", "SPACE": " "}.get(d.upper(), d)
                (src.key_props if side == "key" else src.value_props)["delimiter"] = d

    # -- persistent queries -------------------------------------------------------------------------
    def _CreateAsSelect(self, s: A.CreateAsSelect) -> Result:
        existing = self.meta.find(s.name)
        if existing is not None:
            if s.if_not_exists:
                return Result(s.text, f"A {existing.kind.lower()} with the same name already exists")
            if not s.or_replace:
                raise SqlError(f"Cannot add {s.kind.lower()} '{s.name}': A {existing.kind.lower()} with the same name already exists", s.pos)
        props = s.props
        self._check_props(props, s.pos)
        if s.kind == "TABLE":
            self.planner.check_table_aggregation(s.query)
        plan, stream, outputs = self.planner.plan(s.query, s.name, sink_props=props)
        if plan.is_table and s.kind == "STREAM":
            raise SqlError("Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.", s.pos)
        if not plan.is_table and s.kind == "TABLE":
            raise SqlError("Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.", s.pos)
        inherit = plan.sources[0]
        topic = props.get("KAFKA_TOPIC", s.name)
        sink = DataSource(s.kind, s.name, topic, plan.key_columns, plan.value_columns, window=plan.window, sql=s.text)
        if not sink.key_columns and "KEY_FORMAT" in props:  # e.g. PARTITION BY NULL: no key to format
            raise SqlError("Key format specified for stream without key columns.", s.pos)
        self._apply_formats(sink, props, s.pos, inherit=inherit)
        self._check_json_map_keys(s, plan.sources, sink)
        if sink.key_format == "NONE" and sink.key_columns:  # keyless sources, a keyed result: the default key format
            default_key = str(self.properties.get("ksql.persistence.default.format.key", "KAFKA")).upper()
            sink.key_format = default_key if len(sink.key_columns) == 1 or default_key != "KAFKA" else "JSON"
        if props.get("TIMESTAMP"):
            col = str(props["TIMESTAMP"]).upper()
            if sink.column(col) is None:
                raise SqlError(f"The TIMESTAMP column set in the WITH clause does not exist in the schema: '{col}'", s.pos)
            sink.timestamp_column = col
            sink.timestamp_format = props.get("TIMESTAMP_FORMAT")
        try:
            serdes_for(sink)
        except SqlError as e:  # ksqlDB shows the statement it failed to persist, as it rewrote it
            from .formatter import format_create_as

            text = format_create_as(s, [c.name for c in inherit.all_columns()]) if len(plan.sources) == 1 else None
            if text is None:
                raise
            raise SqlError(f"{e.message}\nStatement: {text}", e.pos) from None
        parts = int(props.get("PARTITIONS", plan.partitions))
        if not self.runtime.topic_exists(topic):
            self.runtime.create_topic(topic, parts)
        sink.partitions = self.runtime.topic_partitions(topic)
        self.planner.attach_sink(stream, sink, outputs, plan)
        qid = f"{'CTAS' if s.kind == 'TABLE' else 'CSAS'}_{s.name}_{next(self._ids)}"
        sink.query_id = qid
        if existing is not None and existing.query_id:
            self.runtime.stop_query(existing.query_id)
            self.queries.pop(existing.query_id, None)
        self.meta.add(sink, replace=s.or_replace)
        self.runtime.start_query(qid, plan.topology, plan.source_topics)
        self.queries[qid] = PersistentQuery(qid, s.text, s.name, [x.name for x in plan.sources])
        return Result(s.text, f"Created query with ID {qid}", query_id=qid, source=sink)

    def _check_json_map_keys(self, s: A.CreateAsSelect, sources: list[DataSource], sink: DataSource) -> None:
        """ksqlDB rejects a JSON sink with a MAP whose keys are not STRING, e.g. ``MAP(k := v)``
        with an INT ``k`` (MAP types carry no key type here, so look at the constructors)."""
        if sink.value_format not in ("JSON", "JSON_SR") or len(sources) != 1:
            return
        scope = None
        for item in s.query.select:
            if not (isinstance(item, A.SelectItem) and isinstance(item.expr, A.MapConstructor)):
                continue
            scope = scope or self.planner.scope_of(sources[0])
            for k, _ in item.expr.entries:
                try:
                    t = self.planner.compiler.compile(k, scope).type
                except (SqlError, FunctionError):  # not compilable alone: nothing to say
                    continue
                if t is not None and t != SqlType.STRING:
                    raise SqlError("JSON only supports MAP types with STRING keys", s.pos)

    def _InsertInto(self, s: A.InsertInto) -> Result:
        target = self.meta.find(s.target)
        if target is None:
            raise SqlError(f"Source `{s.target}` does not exist.", s.target_pos)
        if target.source_only:
            raise SqlError(f"Cannot insert into read-only {target.kind.lower()}: {target.name}", s.pos)
        if target.header_columns:
            raise SqlError(f"Cannot insert into {target.name} because it has header columns", s.pos)
        plan, stream, outputs = self.planner.plan(s.query, target.name)
        if plan.is_table or target.is_table:
            raise SqlError(f"INSERT INTO can only be used to insert into a stream. {target.name} is a table.", s.pos)
        got = [(c.name, c.type) for c in plan.key_columns + plan.value_columns]
        want = [(c.name, c.type) for c in target.key_columns + target.value_columns]
        if got != want:
            raise SqlError(f"Incompatible schema between results and sink.\nResult schema is {_schema_text(plan.key_columns, plan.value_columns)}\n"
                           f"Sink schema is {_schema_text(target.key_columns, target.value_columns)}", s.pos)
        self.planner.attach_sink(stream, target, outputs, plan)
        qid = f"INSERTQUERY_{next(self._ids)}"
        self.runtime.start_query(qid, plan.topology, plan.source_topics)
        self.queries[qid] = PersistentQuery(qid, s.text, target.name, [x.name for x in plan.sources])
        return Result(s.text, f"Created query with ID {qid}", query_id=qid)

    def _InsertValues(self, s: A.InsertValues) -> Result:
        from .insert_values import insert_values

        insert_values(self, s)
        return Result(s.text, "")

    # -- other statements ---------------------------------------------------------------------------
    def _CreateType(self, s: A.CreateType) -> Result:
        if s.name in self.meta.types:
            if s.if_not_exists:
                return Result(s.text, "")
            raise SqlError(f"Cannot register custom type '{s.name}' since it is already registered with type: {self.meta.types[s.name]}", s.pos)
        self.meta.types[s.name] = self.planner.compiler.resolve_type(s.type, s.pos)
        return Result(s.text, f"Registered custom type with name '{s.name}' and SQL type {self.meta.types[s.name]}")

    def _DropType(self, s: A.DropType) -> Result:
        if s.name not in self.meta.types:
            if s.if_exists:
                return Result(s.text, "")
            raise SqlError(f"Type {s.name} does not exist.", s.pos)
        del self.meta.types[s.name]
        return Result(s.text, f"Dropped type '{s.name}'")

    def _AlterSource(self, s: A.AlterSource) -> Result:
        src = self.meta.find(s.name)
        if src is None:
            raise SqlError(f"Source {s.name} does not exist.", s.pos)
        if src.kind != s.kind:
            raise SqlError(f"Incompatible data source type is {src.kind}, but statement was ALTER {s.kind}", s.pos)
        if src.query_id:
            raise SqlError("ALTER command is not supported for CREATE ... AS statements.", s.pos)
        kind = src.kind.lower()
        if src.source_only:
            raise SqlError(f"Cannot alter {kind} '{src.name}': ALTER operations are not supported on source {kind}s.", s.pos)
        added: list[Column] = []
        for c in s.columns:
            if src.column(c.name) is not None or any(a.name == c.name for a in added):
                raise SqlError(f"Cannot add column `{c.name}` to schema. A column with the same name already exists.", c.pos)
            added.append(Column(c.name, self.planner.compiler.resolve_type(c.type, c.pos)))
        # a new source object: running queries keep the schema they were planned with (as ksqlDB's)
        self.meta.add(dataclasses.replace(src, value_columns=src.value_columns + added), replace=True)
        return Result(s.text, f"{src.kind.title()} {src.name} altered.")

    def _DropSource(self, s: A.DropSource) -> Result:
        src = self.meta.find(s.name)
        if src is None:
            if s.if_exists:
                return Result(s.text, "")
            raise SqlError(f"{s.kind.title()} {s.name} does not exist.", s.pos)
        if src.kind != s.kind:
            raise SqlError(f"Incompatible data source type is {src.kind}, but statement was DROP {s.kind}", s.pos)
        readers = [q.id for q in self.queries.values() if s.name in q.sources and q.sink != s.name]
        if readers:
            raise SqlError(f"Cannot drop {s.name}.\nThe following queries read from this source: [{', '.join(readers)}].\n"
                           "You need to terminate them before dropping {s.name}.", s.pos)
        if s.delete_topic and src.source_only:
            raise SqlError(f"Cannot delete topic for read-only source: {src.name}", s.pos)
        writers = [q.id for q in self.queries.values() if q.sink == s.name]
        for qid in writers:
            self.runtime.stop_query(qid)
            self.queries.pop(qid, None)
        self.meta.drop(s.name)
        if s.delete_topic:
            self.runtime.delete_topic(src.topic)
        return Result(s.text, f"Source `{s.name}` (topic: {src.topic}) was dropped.")

    def _Terminate(self, s: A.Terminate) -> Result:
        ids = list(self.queries) if s.query_id is None else [s.query_id]
        for qid in ids:
            if qid not in self.queries:
                raise SqlError(f"Unknown queryId: {qid}", s.pos)
            self.runtime.stop_query(qid)
            self.queries.pop(qid)
        return Result(s.text, "Query terminated.")

    def _SetProperty(self, s: A.SetProperty) -> Result:
        self.properties[s.name] = s.value
        return Result(s.text, f"Successfully changed local property '{s.name}' to '{s.value}'.")

    def _UnsetProperty(self, s: A.UnsetProperty) -> Result:
        self.properties.pop(s.name, None)
        return Result(s.text, f"Successfully unset local property '{s.name}'.")

    def _DefineVariable(self, s: A.DefineVariable) -> Result:
        self.variables[s.name] = s.value
        return Result(s.text, "")

    def _UndefineVariable(self, s: A.UndefineVariable) -> Result:
        self.variables.pop(s.name, None)
        return Result(s.text, "")

    def _Show(self, s: A.Show) -> Result:
        what = s.what.upper()
        if what in ("STREAMS", "TABLES"):
            kind = what[:-1]
            rows = [{"name": x.name, "topic": x.topic, "keyFormat": x.key_format, "valueFormat": x.value_format,
                     "isWindowed": x.window is not None, "type": x.kind}
                    for x in sorted(self.meta.sources.values(), key=lambda x: x.name) if x.kind == kind]
        elif what == "QUERIES":
            rows = [{"id": q.id, "queryString": q.sql, "sinks": [q.sink] if q.sink else [], "state": q.state} for q in self.queries.values()]
        elif what == "PROPERTIES":
            rows = [{"name": k, "value": str(v)} for k, v in sorted(self.properties.items())]
        elif what == "FUNCTIONS":
            rows = [{"name": f.name, "type": f.kind, "category": getattr(f, "category", "")} for f in self.registry.list_functions()]
        elif what == "TYPES":
            rows = [{"name": k, "schema": str(v)} for k, v in sorted(self.meta.types.items())]
        elif what == "VARIABLES":
            rows = [{"name": k, "value": v} for k, v in sorted(self.variables.items())]
        elif what == "TOPICS":
            topics = getattr(self.runtime, "topics", None)
            names = sorted(topics) if isinstance(topics, dict) else sorted(self.runtime.log.list_topics())  # type: ignore[attr-defined]
            rows = [{"name": t, "partitions": self.runtime.topic_partitions(t)} for t in names]
        else:
            raise SqlError(f"SHOW {what} is not supported", s.pos)
        return Result(s.text, "", rows)

    def _Describe(self, s: A.Describe) -> Result:
        if s.name is None:
            return self._Show(A.Show(s.what or "STREAMS", s.extended))
        src = self.meta.get(s.name, s.pos)
        fields = [{"name": c.name, "type": str(c.type), "key": True} for c in src.key_columns]
        fields += [{"name": c.name, "type": str(c.type)} for c in src.value_columns]
        return Result(s.text, "", [{"name": src.name, "type": src.kind, "topic": src.topic, "keyFormat": src.key_format,
                                    "valueFormat": src.value_format, "fields": fields, "statement": src.sql}])

    def _DescribeFunction(self, s: A.DescribeFunction) -> Result:
        return Result(s.text, "", [self.registry.describe(s.name).__dict__ if hasattr(self.registry.describe(s.name), "__dict__") else {"name": s.name}])

    def _Explain(self, s: A.Explain) -> Result:
        if s.query_id:
            q = self.queries.get(s.query_id)
            if q is None:
                raise SqlError(f"Query with id:{s.query_id} does not exist, use SHOW QUERIES to view the full set of running queries.", s.pos)
            return Result(s.text, "", [{"id": q.id, "sql": q.sql, "sinks": [q.sink]}])
        return Result(s.text, "", [{"sql": s.statement.text if s.statement else ""}])


def _schema_text(keys: list[Column], values: list[Column]) -> str:
    return ", ".join([f"`{c.name}` {c.type} KEY" for c in keys] + [f"`{c.name}` {c.type}" for c in values])


_UNITS = {"MILLISECOND": 1, "MILLISECONDS": 1, "SECOND": 1000, "SECONDS": 1000, "MINUTE": 60_000, "MINUTES": 60_000,
          "HOUR": 3_600_000, "HOURS": 3_600_000, "DAY": 86_400_000, "DAYS": 86_400_000}


def _duration_ms(text: Any) -> int:
    if isinstance(text, int):
        return text
    parts = str(text).strip().split()
    if len(parts) == 2 and parts[1].upper() in _UNITS:
        return int(parts[0]) * _UNITS[parts[1].upper()]
    raise SqlError(f"Invalid duration: '{text}'")
