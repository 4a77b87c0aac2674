"""Bounce classification over real-world reply texts, mailbox providers, domain_of."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from mailroom.email import bounces
from mailroom.email.bounces import CLASSES, classify_bounce, domain_of, explain_bounce, mailbox_provider

# (provider, code, enhanced, reply text as the remote MTA sends it, class, reason)
CASES = [
    # Gmail
    ("gmail", 550, "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser", "hard", "user_unknown"),
    ("gmail", 550, "5.2.1", "550-5.2.1 The email account that you tried to reach is disabled. https://support.google.com/mail/?p=DisabledUser", "hard", "mailbox_disabled"),
    ("gmail", 452, "4.2.2", "452-4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp", "soft", "mailbox_full"),
    ("gmail", 421, "4.7.28", "421-4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", "throttle", "rate_limited"),
    ("gmail", 450, "4.2.1", "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.", "throttle", "rate_limited"),
    ("gmail", 550, "5.7.1", "550-5.7.1 [192.0.2.1] Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.", "block", "content_rejected"),
    ("gmail", 550, "5.7.26", "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.", "policy", "auth_failed"),
    ("gmail", 550, "5.7.25", "550-5.7.25 [192.0.2.1] The IP address sending this message does not have a PTR record setup, or the corresponding forward DNS entry does not point to the sending IP.", "policy", "policy"),
    ("gmail", 552, "5.2.3", "552-5.2.3 Your message exceeded Google's message size limits.", "policy", "message_too_big"),
    ("gmail", 421, "4.3.0", "421-4.3.0 Temporary System Problem. Try again later (10).", "soft", "system_error"),
    ("gmail", 552, "5.7.0", "552-5.7.0 This message was blocked because its content presents a potential security issue.", "block", "content_rejected"),
    # Microsoft (Outlook.com / Exchange Online)
    ("microsoft", 550, "5.7.1", "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", "block", "blocklisted"),
    ("microsoft", 550, "5.7.606", "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/", "block", "blocklisted"),
    ("microsoft", 550, "5.5.0", "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302).", "hard", "user_unknown"),
    ("microsoft", 550, "5.4.1", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DM6NAM11FT011.eop-nam11.prod.protection.outlook.com]", "hard", "user_unknown"),
    ("microsoft", 550, "5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "hard", "user_unknown"),
    ("microsoft", 451, "4.7.500", "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)", "throttle", "rate_limited"),
    ("microsoft", 451, "4.7.650", "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", "throttle", "rate_limited"),
    ("microsoft", 554, "5.2.2", "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded", "soft", "mailbox_full"),
    ("microsoft", 550, "5.7.515", "550 5.7.515 Access denied, sending domain example.org does not meet the required authentication level.", "policy", "auth_failed"),
    # Yahoo / AOL
    ("yahoo", 421, "4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "throttle", "rate_limited"),
    ("yahoo", 421, "4.7.0", "421 4.7.0 [GL01] Message from (192.0.2.1) temporarily deferred - 4.16.50. Please refer to https://postmaster.yahooinc.com/error-codes", "throttle", "rate_limited"),
    ("yahoo", 554, "5.7.9", "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes", "policy", "policy"),
    ("yahoo", 553, "5.7.1", "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes", "block", "blocklisted"),
    ("yahoo", 554, None, "554 delivery error: dd This user doesn't have a yahoo.com account (nobody@yahoo.com) [0] - mta1234.mail.gq1.yahoo.com", "hard", "user_unknown"),
    ("yahoo", 554, None, "554 delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This mailbox is disabled (554.30). - mta1234.mail.bf1.yahoo.com", "hard", "mailbox_disabled"),
    ("yahoo", 550, "5.7.9", "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.", "policy", "auth_failed"),
    # Apple iCloud
    ("apple", 550, "5.1.1", "550 5.1.1 <nobody@icloud.com>: user does not exist", "hard", "user_unknown"),
    ("apple", 554, "5.7.1", "554 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137", "policy", "policy"),
    ("apple", 550, "5.7.0", "550 5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.2.1", "block", "blocklisted"),
    ("apple", 452, "4.2.2", "452 4.2.2 <someone@icloud.com>: mailbox is full", "soft", "mailbox_full"),
    # generic MTAs (Postfix, Exim, Sendmail) and Postfix's own explanations
    ("generic", 450, "4.2.0", "450 4.2.0 <a@example.net>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.net.html", "soft", "greylisted"),
    ("generic", 550, "5.1.1", "550 5.1.1 <a@example.net>: Recipient address rejected: User unknown in virtual mailbox table", "hard", "user_unknown"),
    ("generic", 554, "5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1", "block", "blocklisted"),
    ("generic", 554, "5.7.1", "554 5.7.1 <a@example.net>: Relay access denied", "policy", "relay_denied"),
    ("generic", None, "4.4.1", "connect to mx.example.net[198.51.100.7]:25: Connection refused", "soft", "network_error"),
    ("generic", None, "4.4.1", "connect to mx.example.net[198.51.100.7]:25: Connection timed out", "soft", "network_error"),
    ("generic", None, "5.4.4", "Host or domain name not found. Name service error for name=nx.example type=A: Host not found", "dns", "dns_failure"),
    ("generic", None, "4.4.3", "Host or domain name not found. Name service error for name=example.net type=MX: Host not found, try again", "dns", "dns_failure"),
    ("generic", None, "4.4.7", "message expired", "expired", "expired"),
    ("generic", 552, "5.3.4", "552 5.3.4 Message size exceeds fixed limit", "policy", "message_too_big"),
    ("generic", 550, "5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering.", "block", "content_rejected"),
    ("generic", 421, "4.7.0", "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later", "throttle", "rate_limited"),
    ("generic", 554, "5.7.1", "554 5.7.1 rejected because 192.0.2.1 is in a black list at b.barracudacentral.org", "block", "blocklisted"),
]


@pytest.mark.parametrize("provider,code,enhanced,text,cls,reason", CASES, ids=[f"{c[0]}-{c[2] or c[1]}-{i}" for i, c in enumerate(CASES)])
def test_real_world_replies(provider, code, enhanced, text, cls, reason) -> None:
    got = explain_bounce(code, enhanced, text)
    assert (got[0], got[1]) == (cls, reason), f"rule {got[2]!r} decided"


def test_accuracy_per_class_is_total() -> None:
    per_class: dict[str, Counter] = defaultdict(Counter)
    for _, code, enh, text, cls, reason in CASES:
        per_class[cls]["n"] += 1
        per_class[cls]["ok"] += classify_bounce(code, enh, text) == (cls, reason)
    assert set(per_class) <= set(CLASSES) and len(per_class) == 7  # every class but unknown has cases
    assert all(c["ok"] == c["n"] for c in per_class.values()), dict(per_class)


def test_codes_alone_and_codes_from_the_text() -> None:
    assert classify_bounce(550, "5.1.1", None) == ("hard", "user_unknown")
    assert classify_bounce(None, None, "550 5.1.1 <x@y>: Recipient address rejected") == ("hard", "user_unknown")
    assert classify_bounce(552, None, None) == ("soft", "mailbox_full")
    assert classify_bounce(421, None, None) == ("throttle", "rate_limited")
    assert classify_bounce(599, None, None) == ("hard", "undefined")
    assert classify_bounce(250, "2.0.0", "250 2.0.0 OK") == ("unknown", "not_a_bounce")
    assert classify_bounce(None, None, None) == ("unknown", "undefined")
    # a 4xx is never hard, even when the text says "user unknown"
    assert classify_bounce(450, "4.1.1", "450 4.1.1 <x@y>: Recipient address rejected: unverified address: user unknown")[0] == "soft"
    # an IP address in the text is not an enhanced code
    assert bounces.split_reply(None, None, "421 temporarily deferred - 4.16.55.1")[1] == ""


def test_operator_rules_from_json_come_first(tmp_path) -> None:
    text = "550 5.7.1 [XYZ99] Rejected by the Example Corp gateway"
    assert classify_bounce(550, "5.7.1", text) == ("block", "blocked")
    f = tmp_path / "rules.json"
    f.write_text(json.dumps([{"id": "examplecorp-xyz", "text": r"\[XYZ\d\d\]", "class": "throttle", "reason": "rate_limited"}]))
    try:
        assert bounces.load_rules(f) == 1
        assert explain_bounce(550, "5.7.1", text) == ("throttle", "rate_limited", "examplecorp-xyz")
        with pytest.raises(ValueError, match="class must be one of"):
            bounces.add_rules([{"id": "bad", "text": "x", "class": "nonsense", "reason": "r"}])
        with pytest.raises(ValueError, match="needs at least one of"):
            bounces.add_rules([{"id": "empty", "class": "hard", "reason": "r"}])
    finally:
        bounces.reset_rules()
    assert classify_bounce(550, "5.7.1", text) == ("block", "blocked")


@pytest.mark.parametrize("value,provider", [
    ("gmail.com", "gmail"), ("googlemail.com", "gmail"), ("gmail-smtp-in.l.google.com", "gmail"),
    ("alt1.aspmx.l.google.com", "gmail"), ("outlook.com", "microsoft"), ("hotmail.co.uk", "microsoft"),
    ("live.fr", "microsoft"), ("example-com.mail.protection.outlook.com", "microsoft"),
    ("yahoo.com", "yahoo"), ("yahoo.co.jp", "yahoo"), ("aol.com", "yahoo"), ("mta7.am0.yahoodns.net", "yahoo"),
    ("icloud.com", "apple"), ("me.com", "apple"), ("mx01.mail.icloud.com", "apple"),
    ("mx01.mail.icloud.com[17.57.155.23]:25", "apple"), ("Someone@GMAIL.com", "gmail"),
    ("acme-corp.com", "other"), ("mx0a-001.pphosted.com", "proofpoint"), ("", "unknown"), (None, "unknown"),
])
def test_mailbox_provider(value, provider) -> None:
    assert mailbox_provider(value) == provider


@pytest.mark.parametrize("address,domain", [
    ("alice@Gmail.COM", "gmail.com"), ("Jane Doe <jane@Example.org>", "example.org"), ("<bob@yahoo.com>", "yahoo.com"),
    ('"odd@local"@example.net', "example.net"), ("x@example.com.", "example.com"), ("nobody", None), ("", None),
    (None, None), ("a@", None), ("a@bad domain", None), ("root@[192.0.2.1]", "[192.0.2.1]"),
])
def test_domain_of(address, domain) -> None:
    assert domain_of(address) == domain
