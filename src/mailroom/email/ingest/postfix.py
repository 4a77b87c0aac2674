"""Postfix logs -> canonical email events.

Reads what Postfix writes through syslog (``Jan 12 10:15:02 mx1 postfix/smtp[1250]: ...``),
through an RFC 3339 syslog (``2024-01-12T10:15:02.123456+00:00 mx1 postfix/smtp[1250]: ...``)
or through its own ``maillog_file``. Lines of one message are joined by queue id:

=========================================================  =====================================
line (after ``QUEUEID: ``)                                 what it gives
=========================================================  =====================================
smtpd ``client=host[ip]``, pickup ``uid=N from=<...>``     the message was received (origin)
cleanup ``message-id=<...>``                               the Message-ID -> ``accepted``
qmgr ``from=<...>, size=N, nrcpt=N (queue active)``        ``queued`` (first time only)
smtp/lmtp/local/virtual/pipe/error/retry ``to=<...>,       ``delivered`` / ``deferred`` /
[orig_to=<...>,] relay=..., [conn_use=N,] delay=T,         ``bounced`` / ``expired``, one per
delays=a/b/c/d, dsn=X.Y.Z, status=S (text)``               recipient line, with the reply
qmgr ``from=<...>, status=expired, returned to sender``    ``expired`` for each recipient not done
bounce ``sender non-delivery notification: QID2``          QID2 is a notification (detail)
qmgr/postsuper ``removed``                                 the queue id's state is dropped
smtpd/cleanup ``reject:`` / ``milter-reject:``             ``dropped`` with detail ``reject``
cleanup/smtpd ``discard:``                                 ``dropped`` with detail ``discard``
smtp ``... TLS connection established to host[ip]:port``   TLS facts for that connection
=========================================================  =====================================

Lines of other programs and informational Postfix lines (connect/disconnect, warnings,
statistics) are counted and ignored; lines that look like an event but do not parse, and
lines without a syslog header, become :class:`~mailroom.email.ingest.base.ParseError` records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from ..bounces import classify_bounce, domain_of, mailbox_provider, split_reply
from ..events import EmailEvent
from .base import LogParser, SyslogClock, iso_ms

_SYSLOG = re.compile(
    r"^(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(?P<day>\d{1,2}) "
    r"(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?:\.(?P<frac>\d{1,9}))? "
    r"(?P<host>\S+) (?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
)
_ISOHDR = re.compile(
    r"^(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?P<host>\S+) (?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
)
_QID = r"(?P<qid>[0-9A-F]{5,20}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{8,20})"
_QUEUED = re.compile(rf"^{_QID}: (?P<body>.*)$")

_DELIVERY = re.compile(
    r"^to=<(?P<to>[^>]*)>,(?: orig_to=<(?P<orig>[^>]*)>,)? relay=(?P<relay>[^,]*),"
    r"(?: conn_use=(?P<conn_use>\d+),)? delay=(?P<delay>\d+(?:\.\d+)?),"
    r"(?: delays=(?P<delays>[\d.]+/[\d.]+/[\d.]+/[\d.]+),)?(?: dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}),)?"
    r" status=(?P<status>[a-z]+)(?:(?:, | )(?P<rest>.*))?$"
)
_QMGR_FROM = re.compile(r"^from=<(?P<from>[^>]*)>, size=(?P<size>\d+), nrcpt=(?P<nrcpt>\d+) \(queue active\)$")
_QMGR_EXPIRED = re.compile(r"^from=<(?P<from>[^>]*)>, status=expired, returned to sender$")
_MSGID = re.compile(r"^message-id=(?P<mid>.*)$")
_CLIENT = re.compile(r"^client=(?P<host>[^\[\s]*)\[(?P<ip>[^\]]*)\](?::\d+)?(?:, .*)?$")
_PICKUP = re.compile(r"^(?:uid=\d+ )?from=<(?P<from>[^>]*)>$|^sender=<(?P<sender>[^>]*)>")
_NDN = re.compile(r"^sender (?:non-delivery|delivery status|delay) notification: (?P<qid2>\w+)$")
_REJECT_SMTPD = re.compile(
    r"^(?P<kind>reject|milter-reject|discard|hold): (?P<stage>[A-Z][A-Z-]*) from (?P<chost>[^\[\s]*)\[(?P<cip>[^\]]*)\](?::\d+)?: "
    r"(?P<reply>.*?);(?: from=<(?P<from>[^>]*)>)?(?: to=<(?P<to>[^>]*)>)?(?: proto=\S*)?(?: helo=<[^>]*>)?$"
)
_REJECT_CLEANUP = re.compile(
    r"^(?P<kind>reject|milter-reject|discard|hold): (?P<stage>header|body|END-OF-MESSAGE|[A-Z][A-Z-]*) (?P<what>.*) "
    r"from (?P<chost>[^\[\s;]+)(?:\[(?P<cip>[^\]]*)\](?::\d+)?)?; from=<(?P<from>[^>]*)>(?: to=<(?P<to>[^>]*)>)?"
    r"(?: proto=\S*)?(?: helo=<[^>]*>)?(?:: (?P<reply>.*))?$"
)
_CODE_TEXT = re.compile(r"(?P<code>[245]\d\d)(?:[ -](?P<enh>[245]\.\d{1,3}\.\d{1,3}))?(?:[ -](?P<text>.*))?$")
_ENH_ONLY = re.compile(r"(?P<enh>[245]\.\d{1,3}\.\d{1,3}) (?P<text>.*)$")
_RELAY = re.compile(r"^(?P<host>[^\[\s]*)\[(?P<ip>[^\]]+)\](?::(?P<port>\d+))?$")
_SAID = re.compile(r"^host (?P<host>\S+?)\[(?P<ip>[^\]]+)\] (?:said|refused to talk to me): (?P<reply>.*?)(?: \(in reply to (?P<cmd>.+?) command\))?$")
_TLS = re.compile(r"^(?P<trust>\w+) TLS connection established to (?P<peer>\S+?): (?P<ver>\S+) with cipher")

@dataclass
class _Msg:
    """What is known of one queue id."""

    message_id: str | None = None
    sender: str | None = None
    size: int | None = None
    nrcpt: int | None = None
    origin: str | None = None  # "smtpd", "pickup" or None (made by Postfix itself)
    client_host: str | None = None
    client_ip: str | None = None
    queued: bool = False
    notification: bool = False
    attempts: dict[str, int] = field(default_factory=dict)  # recipient -> attempts so far
    final: set[str] = field(default_factory=set)  # recipients with a final outcome


class PostfixParser(LogParser):
    """Incremental Postfix log parser (see the module doc).

    ``year``/``tz``: for syslog time stamps, which carry neither; ``max_messages``: queue ids
    held at most (oldest dropped first: a log that never says ``removed`` cannot grow memory
    without bound).
    """

    source = "postfix"

    def __init__(self, *, year: int | None = None, tz: dt.tzinfo = dt.timezone.utc, max_messages: int = 1_000_000,
                 max_errors: int = 10_000) -> None:
        super().__init__(max_errors=max_errors)
        self.clock = SyslogClock(year, tz)
        self.tz = tz
        self.max_messages = max_messages
        self.msgs: OrderedDict[str, _Msg] = OrderedDict()
        self.tls: dict[tuple[str, str, str], str] = {}  # (host, pid, peer) -> TLS version

    # -- state --------------------------------------------------------------------------------
    def _msg(self, mta: str, qid: str) -> _Msg:
        key = f"{mta}/{qid}"
        m = self.msgs.get(key)
        if m is None:
            m = self.msgs[key] = _Msg()
            if len(self.msgs) > self.max_messages:
                self.msgs.popitem(last=False)
        return m

    def snapshot(self) -> dict:
        return {"year": self.clock.year, "last_month": self.clock._last_month,
                "msgs": {k: {"message_id": m.message_id, "sender": m.sender, "size": m.size, "nrcpt": m.nrcpt,
                             "origin": m.origin, "client_host": m.client_host, "client_ip": m.client_ip,
                             "queued": m.queued, "notification": m.notification, "attempts": m.attempts,
                             "final": sorted(m.final)} for k, m in self.msgs.items()}}

    def restore(self, state: dict) -> None:
        if not state:
            return
        self.clock.year = state.get("year", self.clock.year)
        self.clock._last_month = state.get("last_month", 0)
        self.msgs = OrderedDict()
        for k, d in state.get("msgs", {}).items():
            d = dict(d)
            d["final"] = set(d.get("final", []))
            self.msgs[k] = _Msg(**d)

    # -- lines --------------------------------------------------------------------------------
    def _feed(self, line: str, n: int) -> list[EmailEvent]:
        m = _SYSLOG.match(line)
        if m:
            frac = m.group("frac")
            try:
                ts = self.clock.ms(m.group("mon"), int(m.group("day")), int(m.group("h")), int(m.group("mi")),
                                   int(m.group("s")), int((frac or "0")[:6].ljust(6, "0")))
            except ValueError as e:
                self.error(n, f"bad time stamp: {e}", line)
                return []
        else:
            m = _ISOHDR.match(line)
            if not m:
                self.error(n, "not a syslog line (expected 'Mon DD HH:MM:SS host program[pid]: text' or an ISO time stamp)", line)
                return []
            try:
                ts = iso_ms(m.group("iso"), self.tz)
            except ValueError as e:
                self.error(n, f"bad time stamp: {e}", line)
                return []
        prog = m.group("prog")
        if not prog.startswith("postfix"):
            self.counts["other_program"] += 1
            return []
        daemon = prog.rsplit("/", 1)[-1]
        host = m.group("host")
        msg = m.group("msg")
        return self._postfix(ts, host, m.group("pid") or "", daemon, msg, line, n)

    def _postfix(self, ts: int, host: str, pid: str, daemon: str, msg: str, line: str, n: int) -> list[EmailEvent]:
        if msg.startswith("NOQUEUE: "):
            body = msg[9:]
            if body.startswith(("reject:", "milter-reject:", "discard:")):
                return self._reject(ts, host, None, body, line, n)
            self.counts["ignored"] += 1
            return []
        q = _QUEUED.match(msg)
        if not q:
            t = _TLS.match(msg)
            if t:
                self.tls[(host, pid, t.group("peer"))] = t.group("ver")
                if len(self.tls) > 100_000:
                    self.tls.clear()
            self.counts["ignored"] += 1
            return []
        qid, body = q.group("qid"), q.group("body")
        if body.startswith("to=<"):
            return self._delivery(ts, host, pid, daemon, qid, body, line, n)
        if body.startswith("from=<") and daemon in ("qmgr", "nqmgr"):
            return self._qmgr(ts, host, qid, body, line, n)
        if body.startswith("message-id="):
            mm = _MSGID.match(body)
            st = self._msg(host, qid)
            mid = mm.group("mid").strip().strip("<>").strip() if mm else ""
            if mid:
                st.message_id = mid
            self.counts["parsed"] += 1
            if st.origin and daemon == "cleanup":
                return [self._event("accepted", ts, host, qid, st, sender=st.sender)]
            return []
        if body.startswith("client=") and daemon.endswith("smtpd"):
            c = _CLIENT.match(body)
            st = self._msg(host, qid)
            st.origin = "smtpd"
            if c:
                st.client_host, st.client_ip = c.group("host"), c.group("ip")
            self.counts["parsed"] += 1
            return []
        if daemon == "pickup" and (body.startswith(("uid=", "from=<", "sender="))):
            p = _PICKUP.match(body)
            st = self._msg(host, qid)
            st.origin = "pickup"
            if p:
                st.sender = p.group("from") if p.group("from") is not None else p.group("sender")
            self.counts["parsed"] += 1
            return []
        if body.startswith(("reject:", "milter-reject:", "discard:")):
            return self._reject(ts, host, qid, body, line, n)
        if body.startswith("sender ") and "notification:" in body:
            nd = _NDN.match(body)
            if not nd:
                self.error(n, "unrecognized notification line", line)
                return []
            self._msg(host, nd.group("qid2")).notification = True
            self.counts["parsed"] += 1
            return []
        if body == "removed":
            self.msgs.pop(f"{host}/{qid}", None)
            self.counts["parsed"] += 1
            return []
        if "status=" in body:
            self.error(n, "a status line that does not parse", line)
            return []
        self.counts["ignored"] += 1
        return []

    def _event(self, type_: str, ts: int, host: str, qid: str, st: _Msg, **kw) -> EmailEvent:
        mid = st.message_id or f"postfix:{host}:{qid}"
        if st.notification and kw.get("detail") is None:
            kw["detail"] = "notification"
        return EmailEvent(type=type_, ts=ts, message_id=mid, queue_id=qid, source="postfix", mta=host,
                          size=kw.pop("size", st.size), **kw)

    def _qmgr(self, ts: int, host: str, qid: str, body: str, line: str, n: int) -> list[EmailEvent]:
        q = _QMGR_FROM.match(body)
        if q:
            st = self._msg(host, qid)
            st.sender, st.size, st.nrcpt = q.group("from"), int(q.group("size")), int(q.group("nrcpt"))
            if st.sender == "" and not st.origin:
                st.notification = True
            self.counts["parsed"] += 1
            if st.queued:
                return []  # qmgr says this again each time the message comes back from the deferred queue
            st.queued = True
            return [self._event("queued", ts, host, qid, st, sender=st.sender, nrcpt=st.nrcpt,
                                client_host=st.client_host, client_ip=st.client_ip)]
        e = _QMGR_EXPIRED.match(body)
        if e:
            st = self._msg(host, qid)
            self.counts["parsed"] += 1
            pending = [r for r in st.attempts if r not in st.final]
            out = []
            for rcpt in pending or [None]:
                dom = domain_of(rcpt) if rcpt else None
                if rcpt:
                    st.final.add(rcpt)
                out.append(self._event("expired", ts, host, qid, st, sender=e.group("from"), recipient=rcpt, domain=dom,
                                       provider=mailbox_provider(dom) if dom else None, attempt=st.attempts.get(rcpt) if rcpt else None,
                                       bounce_class="expired", bounce_reason="expired", detail="returned_to_sender"))
            return out
        if "status=" in body or "size=" in body:
            self.error(n, "a qmgr line that does not parse", line)
            return []
        self.counts["ignored"] += 1
        return []

    def _delivery(self, ts: int, host: str, pid: str, daemon: str, qid: str, body: str, line: str, n: int) -> list[EmailEvent]:
        d = _DELIVERY.match(body)
        if not d:
            self.error(n, "a delivery line that does not parse (to=<...>, relay=..., delay=..., status=...)", line)
            return []
        status = d.group("status")
        type_ = {"sent": "delivered", "deferred": "deferred", "bounced": "bounced", "expired": "expired"}.get(status)
        if type_ is None:
            # deliverable/undeliverable: address-verification probes, not mail
            self.counts["verify_probe" if status in ("deliverable", "undeliverable") else "ignored"] += 1
            return []
        self.counts["parsed"] += 1
        st = self._msg(host, qid)
        rcpt = d.group("to")
        rkey = rcpt.lower()
        if type_ == "deferred" or rkey not in st.final:
            st.attempts[rkey] = st.attempts.get(rkey, 0) + 1
        if type_ != "deferred":
            st.final.add(rkey)
        rest = d.group("rest") or ""
        text = rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest
        relay = d.group("relay")
        r = _RELAY.match(relay)
        remote_host = r.group("host") if r else (relay if relay and relay != "none" else None)
        remote_ip = r.group("ip") if r else None
        reply, code, enh = text, None, d.group("dsn")
        said = _SAID.match(text)
        if said:
            reply = said.group("reply")
            remote_host = remote_host or said.group("host")
            remote_ip = remote_ip or said.group("ip")
        ct = _CODE_TEXT.match(reply)
        if ct:
            code = int(ct.group("code"))
        dom = domain_of(rcpt) or (rkey.rsplit("@", 1)[-1] if "@" in rkey else None)
        bclass = breason = None
        if type_ in ("bounced", "deferred", "expired"):
            c, e, t = split_reply(code, enh, reply)
            bclass, breason = classify_bounce(c, e, t)
            if type_ == "expired":
                bclass, breason = "expired", "expired"
        tls_ver = self.tls.get((host, pid, relay)) if r else None
        provider = mailbox_provider(dom) if dom else None
        if provider in ("other", None) and remote_host and r:
            via_mx = mailbox_provider(remote_host)  # a corporate domain hosted at Google or Microsoft
            if via_mx not in ("other", "unknown"):
                provider = via_mx
        delay = float(d.group("delay"))
        return [self._event(
            type_, ts, host, qid, st, sender=st.sender, recipient=rkey, orig_recipient=d.group("orig") or None,
            domain=dom, provider=provider, remote_host=remote_host, remote_ip=remote_ip,
            attempt=st.attempts.get(rkey), smtp_code=code, enhanced_code=enh, reply=reply or None,
            tls=True if tls_ver else None, tls_version=tls_ver, latency_ms=int(round(delay * 1000)),
            delays=d.group("delays"), nrcpt=st.nrcpt, bounce_class=bclass, bounce_reason=breason,
            detail="returned_to_sender" if type_ == "expired" and "returned to sender" in rest else None,
        )]

    def _reject(self, ts: int, host: str, qid: str | None, body: str, line: str, n: int) -> list[EmailEvent]:
        r = _REJECT_SMTPD.match(body) or _REJECT_CLEANUP.match(body)
        if not r:
            self.error(n, "a reject line that does not parse", line)
            return []
        kind = r.group("kind")
        if kind == "hold":
            self.counts["ignored"] += 1
            return []
        reply = (r.group("reply") or "").strip()
        code = enh = None
        ct = _CODE_TEXT.match(reply)
        if ct:
            code, enh = int(ct.group("code")), ct.group("enh")
        else:
            eo = _ENH_ONLY.match(reply)
            if eo:
                enh = eo.group("enh")
        rcpt = (r.group("to") or "").lower() or None
        dom = domain_of(rcpt) if rcpt else None
        bclass, breason = classify_bounce(code, enh, reply) if reply else (None, None)
        st = self.msgs.get(f"{host}/{qid}") if qid else None
        if st is not None and st.message_id:
            mid = st.message_id
        else:
            mid = f"postfix:{host}:{qid}" if qid else "postfix-reject:" + hashlib.sha1(line.encode()).hexdigest()[:20]
        self.counts["parsed"] += 1
        return [EmailEvent(
            type="dropped", ts=ts, message_id=mid, queue_id=qid, source="postfix", mta=host, sender=r.group("from"),
            recipient=rcpt, domain=dom, provider=mailbox_provider(dom) if dom else None, smtp_code=code,
            enhanced_code=enh, reply=reply or None, bounce_class=bclass, bounce_reason=breason,
            client_host=r.group("chost") or None, client_ip=r.group("cip") or None,
            detail="discard" if kind == "discard" else "reject",
        )]
