"""The conformance runner for ksqlDB's query-validation tests (QTT).

Each case runs on a fresh in-process engine with caching off: its statements in order, then its
input records one at a time, then its expected output records are compared per topic, in order,
with the exact count (see ``../shared/qtt/README.md`` for the rules this follows).

    results = run_files(["../shared/qtt/query-validation-tests/filter.json"])
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import MailroomError
from ..formats import KafkaSerde, SqlType
from ..formats.windowed import (
    decode_session_windowed,
    decode_time_windowed,
    encode_session_windowed,
    encode_time_windowed,
)
from ..functions.registry import FunctionRegistry
from .executor import SqlExecutor
from .metastore import DataSource
from .runtime import InMemoryRuntime

_SR_FORMATS = re.compile(r"\b(AVRO|PROTOBUF|PROTOBUF_NOSR|JSON_SR)\b", re.IGNORECASE)


@dataclass
class Case:
    """One (expanded) test case."""

    file: str
    name: str
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{Path(self.file).stem} - {self.name}"


@dataclass
class CaseResult:
    case: Case
    status: str  # "passed" | "failed" | "skipped"
    reason: str = ""
    actual: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


# -- loading --------------------------------------------------------------------------------------
def strip_comments(text: str) -> str:
    """JSON with // line comments (outside strings) -> JSON."""
    out, i, n = [], 0, len(text)
    in_str = False
    while i < n:
        ch = text[i]
        if in_str:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            out.append(ch)
        elif ch == "/" and i + 1 < n and text[i + 1] == "/":
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def load_cases(path: str | Path) -> list[Case]:
    """The cases of one QTT file, with `format` / `config` variants expanded."""
    data = json.loads(strip_comments(Path(path).read_text()), parse_float=Decimal)
    out = []
    for spec in data.get("tests", []):
        variants = [(spec["name"], spec)]
        if spec.get("format"):
            variants = [(f"{spec['name']} - {f}", _substitute(spec, "{FORMAT}", f)) for f in spec["format"]]
        if spec.get("config"):
            variants = [(f"{n} - {c}", _substitute(s, "{CONFIG}", c)) for n, s in variants for c in spec["config"]]
        out.extend(Case(str(path), n, s) for n, s in variants)
    return out


def _substitute(spec: dict, token: str, value: str) -> dict:
    text = json.dumps(spec, default=str)
    return json.loads(text.replace(token, value), parse_float=Decimal)


# -- running --------------------------------------------------------------------------------------
def skip_reason(case: Case) -> str | None:
    spec = case.spec
    if spec.get("enabled") is False:
        return "disabled in the file"
    stmts = " ".join(spec.get("statements", []))
    if _SR_FORMATS.search(stmts):
        return "needs Schema Registry (AVRO/PROTOBUF/JSON_SR)"
    for t in spec.get("topics", []):
        if "schema" in t or "keySchema" in t or "valueSchema" in t:
            return "needs Schema Registry (registered schemas)"
    return None


#: what a UDF module loaded from a folder (``load_folder``: modules named ``mailroom_udf_*``)
#: may define to forget the state it keeps between calls: ksqlDB makes a UDF instance per
#: query, while a Python UDF is one function for the process, so each case starts it afresh
UDF_RESET_HOOK = "reset_counter"
_UDF_MODULE_PREFIX = "mailroom_udf_"


def reset_udf_state() -> None:
    """Call every folder-loaded UDF module's ``reset_counter()`` (see UDF_RESET_HOOK)."""
    for name, mod in list(sys.modules.items()):
        if name.startswith(_UDF_MODULE_PREFIX):
            hook = getattr(mod, UDF_RESET_HOOK, None)
            if callable(hook):
                hook()


def run_case(case: Case, registry: FunctionRegistry | None = None) -> CaseResult:
    t0 = time.perf_counter()
    reason = skip_reason(case)
    if reason:
        return CaseResult(case, "skipped", reason)
    reset_udf_state()
    try:
        res = _run(case, registry)
    except Exception as e:  # noqa: BLE001 - a crash is a failure of that case, not of the run
        res = CaseResult(case, "failed", f"crashed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    res.seconds = time.perf_counter() - t0
    return res


def _run(case: Case, registry: FunctionRegistry | None) -> CaseResult:
    from .parser import parse

    spec = case.spec
    runtime = InMemoryRuntime(caching=False)
    ex = SqlExecutor(runtime, registry, properties=spec.get("properties"))
    for t in spec.get("topics", []):
        runtime.create_topic(t["name"], int(t.get("partitions", 1)))
    for rec in spec.get("inputs", []) + spec.get("outputs", []):
        runtime.create_topic(rec["topic"], 1)
    expected_error = spec.get("expectedException")
    statements = spec.get("statements", [])
    try:
        parsed = []
        line = 0  # ksqlDB's runner parses the statements as one script, a line each: so do positions
        for text in statements:
            parsed.extend(parse("\n" * line + text, ex.variables))
            line += text.count("\n") + 1
    except MailroomError as e:
        if expected_error:
            return _check_error(case, e, expected_error, last=True)
        return CaseResult(case, "failed", f"statement did not parse: {e}")
    from . import ast as A

    for stmt in parsed:  # the runner provides the topics the statements read (ksqlDB's does too)
        if isinstance(stmt, A.CreateSource) and stmt.props.get("KAFKA_TOPIC") and "PARTITIONS" not in stmt.props:
            runtime.create_topic(str(stmt.props["KAFKA_TOPIC"]), 1)
    for i, stmt in enumerate(parsed):
        try:
            ex.execute(stmt)
        except MailroomError as e:
            if expected_error:
                return _check_error(case, e, expected_error, last=i == len(parsed) - 1)
            return CaseResult(case, "failed", f"statement {i + 1} failed: {e}")
    if expected_error and not spec.get("inputs"):
        return CaseResult(case, "failed", f"expected an error ({expected_error.get('message', '')!r}) but every statement succeeded")
    for rec in spec.get("inputs", []):
        k, v, headers = encode_input(ex, rec)
        runtime.produce(rec["topic"], k, v, int(rec.get("timestamp", 0)), headers)
    if expected_error:
        msgs = "\n".join(ex.errors + [str(e) for e in runtime.processing_log.entries])
        want = expected_error.get("message", "")
        if want and want in msgs:
            return CaseResult(case, "passed")
        return CaseResult(case, "failed", f"expected an error ({want!r}) but none was raised")
    return compare_outputs(case, ex, runtime)


def _check_error(case: Case, err: Exception, expected: dict, last: bool) -> CaseResult:
    want = expected.get("message", "")
    got = str(getattr(err, "message", None) or err)
    if want and want not in got and want not in str(err):
        return CaseResult(case, "failed", f"the right kind of failure, but the message differs:\n  expected to contain: {want!r}\n  got: {got!r}")
    if not last:
        return CaseResult(case, "failed", f"an earlier statement failed than the last: {got}")
    return CaseResult(case, "passed")


# -- records in and out ---------------------------------------------------------------------------
def _dumps(v: Any) -> bytes:
    return json.dumps(v, default=_json_default, separators=(",", ":")).encode()


class _RawNumber(float):
    pass


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return _DecimalText(o)
    raise TypeError(type(o).__name__)


class _DecimalText(float):
    """Lets json.dumps write a Decimal's exact text."""

    def __new__(cls, d: Decimal):
        obj = super().__new__(cls, float(d))
        obj.text = str(d)
        return obj

    def __repr__(self) -> str:
        return self.text


def _dumps_exact(v: Any) -> bytes:
    # Decimals keep their exact text (1.0 stays 1.0, 1.00 stays 1.00)
    def enc(x: Any) -> str:
        if x is None:
            return "null"
        if isinstance(x, bool):
            return "true" if x else "false"
        if isinstance(x, Decimal):
            return str(x)
        if isinstance(x, (int, float)):
            return json.dumps(x)
        if isinstance(x, str):
            return json.dumps(x)
        if isinstance(x, list):
            return "[" + ",".join(enc(y) for y in x) + "]"
        if isinstance(x, dict):
            return "{" + ",".join(json.dumps(str(k)) + ":" + enc(y) for k, y in x.items()) + "}"
        return json.dumps(x)

    return enc(v).encode()


def _source_for(ex: SqlExecutor, topic: str) -> DataSource | None:
    found = ex.meta.by_topic(topic)
    return found[0] if found else None


def _py(v: Any, t: SqlType | None) -> Any:
    """A JSON test value as the Python value of SQL type ``t`` (for the KAFKA format)."""
    if v is None or t is None:
        return v
    if t.base in ("INT", "BIGINT"):
        return int(v)
    if t.base == "DOUBLE":
        return float(v)
    if t.base == "DECIMAL":
        return Decimal(str(v))
    if t.base == "STRING":
        return v if isinstance(v, str) else _dumps_exact(v).decode()
    if t.base == "BOOLEAN":
        return bool(v)
    if t.base == "BYTES" and isinstance(v, str):
        return base64.b64decode(v)
    return v


def _encode_key(src: DataSource | None, key: Any) -> bytes | None:
    if key is None:
        return None
    if src is None or not src.key_columns:
        if src is not None and src.key_format == "NONE":
            return None
        return key.encode() if isinstance(key, str) else _dumps_exact(key)
    fmt = src.key_format
    if fmt == "KAFKA":
        col = src.key_columns[0]
        return KafkaSerde(col.type, column=col.name).serialize(_py(key, col.type))
    if fmt == "DELIMITED":
        return str(key).encode() if not isinstance(key, str) else key.encode()
    if fmt == "NONE":
        return None
    return _dumps_exact(key)


def _encode_value(src: DataSource | None, value: Any) -> bytes | None:
    if value is None:
        return None
    fmt = src.value_format if src is not None else "JSON"
    if fmt == "DELIMITED":
        return value.encode() if isinstance(value, str) else _dumps_exact(value)
    if fmt == "KAFKA" and src is not None and src.value_columns:
        col = src.value_columns[0]
        return KafkaSerde(col.type, column=col.name).serialize(_py(value, col.type))
    if fmt == "NONE":
        return None
    return _dumps_exact(value)


def encode_input(ex: SqlExecutor, rec: dict) -> tuple[bytes | None, bytes | None, list | None]:
    src = _source_for(ex, rec["topic"])
    kb = _encode_key(src, rec.get("key"))
    win = rec.get("window")
    if win is not None:
        inner = kb or b""
        if str(win.get("type", "time")).lower() == "session":
            kb = encode_session_windowed(inner, int(win["start"]), int(win["end"]))
        else:
            kb = encode_time_windowed(inner, int(win["start"]))
    vb = _encode_value(src, rec.get("value"))
    headers = None
    if rec.get("headers") is not None:
        headers = [(h.get("KEY"), None if h.get("VALUE") is None else base64.b64decode(h["VALUE"])) for h in rec["headers"]]
    return kb, vb, headers


def _decode_key(src: DataSource | None, raw: bytes | None) -> tuple[Any, dict | None]:
    if raw is None:
        return None, None
    window = None
    if src is not None and src.window is not None:
        if src.window.kind == "SESSION":
            w = decode_session_windowed(raw)
            window = {"start": w.start, "end": w.end, "type": "session"}
        else:
            w = decode_time_windowed(raw)
            end = w.start + (src.window.size_ms or 0)
            window = {"start": w.start, "end": end, "type": "time"}
        raw = w.key
    if src is None or not src.key_columns or src.key_format == "NONE":
        return (None if src is not None and src.key_format == "NONE" else _loads_any(raw)), window
    if src.key_format == "KAFKA":
        col = src.key_columns[0]
        v = KafkaSerde(col.type, column=col.name).deserialize(raw)
        return _jsonish(v), window
    if src.key_format == "DELIMITED":
        return raw.decode(), window
    return _loads_any(raw), window


def _loads_any(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        return raw.decode(errors="replace")


def _jsonish(v: Any) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, float):
        from .expressions import format_double

        return Decimal(format_double(v)) if v == v and abs(v) != float("inf") else v
    return v


def _decode_value(src: DataSource | None, raw: bytes | None) -> Any:
    if raw is None:
        return None
    fmt = src.value_format if src is not None else "JSON"
    if fmt == "DELIMITED":
        return raw.decode()
    if fmt == "KAFKA" and src is not None and src.value_columns:
        col = src.value_columns[0]
        return _jsonish(KafkaSerde(col.type, column=col.name).deserialize(raw))
    v = _loads_any(raw)
    if fmt == "JSON" and src is not None:
        v = _as_jackson_doubles(v, src)
    return v


class _JavaExponent(Decimal):
    """A DOUBLE that Java's Double.toString writes in exponent form (1.0E12)."""


def _java_double_text(v: Any, t: SqlType) -> Any:
    """A DOUBLE as ksqlDB's JSON writer (Jackson, i.e. Java's Double.toString) spells it:
    1e12 is written ``1.0E12``, which the comparison then treats as a plain number."""
    if t.base == "DOUBLE" and isinstance(v, Decimal):
        from .expressions import format_double

        text = format_double(float(v))
        return _JavaExponent(text) if "E" in text else v
    if t.base == "ARRAY" and isinstance(v, list) and t.element is not None:
        return [_java_double_text(x, t.element) for x in v]
    return v


def _as_jackson_doubles(v: Any, src: DataSource) -> Any:
    cols = src.value_columns
    if isinstance(v, dict):
        types = {c.name: c.type for c in cols}
        return {k: (_java_double_text(x, types[k]) if k in types else x) for k, x in v.items()}
    if len(cols) == 1:
        return _java_double_text(v, cols[0].type)
    return v


def compare_outputs(case: Case, ex: SqlExecutor, runtime: InMemoryRuntime) -> CaseResult:
    expected = case.spec.get("outputs", [])
    by_topic: dict[str, list[dict]] = {}
    for rec in expected:
        by_topic.setdefault(rec["topic"], []).append(rec)
    actual_all: list[dict] = []
    problems = []
    # ksqlDB's runner compares DOUBLEs to 6 decimal places when a case turns exact comparison off
    approx = str((case.spec.get("properties") or {}).get("use.exact.numeric.comparison", True)).lower() == "false"
    for topic, exp in by_topic.items():
        src = _source_for(ex, topic)
        got = []
        for r in runtime.records(topic):
            key, window = _decode_key(src, r.key)
            rec = {"topic": topic, "key": key, "value": _decode_value(src, r.value), "timestamp": r.timestamp}
            if window is not None:
                rec["window"] = window
            if r.headers:
                rec["headers"] = [{"KEY": k, "VALUE": None if v is None else base64.b64encode(v).decode()} for k, v in r.headers]
            got.append(rec)
        actual_all.extend(got)
        if len(got) != len(exp):
            problems.append(f"topic {topic}: expected {len(exp)} records, got {len(got)}" + _first_diff(exp, got))
            continue
        for i, (e, a) in enumerate(zip(exp, got)):
            why = _record_diff(e, a, approx)
            if why:
                problems.append(f"topic {topic}, record {i}: {why}\n  expected: {_show(e)}\n  actual:   {_show(a)}")
                break
    if problems:
        return CaseResult(case, "failed", problems[0], actual_all)
    return CaseResult(case, "passed", "", actual_all)


def _first_diff(exp: list[dict], got: list[dict]) -> str:
    for i, (e, a) in enumerate(zip(exp, got)):
        why = _record_diff(e, a)
        if why:
            return f"; first difference at record {i}: {why}\n  expected: {_show(e)}\n  actual:   {_show(a)}"
    if len(got) > len(exp):
        return f"; first extra: {_show(got[len(exp)])}"
    if len(exp) > len(got):
        return f"; first missing: {_show(exp[len(got)])}"
    return ""


def _show(r: dict) -> str:
    return _dumps_exact({k: v for k, v in r.items() if k != "topic"}).decode()


def _record_diff(e: dict, a: dict, approx: bool = False) -> str | None:
    if not same(e.get("key"), a.get("key"), approx):
        return "key differs"
    if not same(e.get("value"), a.get("value"), approx):
        return "value differs"
    if "timestamp" in e and int(e["timestamp"]) != a.get("timestamp"):
        return f"timestamp differs ({e['timestamp']} != {a.get('timestamp')})"
    if "window" in e and e["window"] is not None:
        w, aw = e["window"], a.get("window") or {}
        if int(w.get("start", -1)) != aw.get("start") or int(w.get("end", -1)) != aw.get("end"):
            return "window differs"
    if e.get("headers") is not None and not same(e["headers"], a.get("headers") or []):
        return "headers differ"
    return None


def same(e: Any, a: Any, approx: bool = False) -> bool:
    """Expected vs actual, as ksqlDB's runner compares them; ``approx``: DOUBLEs to 6 decimal places."""
    if e is None or a is None:
        return e is None and a is None
    if isinstance(e, bool) or isinstance(a, bool):
        return e is a or (isinstance(e, bool) and isinstance(a, bool) and e == a)
    if isinstance(e, dict):
        if not isinstance(a, dict) or len(e) != len(a):
            return False
        for k, v in e.items():
            if k in a:
                av = a[k]
            elif isinstance(k, str) and k.upper() in a:
                av = a[k.upper()]
            else:
                return False
            if not same(v, av, approx):
                return False
        return True
    if isinstance(e, list):
        return isinstance(a, list) and len(e) == len(a) and all(same(x, y, approx) for x, y in zip(e, a))
    if approx and not isinstance(e, int) and not isinstance(a, int) and isinstance(e, (float, Decimal)) and isinstance(a, (float, Decimal)):
        return abs(float(e) - float(a)) < 1e-6
    if isinstance(e, Decimal) or isinstance(a, Decimal):
        if isinstance(a, _JavaExponent) and isinstance(e, (int, Decimal)):
            return Decimal(str(e)) == a  # a DOUBLE Java wrote as 1.0E12 matches 1000000000000
        if isinstance(e, int) != isinstance(a, int):
            return False  # 1 vs 1.0: an integer where a DOUBLE/DECIMAL was expected, or back
        try:
            de, da = Decimal(str(e)), Decimal(str(a))
        except Exception:  # noqa: BLE001
            return False
        if de != da:
            return False
        if "E" in str(e).upper() or "E" in str(a).upper():
            return True
        return de.as_tuple().exponent == da.as_tuple().exponent
    if isinstance(e, (int, float)) and isinstance(a, (int, float)):
        return type(e) is type(a) and e == a
    return e == a


# -- files ---------------------------------------------------------------------------------------
def run_files(paths: Iterable[str | Path], *, registry: FunctionRegistry | None = None,
              on_result: Callable[[CaseResult], None] | None = None, name_filter: str | None = None) -> list[CaseResult]:
    if registry is None:
        from ..functions import default_registry

        registry = default_registry()
    out = []
    for p in paths:
        for case in load_cases(p):
            if name_filter and name_filter not in case.name:
                continue
            r = run_case(case, registry)
            out.append(r)
            if on_result:
                on_result(r)
    return out
