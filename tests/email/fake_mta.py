"""Scripted remote MTAs for tests: aiosmtpd servers on loopback that answer each recipient as its
local part says, with the replies big mailbox providers really give, and remember what they decided.

=====================  ==========================================================  ==============
local part starts with  reply                                                       final outcome
=====================  ==========================================================  ==============
``ok``                  250 at RCPT and DATA                                        delivered
``rate``                421 4.7.28 (rate limited) the first time, then 250          delivered
``busy``                450 4.2.1 (mailbox busy) the first time, then 250           delivered
``full``                452 4.2.2 (mailbox full) every time                         expired
``unknown``             550 5.1.1 (user unknown)                                    bounced
``blocked``             554 5.7.1 at end of DATA (message blocked)                  bounced
=====================  ==========================================================  ==============

A server made with ``greylist=True`` answers 451 4.7.1 to the first RCPT of each
(sender, recipient) pair, then goes by the table. ``dead_port()`` gives a loopback port where
nothing listens (connections refused), for a host that is down.

    mta = FakeMTA("gmail.com").start()
    ... mta.port, mta.decisions ...
    mta.stop()
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

REPLIES = {
    "rate": "421 4.7.28 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail originating "
            "from your IP address. To protect our users from spam, mail sent from your IP address has been "
            "temporarily rate limited. - gsmtp",
    "busy": "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional "
            "messages from being delivered. Please resend your message at a later point.",
    "full": "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to "
            "https://support.google.com/mail/?p=OverQuotaTemp",
    "unknown": "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking "
               "the recipient's email address for typos or unnecessary spaces.",
    "blocked": "554 5.7.1 Message rejected due to local policy: your message was blocked as spam",
    "greylist": "451 4.7.1 Greylisted, please try again later",
}


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port() -> int:
    """A loopback port where nothing listens: connecting is refused."""
    return free_port()


def self_signed_context(folder: Path, name: str = "mx.fake.test") -> ssl.SSLContext:
    """A server TLS context with a new self-signed certificate (made with the openssl command)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={name}"], check=True, capture_output=True, timeout=60)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def outcome_of(local_part: str) -> str:
    """The scripted final outcome of a recipient's local part (see the module table)."""
    for prefix, outcome in (("ok", "delivered"), ("rate", "delivered"), ("busy", "delivered"),
                            ("full", "expired"), ("unknown", "bounced"), ("blocked", "bounced")):
        if local_part.startswith(prefix):
            return outcome
    return "delivered"


@dataclass
class Decision:
    """One reply this server gave about one recipient."""

    recipient: str
    stage: str  # "RCPT" or "DATA"
    code: int
    message_id: str | None = None


class _Handler:
    def __init__(self, mta: FakeMTA) -> None:
        self.mta = mta

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        rcpt = address.lower()
        local = rcpt.split("@", 1)[0]
        with self.mta.lock:
            seen = self.mta.rcpt_seen.get(rcpt, 0)
            self.mta.rcpt_seen[rcpt] = seen + 1
            pair = (envelope.mail_from or "", rcpt)
            reply = None
            if self.mta.greylist and pair not in self.mta.greylisted:
                self.mta.greylisted.add(pair)
                reply = REPLIES["greylist"]
            elif local.startswith(("rate", "busy")) and seen == 0:
                reply = REPLIES[local[:4]]
            elif local.startswith(("full", "unknown")):
                reply = REPLIES["full" if local.startswith("full") else "unknown"]
            if reply:
                self.mta.decisions.append(Decision(rcpt, "RCPT", int(reply[:3])))
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        mid = None
        for line in envelope.content.decode("utf-8", "replace").splitlines():
            if not line.strip():
                break
            if line.lower().startswith("message-id:"):
                mid = line.split(":", 1)[1].strip().strip("<>")
        rcpts = [r.lower() for r in envelope.rcpt_tos]
        blocked = any(r.split("@", 1)[0].startswith("blocked") for r in rcpts)
        code = 554 if blocked else 250
        with self.mta.lock:
            for r in rcpts:
                self.mta.decisions.append(Decision(r, "DATA", code, mid))
        return REPLIES["blocked"] if blocked else f"250 2.0.0 OK {len(self.mta.decisions)} - accepted"


@dataclass
class FakeMTA:
    """A scripted SMTP server for one recipient domain on 127.0.0.1 (see the module doc)."""

    domain: str
    greylist: bool = False
    tls_context: ssl.SSLContext | None = None  # offer STARTTLS with it
    port: int = 0
    decisions: list[Decision] = field(default_factory=list)
    rcpt_seen: dict[str, int] = field(default_factory=dict)
    greylisted: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    def start(self) -> FakeMTA:
        self.port = self.port or free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      server_hostname=f"mx.{self.domain}", ready_timeout=10,
                                      tls_context=self.tls_context)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def final_outcomes(self) -> dict[tuple[str | None, str], str]:
        """What this server decided in the end for each (Message-ID, recipient) it accepted or
        refused for good; recipients it only ever deferred are left out (the sender gives up on them)."""
        out: dict[tuple[str | None, str], str] = {}
        with self.lock:
            for d in self.decisions:
                if d.stage == "DATA":
                    out[(d.message_id, d.recipient)] = "delivered" if d.code == 250 else "bounced"
        return out

    def refused_for_good(self) -> set[str]:
        """Recipients refused with a 5xx at RCPT (their message id is not seen at RCPT time)."""
        with self.lock:
            return {d.recipient for d in self.decisions if d.stage == "RCPT" and d.code >= 500}
