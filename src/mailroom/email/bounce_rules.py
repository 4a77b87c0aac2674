"""The default bounce-classification rules: plain data, read in order, first match wins.

A rule is a dict (the same shape an operator writes in a JSON file, see
:func:`mailroom.email.bounces.load_rules`):

- ``id``: a name for the rule (reported by ``explain_bounce``)
- ``class``: hard, soft, block, throttle, policy, dns, expired, unknown
- ``reason``: user_unknown, mailbox_full, mailbox_disabled, bad_address, blocklisted, blocked,
  content_rejected, rate_limited, greylisted, auth_failed, policy, relay_denied,
  message_too_big, dns_failure, network_error, expired, system_error, transient, undefined
- conditions, all optional, all must hold: ``code`` (regex, full match on the 3-digit basic
  code, e.g. ``"4\\d\\d"``), ``enhanced`` (regex, full match on the RFC 3463 code, e.g.
  ``"5\\.7\\.(6[0-4]\\d)"``), ``text`` (regex, searched case-insensitively in the reply text).

Order: provider-specific texts (Gmail, Microsoft, Yahoo/AOL, Apple), then generic texts (block
lists before "user unknown": a reply naming Spamhaus is a block whatever else it says), then
the RFC 3463 enhanced codes, then the RFC 5321 basic codes.
"""

from __future__ import annotations

BL = r"spamhaus|barracuda|spamcop|sorbs|\bsurbl|uribl|invaluement|\bpsbl\b|proofpoint.*dnsbl|dnsbl|\brbl\b|block ?list|blacklist|denylist"

RULES: list[dict] = [
    # --- Gmail (support.google.com/a/answer/3726730) -------------------------------------------
    {"id": "gmail-rate", "text": r"unusual rate of unsolicited mail|receiving mail (at a rate|too quickly)|exceeded .*rate limit|rate that prevents additional messages", "class": "throttle", "reason": "rate_limited"},
    {"id": "gmail-unauth", "enhanced": r"5\.7\.26|4\.7\.26", "class": "policy", "reason": "auth_failed"},
    {"id": "gmail-ptr", "enhanced": r"[45]\.7\.25", "class": "policy", "reason": "policy"},
    {"id": "gmail-ipv6-auth", "enhanced": r"[45]\.7\.23|[45]\.7\.27", "class": "policy", "reason": "auth_failed"},
    {"id": "gmail-unsolicited", "text": r"likely unsolicited mail|rejected as spam|spam content|likely suspicious due to the very low reputation|classified as spam|spam detected|looks like spam|message (content )?(was )?(identified|detected) as spam|\bUBE\b|content presents a potential security issue|virus|malware", "class": "block", "reason": "content_rejected"},
    {"id": "gmail-disabled", "text": r"account (that you tried to reach )?is disabled|account has been disabled|mailbox (is )?(disabled|inactive)|account is inactive|mailbox unavailable.*inactive", "class": "hard", "reason": "mailbox_disabled"},
    {"id": "gmail-quota", "text": r"over quota|quota exceeded|QuotaExceeded|mailbox (is )?full|insufficient (system )?storage|out of storage|exceeded (the )?storage", "class": "soft", "reason": "mailbox_full"},
    {"id": "gmail-size", "text": r"exceeded .*message size limit|message (size )?(is )?too (big|large)|size exceeds|message size exceeds", "class": "policy", "reason": "message_too_big"},
    {"id": "gmail-not-authorized-ip", "text": r"not authorized to send email directly to our servers", "class": "block", "reason": "blocked"},
    # --- Microsoft (learn.microsoft.com .../non-delivery-reports-in-exchange-online) ------------
    {"id": "ms-banned-ip", "enhanced": r"5\.7\.(6[0-4]\d|708|750)", "class": "block", "reason": "blocklisted"},
    {"id": "ms-s3150", "text": r"\bS3(1[0-9]{2})\b|part of their network is on our block list", "class": "block", "reason": "blocklisted"},
    {"id": "ms-rate", "enhanced": r"4\.7\.(500|650|651|652)|4\.7\.5\d\d", "class": "throttle", "reason": "rate_limited"},
    {"id": "ms-server-busy", "text": r"server busy\. please try again later|temporarily rate limited", "class": "throttle", "reason": "rate_limited"},
    {"id": "ms-auth", "enhanced": r"5\.7\.(509|515)", "class": "policy", "reason": "auth_failed"},
    {"id": "ms-forwarding", "enhanced": r"5\.7\.520", "class": "policy", "reason": "policy"},
    {"id": "ms-recipient-not-found", "text": r"RecipientNotFound|Recipient address rejected: Access denied|RESOLVER\.ADR", "class": "hard", "reason": "user_unknown"},
    # --- Yahoo / AOL (senders.yahooinc.com/smtp-error-codes) ------------------------------------
    {"id": "yahoo-tss", "text": r"\[TS0?\d\]|\[TSS0\d\]|temporarily deferred due to (unexpected volume|user complaints)", "class": "throttle", "reason": "rate_limited"},
    {"id": "yahoo-gl", "text": r"\[GL0\d\]", "class": "throttle", "reason": "rate_limited"},
    {"id": "yahoo-bl", "text": r"\[BL\d\d\]", "class": "block", "reason": "blocklisted"},
    {"id": "yahoo-auth", "text": r"sender is unauthenticated|requires all senders to authenticate|dmarc|spf (check )?fail|dkim (check )?fail|not pass authentication", "class": "policy", "reason": "auth_failed"},
    {"id": "yahoo-policy", "text": r"not accepted for policy reasons|rejected due to local policy|\[CS0\d\]|\[HM0\d\]", "class": "policy", "reason": "policy"},
    {"id": "yahoo-dd", "text": r"doesn't have a \S+ account|dd this user doesn't", "class": "hard", "reason": "user_unknown"},
    # --- generic texts: block lists first, then greylisting, then mailbox state --------------------
    {"id": "blocklisted", "text": BL, "class": "block", "reason": "blocklisted"},
    {"id": "greylisted", "text": r"gr[ae]y ?list", "class": "soft", "reason": "greylisted"},
    {"id": "too-many-conn", "text": r"too many (connections|concurrent|messages|recipients|sessions)|connection rate limit|rate limit(ed|ing)?|throttl|try again later.*(rate|volume)", "class": "throttle", "reason": "rate_limited"},
    {"id": "relay-denied", "text": r"relay (access )?denied|relay not permitted|relaying denied|not permitted to relay|unable to relay", "class": "policy", "reason": "relay_denied"},
    {"id": "ip-blocked", "text": r"(client|sending|your) (host|ip)( address)? .*(blocked|rejected|banned|is not allowed)|access denied, banned|poor reputation|bad reputation|low reputation|blocked by .* (policy|filter)", "class": "block", "reason": "blocked"},
    {"id": "dns", "text": r"host not found|name service error|domain not found|no mx|nxdomain|does not resolve|unrouteable address|domain (does not|doesn't) exist|Host or domain name not found", "class": "dns", "reason": "dns_failure"},
    {"id": "network", "text": r"connection (refused|timed out|reset)|lost connection|conversation with .* timed out|network is unreachable|no route to host|timed out while|Connection closed", "class": "soft", "reason": "network_error"},
    {"id": "expired", "text": r"message expired|expired, returned|too long in queue|retry timeout exceeded|message is older than|delivery time expired", "class": "expired", "reason": "expired"},
    {"id": "user-unknown", "text": r"user (unknown|not found|does not exist|doesn't exist)|unknown user|no such (user|mailbox|recipient|account)|(mailbox|recipient|address|account)( \S+)? (does not exist|doesn't exist|not found|unknown|unavailable|invalid|rejected)|invalid (recipient|mailbox)|email account that you tried to reach does not exist|not our customer|unknown recipient|undeliverable address|user doesn't have|mailbox not found|RecipientNotFound", "class": "hard", "reason": "user_unknown"},
    {"id": "bad-address", "text": r"bad (destination )?(mailbox )?address syntax|syntax error in (mailbox|address)|invalid address", "class": "hard", "reason": "bad_address"},
    {"id": "auth-generic", "text": r"authentication (failed|required)|unauthenticated", "class": "policy", "reason": "auth_failed"},
    {"id": "content", "text": r"content rejected|message content|rejected (because|due to) (its )?content|attachment|banned (file|content)|phish", "class": "block", "reason": "content_rejected"},
    {"id": "policy-generic", "text": r"policy|not allowed|not authorized|administrative prohibition|prohibited", "class": "policy", "reason": "policy"},
    # --- RFC 3463 / RFC 5248 enhanced status codes ------------------------------------------------
    {"id": "x.1.1", "enhanced": r"[45]\.1\.(1|10|6)", "class": "hard", "reason": "user_unknown"},
    {"id": "x.1.2", "enhanced": r"[45]\.1\.2", "class": "dns", "reason": "dns_failure"},
    {"id": "x.1.3", "enhanced": r"[45]\.1\.3", "class": "hard", "reason": "bad_address"},
    {"id": "x.1.other", "enhanced": r"5\.1\.\d+", "class": "hard", "reason": "bad_address"},
    {"id": "x.2.1", "enhanced": r"5\.2\.1", "class": "hard", "reason": "mailbox_disabled"},
    {"id": "x.2.2", "enhanced": r"[45]\.2\.2", "class": "soft", "reason": "mailbox_full"},
    {"id": "x.2.3", "enhanced": r"[45]\.2\.3|[45]\.3\.4", "class": "policy", "reason": "message_too_big"},
    {"id": "4.2.1", "enhanced": r"4\.2\.1", "class": "soft", "reason": "transient"},
    {"id": "x.4.4", "enhanced": r"[45]\.4\.4", "class": "dns", "reason": "dns_failure"},
    {"id": "x.4.7", "enhanced": r"[45]\.4\.7", "class": "expired", "reason": "expired"},
    {"id": "x.4.net", "enhanced": r"[45]\.4\.[0-26]", "class": "soft", "reason": "network_error"},
    {"id": "x.4.5", "enhanced": r"4\.4\.5", "class": "throttle", "reason": "rate_limited"},
    {"id": "4.3.x", "enhanced": r"4\.3\.\d+", "class": "soft", "reason": "system_error"},
    {"id": "5.3.x", "enhanced": r"5\.3\.\d+", "class": "hard", "reason": "system_error"},
    {"id": "x.5.3", "enhanced": r"4\.5\.3", "class": "throttle", "reason": "rate_limited"},
    {"id": "x.6.x", "enhanced": r"5\.6\.\d+", "class": "block", "reason": "content_rejected"},
    {"id": "x.7.1", "enhanced": r"5\.7\.1", "class": "block", "reason": "blocked"},
    {"id": "x.7.auth", "enhanced": r"5\.7\.(0|8|9|20|21|22|24)", "class": "policy", "reason": "policy"},
    {"id": "4.7.x", "enhanced": r"4\.7\.\d+", "class": "throttle", "reason": "rate_limited"},
    {"id": "5.7.x", "enhanced": r"5\.7\.\d+", "class": "policy", "reason": "policy"},
    # --- RFC 5321 basic codes ---------------------------------------------------------------------
    {"id": "421", "code": r"421", "class": "throttle", "reason": "rate_limited"},
    {"id": "450", "code": r"45[01]", "class": "soft", "reason": "transient"},
    {"id": "452", "code": r"452", "class": "soft", "reason": "mailbox_full"},
    {"id": "552", "code": r"552", "class": "soft", "reason": "mailbox_full"},
    {"id": "550", "code": r"550", "class": "hard", "reason": "user_unknown"},
    {"id": "553", "code": r"553", "class": "hard", "reason": "bad_address"},
    {"id": "554", "code": r"554", "class": "policy", "reason": "policy"},
    {"id": "4xx", "code": r"4\d\d", "class": "soft", "reason": "transient"},
    {"id": "5xx", "code": r"5\d\d", "class": "hard", "reason": "undefined"},
]
