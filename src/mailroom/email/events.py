"""The canonical email event: one schema for what every MTA log and ESP webhook reports.

Every ingest path (Postfix, Exim, PowerMTA, webhooks, the simulator) maps its input to
:class:`EmailEvent`; the SQL pipelines read it as JSON records of the ``email-events`` topic,
keyed by ``message_id`` (so one message's events stay in order in one partition).

Fields (JSON names; all but ``type``, ``ts`` and ``message_id`` may be null/absent; the same
events as Avro: :func:`avro_schema`, :func:`encode_avro`, :func:`decode_avro`):

==================  ===========================================================================
``type``            one of :data:`EVENT_TYPES` (lifecycle: injected, accepted, queued, attempt,
                    delivered, deferred, bounced, expired, dropped; engagement: opened, clicked,
                    complained, unsubscribed)
``ts``              event time, epoch milliseconds (UTC)
``message_id``      the message's id: the RFC 5322 Message-ID without ``<>`` when known,
                    otherwise ``<source>:<queue id>``
``queue_id``        the MTA's own queue id (Postfix queue id, Exim message id, PowerMTA jobId)
``event_id``        a unique id of this event when the source gives one (webhook event id)
``source``          where it came from: postfix, exim, powermta, sendgrid, simulator, ...
``sender``          envelope sender (MAIL FROM)
``recipient``       envelope recipient (RCPT TO), lower-cased
``orig_recipient``  the recipient before aliasing/forwarding (Postfix ``orig_to=``)
``domain``          the recipient's domain, lower-cased
``provider``        mailbox provider of the domain or MX (gmail, microsoft, yahoo, apple, ...)
``campaign_id``     sender-side campaign; ``list_id`` mailing list; ``account_id`` customer
``mta``             internal MTA node that handled it (host name of the log line)
``sending_ip``      the local IP the MTA sent from (PowerMTA ``dlvSourceIp``)
``remote_host``     remote MTA host name (Postfix ``relay=host[ip]:port``)
``remote_ip``       remote MTA IP address
``attempt``         delivery attempt number (1-based) when known
``smtp_code``       basic SMTP reply code (RFC 5321), e.g. 250, 421, 550
``enhanced_code``   enhanced status code (RFC 3463) ``class.subject.detail``, e.g. ``5.1.1``
``reply``           the remote reply text (or the MTA's own explanation)
``tls``             whether the session used TLS (null: unknown); ``tls_version`` e.g. TLSv1.3
``latency_ms``      time from arrival to this outcome (Postfix ``delay=``), milliseconds
``delays``          Postfix ``delays=a/b/c/d`` as written (before qmgr / in qmgr / connect / transmit)
``size``            message size in bytes; ``nrcpt`` number of recipients
``bounce_class``    hard, soft, block, throttle, policy, dns, expired, unknown (see bounces.py)
``bounce_reason``   user_unknown, mailbox_full, blocklisted, rate_limited, ... (see bounces.py)
``client_host`` / ``client_ip``  the client that submitted (or was rejected at) the MTA
``url``             clicked link; ``user_agent`` of an open or click
``detail``          a finer kind: ``reject`` (refused at the door: SMTP reject, milter reject),
                    ``discard``, ``returned_to_sender``, ``notification`` (a bounce message itself)
==================  ===========================================================================
"""

from __future__ import annotations

from typing import Any

import msgspec

EVENT_TYPES: tuple[str, ...] = (
    "injected", "accepted", "queued", "attempt", "delivered", "deferred", "bounced", "expired", "dropped",
    "opened", "clicked", "complained", "unsubscribed",
)
#: types after which a message (for that recipient) reaches no other delivery state
FINAL_TYPES: frozenset[str] = frozenset({"delivered", "bounced", "expired", "dropped"})
#: engagement types: they happen after delivery and never change the delivery state
ENGAGEMENT_TYPES: frozenset[str] = frozenset({"opened", "clicked", "complained", "unsubscribed"})


class EmailEvent(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One event of one message (for one recipient). See the module doc for the fields."""

    type: str
    ts: int
    message_id: str
    queue_id: str | None = None
    event_id: str | None = None
    source: str | None = None
    sender: str | None = None
    recipient: str | None = None
    orig_recipient: str | None = None
    domain: str | None = None
    provider: str | None = None
    campaign_id: str | None = None
    list_id: str | None = None
    account_id: str | None = None
    mta: str | None = None
    sending_ip: str | None = None
    remote_host: str | None = None
    remote_ip: str | None = None
    attempt: int | None = None
    smtp_code: int | None = None
    enhanced_code: str | None = None
    reply: str | None = None
    tls: bool | None = None
    tls_version: str | None = None
    latency_ms: int | None = None
    delays: str | None = None
    size: int | None = None
    nrcpt: int | None = None
    bounce_class: str | None = None
    bounce_reason: str | None = None
    client_host: str | None = None
    client_ip: str | None = None
    url: str | None = None
    user_agent: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown email event type {self.type!r} (one of {', '.join(EVENT_TYPES)})")

    @property
    def key(self) -> bytes:
        """The record key: the message id."""
        return self.message_id.encode()

    def to_dict(self) -> dict[str, Any]:
        """The non-null fields as a dict."""
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not None}


_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder(EmailEvent)
_DEC_MANY = msgspec.json.Decoder(list[EmailEvent])


def encode(event: EmailEvent) -> bytes:
    """JSON bytes of an event (null fields left out)."""
    return _ENC.encode(event)


def decode(data: bytes | str) -> EmailEvent:
    """An event from JSON; raises ``msgspec.ValidationError`` (a ValueError) on a bad record."""
    return _DEC.decode(data)


def decode_many(data: bytes | str) -> list[EmailEvent]:
    """Events from a JSON array."""
    return _DEC_MANY.decode(data)


def from_dict(d: dict[str, Any]) -> EmailEvent:
    """An event from a dict (e.g. one of the simulator's), checking types."""
    return msgspec.convert(d, EmailEvent)


_SQL_TYPES = {int: "BIGINT", str: "STRING", bool: "BOOLEAN"}


def sql_columns(key: bool = True) -> list[tuple[str, str]]:
    """(name, SQL type) of every field, in schema order; ``message_id`` marked ``KEY``."""
    out = []
    for f, t in zip(EmailEvent.__struct_fields__, _field_types()):
        sql = _SQL_TYPES[t]
        out.append((f, f"{sql} KEY" if key and f == "message_id" else sql))
    return out


def _field_types() -> list[type]:
    import typing

    hints = typing.get_type_hints(EmailEvent)
    res = []
    for f in EmailEvent.__struct_fields__:
        args = [a for a in typing.get_args(hints[f]) if a is not type(None)] or [hints[f]]
        res.append(args[0])
    return res


def create_stream_sql(name: str = "email_events", topic: str = "email-events", partitions: int = 4) -> str:
    """A ``CREATE STREAM`` statement over the events topic (JSON values, event time ``ts``)."""
    cols = ",\n  ".join(f"{n} {t}" for n, t in sql_columns())
    return (f"CREATE STREAM {name} (\n  {cols}\n) WITH (kafka_topic='{topic}', value_format='JSON', "
            f"partitions={partitions}, timestamp='ts');")


_AVRO_TYPES = {int: "long", str: "string", bool: "boolean"}


def avro_schema() -> dict[str, Any]:
    """The Avro schema of an event (record ``mailroom.email.EmailEvent``): ``type``, ``ts``
    (timestamp-millis) and ``message_id`` required, every other field an optional union with
    null, in schema order, so the same events can travel as Avro (e.g. ``value_format='AVRO'``)."""
    fields: list[dict[str, Any]] = []
    for f, t in zip(EmailEvent.__struct_fields__, _field_types()):
        avro: Any = _AVRO_TYPES[t]
        if f == "ts":
            avro = {"type": "long", "logicalType": "timestamp-millis"}
        if f in ("type", "ts", "message_id"):
            fields.append({"name": f, "type": avro})
        else:
            fields.append({"name": f, "type": ["null", avro], "default": None})
    return {"type": "record", "name": "EmailEvent", "namespace": "mailroom.email", "fields": fields,
            "doc": "One event of one email message (for one recipient): see mailroom.email.events."}


def encode_avro(event: EmailEvent) -> bytes:
    """Schemaless Avro bytes of an event (the schema is :func:`avro_schema`)."""
    import io

    import fastavro

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _parsed_avro(), {f: getattr(event, f) for f in EmailEvent.__struct_fields__})
    return buf.getvalue()


def decode_avro(data: bytes) -> EmailEvent:
    """An event from schemaless Avro bytes written with :func:`avro_schema`."""
    import io

    import fastavro

    rec = fastavro.schemaless_reader(io.BytesIO(data), _parsed_avro())
    ts = rec["ts"]
    if not isinstance(ts, int):  # timestamp-millis comes back as a datetime
        rec["ts"] = int(ts.timestamp() * 1000)
    return msgspec.convert({k: v for k, v in rec.items() if v is not None}, EmailEvent)


_AVRO_PARSED: Any = None


def _parsed_avro() -> Any:
    global _AVRO_PARSED
    if _AVRO_PARSED is None:
        import fastavro

        _AVRO_PARSED = fastavro.parse_schema(avro_schema())
    return _AVRO_PARSED
