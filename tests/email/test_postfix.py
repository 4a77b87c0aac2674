"""The Postfix log parser on a realistic multi-message log (tests/email/data/postfix_mail.log)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mailroom.email.ingest.postfix import PostfixParser

DATA = Path(__file__).parent / "data"
MID = "20240112101502.1001@news.example.org"


def parse(lines, **kw):
    p = PostfixParser(year=2024, **kw)
    return p, p.feed_lines(lines)


def by(events, **match):
    return [e for e in events if all(getattr(e, k) == v for k, v in match.items())]


def test_whole_sample_log() -> None:
    p, events = parse(open(DATA / "postfix_mail.log"))
    assert [e.type for e in by(events, message_id=MID)] == ["accepted", "queued", "delivered", "bounced", "deferred", "delivered"]
    assert len(by(events, type="dropped")) == 2
    assert p.counts["other_program"] == 1  # the dovecot line
    assert [(e.line_no, e.reason.split(" (")[0]) for e in p.errors] == [
        (28, "not a syslog line"), (29, "a delivery line that does not parse")]
    assert p.errors[1].line.startswith("Jan 17 11:06:00 mx1 postfix/smtp[4001]")


def test_a_delivered_message_with_tls_and_timings() -> None:
    _, events = parse(open(DATA / "postfix_mail.log"))
    e = by(events, type="delivered", recipient="alice@gmail.com")[0]
    assert e.message_id == MID and e.queue_id == "4F3A21C0A2B" and e.sender == "news@example.org"
    assert (e.domain, e.provider, e.remote_host, e.remote_ip) == ("gmail.com", "gmail", "gmail-smtp-in.l.google.com", "142.250.102.26")
    assert (e.smtp_code, e.enhanced_code, e.attempt) == (250, "2.0.0", 1)
    assert e.latency_ms == 1200 and e.delays == "0.1/0.01/0.5/0.59" and e.size == 2345 and e.nrcpt == 3
    assert e.tls is True and e.tls_version == "TLSv1.3"
    assert e.ts == int(dt.datetime(2024, 1, 12, 10, 15, 3, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert e.mta == "mx1" and e.bounce_class is None


def test_deferred_then_delivered_counts_attempts() -> None:
    _, events = parse(open(DATA / "postfix_mail.log"))
    carol = by(events, recipient="carol@yahoo.com")
    assert [(e.type, e.attempt) for e in carol] == [("deferred", 1), ("delivered", 2)]
    d = carol[0]
    assert (d.smtp_code, d.enhanced_code, d.bounce_class, d.bounce_reason) == (421, "4.7.0", "throttle", "rate_limited")
    assert d.reply.startswith("421 4.7.0 [TSS04]") and "(in reply to" not in d.reply
    assert carol[1].remote_host == "mta6.am0.yahoodns.net" and carol[1].latency_ms == 604_000
    # qmgr logs "(queue active)" again on the retry: still one queued event
    assert len(by(events, type="queued", message_id=MID)) == 1


def test_bounced_550_5_1_1() -> None:
    _, events = parse(open(DATA / "postfix_mail.log"))
    b = by(events, type="bounced", recipient="dave@gmail.com")[0]
    assert (b.smtp_code, b.enhanced_code, b.bounce_class, b.bounce_reason) == (550, "5.1.1", "hard", "user_unknown")
    assert "NoSuchUser" in b.reply
    note = by(events, queue_id="7B2C31C0A31")
    assert [e.type for e in note] == ["queued", "delivered"] and all(e.detail == "notification" for e in note)
    assert note[0].message_id == "20240112101504.7B2C31C0A31@mx1.example.org"


def test_expired_message_and_iso_timestamps() -> None:
    _, events = parse(open(DATA / "postfix_mail.log"))
    inv = by(events, message_id="inv-42@billing.example.org")
    assert [e.type for e in inv] == ["accepted", "queued", "deferred", "expired"]
    assert inv[0].sender == "billing@example.org"  # from pickup's uid= from= line
    assert inv[2].bounce_reason == "network_error" and inv[2].enhanced_code == "4.4.1"
    x = inv[3]
    assert (x.recipient, x.domain, x.bounce_class, x.detail) == ("ceo@acme-corp.com", "acme-corp.com", "expired", "returned_to_sender")
    assert inv[0].ts == int(dt.datetime(2024, 1, 12, 11, 0, 0, 200000, tzinfo=dt.timezone.utc).timestamp() * 1000)


def test_rejected_at_smtpd() -> None:
    _, events = parse(open(DATA / "postfix_mail.log"))
    relay, rbl = by(events, type="dropped")
    assert (relay.recipient, relay.sender, relay.client_ip, relay.detail) == ("victim@outlook.com", "spammer@bad.example", "203.0.113.5", "reject")
    assert (relay.smtp_code, relay.enhanced_code, relay.bounce_reason) == (554, "5.7.1", "relay_denied")
    assert relay.reply == "554 5.7.1 <victim@outlook.com>: Relay access denied"
    assert rbl.bounce_class == "block" and rbl.bounce_reason == "blocklisted" and "spamhaus" in rbl.reply
    assert relay.message_id != rbl.message_id and relay.message_id.startswith("postfix-reject:")


SEVERAL = """\
Mar  3 08:00:00 out2 postfix/smtpd[100]: 3F1A2B3C4D: client=app[10.0.0.5]
Mar  3 08:00:00 out2 postfix/cleanup[101]: 3F1A2B3C4D: message-id=<multi@example.org>
Mar  3 08:00:00 out2 postfix/qmgr[102]: 3F1A2B3C4D: from=<list@example.org>, size=900, nrcpt=4 (queue active)
Mar  3 08:00:01 out2 postfix/smtp[103]: 3F1A2B3C4D: to=<a@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.1.26]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)
Mar  3 08:00:01 out2 postfix/smtp[103]: 3F1A2B3C4D: to=<b@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.1.26]:25, conn_use=2, delay=1.1, delays=0/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 OK)
Mar  3 08:00:02 out2 postfix/smtp[104]: 3F1A2B3C4D: to=<c@corp.example>, orig_to=<sales@corp.example>, relay=corp-example.mail.protection.outlook.com[52.101.1.1]:25, delay=2, delays=0/0/1/1, dsn=2.6.0, status=sent (250 2.6.0 <multi@example.org> [InternalId=1] Queued mail for delivery)
Mar  3 08:00:02 out2 postfix/local[105]: 3F1A2B3C4D: to=<root@out2.example.org>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)
Mar  3 08:00:02 out2 postfix/qmgr[102]: 3F1A2B3C4D: removed
"""


def test_several_recipients_of_one_queue_id() -> None:
    p, events = parse(SEVERAL.splitlines())
    dl = by(events, type="delivered")
    assert [e.recipient for e in dl] == ["a@gmail.com", "b@gmail.com", "c@corp.example", "root@out2.example.org"]
    assert {e.message_id for e in dl} == {"multi@example.org"} and all(e.nrcpt == 4 for e in dl)
    assert dl[2].orig_recipient == "sales@corp.example" and dl[2].provider == "microsoft"  # hosted at Microsoft: via the MX
    assert dl[3].remote_host == "local" and dl[3].remote_ip is None and dl[3].reply == "delivered to mailbox"
    assert p.msgs == {}  # "removed" drops the queue id's state
    assert not p.errors


def test_incremental_feeding_and_restart_keep_message_ids() -> None:
    lines = SEVERAL.splitlines()
    p1 = PostfixParser(year=2024)
    first = p1.feed_lines(lines[:4])
    snap = p1.snapshot()
    p2 = PostfixParser(year=2024)
    p2.restore(snap)
    rest = p2.feed_lines(lines[4:], first_line_no=5)
    assert [e.type for e in first] == ["accepted", "queued", "delivered"]
    assert [e.message_id for e in rest] == ["multi@example.org"] * 3
    assert rest[0].attempt == 1 and rest[0].size == 900


def test_year_rollover_and_fractional_syslog_seconds() -> None:
    lines = [
        "Dec 31 23:59:59.250000 mx postfix/smtp[1]: AAAAA11111: to=<a@b.example>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to b.example[192.0.2.9]:25: Connection timed out)",
        "Jan  1 00:00:05 mx postfix/smtp[1]: AAAAA11111: to=<a@b.example>, relay=b.example[192.0.2.9]:25, delay=7, delays=0/0/1/6, dsn=2.0.0, status=sent (250 ok)",
    ]
    _, (d, s) = parse(lines)
    assert d.ts == int(dt.datetime(2024, 12, 31, 23, 59, 59, 250000, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert s.ts == int(dt.datetime(2025, 1, 1, 0, 0, 5, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert (d.attempt, s.attempt) == (1, 2)


def test_long_queue_ids_multi_instance_and_cleanup_rejects() -> None:
    lines = [
        "2024-05-01T09:00:00.000000+02:00 mx postfix-out/smtp[7]: 4VTq1M2xKJz9sWp: to=<u@yahoo.com>, relay=mta5.am0.yahoodns.net[67.195.228.106]:25, delay=3.2, delays=0.01/0/1.2/2, dsn=5.7.9, status=bounced (host mta5.am0.yahoodns.net[67.195.228.106] said: 554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes (in reply to end of DATA command))",
        "2024-05-01T09:00:01+02:00 mx postfix/submission/smtpd[8]: NOQUEUE: milter-reject: END-OF-MESSAGE from app[10.0.0.5]: 5.7.1 Spam message rejected; from=<a@example.org> to=<b@gmail.com> proto=ESMTP helo=<app>",
        "2024-05-01T09:00:02Z mx postfix/cleanup[9]: 4VTq1M2xKJz9sWq: reject: header Subject: You have won from app[10.0.0.5]; from=<a@example.org> to=<c@gmail.com> proto=ESMTP helo=<app>: 5.7.1 message content rejected",
        "2024-05-01T09:00:03Z mx postfix/smtpd[8]: warning: hostname app does not resolve to address 10.0.0.5",
    ]
    p, (b, m, c) = parse(lines)
    assert b.queue_id == "4VTq1M2xKJz9sWp" and b.bounce_class == "policy" and b.smtp_code == 554 and b.mta == "mx"
    assert b.ts == int(dt.datetime(2024, 5, 1, 7, 0, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert (m.type, m.detail, m.enhanced_code, m.bounce_class) == ("dropped", "reject", "5.7.1", "block")
    assert (c.type, c.recipient, c.client_ip, c.reply) == ("dropped", "c@gmail.com", "10.0.0.5", "5.7.1 message content rejected")
    assert not p.errors and p.counts["ignored"] == 1


def test_errors_never_raise_and_carry_line_numbers() -> None:
    p = PostfixParser(year=2024)
    assert p.feed("Feb 30 10:00:00 mx postfix/smtp[1]: ABCDE12345: to=<a@b.c>, relay=none, delay=1, status=sent (ok)", 7) == []
    assert p.feed("Jan 12 10:00:00 mx postfix/qmgr[1]: ABCDE12345: from=<a@b.c>, size=big, nrcpt=1 (queue active)", 8) == []
    assert p.feed("\x00\x01 binary junk", 9) == []
    assert [(e.line_no, e.reason[:15]) for e in p.take_errors()] == [(7, "bad time stamp:"), (8, "a qmgr line tha"), (9, "not a syslog li")]
    assert p.errors == [] and p.counts["errors"] == 3
