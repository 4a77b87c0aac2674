"""The canonical event schema: JSON round trip, validation, the CREATE STREAM columns."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from mailroom.email.events import EVENT_TYPES, EmailEvent, create_stream_sql, decode, encode, from_dict, sql_columns


def test_round_trip_leaves_nulls_out() -> None:
    e = EmailEvent(type="deferred", ts=1_705_054_504_000, message_id="m1@x", recipient="carol@yahoo.com", domain="yahoo.com",
                   smtp_code=421, enhanced_code="4.7.0", tls=False, latency_ms=2100, bounce_class="throttle")
    data = encode(e)
    assert decode(data) == e
    d = orjson.loads(data)
    assert d["smtp_code"] == 421 and d["tls"] is False
    assert "sender" not in d and "reply" not in d  # null fields are left out


def test_every_documented_type_is_accepted_and_others_are_not() -> None:
    assert len(EVENT_TYPES) == 13 and {"injected", "opened", "complained", "unsubscribed", "dropped"} <= set(EVENT_TYPES)
    for t in EVENT_TYPES:
        assert decode(encode(EmailEvent(type=t, ts=1, message_id="m"))).type == t
    with pytest.raises(msgspec.ValidationError, match="unknown email event type"):
        decode(b'{"type": "teleported", "ts": 1, "message_id": "m"}')
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"type": "delivered", "ts": "yesterday", "message_id": "m"}')


def test_simulator_events_convert_to_the_schema() -> None:
    from mailroom.email.simulator import simulate

    events = [from_dict(e) for e in next(simulate(messages=200, seed=3, batch=200))]
    assert {e.type for e in events} >= {"injected", "delivered"}
    assert all(e.message_id and e.ts > 0 for e in events)


def test_sql_columns_cover_every_field_with_message_id_as_key() -> None:
    cols = dict(sql_columns())
    assert cols["message_id"] == "STRING KEY" and cols["ts"] == "BIGINT" and cols["tls"] == "BOOLEAN"
    assert set(cols) == set(EmailEvent.__struct_fields__)
    sql = create_stream_sql("ev", "topic-x", 2)
    assert sql.startswith("CREATE STREAM ev (") and "kafka_topic='topic-x'" in sql and "partitions=2" in sql


def test_avro_schema_round_trips_every_simulated_event() -> None:
    import fastavro

    from mailroom.email import events as ev
    from mailroom.email.simulator import simulate

    schema = ev.avro_schema()
    fastavro.parse_schema(schema)  # a valid Avro schema
    assert [f["name"] for f in schema["fields"]] == list(ev.EmailEvent.__struct_fields__)
    assert {f["name"] for f in schema["fields"] if not isinstance(f["type"], list)} == {"type", "ts", "message_id"}
    sample = [ev.from_dict(d) for batch in simulate(messages=300, seed=9) for d in batch]
    sample.append(ev.EmailEvent(type="clicked", ts=1, message_id="m", tls=True, url="https://x/y", attempt=3))
    for e in sample:
        assert ev.decode_avro(ev.encode_avro(e)) == e
