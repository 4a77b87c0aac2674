"""`mailroom ingest postfix` into an embedded log (batches, resume, follow) and `mailroom report postfix --json`."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import orjson
from typer.testing import CliRunner

from mailroom.cli.main import app
from mailroom.email.events import decode
from mailroom.email.ingest.runner import ingest_file
from mailroom.log import TopicPartition, open_log

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def read_all(url: str, topic: str) -> list:
    with open_log(url) as log:
        parts = log.describe_topic(topic).partitions
        c = log.consumer()
        c.assign([TopicPartition(topic, p) for p in range(parts)])
        out = []
        while True:
            batches = c.poll(10_000, timeout=0.3)
            if not batches:
                break
            for b in batches:
                out.extend(zip(b.keys, b.values, b.timestamps.tolist()))
        c.close()
    return out


def test_ingest_command_writes_events_and_resumes(tmp_path) -> None:
    logfile = tmp_path / "mail.log"
    lines = (DATA / "postfix_mail.log").read_text().splitlines(keepends=True)
    logfile.write_text("".join(lines[:9]))
    url = f"embedded:{tmp_path / 'log'}"
    r = runner.invoke(app, ["ingest", "postfix", str(logfile), "--log", url, "--year", "2024", "--batch", "2"])
    assert r.exit_code == 0, r.output
    first = read_all(url, "email-events")
    assert len(first) == 5  # accepted, queued, delivered, bounced, deferred
    key, value, ts = first[0] if decode(first[0][1]).type == "accepted" else sorted(first, key=lambda x: x[2])[0]
    ev = decode(value)
    assert key == ev.message_id.encode() and ts == ev.ts
    state = json.loads((tmp_path / "mail.log.mailroom-offset").read_text())
    assert state["offset"] == logfile.stat().st_size and state["line_no"] == 9
    assert "mx1/4F3A21C0A2B" in state["parser"]["msgs"]

    # the file grows; a second run reads only the new lines, and knows the message id of the old queue id
    with open(logfile, "a") as f:
        f.writelines(lines[9:])
    r = runner.invoke(app, ["ingest", "postfix", str(logfile), "--log", url])
    assert r.exit_code == 0, r.output
    assert "2 lines did not parse" in r.output
    events = [decode(v) for _, v, _ in read_all(url, "email-events")]
    assert len(events) == 15  # nothing read twice
    carol = [e for e in events if e.recipient == "carol@yahoo.com"]
    assert [(e.type, e.attempt, e.message_id) for e in carol] == [
        ("deferred", 1, "20240112101502.1001@news.example.org"), ("delivered", 2, "20240112101502.1001@news.example.org")]
    errors = [orjson.loads(v) for _, v, _ in read_all(url, "email-events-processing-log")]
    assert [e["offset"] for e in errors] == [28, 29] and errors[0]["reason"].startswith("line 28: not a syslog line")

    # a third run with nothing new produces nothing
    runner.invoke(app, ["ingest", "postfix", str(logfile), "--log", url])
    assert len(read_all(url, "email-events")) == 15


def test_rotated_file_is_read_from_the_start(tmp_path) -> None:
    logfile = tmp_path / "mail.log"
    shutil.copy(DATA / "postfix_mail.log", logfile)
    url = f"embedded:{tmp_path / 'log'}"
    with open_log(url) as log:
        s1 = ingest_file(logfile, log, parser_options={"year": 2024})
        logfile.rename(tmp_path / "mail.log.1")
        shutil.copy(DATA / "postfix_mail.log", logfile)  # a new file (new inode) with the same content
        s2 = ingest_file(logfile, log, parser_options={"year": 2024})
    assert s1.events == s2.events == 15 and s2.resumed_from == 0


def test_follow_picks_up_appended_lines(tmp_path) -> None:
    logfile = tmp_path / "mail.log"
    lines = (DATA / "postfix_mail.log").read_text().splitlines(keepends=True)
    logfile.write_text("".join(lines[:4]))
    url = f"embedded:{tmp_path / 'log'}"
    done = threading.Event()
    seen: list = []
    result = {}

    def run() -> None:
        with open_log(url) as log:
            result["stats"] = ingest_file(logfile, log, follow=True, poll_interval=0.05, stop=done.is_set,
                                          on_batch=seen.extend, parser_options={"year": 2024})

    t = threading.Thread(target=run)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.type for e in seen] == ["accepted", "queued"]
        with open(logfile, "a") as f:
            f.write(lines[6][:50])  # half a line: not parsed until its end arrives
            f.flush()
            time.sleep(0.3)
            assert len(seen) == 2
            f.write(lines[6][50:])
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen[2].type == "delivered" and seen[2].recipient == "alice@gmail.com"
    finally:
        done.set()
        t.join(10)
    assert result["stats"].events == 3 and len(read_all(url, "email-events")) == 3


def test_report_json_and_table(tmp_path) -> None:
    r = runner.invoke(app, ["report", "postfix", str(DATA / "postfix_mail.log"), "--json", "--year", "2024"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    assert rep["totals"] == {"received": 2, "delivered": 3, "deferred": 2, "deferrals": 2, "bounced": 2, "rejected": 2, "expired": 1}
    assert rep["domains"]["gmail.com"] == {"delivered": 1, "deferred": 0, "deferrals": 0, "bounced": 1, "expired": 0, "rejected": 0}
    assert rep["domains"]["yahoo.com"]["deferrals"] == 1 and rep["domains"]["yahoo.com"]["delivered"] == 1
    assert rep["domains"]["acme-corp.com"]["expired"] == 1 and rep["domains"]["outlook.com"]["rejected"] == 1
    t = runner.invoke(app, ["report", "postfix", str(DATA / "postfix_mail.log")])
    assert t.exit_code == 0 and "gmail.com" in t.output and "received 2" in t.output
    assert runner.invoke(app, ["report", "postfix", str(tmp_path / "missing.log")]).exit_code == 1


def test_report_counts_deferrals_separately_from_deferred_messages() -> None:
    from mailroom.email.ingest.postfix import PostfixParser
    from mailroom.email.report import domain_report

    line = "Jan 12 10:0{i}:00 mx postfix/smtp[1]: ABCDE12345: to=<a@gmail.com>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to x[192.0.2.1]:25: Connection refused)"
    p = PostfixParser(year=2024)
    ev = p.feed_lines([line.format(i=i) for i in range(3)])
    rep = domain_report(ev)
    assert (rep["totals"]["deferred"], rep["totals"]["deferrals"]) == (1, 3)
    assert rep["domains"]["gmail.com"]["deferred"] == 1
