"""Record headers through table operators (caching off): each change a table source, a
grouped-table re-keying and a grouped-table aggregation emit keeps the headers of the record
that made it, as Kafka Streams forwards a record's context."""

from __future__ import annotations

from mailroom.engine import INT64, TestDriver, Topology


def test_a_source_tables_changes_keep_their_records_headers():
    top = Topology()
    top.table("users").to_stream().to("out")
    d = TestDriver(top)
    d.pipe_input("users", "u1", {"city": "rome"}, 1, headers=[("trace", b"a")])
    d.pipe_input("users", "u2", {"city": "oslo"}, 2)
    d.pipe_input("users", "u1", None, 3, headers=[("trace", b"b")])  # a delete, with its headers
    out = d.read_output("out")
    assert [(o.key, o.value, o.headers) for o in out] == [
        ("u1", {"city": "rome"}, [("trace", b"a")]),
        ("u2", {"city": "oslo"}, None),
        ("u1", None, [("trace", b"b")]),
    ]


def test_a_grouped_table_aggregation_keeps_the_headers_of_the_changing_row():
    top = Topology()
    top.table("users").group_by("city").count().to_stream().to("count", value_serde=INT64)
    d = TestDriver(top)
    d.pipe_input("users", "u1", {"city": "rome"}, 1, headers=[("h", b"1")])
    d.pipe_input("users", "u2", {"city": "rome"}, 2, headers=[("h", b"2")])
    d.pipe_input("users", "u1", {"city": "oslo"}, 3, headers=[("h", b"3")])  # leaves rome: two changes
    out = d.read_output("count", value_serde=INT64)
    assert [(o.key, o.value, o.headers) for o in out] == [
        ("rome", 1, [("h", b"1")]),
        ("rome", 2, [("h", b"2")]),
        ("rome", 1, [("h", b"3")]),
        ("oslo", 1, [("h", b"3")]),
    ]
