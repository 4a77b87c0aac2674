"""A real Postfix on loopback for tests, as its own instance, with scripted remote MTAs behind it.

Everything lives in one folder: ``etc/`` (main.cf, master.cf, transport and access tables: the
instance's ``config_directory``), ``spool/`` (``queue_directory``), ``data/`` and ``log/mail.log``
(written by ``postlogd`` through ``maillog_file``). smtpd listens on a free loopback port; the
test domains go to :class:`~fake_mta.FakeMTA` servers through ``transport_maps``
(``smtp:[127.0.0.1]:PORT``), never to DNS; queue timers are seconds, so deferred mail is retried
and expires within a test. Needs root and Debian's ``postfix`` (scripts/deps/20-postfix.sh).

    lab = PostfixLab(root, domains={"gmail.com": FakeMTA("gmail.com")}, dead=["dead.test"]).start()
    lab.send("news@sender.test", ["ok1@gmail.com"], "<id@x>")
    lab.wait_until_queue_empty()
    lab.stop()
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

from .fake_mta import FakeMTA, dead_port, free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
SENDMAIL = "/usr/sbin/sendmail"  # Postfix's

# Postfix's time units: s (seconds), m, h, d, w. Retries every 1-3 s, give up after 14 s.
TIMERS = {
    "queue_run_delay": "1s",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "3s",
    "maximal_queue_lifetime": "14s",
    "bounce_queue_lifetime": "14s",
    "delay_warning_time": "0h",
    "smtp_connect_timeout": "5s",
}

# Every service runs outside a chroot (the queue folder is a test's tmp folder).
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
    """Postfix would not start, stop or drain its queue."""


class PostfixLab:
    """One Postfix instance in ``root`` (see the module doc).

    ``domains``: recipient domain -> its fake MTA (started and stopped with the lab);
    ``dead``: domains routed to a port where nothing listens; ``rejected``: domains smtpd refuses
    at RCPT (``554 5.7.1 ... Recipient address rejected``); ``discarded``: domains whose mail smtpd
    takes and throws away (DISCARD); ``aliases``: virtual aliases (address -> addresses);
    ``header_reject``: a regular expression of header lines cleanup rejects the message for;
    ``sink``: the senders' domain, whose fake MTA takes the non-delivery notifications."""

    def __init__(self, root: Path, domains: dict[str, FakeMTA], *, dead: list[str] = (), rejected: list[str] = (),
                 discarded: list[str] = (), aliases: dict[str, list[str]] | None = None, header_reject: str = "",
                 sink: str = "sender.test", timers: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.etc, self.spool, self.data = self.root / "etc", self.root / "spool", self.root / "data"
        self.logfile = self.root / "log" / "mail.log"
        self.mtas = dict(domains)
        if sink not in self.mtas:
            self.mtas[sink] = FakeMTA(sink)
        self.sink = sink
        self.dead = {d: dead_port() for d in dead}
        self.rejected = list(rejected)
        self.discarded = list(discarded)
        self.aliases = dict(aliases or {})
        self.header_reject = header_reject
        self.timers = {**TIMERS, **(timers or {})}
        self.port = 0
        self.running = False

    # -- set-up --------------------------------------------------------------------------------
    def _write_config(self) -> None:
        for d in (self.etc, self.spool, self.data, self.logfile.parent):
            d.mkdir(parents=True, exist_ok=True)
        # the postfix user walks to the queue and data folders
        for d in (self.root, self.spool, self.logfile.parent):
            d.chmod(0o755)
        shutil.chown(self.data, "postfix", "postfix")
        transport = [f"{dom} smtp:[127.0.0.1]:{m.port}" for dom, m in self.mtas.items()]
        transport += [f"{dom} smtp:[127.0.0.1]:{p}" for dom, p in self.dead.items()]
        (self.etc / "transport").write_text("\n".join(transport) + "\n")
        access = [f"{dom} REJECT Recipient domain {dom} is not accepted here" for dom in self.rejected]
        access += [f"{dom} DISCARD" for dom in self.discarded]
        (self.etc / "recipient_access").write_text("\n".join(access) + "\n")
        (self.etc / "virtual").write_text("".join(f"{a} {', '.join(t)}\n" for a, t in self.aliases.items()))
        hdr = f"/{self.header_reject}/ REJECT 5.7.1 Message content rejected by policy\n" if self.header_reject else ""
        (self.etc / "header_checks").write_text(hdr)
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.spool),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "myhostname": "mx1.mailroom.test",
            "mydomain": "mailroom.test",
            "myorigin": "$mydomain",
            "mydestination": "",
            "relay_domains": "",
            "local_transport": "error:local delivery is disabled",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": f"check_recipient_access texthash:{self.etc}/recipient_access, permit",
            "transport_maps": f"texthash:{self.etc}/transport",
            "virtual_alias_maps": f"texthash:{self.etc}/virtual",
            "virtual_alias_domains": ", ".join(sorted({a.rsplit("@", 1)[1] for a in self.aliases})),
            "header_checks": f"regexp:{self.etc}/header_checks",
            "enable_long_queue_ids": "yes",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtp_tls_security_level": "may",  # STARTTLS where a fake MTA offers it
            "smtp_tls_loglevel": "1",
            "smtpd_tls_security_level": "none",
            "smtpd_banner": "$myhostname ESMTP",
            "biff": "no",
            "maillog_file": str(self.logfile),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.root}",
            **self.timers,
        }
        (self.etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise PostfixError(f"postfix {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def start(self) -> PostfixLab:
        """Start the fake MTAs, write the config and start Postfix; wait until smtpd answers."""
        for m in self.mtas.values():
            m.start()
        self.port = free_port()
        self._write_config()
        self.running = True  # stop() also cleans up after a start that failed half-way
        self._postfix("start")
        deadline = time.monotonic() + 20
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as s:
                    s.noop()
                return self
            except OSError as e:
                if time.monotonic() > deadline:
                    raise PostfixError(f"smtpd does not answer on 127.0.0.1:{self.port}: {e}\n{self.log_text()[-2000:]}") from e
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop Postfix (and wait until its master is gone), then the fake MTAs."""
        if self.running:
            self._postfix("stop", check=False)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self._postfix("status", check=False).returncode == 0:
                time.sleep(0.2)
            self.running = False
        for m in self.mtas.values():
            m.stop()

    def __enter__(self) -> PostfixLab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- use -----------------------------------------------------------------------------------
    def send(self, sender: str, recipients: list[str], message_id: str, *, smtp: smtplib.SMTP | None = None,
             subject: str = "mailroom lab") -> dict[str, tuple[int, bytes]]:
        """Submit one message to smtpd; returns the recipients smtpd refused (smtplib's dict).
        All refused raises :class:`smtplib.SMTPRecipientsRefused`."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, ", ".join(recipients), subject, message_id
        msg.set_content(f"Test message {message_id} for {', '.join(recipients)}.\n")
        if smtp is not None:
            return smtp.send_message(msg, sender, recipients)
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            return s.send_message(msg, sender, recipients)

    def sendmail(self, sender: str, recipients: list[str], message_id: str, subject: str = "mailroom lab") -> None:
        """Submit one message locally, through Postfix's sendmail (postdrop -> pickup)."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, ", ".join(recipients), subject, message_id
        msg.set_content(f"Local test message {message_id}.\n")
        r = subprocess.run([SENDMAIL, "-C", str(self.etc), "-f", sender, "-i", "--", *recipients], input=msg.as_bytes(),
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            raise PostfixError(f"sendmail failed ({r.returncode}): {r.stderr.decode(errors='replace')}")

    def smtp(self) -> smtplib.SMTP:
        """An open SMTP session with this instance's smtpd."""
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def queue(self) -> str:
        """``postqueue -p`` output for this instance."""
        r = subprocess.run([POSTQUEUE, "-c", str(self.etc), "-p"], capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr

    def wait_until_queue_empty(self, timeout: float = 90) -> float:
        """Wait until nothing is queued (delivered, bounced or expired), and the log has settled;
        returns the seconds waited."""
        t0 = time.monotonic()
        while "Mail queue is empty" not in self.queue():
            if time.monotonic() - t0 > timeout:
                raise PostfixError(f"queue not empty after {timeout:.0f}s:\n{self.queue()[-3000:]}")
            time.sleep(0.5)
        self.wait_log_quiet()
        return time.monotonic() - t0

    def wait_log_quiet(self, quiet: float = 1.5, timeout: float = 15) -> None:
        """Wait until the log file has not grown for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            s = self.logfile.stat().st_size if self.logfile.exists() else 0
            if s != size:
                size, since = s, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)

    def log_text(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
