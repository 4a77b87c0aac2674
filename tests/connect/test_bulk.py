"""Records to bulk actions and bulk items to outcomes (no server needed)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mailroom.connect.bulk import Action, IdExtractor, Rejected, encode, outcome
from mailroom.log import RecordBatch


def batch(keys, values) -> RecordBatch:
    n = len(keys)
    return RecordBatch("t", 3, np.arange(10, 10 + n, dtype=np.int64), np.zeros(n, dtype=np.int64), keys, values)


def test_ids_from_key_json_key_and_value_field():
    assert IdExtractor("key")(b"m-1", None) == "m-1"
    assert IdExtractor("key:json")(b'"m-1"', None) == "m-1"
    assert IdExtractor("key:json")(b'{"a": 1}', None) == '{"a":1}'
    assert IdExtractor("value:id")(None, {"id": 5}) == "5"
    with pytest.raises(ValueError, match="not UTF-8"):
        IdExtractor("key")(b"\xff\xfe", None)
    with pytest.raises(ValueError, match="empty"):
        IdExtractor("key")(b"", None)
    with pytest.raises(ValueError, match="id_from"):
        IdExtractor("value:")


def test_encode_index_delete_and_reject_with_offsets():
    out = list(encode(batch([b"a", b"b", b"c"], [b'{"x":1}', None, b"3"]), "idx", IdExtractor("key"),
                      external_version=True))
    a, d, r = out
    assert isinstance(a, Action) and a.op == "index" and a.offset == 10
    meta, doc = (orjson.loads(line) for line in a.lines.splitlines())
    assert meta == {"index": {"_index": "idx", "_id": "a", "version": 10, "version_type": "external_gte"}}
    assert doc == {"x": 1}
    assert d.op == "delete" and d.lines.count(b"\n") == 1
    assert isinstance(r, Rejected) and (r.topic, r.partition, r.offset) == ("t", 3, 12) and "not an object" in r.reason


def test_encode_upsert_and_pretty_json_stays_on_one_line():
    (a,) = encode(batch([b"k"], [b'{\n  "x": "a\\nb"\n}']), "idx", IdExtractor("key"), write="upsert")
    lines = a.lines.splitlines()
    assert len(lines) == 2 and orjson.loads(lines[1]) == {"doc": {"x": "a\nb"}, "doc_as_upsert": True}


def test_outcomes():
    assert outcome("index", {"index": {"status": 201}}, False) == "ok"
    assert outcome("delete", {"delete": {"status": 404, "result": "not_found"}}, False) == "ok"
    assert outcome("index", {"index": {"status": 409}}, True) == "ok"
    assert outcome("index", {"index": {"status": 409}}, False) == "failed"
    assert outcome("index", {"index": {"status": 429}}, False) == "retry"
    assert outcome("update", {"update": {"status": 503}}, False) == "retry"
    assert outcome("index", {"index": {"status": 400}}, False) == "failed"
