from decimal import Decimal

from mailroom.formats.types import SqlType as T
from mailroom.functions import LambdaType


def test_array_min_max_sort(call):
    assert call("ARRAY_MAX", (T.array(T.INT), [0, None, 1, 0, -1])) == 1
    assert call("ARRAY_MIN", (T.array(T.STRING), ["foo", "fo", "Food", None, "F", "food"])) == "F"
    assert call("ARRAY_MAX", (T.array(T.INT), [])) is None
    assert call("ARRAY_SORT", (T.array(T.BOOLEAN), [None, False, True])) == [False, True, None]
    assert call("ARRAY_SORT", (T.array(T.INT), [0, None, 1, 0, -1]), (T.STRING, "desc")) == [1, 0, 0, -1, None]
    assert call("ARRAY_SORT", (T.array(T.decimal(2, 1)), None)) is None
    assert call("ARRAY_LENGTH", (T.array(T.INT), [1, 2])) == 2


def test_set_operations(call):
    a = T.array(T.INT)
    assert call("ARRAY_DISTINCT", (a, [1, 2, 1, None, None])) == [1, 2, None]
    assert call("ARRAY_EXCEPT", (a, [1, 2, 3, 2]), (a, [2])) == [1, 3]
    assert call("ARRAY_INTERSECT", (a, [1, 2, 3]), (a, [3, 1])) == [1, 3]
    assert call("ARRAY_UNION", (a, [1, 2]), (a, [2, 3])) == [1, 2, 3]
    assert call("ARRAY_CONTAINS", (a, [1, None]), (T.INT, None)) is True
    assert call("ARRAY_REMOVE", (a, [1, 2, 1]), (T.INT, 1)) == [2]
    assert call("SLICE", (a, [1, 2, 3, 4]), (T.INT, 2), (T.INT, 3)) == [2, 3]
    assert call("ARRAY_JOIN", (a, [1, 2]), (T.STRING, "|")) == "1|2"
    assert call("GENERATE_SERIES", (T.INT, 1), (T.INT, 7), (T.INT, 3)) == [1, 4, 7]
    assert call("GENERATE_SERIES", (T.INT, 3), (T.INT, 1)) == [3, 2, 1]


def test_maps(reg, call):
    m = T.map(T.INT)
    assert call("MAP_KEYS", (m, {"a": 1, "b": 2})) == ["a", "b"]
    assert call("MAP_VALUES", (m, {"a": 1, "b": 2})) == [1, 2]
    assert call("MAP_UNION", (m, {"a": 1}), (m, {"a": 2, "b": 3})) == {"a": 2, "b": 3}
    assert call("AS_MAP", (T.array(T.STRING), ["a", "b"]), (T.array(T.INT), [1, 2])) == {"a": 1, "b": 2}
    r = reg.resolve_scalar("ENTRIES", [m, T.BOOLEAN])
    assert r.return_type == T.array(T.struct([("K", T.STRING), ("V", T.INT)]))
    assert r.fn({"b": 2, "a": 1}, True) == [{"K": "a", "V": 1}, {"K": "b", "V": 2}]


def test_lambdas(reg):
    r = reg.resolve_scalar("TRANSFORM", [T.array(T.INT), LambdaType([T.INT], T.INT)])
    assert r.fn([1, 2], lambda x: x + 5) == [6, 7] and r.fn(None, lambda x: x) is None
    r = reg.resolve_scalar("FILTER", [T.array(T.INT), LambdaType([T.INT], T.BOOLEAN)])
    assert r.fn([1, 5, 10], lambda x: x > 2) == [5, 10]
    r = reg.resolve_scalar("TRANSFORM", [T.map(T.INT), LambdaType([T.STRING, T.INT], T.STRING), LambdaType([T.STRING, T.INT], T.DOUBLE)])
    assert r.return_type == T.map(T.DOUBLE)
    assert r.fn({"a": 1}, lambda k, v: k.upper(), lambda k, v: v / 2) == {"A": 0.5}
    r = reg.resolve_scalar("REDUCE", [T.array(T.INT), T.INT, LambdaType([T.INT, T.INT], T.INT)])
    add = lambda s, x: None if s is None or x is None else s + x  # noqa: E731
    assert r.fn([3, 6], 2, add) == 11
    assert r.fn([5, None], 2, add) is None
    assert r.fn(None, 2, add) == 2
    assert r.fn([1, 2], None, add) is None


def test_json(call):
    S = T.STRING
    assert call("EXTRACTJSONFIELD", (S, '{"name": "fred", "value": 1}'), (S, "$.name")) == "fred"
    assert call("EXTRACTJSONFIELD", (S, '{"a": {"b": [1, {"c": 2}]}}'), (S, "$.a.b[1]")) == '{"c":2}'
    assert call("EXTRACTJSONFIELD", (S, "not json"), (S, "$.a")) is None
    assert call("JSON_CONCAT", (S, '{"a": {"5": 6}}'), (S, '{"a": {"3": 4}}')) == '{"a":{"3":4}}'
    assert call("JSON_CONCAT", (S, "[1, 2]"), (S, '{"a": 1}')) == '[1,2,{"a":1}]'
    assert call("JSON_CONCAT", (S, "null"), (S, "null")) == "[null,null]"
    assert call("JSON_CONCAT", (S, "1"), (S, "")) is None
    assert call("JSON_ITEMS", (S, '[{"type": "A"}, 1]')) == ['{"type":"A"}', "1"]
    assert call("JSON_ARRAY_LENGTH", (S, "[1, 2]")) == 2 and call("JSON_ARRAY_LENGTH", (S, "")) is None
    assert call("TO_JSON_STRING", (T.INT, None)) == "null"
    assert call("TO_JSON_STRING", (T.decimal(6, 3), Decimal("123.456"))) == "123.456"
    assert call("TO_JSON_STRING", (T.BYTES, b"!")) == '"IQ=="'
    assert call("TO_JSON_STRING", (T.array(T.DOUBLE), [1.0, 1e10])) == "[1.0,1.0E10]"


def test_nulls(call):
    assert call("IFNULL", (T.STRING, None), (T.STRING, "x")) == "x"
    assert call("NULLIF", (T.INT, 1), (T.INT, 1)) is None
    assert call("COALESCE", (None, None), (T.INT, None), (T.INT, 3)) == 3


def test_table_functions(reg):
    r = reg.resolve_table("EXPLODE", [T.array(T.INT)])
    assert r.return_type == T.INT and r.fn([1, 2]) == [1, 2] and r.fn(None) == []
    r = reg.resolve_table("CUBE_EXPLODE", [T.array(T.STRING)])
    assert r.return_type == T.array(T.STRING)
    assert r.fn(["a", "b"]) == [["a", "b"], ["a", None], [None, "b"], [None, None]]
    assert r.fn(["a", None]) == [["a", None], [None, None]]
