"""PowerMTA accounting CSV -> canonical email events.

The file starts with a header row naming the fields (PowerMTA's ``<acct-file>`` with
``record-fields``); a later header row (a rotated or reconfigured file appended) replaces it::

    type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool,header_Message-Id
    d,2024-01-12 10:15:03-0500,2024-01-12 10:15:02-0500,news@example.org,alice@gmail.com,,relayed,2.0.0 (success),smtp;250 2.0.0 OK,gmail-smtp-in.l.google.com (142.250.102.26),,smtp,app1.example.org (192.0.2.10),smtp,192.0.2.1,142.250.102.26,"PIPELINING,8BITMIME,STARTTLS",2345,vmta-1,campaign-42,env-1,gmail.com/vmta-1,pool-a,<m1@example.org>

Record types: ``r`` receipt -> ``accepted``; ``d`` delivery -> ``delivered``; ``t`` transient
failure -> ``deferred``; ``tq`` queue-level transient failure -> ``deferred``; ``b`` bounce ->
``bounced`` (``expired`` for bounceCat message-expired); ``rb`` remote (asynchronous) bounce ->
``bounced``; ``f`` feedback-loop report -> ``complained``; others are ignored.
"""

from __future__ import annotations

import csv
import datetime as dt
import re

from ..bounces import classify_bounce, domain_of, mailbox_provider
from ..events import EmailEvent
from .base import LogParser, iso_ms

TYPES = {"r": "accepted", "d": "delivered", "t": "deferred", "tq": "deferred", "b": "bounced", "rb": "bounced", "f": "complained"}
#: PowerMTA bounceCat -> (class, reason), used when the reply itself says nothing classifiable
BOUNCE_CATS = {
    "bad-mailbox": ("hard", "user_unknown"), "inactive-mailbox": ("hard", "mailbox_disabled"),
    "quota-issues": ("soft", "mailbox_full"), "bad-domain": ("dns", "dns_failure"), "routing-errors": ("dns", "dns_failure"),
    "no-answer-from-host": ("soft", "network_error"), "bad-connection": ("soft", "network_error"),
    "spam-related": ("block", "content_rejected"), "content-related": ("block", "content_rejected"),
    "policy-related": ("policy", "policy"), "message-expired": ("expired", "expired"),
    "invalid-sender": ("policy", "policy"), "protocol-errors": ("soft", "system_error"),
    "relaying-issues": ("policy", "relay_denied"), "virus-related": ("block", "content_rejected"),
    "bad-configuration": ("soft", "system_error"), "other": ("unknown", "undefined"),
}
_HOSTIP = re.compile(r"^(?P<host>[^\s(]*)\s*(?:\((?P<ip>[^)]*)\))?$")
_ENH = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})")
_CODE = re.compile(r"^([245]\d\d)(?:[ -]|$)")


class PowerMtaParser(LogParser):
    """Incremental PowerMTA accounting-file parser."""

    source = "powermta"

    def __init__(self, *, header: list[str] | None = None, tz: dt.tzinfo = dt.timezone.utc, max_errors: int = 10_000) -> None:
        super().__init__(max_errors=max_errors)
        self.columns: list[str] | None = header
        self.tz = tz
        self.attempts: dict[tuple[str, str], int] = {}

    def snapshot(self) -> dict:
        return {"columns": self.columns}

    def restore(self, state: dict) -> None:
        self.columns = (state or {}).get("columns") or self.columns

    def _feed(self, line: str, n: int) -> list[EmailEvent]:
        try:
            row = next(csv.reader([line]))
        except csv.Error as e:
            self.error(n, f"bad CSV: {e}", line)
            return []
        if row and row[0].strip().lstrip("#") == "type":
            self.columns = [c.strip() for c in row]
            self.counts["header"] += 1
            return []
        if self.columns is None:
            self.error(n, "a record before the header row (type,timeLogged,...)", line)
            return []
        if len(row) != len(self.columns):
            self.error(n, f"{len(row)} fields, the header has {len(self.columns)}", line)
            return []
        rec = dict(zip(self.columns, row))
        kind = rec.get("type", "")
        type_ = TYPES.get(kind)
        if type_ is None:
            self.counts["ignored"] += 1
            return []
        try:
            ts = iso_ms(rec.get("timeLogged") or rec.get("arrivalDate") or "", self.tz)
        except ValueError as e:
            self.error(n, f"bad timeLogged: {e}", line)
            return []
        rcpt = (rec.get("rcpt") or "").lower() or None
        mid = (rec.get("header_Message-Id") or rec.get("header_Message-ID") or "").strip().strip("<>")
        if not mid:
            key = rec.get("envId") or f"{rec.get('jobId', '')}/{rec.get('orig', '')}/{rec.get('timeQueued', '')}"
            mid = f"powermta:{key}"
        dom = domain_of(rcpt) if rcpt else None
        status = (rec.get("dsnStatus") or "").strip()
        em = _ENH.match(status)
        enh = em.group(1) if em else None
        diag = (rec.get("dsnDiag") or "").strip()
        reply = diag.split(";", 1)[1].strip() if ";" in diag[:12] else diag
        cm = _CODE.match(reply)
        code = int(cm.group(1)) if cm else None
        hm = _HOSTIP.match((rec.get("dsnMta") or "").strip())
        remote_host = (hm.group("host") or None) if hm else None
        remote_ip = rec.get("dlvDestinationIp") or (hm.group("ip") if hm else None) or None
        bclass = breason = None
        cat = (rec.get("bounceCat") or "").strip()
        if type_ in ("bounced", "deferred"):
            bclass, breason = classify_bounce(code, enh, reply)
            if cat == "message-expired" or enh == "4.4.7" or (type_ == "bounced" and bclass == "expired"):
                type_, bclass, breason = "expired", "expired", "expired"
            elif bclass == "unknown" and cat in BOUNCE_CATS:
                bclass, breason = BOUNCE_CATS[cat]
        attempt = None
        if type_ in ("delivered", "deferred", "bounced", "expired") and rcpt:
            k = (mid, rcpt)
            attempt = self.attempts[k] = self.attempts.get(k, 0) + 1
            if len(self.attempts) > 1_000_000:
                self.attempts.clear()
        provider = mailbox_provider(dom) if dom else None
        if provider in ("other", None) and remote_host:
            via = mailbox_provider(remote_host)
            provider = via if via not in ("other", "unknown") else provider
        size = rec.get("dlvSize") or rec.get("size")
        tlsp = rec.get("dlvTlsProtocol")
        self.counts["parsed"] += 1
        return [EmailEvent(
            type=type_, ts=ts, message_id=mid, queue_id=rec.get("envId") or None, source="powermta",
            sender=rec.get("orig") or None, recipient=rcpt, orig_recipient=rec.get("orcpt") or None, domain=dom,
            provider=provider, campaign_id=rec.get("jobId") or None, mta=rec.get("vmta") or None,
            sending_ip=rec.get("dlvSourceIp") or None, remote_host=remote_host, remote_ip=remote_ip, attempt=attempt,
            smtp_code=code, enhanced_code=enh, reply=reply or None, tls=bool(tlsp) if tlsp is not None else None,
            tls_version=tlsp or None, size=int(size) if size and size.isdigit() else None,
            bounce_class=bclass, bounce_reason=breason,
            detail="async" if kind == "rb" else ("queue" if kind == "tq" else None),
        )]
