"""The search box: a message id or a recipient address -> the messages' states and timelines.

States come from pull queries on EMAIL_STATE (by key for a message id: a lookup, ~20 ms on a
100k-message table). Timelines come from the dashboard's event index (index.py); for a message
the index does not hold, only when asked (``scan=True``, a button on the page), from a pull
query on EMAIL_EVENTS: that reads the stream's whole topic (~9 s for 200k events) and holds
the server's statement lock meanwhile, so it never runs by accident. A recipient's messages come
from the index, or else from a pull query on EMAIL_STATE filtered by RECIPIENT (a table scan).
"""

from __future__ import annotations

from typing import Any

from ...server.core import KsqlServer, StatementFailed
from .live import LiveState

MAX_MESSAGES = 20
MAX_QUERY = 320


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def pull(server: KsqlServer, sql: str) -> list[dict[str, Any]]:
    """The rows of a pull query, as column name -> value (raises :class:`StatementFailed`)."""
    q = server.prepare_query(sql)
    _, cols, rows = server.pull(q, sql)
    return [dict(zip(cols.names, c)) for c, tomb in rows if not tomb]


def _hint(e: StatementFailed, source: str) -> str:
    msg = str(e.entity.get("message", e)).splitlines()[0]
    if "does not exist" in msg:
        return f"{source} does not exist yet: submit the email pipelines (src/mailroom/email/pipelines/*.sql)."
    return f"{source}: {msg}"


def search(server: KsqlServer, live: LiveState, text: str, scan: bool = False) -> dict[str, Any]:
    """``{"query", "kind", "messages": [{"message_id", "state", "events", "events_from"}], "hints"}``;
    ``events_from`` is ``index``, ``scan`` or ``none`` (not indexed, ``scan`` not asked for)."""
    text = (text or "").strip()
    out: dict[str, Any] = {"query": text, "kind": "message", "messages": [], "hints": []}
    if not text:
        out["hints"].append("Type a message id or a recipient address.")
        return out
    if len(text) > MAX_QUERY:
        out["hints"].append(f"The search text is longer than {MAX_QUERY} characters.")
        return out
    hints: list[str] = out["hints"]
    # a Message-ID looks like an address (local@domain): look it up as a key first
    states: dict[str, dict[str, Any]] = {}
    try:
        states = {r["MESSAGE_ID"]: r for r in pull(server, f"SELECT * FROM EMAIL_STATE WHERE MESSAGE_ID = {_lit(text)};")}
    except StatementFailed as e:
        hints.append(_hint(e, "EMAIL_STATE"))
    with live.lock:
        known = text in states or live.index.events(text) is not None
        ids = [text] if known else live.index.messages_of(text)
    if not known and "@" in text:
        out["kind"] = "recipient"
        if not hints:
            try:
                if ids:
                    rows = pull(server, "SELECT * FROM EMAIL_STATE WHERE MESSAGE_ID IN ("
                                + ", ".join(_lit(i) for i in ids[:200]) + ");")
                else:  # not in the index: scan the table (recipients are lower-cased in the events)
                    rows = pull(server, f"SELECT * FROM EMAIL_STATE WHERE RECIPIENT = {_lit(text.lower())};")
                states = {r["MESSAGE_ID"]: r for r in rows if r.get("MESSAGE_ID")}
            except StatementFailed as e:
                hints.append(_hint(e, "EMAIL_STATE"))
        ids = sorted(set(ids) | set(states),
                     key=lambda i: -int((states.get(i) or {}).get("LAST_TS") or 0))[:MAX_MESSAGES]
    elif not known:
        ids = [text]
    with live.lock:
        indexed = {mid: live.index.events(mid) for mid in ids}
    missing = [mid for mid, evs in indexed.items() if evs is None]
    scanned: dict[str, list[dict[str, Any]]] = {}
    if missing and scan:  # one scan of the stream for every message the index does not hold
        try:
            rows = pull(server, "SELECT * FROM EMAIL_EVENTS WHERE MESSAGE_ID IN ("
                        + ", ".join(_lit(m) for m in missing) + ") LIMIT 2000;")
            for r in sorted(rows, key=lambda e: e.get("TS") or 0):
                scanned.setdefault(r.get("MESSAGE_ID"), []).append(r)
        except StatementFailed as e:
            hints.append(_hint(e, "EMAIL_EVENTS"))
    for mid in ids:
        events = indexed[mid]
        source = "index"
        if events is None:
            events, source = (scanned.get(mid, []), "scan") if scan else ([], "none")
        if mid in states or events:
            out["messages"].append({"message_id": mid, "state": states.get(mid), "events": events, "events_from": source})
    if not out["messages"] and not hints:
        hints.append(f"No message {'to' if out['kind'] == 'recipient' else 'with id'} {text}.")
    return out
