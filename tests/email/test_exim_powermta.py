"""The Exim main-log and PowerMTA accounting parsers on realistic samples (tests/email/data)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mailroom.email.ingest import parser_for
from mailroom.email.ingest.exim import duration_ms

DATA = Path(__file__).parent / "data"
MID = "20240112101502.1001@news.example.org"


def events_of(kind: str, name: str):
    p = parser_for(kind)
    return p, p.feed_lines(open(DATA / name))


def test_exim_message_lifecycle() -> None:
    p, ev = events_of("exim", "exim_mainlog")
    main = [e for e in ev if e.message_id == MID]
    assert [(e.type, e.recipient) for e in main] == [
        ("accepted", None), ("delivered", "alice@gmail.com"), ("delivered", "bob@gmail.com"),
        ("bounced", "dave@gmail.com"), ("deferred", "carol@yahoo.com"), ("delivered", "carol@yahoo.com")]
    acc = main[0]
    assert (acc.sender, acc.size, acc.client_host, acc.client_ip, acc.tls_version) == ("news@example.org", 2345, "app1.example.org", "192.0.2.10", "TLS1.3")
    alice = main[1]
    assert (alice.remote_host, alice.remote_ip, alice.sending_ip, alice.smtp_code, alice.enhanced_code) == (
        "gmail-smtp-in.l.google.com", "142.250.102.26", "192.0.2.1", 250, "2.0.0")
    assert alice.queue_id == "1rOAbc-000123-AB" and alice.ts == int(dt.datetime(2024, 1, 12, 10, 15, 3, tzinfo=dt.timezone.utc).timestamp() * 1000)
    dave = main[3]
    assert (dave.smtp_code, dave.enhanced_code, dave.bounce_class, dave.bounce_reason) == (550, "5.1.1", "hard", "user_unknown")
    carol = main[4]
    assert (carol.smtp_code, carol.bounce_class, carol.attempt) == (421, "throttle", 1) and main[5].attempt == 2
    assert [(e.line_no, e.reason[:24]) for e in p.errors] == [(16, "not an Exim main-log lin")]


def test_exim_notification_reject_expiry_and_timezone() -> None:
    _, ev = events_of("exim", "exim_mainlog")
    note = [e for e in ev if e.queue_id == "1rOAbd-000124-CD"]
    assert [e.type for e in note] == ["accepted", "delivered"] and all(e.detail == "notification" for e in note)
    rej = [e for e in ev if e.type == "dropped"]
    assert len(rej) == 1 and (rej[0].recipient, rej[0].sender, rej[0].client_ip, rej[0].bounce_reason) == (
        "victim@outlook.com", "spammer@bad.example", "203.0.113.5", "relay_denied")
    inv = [e for e in ev if e.message_id == "inv-42@billing.example.org"]
    assert [e.type for e in inv] == ["accepted", "deferred", "expired"]
    assert inv[1].bounce_reason == "network_error" and inv[2].recipient == "ceo@acme-corp.com"
    # "2024-01-12 10:31:00.250 +0100": milliseconds and the zone are honoured
    assert inv[0].ts == int(dt.datetime(2024, 1, 12, 9, 31, 0, 250000, tzinfo=dt.timezone.utc).timestamp() * 1000)


def test_exim_durations() -> None:
    assert duration_ms("1m2s") == 62_000 and duration_ms("0.412s") == 412 and duration_ms("2d3h") == (51 * 3600) * 1000
    assert duration_ms("soon") is None and duration_ms(None) is None


def test_powermta_accounting_records() -> None:
    p, ev = events_of("powermta", "powermta_acct.csv")
    assert [(e.type, e.recipient) for e in ev] == [
        ("accepted", "alice@gmail.com"), ("delivered", "alice@gmail.com"), ("bounced", "dave@gmail.com"),
        ("deferred", "carol@yahoo.com"), ("delivered", "carol@yahoo.com"), ("expired", "ceo@acme-corp.com"),
        ("complained", "alice@gmail.com")]
    d = ev[1]
    assert (d.message_id, d.campaign_id, d.mta, d.sending_ip, d.remote_host, d.remote_ip) == (
        "m1@news.example.org", "campaign-42", "vmta-1", "192.0.2.1", "gmail-smtp-in.l.google.com", "142.250.102.26")
    assert (d.smtp_code, d.enhanced_code, d.size) == (250, "2.0.0", 2345)
    assert d.ts == int(dt.datetime(2024, 1, 12, 15, 15, 3, tzinfo=dt.timezone.utc).timestamp() * 1000)  # -0500
    assert (ev[2].bounce_class, ev[2].bounce_reason, ev[2].smtp_code) == ("hard", "user_unknown", 550)
    assert (ev[3].bounce_class, ev[3].attempt, ev[4].attempt) == ("throttle", 1, 2)
    assert ev[5].bounce_class == "expired"
    assert [(e.line_no, e.reason) for e in p.errors] == [(9, "5 fields, the header has 24")]


def test_powermta_record_before_header_is_an_error() -> None:
    p = parser_for("powermta")
    assert p.feed("d,2024-01-12 10:15:03-0500,x", 1) == []
    assert p.errors[0].reason.startswith("a record before the header row")
    p.feed("type,timeLogged,rcpt,dsnStatus,dsnDiag,bounceCat", 2)
    (e,) = p.feed("b,2024-01-12 10:15:03+0000,x@example.net,5.0.0 (undefined status),smtp;554 rejected,policy-related", 3)
    assert (e.type, e.bounce_class, e.message_id.startswith("powermta:")) == ("bounced", "policy", True)
