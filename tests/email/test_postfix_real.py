"""mailroom's Postfix parsing against a real Postfix and against pflogsumm.

One Postfix instance (tests/email/postfix_lab.py) runs for the whole module, with scripted remote
MTAs (tests/email/fake_mta.py) for gmail.com, yahoo.com, outlook.com (with STARTTLS) and a
greylisting domain, a dead host, a domain smtpd refuses and one it discards, a virtual alias and a
header_checks reject. ~60 messages go in through smtpd (one through sendmail); once the queue is
empty (expired mail included) the tests check that

(a) mailroom's per-domain report equals pflogsumm's numbers on the same log;
(b) each recipient's last delivery state in mailroom's events is what the remote MTA decided;
(c) ``mailroom ingest postfix FILE --follow`` (restarted half-way) tailing the live log ends with
    the same events as a one-shot parse.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailroom.cli.main import app
from mailroom.email.events import EmailEvent, decode, encode
from mailroom.email.ingest.postfix import PostfixParser
from mailroom.email.report import domain_report, report_file

from . import pflogsumm
from .fake_mta import FakeMTA, outcome_of, self_signed_context
from .postfix_lab import PostfixLab
from .test_ingest_cli import read_all

pytestmark = pytest.mark.slow

SENDER = "news@sender.test"
FAKES = {"gmail.com": False, "yahoo.com": False, "outlook.com": False, "greylist.test": True}  # domain -> greylists
TLS_DOMAIN = "outlook.com"  # its fake MTA offers STARTTLS
DEAD, REJECTED, DISCARDED = "dead.test", "blocked.test", "discard.test"
ALIASES = {"team@alias.test": ["ok20@gmail.com", "busy20@yahoo.com"]}
SPAM_SUBJECT = "BUY NOW"  # cleanup's header_checks reject it
MAILROOM = str(Path(sys.executable).with_name("mailroom"))
FINAL = ("delivered", "deferred", "bounced", "expired")


def plan() -> list[list[str]]:
    """The recipients of each message; the local part scripts the remote MTA's answer. The message
    to ``spam@yahoo.com`` has the subject cleanup rejects."""
    msgs: list[list[str]] = []
    for dom in ("gmail.com", "yahoo.com", "outlook.com"):
        for kind, n in (("ok", 6), ("rate", 2), ("busy", 2), ("full", 1), ("unknown", 2), ("blocked", 1)):
            msgs += [[f"{kind}{i}@{dom}"] for i in range(n)]
    msgs += [[f"ok{i}@greylist.test"] for i in range(4)] + [["unknown0@greylist.test"]]
    msgs += [[f"user{i}@{DEAD}"] for i in range(3)]
    msgs += [
        ["ok10@gmail.com", "unknown10@gmail.com", "full10@gmail.com"],  # three outcomes in one transaction
        ["ok10@yahoo.com", f"user10@{DEAD}"],  # delivered to one domain, expires at the other
        ["ok10@outlook.com", "ok10@greylist.test", "rate10@outlook.com"],
        ["OK11@Gmail.COM"],  # upper case in the address
        ["ok12@outlook.com", f"someone@{REJECTED}"],  # smtpd refuses one recipient of two
        [f"nobody@{REJECTED}"],  # smtpd refuses the only recipient: no queue file
        [f"someone@{DISCARDED}"],  # smtpd takes it and throws it away
        ["team@alias.test"],  # a virtual alias of two addresses
        ["spam@yahoo.com"],  # rejected by cleanup for a header
    ]
    return msgs


@dataclass
class Run:
    """What the module fixture did and saw."""

    lab: PostfixLab
    logfile: Path
    messages: dict[str, list[str]]  # Message-ID (no <>) -> recipients
    refused: dict[str, str] = field(default_factory=dict)  # recipient smtpd refused -> its Message-ID
    content_rejected: dict[str, str] = field(default_factory=dict)  # recipient -> Message-ID cleanup rejected
    aborted: int = 0  # transactions reset after an accepted RCPT
    followed: list[EmailEvent] = field(default_factory=list)
    follower_output: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _follower(logfile: Path, url: str, state: Path) -> subprocess.Popen:
    return subprocess.Popen([MAILROOM, "ingest", "postfix", str(logfile), "--follow", "--log", url, "--state", str(state),
                             "--partitions", "1", "--batch", "50"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(p: subprocess.Popen) -> str:
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, out
    return out


def _wait_caught_up(state: Path, logfile: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(state.read_text())["offset"] == logfile.stat().st_size:
                return
        except (FileNotFoundError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the follower did not reach the end of {logfile}")


@pytest.fixture(scope="module")
def run(request):
    root = Path(tempfile.mkdtemp(prefix="mailroom-postfix-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    root.chmod(0o755)  # Postfix's own user walks to its queue folder
    tls = self_signed_context(root, f"mx.{TLS_DOMAIN}")
    fakes = {d: FakeMTA(d, greylist=g, tls_context=tls if d == TLS_DOMAIN else None) for d, g in FAKES.items()}
    lab = PostfixLab(root / "postfix", fakes, dead=[DEAD], rejected=[REJECTED], discarded=[DISCARDED], aliases=ALIASES,
                     header_reject=f"^Subject:.*{SPAM_SUBJECT}")
    url, state = f"embedded:{root / 'elog'}", root / "ingest-state.json"
    r = Run(lab, lab.logfile, {})
    t0 = time.monotonic()
    follower = _follower(lab.logfile, url, state)  # before Postfix writes its first line
    try:
        lab.start()
        r.seconds["start"] = time.monotonic() - t0
        with lab.smtp() as s:
            for i, rcpts in enumerate(plan()):
                mid = f"lab-{i}.{os.getpid()}@sender.test"
                spam = rcpts == ["spam@yahoo.com"]
                try:
                    refused = lab.send(SENDER, rcpts, f"<{mid}>", smtp=s, subject=SPAM_SUBJECT if spam else "lab")
                except smtplib.SMTPRecipientsRefused as e:
                    refused = e.recipients
                    s.rset()
                except smtplib.SMTPDataError as e:
                    assert spam and e.smtp_code == 550, e
                    refused = {}
                    r.content_rejected[rcpts[0]] = mid
                r.messages[mid] = rcpts
                r.refused.update({a.lower(): mid for a in refused})
            # a client that gives up after RCPT: Postfix gave it a queue id, no message came
            s.mail(SENDER)
            assert s.rcpt("ok99@gmail.com")[0] == 250
            s.rset()
            r.aborted = 1
        local_mid = f"lab-local.{os.getpid()}@sender.test"  # one through sendmail/pickup too
        lab.sendmail(SENDER, ["ok30@gmail.com"], f"<{local_mid}>")
        r.messages[local_mid] = ["ok30@gmail.com"]
        r.seconds["submit"] = time.monotonic() - t0
        time.sleep(2)  # the follower stops and resumes while Postfix is still retrying
        r.follower_output.append(_stop(follower))
        follower = _follower(lab.logfile, url, state)
        lab.wait_until_queue_empty(timeout=90)
        r.seconds["drained"] = time.monotonic() - t0
        _wait_caught_up(state, lab.logfile)
        r.follower_output.append(_stop(follower))
        r.followed = [decode(v) for _, v, _ in read_all(url, "email-events")]
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        lab.stop()
    r.seconds["total"] = time.monotonic() - t0
    yield r
    keep = os.environ.get("MAILROOM_KEEP_POSTFIX_LOG")  # a path to keep the log at, to look at it
    if keep:
        shutil.copy(lab.logfile, keep)


@pytest.fixture(scope="module")
def parsed(run):
    p = PostfixParser()
    with open(run.logfile, encoding="utf-8") as f:
        events = p.feed_lines(f)
    return p, events + p.flush()


def _domain(addr: str) -> str:
    return addr.rsplit("@", 1)[1].lower()


def expected_outcomes(run: Run) -> dict[tuple[str, str], str]:
    """(Message-ID, recipient after alias expansion) -> what the remote side decided: delivered,
    bounced or expired (never accepted nor refused for good); ``dropped`` for those smtpd or
    cleanup refused, ``discarded`` for those smtpd threw away."""
    out = {}
    for mid, rcpts in run.messages.items():
        for rcpt in (t.lower() for a in rcpts for t in ALIASES.get(a, [a])):
            dom = _domain(rcpt)
            if rcpt in run.refused or rcpt in run.content_rejected:
                out[(mid, rcpt)] = "dropped"
            elif dom == DISCARDED:
                out[(mid, rcpt)] = "discarded"
            elif dom == DEAD:
                out[(mid, rcpt)] = "expired"
            else:
                mta = run.lab.mtas[dom]
                out[(mid, rcpt)] = mta.final_outcomes().get(
                    (mid, rcpt), "bounced" if rcpt in mta.refused_for_good() else "expired")
    return out


def test_the_lab_ran_the_script(run) -> None:
    """The fake MTAs did what the local parts say, and smtpd refused only the blocked domain."""
    exp = expected_outcomes(run)
    for (_, rcpt), outcome in exp.items():
        dom = _domain(rcpt)
        want = ("dropped" if dom == REJECTED or rcpt == "spam@yahoo.com" else "discarded" if dom == DISCARDED
                else "expired" if dom == DEAD else outcome_of(rcpt.split("@")[0]))
        assert outcome == want, (rcpt, outcome)
    assert set(run.refused) == {f"someone@{REJECTED}", f"nobody@{REJECTED}"}
    assert Counter(exp.values()) == {"delivered": 44, "bounced": 11, "expired": 8, "dropped": 3, "discarded": 1}
    assert run.seconds["total"] < 90, run.seconds


def test_real_log_parses_without_errors(run, parsed) -> None:
    p, events = parsed
    assert p.errors == [], p.errors[:5]
    assert p.counts["parsed"] > 300 and len(events) > 150


def test_report_per_domain_equals_pflogsumm(run, parsed) -> None:
    """(a) delivered, deferrals, bounced, rejected per domain; totals (pflogsumm has no expired)."""
    _, events = parsed
    rep, errors = report_file(run.logfile)
    assert errors == []
    pf = pflogsumm.run(run.logfile)
    port_domain = {f"127.0.0.1[127.0.0.1]:{m.port}": d for d, m in run.lab.mtas.items()}
    pf_bounced = Counter({port_domain[relay]: n for relay, n in pf.bounced_by_relay.items()})
    pf_rejected = Counter()
    for rcpt, n in pf.rejected_rcpts.items():
        pf_rejected[_domain(rcpt)] += n
    # pflogsumm lists cleanup's rejects by header, not by recipient: ours went to spam@yahoo.com
    assert pf.reject_totals[("cleanup", "header")] == len(run.content_rejected) == 1
    pf_rejected["yahoo.com"] += 1
    domains = set(rep["domains"]) | set(pf.sent) | set(pf_bounced) | set(pf_rejected)
    mine = {d: rep["domains"].get(d, {}) for d in domains}
    assert {d: (m.get("delivered", 0), m.get("deferrals", 0), m.get("bounced", 0), m.get("rejected", 0))
            for d, m in mine.items()} == {
        d: (pf.sent.get(d, 0), pf.defers.get(d, 0), pf_bounced[d], pf_rejected[d]) for d in domains}
    t = rep["totals"]
    for k in ("delivered", "deferred", "deferrals", "bounced", "rejected"):
        assert t[k] == pf.totals[k], k
    assert pf.totals["discarded"] == sum(e.type == "dropped" and e.detail == "discard" for e in events) == 1
    # pflogsumm counts every smtpd "client=" line as a received message, even a transaction the
    # client reset before DATA, or whose only recipient smtpd discarded: no event tells of those
    taken = len(run.messages) - 2  # all but the one whose only recipient smtpd refused, and the discarded one
    assert t["received"] == taken == pf.totals["received"] - run.aborted - 1
    # expired: pflogsumm has no such count; the remote side's story does
    exp = expected_outcomes(run)
    want_expired = Counter(_domain(r) for (_, r), o in exp.items() if o == "expired")
    assert {d: m["expired"] for d, m in rep["domains"].items() if m["expired"]} == want_expired
    # the CLI prints the same report
    cli = CliRunner().invoke(app, ["report", "postfix", str(run.logfile), "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout[: cli.stdout.rindex("}") + 1]) == rep


def test_final_state_of_every_recipient_is_what_the_remote_decided(run, parsed) -> None:
    """(b) the last delivery-state event per (Message-ID, recipient)."""
    _, events = parsed
    final: dict[tuple[str, str], str] = {}
    for e in events:
        if e.type in FINAL and e.message_id in run.messages:
            final[(e.message_id, e.recipient)] = e.type
    exp = expected_outcomes(run)
    assert final == {k: v for k, v in exp.items() if v in FINAL}
    # refused by smtpd (RCPT) or cleanup (a header), or discarded by smtpd: one dropped event each
    dropped = {e.recipient: e for e in events if e.type == "dropped"}
    assert {r: e.detail for r, e in dropped.items()} == {
        **dict.fromkeys(run.refused, "reject"), **dict.fromkeys(run.content_rejected, "reject"), f"someone@{DISCARDED}": "discard"}
    assert all((e.smtp_code, e.enhanced_code) == (554, "5.7.1") for r, e in dropped.items() if r in run.refused)
    spam = dropped["spam@yahoo.com"]
    assert spam.enhanced_code == "5.7.1" and spam.reply == "5.7.1 Message content rejected by policy" and spam.queue_id
    partial = dropped[f"someone@{REJECTED}"]  # its message went on to ok12@outlook.com under the same queue id
    assert partial.queue_id and partial.queue_id in {e.queue_id for e in events if e.message_id == run.refused[partial.recipient]}
    assert dropped[f"nobody@{REJECTED}"].queue_id is None and dropped[f"someone@{DISCARDED}"].queue_id is None
    # every message Postfix queued was accepted and queued once
    queued = {mid for (mid, _), o in exp.items() if o in FINAL}
    assert len(queued) == len(run.messages) - 3  # not the all-refused, discarded and content-rejected ones
    for kind in ("accepted", "queued"):
        assert Counter(e.message_id for e in events if e.type == kind and e.message_id in run.messages) == dict.fromkeys(queued, 1)


def test_delivery_details_from_the_real_log(run, parsed) -> None:
    """Codes, classes and attempts as the fake MTAs gave them."""
    _, events = parsed
    by_rcpt = defaultdict(list)
    for e in events:
        if e.type in FINAL:
            by_rcpt[e.recipient].append(e)
    rate = by_rcpt["rate0@gmail.com"]
    assert [(e.type, e.attempt) for e in rate] == [("deferred", 1), ("delivered", 2)]
    assert (rate[0].smtp_code, rate[0].enhanced_code, rate[0].bounce_reason) == (421, "4.7.28", "rate_limited")
    grey = by_rcpt["ok0@greylist.test"]
    assert [e.type for e in grey] == ["deferred", "delivered"] and grey[0].bounce_reason == "greylisted"
    unknown = by_rcpt["unknown0@yahoo.com"][-1]
    assert (unknown.type, unknown.smtp_code, unknown.bounce_class, unknown.bounce_reason) == ("bounced", 550, "hard", "user_unknown")
    full = by_rcpt["full0@outlook.com"]
    assert full[-1].type == "expired" and full[-1].attempt == len(full) - 1 >= 3
    assert {e.bounce_reason for e in full[:-1]} == {"mailbox_full"}
    dead = by_rcpt[f"user0@{DEAD}"]
    assert dead[-1].type == "expired" and all(e.type == "deferred" for e in dead[:-1]) and len(dead) >= 4
    assert by_rcpt["ok11@gmail.com"][-1].domain == "gmail.com"
    team = by_rcpt["ok20@gmail.com"] + by_rcpt["busy20@yahoo.com"]
    assert {e.orig_recipient for e in team} == {"team@alias.test"} and team[0].message_id == team[-1].message_id
    # STARTTLS only where the fake MTA offered it
    delivered = [e for e in events if e.type == "delivered" and e.remote_ip == "127.0.0.1"]
    assert {e.tls_version for e in delivered if e.domain == TLS_DOMAIN} == {"TLSv1.3"}
    assert {e.tls for e in delivered if e.domain != TLS_DOMAIN} == {None}
    # notifications Postfix sent back to the sender are marked as such: here one per bounced or
    # expired recipient (the message with both got one for its bounce, one when the rest expired)
    ndn = [e for e in events if e.recipient == SENDER and e.type == "delivered"]
    outcomes = Counter(expected_outcomes(run).values())
    assert len(ndn) == outcomes["bounced"] + outcomes["expired"] and all(e.detail == "notification" for e in ndn)


def test_follow_mode_on_the_live_log_equals_a_one_shot_parse(run, parsed) -> None:
    """(c) the CLI tailing the log as Postfix wrote it, stopped and resumed once, lost and doubled nothing."""
    _, events = parsed
    assert len(run.follower_output) == 2 and all("0 lines did not parse" in o for o in run.follower_output)
    assert sorted(encode(e) for e in run.followed) == sorted(encode(e) for e in events)


def test_received_does_not_depend_on_where_the_message_id_header_is() -> None:
    """A message cleanup rejects for a header is received once, whether cleanup logged its
    Message-ID before the reject (Message-ID header first) or not (as pflogsumm counts it)."""
    head = ["Nov 29 04:14:08 mx1 postfix/smtpd[11607]: 4jcYgh1jPWz1SCt5: client=localhost[127.0.0.1]"]
    reject = ("Nov 29 04:14:08 mx1 postfix/cleanup[11632]: 4jcYgh1jPWz1SCt5: reject: header Subject: BUY NOW from "
              "localhost[127.0.0.1]; from=<news@sender.test> to=<spam@yahoo.com> proto=ESMTP helo=<[127.0.0.1]>: "
              "5.7.1 Message content rejected by policy")
    mid = "Nov 29 04:14:08 mx1 postfix/cleanup[11632]: 4jcYgh1jPWz1SCt5: message-id=<x@sender.test>"
    for lines in (head + [reject], head + [mid, reject]):
        p = PostfixParser()
        rep = domain_report(p.feed_lines(lines))
        assert p.errors == []
        assert (rep["totals"]["received"], rep["totals"]["rejected"], rep["domains"]["yahoo.com"]["rejected"]) == (1, 1, 1)
