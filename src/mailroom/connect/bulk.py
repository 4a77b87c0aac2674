"""Records to ``_bulk`` request lines, and ``_bulk`` item results to outcomes.

A record becomes one bulk action on document id = its key (or a field of its value): a JSON
object value indexes (or upserts) the document, a tombstone (value None) deletes it. A record
that cannot become an action (no id, a value that is not a JSON object) is *rejected* here, with
the reason, before anything is sent; the sink sends those to its processing log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from ..log import RecordBatch

#: Item statuses worth sending again: the node was overloaded (429) or a shard was not ready.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

WRITE_MODES = ("index", "upsert")


@dataclass(slots=True)
class Action:
    """One record's bulk action: the NDJSON lines to send and where the record came from."""

    lines: bytes
    op: str  # "index" | "update" | "delete"
    doc_id: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class Rejected:
    """A record that cannot be written, and why (it goes to the processing log)."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class IdExtractor:
    """Finds a record's document id, as ``id_from`` says.

    - ``"key"``: the key's bytes as UTF-8 text (KAFKA-format string keys, the SQL layer's default);
    - ``"key:json"``: the key parsed as JSON: a string as it is, any other value as compact JSON;
    - ``"value:FIELD"``: the top-level field FIELD of the value (tombstones then cannot delete:
      they carry no value, so they are rejected).
    """

    def __init__(self, id_from: str) -> None:
        if id_from in ("key", "key:json"):
            self.field = None
        elif id_from.startswith("value:") and len(id_from) > len("value:"):
            self.field = id_from[len("value:"):]
        else:
            raise ValueError(f"id_from must be 'key', 'key:json' or 'value:FIELD', not {id_from!r}")
        self.id_from = id_from

    def __call__(self, key: bytes | None, doc: dict | None) -> str:
        """The id, or ValueError saying why there is none."""
        if self.field is not None:
            if doc is None:
                raise ValueError(f"a tombstone has no value to take the id field '{self.field}' from")
            v = doc.get(self.field)
            if v is None:
                raise ValueError(f"the value has no id field '{self.field}'")
            text = v if isinstance(v, str) else orjson.dumps(v).decode()
        elif key is None:
            raise ValueError("the record has no key to use as the document id")
        elif self.id_from == "key:json":
            try:
                k = orjson.loads(key)
            except orjson.JSONDecodeError as e:
                raise ValueError(f"the key is not JSON: {e}") from None
            text = k if isinstance(k, str) else orjson.dumps(k).decode()
        else:
            try:
                text = key.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("the key is not UTF-8 text (try id_from='key:json' or 'value:FIELD')") from None
        if not text:
            raise ValueError("the document id would be empty")
        return text


def encode(
    batch: RecordBatch, index: str, ids: IdExtractor, *, write: str = "index", external_version: bool = False
) -> Iterator[Action | Rejected]:
    """Each record of ``batch`` as an :class:`Action`, or :class:`Rejected` with the reason.

    ``write="index"`` replaces the whole document; ``"upsert"`` merges the value's fields into it
    (creating it if missing). ``external_version`` makes the record's offset the document's
    version (``external_gte``): a stale write sent again late can never overwrite a newer one.
    """
    keys, values = batch.keys, batch.values
    offsets = batch.offsets.tolist()
    for i, off in enumerate(offsets):
        key, value = keys[i], values[i]
        doc = None
        if value is not None:
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError as e:
                yield Rejected(f"the value is not JSON: {e}", batch.topic, batch.partition, off, key, value)
                continue
            if not isinstance(doc, dict):
                yield Rejected(f"the value is JSON {type(doc).__name__}, not an object: it cannot be a document",
                               batch.topic, batch.partition, off, key, value)
                continue
        try:
            doc_id = ids(key, doc)
        except ValueError as e:
            yield Rejected(str(e), batch.topic, batch.partition, off, key, value)
            continue
        meta: dict = {"_index": index, "_id": doc_id}
        if doc is None:
            op, body = "delete", None
        elif write == "upsert":
            op, body = "update", {"doc": doc, "doc_as_upsert": True}
        else:
            op, body = "index", doc
        if external_version and op != "update":
            meta["version"] = off
            meta["version_type"] = "external_gte"
        lines = orjson.dumps({op: meta}) + b"\n"
        if body is not None:
            lines += orjson.dumps(body) + b"\n"
        yield Action(lines, op, doc_id, batch.topic, batch.partition, off, key, value)


def outcome(op: str, item: dict, external_version: bool) -> str:
    """What a ``_bulk`` response item means: ``"ok"``, ``"retry"`` or ``"failed"``.

    Deleting a document that is not there is fine (the tombstone's goal is reached); with
    external versions a 409 means a newer (or the same) version is already indexed.
    """
    result = item.get(op) or next(iter(item.values()), {})
    status = int(result.get("status", 500))
    if status < 300:
        return "ok"
    if op == "delete" and status == 404:
        return "ok"
    if external_version and status == 409:
        return "ok"
    if status in RETRYABLE_STATUSES:
        return "retry"
    return "failed"


def item_reason(item: dict) -> str:
    """A one-line reason from a failed ``_bulk`` item."""
    result = next(iter(item.values()), {})
    err = result.get("error")
    if isinstance(err, dict):
        reason = f"{err.get('type', 'error')}: {err.get('reason', '')}"
        cause = err.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason += f" ({cause.get('type', '')}: {cause['reason']})"
        return f"HTTP {result.get('status')} {reason}"
    return f"HTTP {result.get('status')} {err}"
