"""KumoMTA JSON log records -> canonical email events.

One JSON object per line (KumoMTA's local log files, decompressed: ``zstdcat``; or a log hook's
output)::

    {"type": "Delivery", "id": "1d98076abbbc11ed940250ebf67f93bd", "sender": "user@sender.example.com",
     "recipient": "user@gmail.com", "queue": "campaign:tenant@gmail.com", "site": "...gmail-smtp-in.l.google.com.",
     "size": 1047, "response": {"code": 250, "enhanced_code": {"class": 2, "subject": 0, "detail": 0},
     "content": "OK ids=8a54...", "command": "."}, "peer_address": {"name": "gmail-smtp-in.l.google.com.",
     "addr": "142.251.2.27"}, "timestamp": 1678069691, "created": 1678069690, "num_attempts": 0,
     "bounce_classification": "Uncategorized", "egress_pool": "pool0", "egress_source": "source2", ...}

``Reception`` -> accepted; ``Delivery`` -> delivered; ``TransientFailure`` -> deferred;
``Bounce`` -> bounced; ``Expiration`` -> expired; ``AdminBounce`` -> dropped (detail ``admin``);
``OOB`` (an out-of-band DSN) -> bounced (detail ``async``); ``Feedback`` (an ARF report) ->
complained; ``Rejection`` (KumoMTA refused an incoming command) -> dropped (detail ``reject``);
``Delay`` -> queued (detail ``delay``); other types are ignored. A Rejection's id names no spooled
message, so its event has no ``queue_id``.

The message id is the ``Message-ID`` header when the logger is configured to log it
(``headers``), else ``kumomta:<spool id>``; for Feedback it is the Message-ID of the reported
message. Campaign and tenant come from ``meta`` (``campaign``, ``tenant``) or the queue name
(``campaign:tenant@domain``). ``num_attempts`` counts the attempts made before this record, so
``attempt`` is one more. Bounce class/reason come from :mod:`..bounces` on the reply, KumoMTA's own
``bounce_classification`` winning when the reply says nothing or only its basic code decided.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..bounces import domain_of, mailbox_provider
from ..events import EmailEvent
from .base import LogParser, iso_ms
from .webhooks.common import classify

TYPES = {
    "Reception": "accepted", "Delivery": "delivered", "TransientFailure": "deferred", "Bounce": "bounced",
    "Expiration": "expired", "AdminBounce": "dropped", "OOB": "bounced", "Feedback": "complained",
    "Rejection": "dropped", "Delay": "queued",
}
DETAILS = {"AdminBounce": "admin", "OOB": "async", "Rejection": "reject", "Delay": "delay"}
#: KumoMTA bounce_classification (its iana.toml classes) -> (class, reason)
CLASSIFICATIONS = {
    "InvalidRecipient": ("hard", "user_unknown"), "InactiveMailbox": ("hard", "mailbox_disabled"),
    "BadDomain": ("dns", "dns_failure"), "DNSFailure": ("dns", "dns_failure"), "RoutingErrors": ("dns", "dns_failure"),
    "QuotaIssues": ("soft", "mailbox_full"), "NoAnswerFromHost": ("soft", "network_error"),
    "BadConnection": ("soft", "network_error"), "SpamBlock": ("block", "blocklisted"),
    "SpamContent": ("block", "content_rejected"), "SpamRelated": ("block", "content_rejected"),
    "ContentRelated": ("block", "content_rejected"), "VirusRelated": ("block", "content_rejected"),
    "ProhibitedAttachment": ("block", "content_rejected"), "PolicyRelated": ("policy", "policy"),
    "InvalidSender": ("policy", "policy"), "AuthenticationFailed": ("policy", "auth_failed"),
    "RelayDenied": ("policy", "relay_denied"), "MessageExpired": ("expired", "expired"),
    "ProtocolErrors": ("soft", "system_error"), "BadConfiguration": ("soft", "system_error"),
    "TransientFailure": ("soft", "transient"),
}
_MID_HDR = re.compile(r"^Message-ID:[ \t]*(<[^>\r\n]*>|[^\s]+)", re.I | re.M)


def _ts(v: Any) -> int:
    if isinstance(v, bool) or v is None:
        raise ValueError(f"bad timestamp {v!r}")
    if isinstance(v, (int, float)):
        return int(round(v * 1000))
    if isinstance(v, str):
        return iso_ms(v)
    raise ValueError(f"bad timestamp {v!r}")


def _s(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, list):
        return str(v[0]) if v else None
    return str(v)


def _header(headers: Any, name: str) -> Any:
    if not isinstance(headers, dict):
        return None
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return None


def _mid(v: Any) -> str | None:
    s = _s(v)
    return s.strip().strip("<>").strip() or None if s else None


def _addr(v: Any) -> str | None:
    s = _s(v)
    return s.strip().strip("<>").strip().lower() or None if s else None


class KumoMtaParser(LogParser):
    """Incremental KumoMTA JSON log parser (one record per line, no state across lines)."""

    source = "kumomta"

    def _feed(self, line: str, n: int) -> list[EmailEvent]:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            self.error(n, f"not JSON: {e}", line)
            return []
        if not isinstance(rec, dict):
            self.error(n, "not a JSON object", line)
            return []
        kind = rec.get("type")
        type_ = TYPES.get(kind) if isinstance(kind, str) else None
        if type_ is None:
            if isinstance(kind, str):
                self.counts["ignored"] += 1
            else:
                self.error(n, "no record type", line)
            return []
        try:
            ts = _ts(rec.get("timestamp"))
        except ValueError as e:
            self.error(n, str(e), line)
            return []
        spool_id = _s(rec.get("id"))
        meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
        headers = rec.get("headers")
        rcpt = _addr(rec.get("recipient"))
        sender = _addr(rec.get("sender"))
        mid = _mid(_header(headers, "Message-ID"))
        if kind == "Feedback":
            fr = rec.get("feedback_report") if isinstance(rec.get("feedback_report"), dict) else {}
            trace = fr.get("supplemental_trace") if isinstance(fr.get("supplemental_trace"), dict) else {}
            orig = fr.get("original_message") if isinstance(fr.get("original_message"), str) else ""
            m = _MID_HDR.search(orig)
            mid = _mid(m.group(1)) if m else None
            rcpt = _addr(trace.get("recipient") or fr.get("original_rcpto_to") or fr.get("original_rcpt_to")) or rcpt
            sender = _addr(fr.get("original_mail_from")) or sender
            meta = {**trace, **meta}
        if not mid:
            if not spool_id:
                self.error(n, "no message id (id)", line)
                return []
            mid = f"kumomta:{spool_id}"
        resp = rec.get("response") if isinstance(rec.get("response"), dict) else {}
        code = resp.get("code") if isinstance(resp.get("code"), int) and 200 <= resp.get("code") <= 599 else None
        ec = resp.get("enhanced_code")
        enh = f"{ec.get('class')}.{ec.get('subject')}.{ec.get('detail')}" if isinstance(ec, dict) and ec.get("class") is not None else None
        reply = _s(resp.get("content"))
        if reply and code and not reply.startswith(str(code)):
            reply = f"{code} {enh + ' ' if enh else ''}{reply}"
        bclass = breason = None
        if type_ in ("deferred", "bounced", "dropped") and kind != "AdminBounce":
            bclass, breason = classify(code, enh, reply, CLASSIFICATIONS.get(_s(rec.get("bounce_classification")) or ""))
        elif type_ == "expired":
            bclass, breason = "expired", "expired"
        elif kind == "AdminBounce":
            bclass, breason = "policy", "policy"
        peer = rec.get("peer_address") if isinstance(rec.get("peer_address"), dict) else {}
        peer_name = (_s(peer.get("name")) or "").rstrip(".") or None
        peer_ip = _s(peer.get("addr"))
        inbound = kind in ("Reception", "Rejection", "Feedback")
        queue = _s(rec.get("queue")) or ""
        campaign = _s(meta.get("campaign"))
        tenant = _s(meta.get("tenant"))
        if ":" in queue and "@" in queue:  # campaign:tenant@domain
            q_campaign, _, rest = queue.partition(":")
            campaign = campaign or q_campaign or None
            tenant = tenant or rest.rsplit("@", 1)[0] or None
        elif "@" in queue:  # tenant@domain
            tenant = tenant or queue.rsplit("@", 1)[0] or None
        src = rec.get("source_address") if isinstance(rec.get("source_address"), dict) else {}
        sending_ip = _s(src.get("address"))
        if sending_ip:
            sending_ip = re.sub(r":\d+$", "", sending_ip).strip("[]")
        attempts = rec.get("num_attempts")
        attempt = attempts + 1 if isinstance(attempts, int) and type_ in ("delivered", "deferred", "bounced") else None
        created = rec.get("created")
        latency = None
        if type_ in ("delivered", "bounced", "expired") and isinstance(created, (int, float, str)):
            try:
                latency = max(0, ts - _ts(created))
            except ValueError:
                latency = None
        dom = domain_of(rcpt) if rcpt else None
        provider = mailbox_provider(dom) if dom else None
        if provider in ("other", None) and peer_name and not inbound:
            via = mailbox_provider(peer_name)
            provider = via if via not in ("other", "unknown") else provider
        tlsv = _s(rec.get("tls_protocol_version"))
        size = rec.get("size")
        self.counts["parsed"] += 1
        return [EmailEvent(
            type=type_, ts=ts, message_id=mid, queue_id=None if kind == "Rejection" else spool_id, source="kumomta", sender=sender, recipient=rcpt,
            domain=dom, provider=provider, campaign_id=campaign, account_id=tenant, mta=_s(rec.get("egress_source")),
            sending_ip=sending_ip, remote_host=None if inbound else peer_name, remote_ip=None if inbound else peer_ip,
            client_host=peer_name if inbound else None, client_ip=peer_ip if inbound else None,
            attempt=attempt, smtp_code=code, enhanced_code=enh, reply=reply, tls=True if tlsv else None, tls_version=tlsv,
            latency_ms=latency, size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            bounce_class=bclass, bounce_reason=breason, detail=DETAILS.get(kind),
        )]
