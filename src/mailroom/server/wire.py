"""What goes on the wire: JSON values as ksqlDB writes them, and ksqlDB's REST entities.

Values: DECIMAL keeps its exact text (``1.10``), DOUBLE is a JSON number (``1.0``), BYTES is
base64, TIMESTAMP/DATE/TIME are ISO strings, STRUCT and MAP are objects.

Entities (the ``@type`` of each element of a ``POST /ksql`` response): ``currentStatus``,
``streams``, ``tables``, ``queries``, ``properties``, ``sourceDescription``, ``kafka_topics``,
``function_names``, ``describe_function``, ``type_list``, ``variables``, ``queryDescription``;
errors are ``statement_error`` (HTTP 400, error code 40001) or ``generic_error``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

from ..formats.types import SqlType
from ..sql import ast as A
from ..sql.metastore import DataSource
from ..sql.transient import ksql_type

STATEMENT_ERROR = 40001
BAD_REQUEST = 40000
NOT_FOUND = 40400
UNAUTHORIZED = 40100  # ksqlDB's Errors.ERROR_CODE_UNAUTHORIZED (HTTP 401)
FORBIDDEN = 40300  # ksqlDB's Errors.ERROR_CODE_FORBIDDEN (HTTP 403; 40301 is "forbidden Kafka access")
SERVER_ERROR = 50000


class RawJson(str):
    """JSON text written as it is (a row another server encoded: a forwarded pull query)."""

    __slots__ = ()


def encode(v: Any) -> str:
    """One value as JSON text, the way ksqlDB writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return json.dumps(str(v).replace("inf", "Infinity").replace("nan", "NaN"))
        return repr(v) if "e" not in repr(v) else json.dumps(v)
    if isinstance(v, str):
        return v if type(v) is RawJson else json.dumps(v, ensure_ascii=False)
    if isinstance(v, (bytes, bytearray)):
        return json.dumps(base64.b64encode(bytes(v)).decode())
    if isinstance(v, dt.datetime):
        return json.dumps(v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}")
    if isinstance(v, dt.date):
        return json.dumps(v.isoformat())
    if isinstance(v, dt.time):
        return json.dumps(v.strftime("%H:%M:%S") if not v.microsecond else v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}")
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(encode(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" + encode(x) for k, x in v.items()) + "}"
    return json.dumps(str(v))


def dumps(obj: Any) -> str:
    return encode(obj)


# -- entities -----------------------------------------------------------------------------------------
def schema_json(t: SqlType) -> dict[str, Any]:
    """A type as DESCRIBE's field schema: ``{"type", "fields", "memberSchema"}``."""
    out: dict[str, Any] = {"type": ksql_type(t).split("<")[0].split("(")[0], "fields": None, "memberSchema": None}
    if t.base == "STRUCT":
        out["fields"] = [{"name": c.name, "schema": schema_json(c.type)} for c in t.fields]
    elif t.base in ("ARRAY", "MAP") and t.element is not None:
        out["memberSchema"] = schema_json(t.element)
    elif t.base == "DECIMAL":
        out["parameters"] = {"precision": t.precision, "scale": t.scale}
    return out


def field_list(src: DataSource) -> list[dict[str, Any]]:
    out = []
    for c in src.key_columns:
        out.append({"name": c.name, "schema": schema_json(c.type), "type": "KEY"})
    for c in src.value_columns:
        out.append({"name": c.name, "schema": schema_json(c.type)})
    for h in src.header_columns:
        f: dict[str, Any] = {"name": h.name, "schema": schema_json(h.type), "type": "HEADER"}
        if h.key is not None:
            f["headerKey"] = h.key
        out.append(f)
    return out


def source_description(src: DataSource, queries: dict[str, Any], extended: bool = False) -> dict[str, Any]:
    def summary(q: Any) -> dict[str, Any]:
        return {"queryString": q.sql, "sinks": [q.sink] if q.sink else [], "sinkKafkaTopics": [], "id": q.id,
                "statusCount": {q.state: 1}, "queryType": "PERSISTENT", "state": q.state}

    reads = [summary(q) for q in queries.values() if src.name in q.sources]
    writes = [summary(q) for q in queries.values() if q.sink == src.name]
    return {
        "name": src.name,
        "windowType": src.window.kind if src.window else None,
        "readQueries": reads,
        "writeQueries": writes,
        "fields": field_list(src),
        "type": src.kind,
        "timestamp": src.timestamp_column or "",
        "statistics": "",
        "errorStats": "",
        "extended": extended,
        "keyFormat": src.key_format,
        "valueFormat": src.value_format,
        "topic": src.topic,
        "partitions": src.partitions,
        "replication": 1,
        "statement": src.sql,
        "queryOffsetSummaries": [],
        "sourceConstraints": [],
        "clusterStatistics": [],
        "clusterErrorStats": [],
    }


def command_id(stmt: A.Statement) -> str:
    """ksqlDB's command id: ``stream/`S`/create``, ``terminate/Q/execute``..."""
    if isinstance(stmt, (A.CreateSource, A.CreateAsSelect)):
        return f"{stmt.kind.lower()}/`{stmt.name}`/create"
    if isinstance(stmt, A.DropSource):
        return f"{stmt.kind.lower()}/`{stmt.name}`/drop"
    if isinstance(stmt, A.Terminate):
        return f"terminate/{stmt.query_id or 'ALL'}/execute"
    if isinstance(stmt, A.InsertInto):
        return f"stream/`{stmt.target}`/create"
    if isinstance(stmt, A.CreateType):
        return f"type/`{stmt.name}`/create"
    if isinstance(stmt, A.DropType):
        return f"type/`{stmt.name}`/drop"
    return f"statement/{type(stmt).__name__.lower()}/execute"


def current_status(stmt: A.Statement, message: str, query_id: str | None, seq: int) -> dict[str, Any]:
    return {
        "@type": "currentStatus",
        "statementText": stmt.text,
        "commandId": command_id(stmt),
        "commandStatus": {"status": "SUCCESS", "message": message, "queryId": query_id},
        "commandSequenceNumber": seq,
        "warnings": [],
    }


def statement_error(message: str, statement: str, entities: list | None = None, code: int = STATEMENT_ERROR) -> dict[str, Any]:
    return {"@type": "statement_error", "error_code": code, "message": message, "statementText": statement,
            "entities": entities or []}


def generic_error(message: str, code: int = SERVER_ERROR) -> dict[str, Any]:
    return {"@type": "generic_error", "error_code": code, "message": message}
