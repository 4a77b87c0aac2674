"""The email UDFs resolve through a registry and run inside SQL queries."""

from __future__ import annotations

from mailroom.email.events import EmailEvent, create_stream_sql, encode
from mailroom.email.udfs import NAMES, UDF_DIR, register
from mailroom.formats.types import SqlType as T
from mailroom.functions import builtin_registry, load_folder


def test_register_into_a_builtin_registry() -> None:
    reg = builtin_registry()
    assert not any(reg.has(n) for n in NAMES)
    register(reg)
    res = reg.resolve_scalar("CLASSIFY_BOUNCE", [T.INT, T.STRING, T.STRING])
    assert str(res.return_type) == "STRUCT<CLASS STRING, REASON STRING>"
    assert res.fn(550, "5.1.1", None) == {"CLASS": "hard", "REASON": "user_unknown"}
    assert res.fn(None, None, None) is None
    assert reg.resolve_scalar("BOUNCE_CLASS", [None, None, T.STRING]).fn(None, None, "421 4.7.0 [TSS04] deferred") == "throttle"
    assert reg.resolve_scalar("BOUNCE_REASON", [T.BIGINT, T.STRING, T.STRING]).fn(452, "4.2.2", "mailbox full") == "mailbox_full"
    assert reg.resolve_scalar("MAILBOX_PROVIDER", [T.STRING]).fn("mta7.am0.yahoodns.net") == "yahoo"
    assert reg.resolve_scalar("DOMAIN_OF", [T.STRING]).fn("Jane <J@Example.ORG>") == "example.org"
    assert reg.resolve_scalar("DOMAIN_OF", [T.STRING]).fn(None) is None
    assert reg.describe("domain_of")["author"] == "mailroom email"


def test_load_folder_declares_them() -> None:
    reg = builtin_registry()
    report = load_folder(UDF_DIR, reg)
    assert report.ok and sorted(report.loaded) == sorted(NAMES)
    assert reg.resolve_scalar("MAILBOX_PROVIDER", [T.STRING]).fn("alt1.gmail-smtp-in.l.google.com") == "gmail"


def test_udfs_in_a_sql_query() -> None:
    from mailroom.sql.executor import SqlExecutor
    from mailroom.sql.runtime import InMemoryRuntime

    rt = InMemoryRuntime()
    ex = SqlExecutor(rt, register(builtin_registry()))
    ex.execute_script(create_stream_sql(partitions=1))
    ex.execute_script("""
        CREATE STREAM classified AS
          SELECT message_id, DOMAIN_OF(recipient) AS dom, MAILBOX_PROVIDER(remote_host) AS prov,
                 CLASSIFY_BOUNCE(smtp_code, enhanced_code, reply)->CLASS AS cls,
                 BOUNCE_REASON(smtp_code, enhanced_code, reply) AS reason
          FROM email_events WHERE type = 'bounced' EMIT CHANGES;""")
    bounced = EmailEvent(type="bounced", ts=5, message_id="m1", recipient="Dave@Gmail.com", remote_host="gmail-smtp-in.l.google.com",
                         smtp_code=550, enhanced_code="5.1.1", reply="550-5.1.1 The email account that you tried to reach does not exist")
    blocked = EmailEvent(type="bounced", ts=6, message_id="m2", recipient="x@outlook.com", remote_host="x.mail.protection.outlook.com",
                         reply="550 5.7.606 Access denied, banned sending IP [192.0.2.1]")
    rt.produce("email-events", b"m1", encode(bounced), 5)
    rt.produce("email-events", b"m3", encode(EmailEvent(type="delivered", ts=6, message_id="m3")), 6)
    rt.produce("email-events", b"m2", encode(blocked), 7)
    import orjson

    out = [(r.key, orjson.loads(r.value)) for r in rt.records("CLASSIFIED")]
    assert out == [
        (b"m1", {"DOM": "gmail.com", "PROV": "gmail", "CLS": "hard", "REASON": "user_unknown"}),
        (b"m2", {"DOM": "outlook.com", "PROV": "microsoft", "CLS": "block", "REASON": "blocklisted"}),
    ]
    assert not ex.errors
