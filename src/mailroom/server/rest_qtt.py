"""ksqlDB's REST conformance files (``rest-query-validation-tests/*.json``) run through the
server's HTTP API, in-process (FastAPI's TestClient), one fresh server and embedded log per case.

What a case does, as ksqlDB's REST test runner does it: topics are created (those listed, and
those the inputs and CREATE statements name: 4 partitions unless said), the statements before
the first query go to ``POST /ksql``, the inputs are produced, expected ``outputs`` records are
checked on their topics, then each query goes to ``POST /query`` (reading from the earliest
offset; a pull query is asked again for a few seconds until the persistent queries caught up).
``responses`` are partial: only the keys given are compared. ``expectedError``: some statement
must fail with that HTTP status and a message containing the expected one.

    results = run_rest_files(sorted(Path("../shared/qtt/rest-query-validation-tests").glob("*.json")))
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..sql import ast as A
from ..sql.parser import parse
from ..sql.qtt import Case, CaseResult, _decode_key, _decode_value, encode_input, load_cases, same, skip_reason
from ..sql.transient import is_push, read_topic

_TOPIC = re.compile(r"kafka_topic\s*=\s*'([^']+)'", re.IGNORECASE)
_PARTS = re.compile(r"partitions\s*=\s*(\d+)", re.IGNORECASE)
DEFAULT_PARTITIONS = 4


def run_rest_case(case: Case, registry: Any = None, *, pull_wait: float = 3.0, push_wait: float = 5.0) -> CaseResult:
    t0 = time.perf_counter()
    reason = skip_reason(case)
    if reason:
        return CaseResult(case, "skipped", reason)
    tmp = Path(tempfile.mkdtemp(prefix="mailroom-rqtt-"))
    try:
        res = _run(case, tmp, registry, pull_wait, push_wait)
    except Exception as e:  # noqa: BLE001 - a crash fails that case only
        res = CaseResult(case, "failed", f"crashed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.seconds = time.perf_counter() - t0
    return res


def _run(case: Case, tmp: Path, registry: Any, pull_wait: float, push_wait: float) -> CaseResult:
    from fastapi.testclient import TestClient

    from .app import create_app
    from .core import KsqlServer

    spec = case.spec
    props = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in (spec.get("properties") or {}).items()}
    srv = KsqlServer(f"embedded:{tmp / 'log'}", tmp / "state", registry=registry, caching=False)
    expected_error = spec.get("expectedError")
    try:
        _create_topics(srv, spec)
        with TestClient(create_app(srv)) as client:
            responses: list[dict[str, Any]] = []
            statements = list(spec.get("statements", []))
            produced = False
            for text in statements:
                try:
                    parsed = parse(text, srv.executor.variables)
                    query = len(parsed) == 1 and isinstance(parsed[0], A.QueryStatement)
                except Exception:  # noqa: BLE001 - the server reports the syntax error
                    parsed, query = [], False
                if query and not produced:
                    _produce(srv, spec)
                    produced = True
                if not query:
                    r = client.post("/ksql", json={"ksql": text, "streamsProperties": props})
                    if r.status_code != 200:
                        return _error_result(case, expected_error, r.status_code, r.json(), text)
                    responses.extend({"admin": e} for e in r.json())
                    continue
                push = is_push(parsed[0].query)
                qprops = {"auto.offset.reset": "earliest", **props}
                expected_q = _expected_query(spec, len(responses))
                got = _query(client, text, qprops, push, expected_q, pull_wait, push_wait)
                if isinstance(got, tuple):  # an error response
                    return _error_result(case, expected_error, got[0], got[1], text)
                responses.append({"query": got})
            if not produced:
                _produce(srv, spec)
            if expected_error is not None:
                return CaseResult(case, "failed", f"expected an error ({expected_error.get('message', '')[:80]}), every statement succeeded")
            why = _check_outputs(srv, spec) or _check_responses(spec.get("responses"), responses)
            if why:
                return CaseResult(case, "failed", why, [{"responses": responses}])
            return CaseResult(case, "passed", "", [{"responses": responses}])
    finally:
        srv.close()


def _create_topics(srv: Any, spec: dict) -> None:
    wanted: dict[str, int] = {}
    for t in spec.get("topics", []):
        wanted[t["name"]] = int(t.get("partitions", DEFAULT_PARTITIONS))
    for text in spec.get("statements", []):
        m = _TOPIC.search(text)
        if m and " AS SELECT" not in text.upper() and not _PARTS.search(text):
            wanted.setdefault(m.group(1), DEFAULT_PARTITIONS)
    for rec in spec.get("inputs", []):
        wanted.setdefault(rec["topic"], DEFAULT_PARTITIONS)
    for name, n in wanted.items():
        srv.runtime.create_topic(name, n)


def _produce(srv: Any, spec: dict) -> None:
    for rec in spec.get("inputs", []):
        kb, vb, headers = encode_input(srv.executor, rec)
        srv.runtime.produce(rec["topic"], kb, vb, int(rec.get("timestamp", 0)), headers)


def _expected_query(spec: dict, index: int) -> list | None:
    exp = spec.get("responses") or []
    if index < len(exp) and "query" in exp[index]:
        return exp[index]["query"]
    return None


def _query(client: Any, text: str, props: dict, push: bool, expected: list | None, pull_wait: float,
           push_wait: float) -> list | tuple[int, dict]:
    if not push:
        deadline = time.monotonic() + pull_wait
        while True:
            r = client.post("/query", json={"ksql": text, "streamsProperties": props})
            if r.status_code != 200:
                return r.status_code, r.json()
            got = json.loads(r.text, parse_float=Decimal)
            if expected is None or _query_diff(expected, got) is None or time.monotonic() > deadline:
                return got
            time.sleep(0.1)
    want_rows = sum(1 for e in expected or [] if "row" in e)
    buf = ""
    rows = 0
    deadline = time.monotonic() + push_wait
    with client.stream("POST", "/query", json={"ksql": text, "streamsProperties": props}) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, r.json()
        # a watchdog: rows that never come must not hang the run (closing the query ends the response)
        srv = client.app.server
        timer = threading.Timer(push_wait, lambda: [srv.stop_push(q) for q in list(srv.push_queries)])
        timer.daemon = True
        timer.start()
        for chunk in r.iter_text():
            buf += chunk
            rows = buf.count('{"row":')
            if buf.rstrip().endswith("]") or (expected is not None and rows >= want_rows and "LIMIT" not in text.upper()):
                break
            if time.monotonic() > deadline:
                break
    body = buf.rstrip()
    if not body.endswith("]"):
        body = body.rstrip(",") + "]"
    timer.cancel()
    return json.loads(body, parse_float=Decimal)


def _error_result(case: Case, expected: dict | None, status: int, body: dict, text: str) -> CaseResult:
    msg = body.get("message", "") if isinstance(body, dict) else str(body)
    if expected is None:
        return CaseResult(case, "failed", f"statement failed ({status}): {msg}\n  statement: {text}")
    want_status = int(expected.get("status", 400))
    want = expected.get("message", "")
    if status != want_status:
        return CaseResult(case, "failed", f"expected HTTP {want_status}, got {status}: {msg}")
    if want and want not in msg and msg not in want:
        return CaseResult(case, "failed", f"the right statement failed, but the message differs:\n  expected: {want}\n  actual:   {msg}")
    return CaseResult(case, "passed")


def _check_outputs(srv: Any, spec: dict) -> str | None:
    expected = spec.get("outputs") or []
    by_topic: dict[str, list[dict]] = {}
    for rec in expected:
        by_topic.setdefault(rec["topic"], []).append(rec)
    for topic, exp in by_topic.items():
        found = srv.executor.meta.by_topic(topic)
        src = found[0] if found else None
        got = []
        for rb in read_topic(srv.log, topic):
            for i, (k, v) in enumerate(zip(rb.keys, rb.values)):
                key, _ = _decode_key(src, k)
                got.append({"key": key, "value": _decode_value(src, v), "timestamp": int(rb.timestamps[i])})
        if len(got) != len(exp):
            return f"topic {topic}: expected {len(exp)} records, got {len(got)}"
        for i, (e, a) in enumerate(zip(exp, got)):
            if not same(e.get("key"), a["key"]) or not same(e.get("value"), a["value"]):
                return f"topic {topic}, record {i}: expected {e.get('key')!r}/{e.get('value')!r}, got {a['key']!r}/{a['value']!r}"
            if "timestamp" in e and int(e["timestamp"]) != a["timestamp"]:
                return f"topic {topic}, record {i}: timestamp {a['timestamp']} != {e['timestamp']}"
    return None


def _check_responses(expected: list | None, actual: list[dict]) -> str | None:
    if not expected:
        return None
    if len(actual) < len(expected):
        return f"expected {len(expected)} responses, got {len(actual)}"
    for i, (e, a) in enumerate(zip(expected, actual)):
        if "admin" in e:
            if "admin" not in a:
                return f"response {i}: expected an admin response, got a query"
            why = _partial(e["admin"], a["admin"])
            if why:
                return f"response {i}: {why}"
        elif "query" in e:
            if "query" not in a:
                return f"response {i}: expected a query response, got {a}"
            why = _query_diff(e["query"], a["query"])
            if why:
                return f"response {i}: {why}"
    return None


def _partial(e: Any, a: Any) -> str | None:
    if isinstance(e, dict):
        if not isinstance(a, dict):
            return f"expected an object, got {a!r}"
        for k, v in e.items():
            if k not in a:
                return f"missing {k}"
            why = _partial(v, a[k])
            if why:
                return f"{k}: {why}"
        return None
    if isinstance(e, list):
        if not isinstance(a, list) or len(a) != len(e):
            return f"expected {e!r}, got {a!r}"
        for x, y in zip(e, a):
            why = _partial(x, y)
            if why:
                return why
        return None
    return None if same(e, a) else f"expected {e!r}, got {a!r}"


def _query_diff(e: list, a: list) -> str | None:
    if not isinstance(a, list):
        return f"expected a list of query messages, got {a!r}"
    if len(e) != len(a):
        return f"expected {len(e)} query messages, got {len(a)}: {json.dumps(a, default=str)[:600]}"
    for i, (x, y) in enumerate(zip(e, a)):
        why = _partial(x, y)
        if why:
            return f"query message {i}: {why}"
    return None


def run_rest_files(paths: Iterable[str | Path], *, registry: Any = None, name_filter: str | None = None,
                   on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    if registry is None:
        from ..functions import builtin_registry

        registry = builtin_registry()
    out = []
    for p in paths:
        for case in load_cases(p):
            if name_filter and name_filter not in case.name:
                continue
            r = run_rest_case(case, registry)
            out.append(r)
            if on_result:
                on_result(r)
    return out
