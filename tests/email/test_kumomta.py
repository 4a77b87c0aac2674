"""The KumoMTA JSON log parser on sample records of every type, through `mailroom ingest kumomta` and `mailroom report kumomta`."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from mailroom.cli.main import app
from mailroom.email.events import decode
from mailroom.email.ingest import parser_for
from mailroom.log import TopicPartition, open_log

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "kumomta.jsonl"
MID = "20240112101502.1001@sender.example.com"
runner = CliRunner()


def parse():
    p = parser_for("kumomta")
    return p, p.feed_lines(open(SAMPLE))


def by_queue_id(events):
    return {(e.queue_id, e.type): e for e in events}


def test_every_record_type_maps_to_its_event() -> None:
    p, ev = parse()
    assert [(e.type, e.detail) for e in ev] == [
        ("accepted", None), ("delivered", None), ("deferred", None), ("bounced", None), ("bounced", None),
        ("expired", None), ("accepted", None), ("dropped", "admin"), ("bounced", "async"), ("complained", None), ("dropped", "reject"),
        ("queued", "delay")]
    assert all(e.source == "kumomta" for e in ev)
    assert p.counts["parsed"] == 12 and p.counts["ignored"] == 1  # type SomethingNew


def test_reception_and_delivery_fields() -> None:
    _, ev = parse()
    acc, dlv = ev[0], ev[1]
    assert acc.message_id == dlv.message_id == MID  # the logged Message-ID header
    assert (acc.client_host, acc.client_ip, acc.remote_host, acc.size) == ("app1.sender.example.com", "192.0.2.10", None, 1047)
    assert (acc.campaign_id, acc.account_id) == ("spring-sale", "acme")  # from the queue campaign:tenant@domain
    assert (dlv.recipient, dlv.domain, dlv.provider) == ("alice@gmail.com", "gmail.com", "gmail")
    assert (dlv.remote_host, dlv.remote_ip, dlv.sending_ip, dlv.mta) == ("gmail-smtp-in.l.google.com", "142.251.2.27", "198.51.100.7", "source2")
    assert (dlv.smtp_code, dlv.enhanced_code, dlv.attempt, dlv.latency_ms) == (250, "2.0.0", 1, 1000)
    assert (dlv.tls, dlv.tls_version) == (True, "TLSv1.3")
    assert dlv.reply == "250 2.0.0 OK ids=8a5475ccbbc611eda12250ebf67f93bd"
    assert dlv.ts == 1705054503000


def test_failures_are_classified() -> None:
    _, ev = parse()
    m = by_queue_id(ev)
    d = m[("2e01aa6abbbc11ed940250ebf67f93bd", "deferred")]
    assert (d.message_id, d.attempt, d.smtp_code, d.enhanced_code, d.bounce_class, d.bounce_reason) == (
        "kumomta:2e01aa6abbbc11ed940250ebf67f93bd", 2, 421, "4.7.0", "throttle", "rate_limited")
    b = m[("3f12bb7abbbc11ed940250ebf67f93bd", "bounced")]
    assert (b.recipient, b.enhanced_code, b.bounce_class, b.bounce_reason) == ("dave@gmail.com", "5.1.1", "hard", "user_unknown")
    assert b.ts == 1705054505000 and b.latency_ms == 3000  # ISO time stamps work too
    # only the basic code 554 speaks: KumoMTA's own classification (SpamContent) decides
    c = m[("4a23cc8abbbc11ed940250ebf67f93bd", "bounced")]
    assert (c.smtp_code, c.enhanced_code, c.bounce_class, c.bounce_reason) == (554, None, "block", "content_rejected")
    assert (c.campaign_id, c.account_id, c.attempt) == ("winter", "acme", 3)  # meta wins over the queue name
    x = m[("2e01aa6abbbc11ed940250ebf67f93bd", "expired")]
    assert (x.bounce_class, x.enhanced_code, x.latency_ms) == ("expired", "5.4.7", 86_400_000)
    oob = m[("6c45eeaabbbc11ed940250ebf67f93bd", "bounced")]
    assert (oob.recipient, oob.bounce_class, oob.bounce_reason, oob.detail) == ("gina@example.org", "soft", "mailbox_full", "async")
    rej = next(e for e in ev if e.detail == "reject")
    assert (rej.client_ip, rej.remote_ip, rej.bounce_class, rej.detail) == ("203.0.113.66", None, "block", "reject")
    admin = m[("5b34dd9abbbc11ed940250ebf67f93bd", "dropped")]
    assert (admin.bounce_class, admin.detail) == ("policy", "admin")


def test_feedback_report_names_the_complaining_recipient_and_message() -> None:
    _, ev = parse()
    fb = next(e for e in ev if e.type == "complained")
    # the record's own recipient is the FBL mailbox; the complaint is about the reported message
    assert (fb.recipient, fb.message_id, fb.sender, fb.provider) == ("henry@hotmail.com", MID, "news@sender.example.com", "microsoft")


def test_bad_lines_are_reported_not_raised() -> None:
    p, _ = parse()
    errs = p.take_errors()
    assert [e.line_no for e in errs] == [13, 14]
    assert errs[0].reason.startswith("not JSON") and "yesterday" in errs[1].reason
    assert p.feed("[1, 2]") == [] and p.take_errors()[0].reason == "not a JSON object"


def test_ingest_and_report_commands(tmp_path) -> None:
    url = f"embedded:{tmp_path / 'log'}"
    logfile = tmp_path / "kumo.jsonl"
    logfile.write_bytes(SAMPLE.read_bytes())
    r = runner.invoke(app, ["ingest", "kumomta", str(logfile), "--log", url])
    assert r.exit_code == 0, r.output
    assert "15 lines" in r.output and "12 events" in r.output and "2 lines did not parse" in r.output
    with open_log(url) as log:
        c = log.consumer()
        c.assign([TopicPartition("email-events", p) for p in range(4)] + [TopicPartition("email-events-processing-log", 0)])
        got, plog = [], []
        while batches := c.poll(10_000, timeout=0.3):
            for b in batches:
                (plog if b.topic_partition.topic.endswith("processing-log") else got).extend(zip(b.keys, b.values))
        c.close()
    events = [decode(v) for _, v in got]
    assert sorted(e.type for e in events) == sorted(["accepted", "accepted", "delivered", "deferred", "bounced", "bounced", "expired",
                                                     "dropped", "bounced", "complained", "dropped", "queued"])
    assert all(k == e.message_id.encode() for (k, _), e in zip(got, events))
    reasons = [orjson.loads(v)["reason"] for _, v in plog]
    assert len(reasons) == 2 and "line 13: not JSON" in reasons[0]

    r = runner.invoke(app, ["report", "kumomta", str(logfile), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    t = rep["totals"]
    assert (t["received"], t["delivered"], t["bounced"], t["expired"], t["deferrals"], t["rejected"]) == (2, 1, 3, 1, 1, 1)
    assert rep["domains"]["gmail.com"]["bounced"] == 1 and rep["domains"]["yahoo.com"]["expired"] == 1
