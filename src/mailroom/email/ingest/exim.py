"""Exim main log (``/var/log/exim4/mainlog``) -> canonical email events.

    2024-01-12 10:15:02 1rOAbc-000123-AB <= news@example.org H=app1.example.org [192.0.2.10] P=esmtps S=2345 id=abc@example.org
    2024-01-12 10:15:03 1rOAbc-000123-AB => alice@gmail.com R=dnslookup T=remote_smtp H=gmail-smtp-in.l.google.com [142.250.102.26] X=TLS1.3:... C="250 2.0.0 OK"
    2024-01-12 10:15:03 1rOAbc-000123-AB -> bob@gmail.com R=dnslookup T=remote_smtp H=... C="250 2.0.0 OK"
    2024-01-12 10:15:04 1rOAbc-000123-AB == carol@yahoo.com R=dnslookup T=remote_smtp defer (-44) H=...: SMTP error from remote mail server after MAIL FROM:<...>: 421 4.7.0 [TSS04] ...
    2024-01-12 10:15:05 1rOAbc-000123-AB ** dave@gmail.com R=dnslookup T=remote_smtp H=... : SMTP error from remote mail server after RCPT TO:<...>: 550-5.1.1 ...
    2024-01-12 10:15:05 1rOAbc-000123-AB Completed
    2024-01-12 10:20:01 H=(bad.example) [203.0.113.5] F=<a@b> rejected RCPT <victim@example.com>: relay not permitted

``<=`` arrival -> ``accepted``; ``=>`` delivery and ``->`` additional address of the same delivery
-> ``delivered``; ``==`` -> ``deferred``; ``**`` -> ``bounced`` (``expired`` when the retry time
ran out); ``Completed`` drops the message's state; ``rejected RCPT`` -> ``dropped`` (reject).
Time stamps may carry milliseconds (``+millisec``), a zone (``log_timezone``) and a pid (``+pid``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import OrderedDict

from ..bounces import classify_bounce, domain_of, mailbox_provider
from ..events import EmailEvent
from .base import LogParser, iso_ms

_HEADER = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?)(?: (?P<tz>[+-]\d{4}))?(?: \[(?P<pid>\d+)\])? (?P<rest>.*)$"
)
_ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"
_MSG = re.compile(rf"^(?P<id>{_ID}) (?P<body>.*)$")
_FLAGGED = re.compile(r"^(?P<flag><=|=>|->|\*\*|==|\*>|>>) (?P<rest>.*)$")
_ADDR = re.compile(r"^(?P<addr>\"[^\"]*\"@[^\s:]+|<>|[^\s:]+(?::[^\s:]+)*)(?: <(?P<orig>[^>]*)>)?(?: \((?P<parent>[^)]*)\))?")
_FIELD = re.compile(r"(?:^|\s)(?P<k>[A-Za-z]{1,3})=(?P<v>\"(?:[^\"\\]|\\.)*\"|\[[^\]]*\](?::\d+)?|[^\s\"]+)(?: (?P<ip>\[[^\]]+\](?::\d+)?))?")
_BRACKET_IP = re.compile(r"^\[(?P<ip>[^\]]+)\](?::(?P<port>\d+))?$")
_REJECT = re.compile(r"(?:^|\s)rejected (?P<stage>RCPT|MAIL|EHLO|HELO|after DATA|DATA|connection)(?: <(?P<to>[^>]*)>)?(?::\s*(?P<text>.*))?$")
_SMTP_ERR = re.compile(r"SMTP error from remote mail server after (?P<cmd>.+?): (?P<reply>(?P<code>[245]\d\d)(?:[ -](?P<enh>[245]\.\d{1,3}\.\d{1,3}))?.*)$")
_EXPIRED = re.compile(r"retry timeout exceeded|retry time not reached for any host after a long failure period|message has been frozen|too long in queue", re.I)


def _split_error(rest: str) -> tuple[str, str]:
    """(fields, error text): the error follows the first ': ' outside quotes."""
    q = False
    for i, ch in enumerate(rest):
        if ch == '"':
            q = not q
        elif ch == ":" and not q and rest[i + 1: i + 2] == " ":
            return rest[:i], rest[i + 2:]
    return rest, ""


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def duration_ms(text: str | None) -> int | None:
    """Milliseconds of an Exim duration (``QT=1m2s``, ``DT=0.412s``, ``QT=2d3h``)."""
    if not text:
        return None
    m = _DURATION.match(text)
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = m.groups()
    return int(round(((int(d or 0) * 24 + int(h or 0)) * 60 + int(mi or 0)) * 60_000 + float(s or 0) * 1000))


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1].replace('\\"', '"')
    return v


class EximParser(LogParser):
    """Incremental Exim main-log parser; ``mta`` names the host (the main log does not)."""

    source = "exim"

    def __init__(self, *, mta: str | None = None, tz: dt.tzinfo = dt.timezone.utc, max_messages: int = 1_000_000,
                 max_errors: int = 10_000) -> None:
        super().__init__(max_errors=max_errors)
        self.mta = mta
        self.tz = tz
        self.max_messages = max_messages
        self.msgs: OrderedDict[str, dict] = OrderedDict()

    def snapshot(self) -> dict:
        return {"msgs": dict(self.msgs)}

    def restore(self, state: dict) -> None:
        self.msgs = OrderedDict((state or {}).get("msgs", {}))

    def _state(self, eid: str) -> dict:
        st = self.msgs.get(eid)
        if st is None:
            st = self.msgs[eid] = {"message_id": None, "sender": None, "size": None, "attempts": {}, "notification": False}
            if len(self.msgs) > self.max_messages:
                self.msgs.popitem(last=False)
        return st

    def _feed(self, line: str, n: int) -> list[EmailEvent]:
        h = _HEADER.match(line)
        if not h:
            self.error(n, "not an Exim main-log line (expected 'YYYY-MM-DD HH:MM:SS ...')", line)
            return []
        try:
            ts = iso_ms(h.group("ts") + (" " + h.group("tz") if h.group("tz") else ""), self.tz)
        except ValueError as e:
            self.error(n, f"bad time stamp: {e}", line)
            return []
        rest = h.group("rest")
        m = _MSG.match(rest)
        if not m:
            r = _REJECT.search(rest)
            if r:
                return self._reject(ts, None, rest, r, line)
            self.counts["ignored"] += 1
            return []
        eid, body = m.group("id"), m.group("body")
        if body.startswith("Completed"):
            self.msgs.pop(eid, None)
            self.counts["parsed"] += 1
            return []
        f = _FLAGGED.match(body)
        if not f:
            r = _REJECT.search(body)
            if r:
                return self._reject(ts, eid, body, r, line)
            self.counts["ignored"] += 1
            return []
        flag, rest = f.group("flag"), f.group("rest")
        if flag == "<=":
            return self._arrival(ts, eid, rest, line, n)
        if flag in ("=>", "->", "==", "**"):
            return self._delivery(ts, eid, flag, rest, line, n)
        self.counts["ignored"] += 1  # *> (suppressed by -N), >> (cutthrough)
        return []

    def _fields(self, text: str) -> dict[str, tuple[str, str | None]]:
        return {fm.group("k"): (_unquote(fm.group("v")), fm.group("ip")) for fm in _FIELD.finditer(text)}

    def _mid(self, eid: str, st: dict) -> str:
        return st["message_id"] or f"exim:{eid}"

    def _arrival(self, ts: int, eid: str, rest: str, line: str, n: int) -> list[EmailEvent]:
        a = _ADDR.match(rest)
        if not a:
            self.error(n, "an arrival line without a sender", line)
            return []
        sender = a.group("addr")
        sender = "" if sender == "<>" else sender
        fields = self._fields(rest[a.end():])
        st = self._state(eid)
        st["sender"] = sender
        if "id" in fields:
            st["message_id"] = fields["id"][0].strip("<>")
        if "S" in fields and fields["S"][0].isdigit():
            st["size"] = int(fields["S"][0])
        if sender == "" and "R" in fields:
            st["notification"] = True
        host, ip = self._host(fields.get("H"))
        self.counts["parsed"] += 1
        tls = fields.get("X")
        return [EmailEvent(type="accepted", ts=ts, message_id=self._mid(eid, st), queue_id=eid, source="exim", mta=self.mta,
                           sender=sender, size=st["size"], client_host=host, client_ip=ip,
                           tls=True if tls else None, tls_version=tls[0].split(":", 1)[0] if tls else None,
                           detail="notification" if st["notification"] else None)]

    @staticmethod
    def _host(h: tuple[str, str | None] | None) -> tuple[str | None, str | None]:
        if not h:
            return None, None
        name, ipp = h
        b = _BRACKET_IP.match(name)
        if b:
            return None, b.group("ip")
        name = name.strip("()")
        ip = _BRACKET_IP.match(ipp).group("ip") if ipp and _BRACKET_IP.match(ipp) else None
        return name or None, ip

    def _delivery(self, ts: int, eid: str, flag: str, rest: str, line: str, n: int) -> list[EmailEvent]:
        a = _ADDR.match(rest)
        if not a:
            self.error(n, "a delivery line without an address", line)
            return []
        addr = a.group("addr").strip("<>")
        rcpt = (a.group("orig") or addr).lower() if a.group("orig") and "@" not in addr else addr.lower()
        fields_text, err = _split_error(rest[a.end():]) if flag in ("==", "**") else (rest[a.end():], "")
        fields = self._fields(fields_text)
        st = self._state(eid)
        st["attempts"][rcpt] = st["attempts"].get(rcpt, 0) + 1
        host, ip = self._host(fields.get("H"))
        code = enh = None
        reply = err or None
        if flag in ("=>", "->"):
            type_ = "delivered"
            c = fields.get("C")
            reply = c[0] if c else None
            if reply and reply[:3].isdigit():
                code = int(reply[:3])
                e = re.match(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})", reply)
                enh = e.group(1) if e else None
        else:
            type_ = "deferred" if flag == "==" else "bounced"
            se = _SMTP_ERR.search(err)
            if se:
                reply, code, enh = se.group("reply"), int(se.group("code")), se.group("enh")
            if flag == "**" and _EXPIRED.search(err):
                type_ = "expired"
        bclass = breason = None
        if type_ in ("deferred", "bounced"):
            bclass, breason = classify_bounce(code, enh, reply)
        elif type_ == "expired":
            bclass, breason = "expired", "expired"
        dom = domain_of(rcpt)
        provider = mailbox_provider(dom) if dom else None
        if provider in ("other", None) and host:
            via = mailbox_provider(host)
            provider = via if via not in ("other", "unknown") else provider
        tls = fields.get("X")
        iface = fields.get("I")
        sending_ip = _BRACKET_IP.match(iface[0]).group("ip") if iface and _BRACKET_IP.match(iface[0]) else None
        self.counts["parsed"] += 1
        return [EmailEvent(
            type=type_, ts=ts, message_id=self._mid(eid, st), queue_id=eid, source="exim", mta=self.mta,
            sender=st["sender"], recipient=rcpt, orig_recipient=a.group("orig") or None, domain=dom, provider=provider,
            remote_host=host, remote_ip=ip, sending_ip=sending_ip, attempt=st["attempts"][rcpt], smtp_code=code,
            enhanced_code=enh, reply=reply, tls=True if tls else None,
            latency_ms=duration_ms(fields.get("QT", (None,))[0]),
            tls_version=tls[0].split(":", 1)[0] if tls else None, size=st["size"], bounce_class=bclass,
            bounce_reason=breason, detail="notification" if st["notification"] else None,
        )]

    def _reject(self, ts: int, eid: str | None, body: str, r: re.Match, line: str) -> list[EmailEvent]:
        fields = self._fields(body[: r.start()])
        host, ip = self._host(fields.get("H"))
        text = r.group("text") or ""
        rcpt = (r.group("to") or "").lower() or None
        dom = domain_of(rcpt) if rcpt else None
        code_m = re.match(r"^([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3}) )?", text)
        code = int(code_m.group(1)) if code_m else None
        enh = code_m.group(2) if code_m else None
        bclass, breason = classify_bounce(code, enh, text) if text else (None, None)
        sender = fields.get("F", (None, None))[0]
        self.counts["parsed"] += 1
        mid = f"exim:{eid}" if eid else "exim-reject:" + hashlib.sha1(line.encode()).hexdigest()[:20]
        return [EmailEvent(type="dropped", ts=ts, message_id=mid, queue_id=eid, source="exim", mta=self.mta,
                           sender=sender.strip("<>") if sender else None, recipient=rcpt, domain=dom,
                           provider=mailbox_provider(dom) if dom else None, smtp_code=code, enhanced_code=enh,
                           reply=text or None, bounce_class=bclass, bounce_reason=breason, client_host=host,
                           client_ip=ip, detail="reject")]
