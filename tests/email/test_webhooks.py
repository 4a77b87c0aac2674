"""`mailroom ingest webhooks`: the real receiver (a subprocess on a free port) fed real-shaped,
really signed SendGrid, Mailgun, SES-through-SNS and Postmark payloads; the events are read back
from the embedded log, rejections from its processing log."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from mailroom.email.events import decode
from mailroom.email.ingest.webhooks import SnsVerifier, WebhookError
from mailroom.email.ingest.webhooks.sns import string_to_sign
from mailroom.log import TopicPartition, open_log

MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
POSTMARK_AUTH = "postmark:s3cret-pw"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a stand-in for sns.<region>.amazonaws.com: serves the signing certificate, takes confirmations ---

class CertServer:
    def __init__(self, cert_pem: bytes) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                body = cert_pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


class Receiver:
    """The receiver subprocess and what the tests need to talk to it and read what it wrote."""

    def __init__(self, tmp: Path) -> None:
        self.sg_key = ec.generate_private_key(ec.SECP256R1())
        self.sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certs = CertServer(self_signed(self.sns_key))
        key_file = tmp / "sendgrid.key"  # as SendGrid shows it: base64 DER, no PEM armour
        key_file.write_text(base64.b64encode(self.sg_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode())
        self.log_url = f"embedded:{tmp / 'log'}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-c", "import sys; from mailroom.cli.main import app; app(prog_name='mailroom')",
               "ingest", "webhooks", "--listen", f"127.0.0.1:{self.port}", "--log", self.log_url,
               "--sendgrid-key", str(key_file), "--mailgun-signing-key", MAILGUN_KEY, "--postmark-user", POSTMARK_AUTH,
               "--sns-cert-host", r"127\.0\.0\.1", "--sns-allow-http", "--sns-topic-arn", TOPIC_ARN]
        self.stderr = open(tmp / "receiver.err", "w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.client = httpx.Client(base_url=self.base, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self.stderr.seek(0)
                raise RuntimeError(f"receiver exited: {self.stderr.read()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("receiver did not start in 60 s")
            time.sleep(0.1)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.certs.close()
        self.stderr.close()

    # -- signing ------------------------------------------------------------------------------
    def sendgrid_headers(self, body: bytes, key: ec.EllipticCurvePrivateKey | None = None) -> dict:
        ts = str(int(time.time()))
        sig = (key or self.sg_key).sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": ts}

    def sns(self, type_: str, message: str, version: str = "1", cert_url: str | None = None, **extra) -> bytes:
        msg = {"Type": type_, "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC_ARN, "Message": message,
               "Timestamp": "2024-01-12T10:15:06.123Z", "SignatureVersion": version,
               "SigningCertURL": cert_url or self.certs.url("/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"),
               **extra}
        if type_ == "Notification":
            msg["UnsubscribeURL"] = self.certs.url("/?Action=Unsubscribe")
        algo = hashes.SHA1() if version == "1" else hashes.SHA256()
        msg["Signature"] = base64.b64encode(self.sns_key.sign(string_to_sign(msg), padding.PKCS1v15(), algo)).decode()
        return orjson.dumps(msg)

    # -- reading back ---------------------------------------------------------------------------
    def read(self, topic: str) -> list[tuple[bytes | None, bytes]]:
        out = []
        with open_log(self.log_url) as log:
            parts = log.describe_topic(topic).partitions
            c = log.consumer()
            c.assign([TopicPartition(topic, p) for p in range(parts)])
            while batches := c.poll(100_000, timeout=0.2):
                for b in batches:
                    out.extend(zip(b.keys, b.values))
            c.close()
        return out

    def events(self, source: str | None = None) -> list:
        evs = []
        for k, v in self.read("email-events"):
            e = decode(v)
            assert k == e.message_id.encode()  # keyed by message id
            if source is None or e.source == source:
                evs.append(e)
        return evs

    def plog(self) -> list[dict]:
        return [orjson.loads(v) for _, v in self.read("email-events-processing-log")]


@pytest.fixture(scope="module")
def rx(tmp_path_factory):
    r = Receiver(tmp_path_factory.mktemp("webhooks"))
    yield r
    r.close()


def uniq() -> str:
    return uuid.uuid4().hex[:12]


# --- SendGrid -------------------------------------------------------------------------------------

def sendgrid_batch(tag: str, ts: int = 1705054502) -> list[dict]:
    sg = f"{tag}Ab1.filter0001.16648.5515E0B88.0"
    common = {"sg_message_id": sg, "smtp-id": f"<{tag}@ismtpd-555>", "category": ["spring-sale"], "timestamp": ts}
    r = f"alice-{tag}@gmail.com"
    return [
        {**common, "email": r, "event": "processed", "sg_event_id": f"{tag}-1"},
        {**common, "email": r, "event": "deferred", "sg_event_id": f"{tag}-2", "response": "421 4.7.0 [TSS04] try again later", "attempt": "2"},
        {**common, "email": r, "event": "delivered", "sg_event_id": f"{tag}-3", "response": "250 2.0.0 OK 1513299569 d2si2", "ip": "168.1.1.1", "tls": 1},
        {**common, "email": f"bob-{tag}@example.com", "event": "bounce", "type": "bounce", "sg_event_id": f"{tag}-4",
         "status": "5.1.1", "reason": "550 5.1.1 The email account that you tried to reach does not exist",
         "bounce_classification": "Invalid Address"},
        {**common, "email": f"carol-{tag}@yahoo.com", "event": "bounce", "type": "blocked", "sg_event_id": f"{tag}-5",
         "reason": "unable to get mx info: failed to get IPs from PTR record", "bounce_classification": "Unclassified", "tls": 0},
        {**common, "email": f"dave-{tag}@example.com", "event": "dropped", "sg_event_id": f"{tag}-6", "reason": "Bounced Address", "status": "5.0.0"},
        {"email": r, "timestamp": ts + 60, "event": "open", "sg_machine_open": False, "sg_event_id": f"{tag}-7", "sg_message_id": sg,
         "useragent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0", "ip": "255.255.255.255"},
        {"email": r, "timestamp": ts + 90, "event": "click", "sg_event_id": f"{tag}-8", "sg_message_id": sg,
         "useragent": "Mozilla/5.0", "ip": "255.255.255.255", "url": "https://example.com/sale?utm=1", "url_offset": {"index": 0, "type": "html"}},
        {"email": r, "timestamp": ts + 120, "event": "spamreport", "sg_event_id": f"{tag}-9", "sg_message_id": sg},
        {"email": r, "timestamp": ts + 130, "event": "unsubscribe", "sg_event_id": f"{tag}-10", "sg_message_id": sg},
        {"email": r, "timestamp": ts + 140, "event": "group_unsubscribe", "sg_event_id": f"{tag}-11", "sg_message_id": sg, "asm_group_id": 10},
        {"email": r, "timestamp": ts + 150, "event": "group_resubscribe", "sg_event_id": f"{tag}-12", "sg_message_id": sg, "asm_group_id": 10},
        {"timestamp": ts + 160, "event": "delivered", "sg_event_id": f"{tag}-13", "sg_message_id": sg},  # no email: an item error
    ]


def test_sendgrid_signed_batch(rx) -> None:
    tag = uniq()
    body = orjson.dumps(sendgrid_batch(tag))
    r = rx.client.post("/webhooks/sendgrid", content=body, headers=rx.sendgrid_headers(body))
    assert r.status_code == 200, r.text
    assert r.json() == {"events": 11, "ignored": 1, "item_errors": 1}
    ev = [e for e in rx.events("sendgrid") if tag in e.message_id]
    assert [(e.type, e.recipient.split("-")[0]) for e in ev] == [
        ("accepted", "alice"), ("deferred", "alice"), ("delivered", "alice"), ("bounced", "bob"), ("bounced", "carol"),
        ("dropped", "dave"), ("opened", "alice"), ("clicked", "alice"), ("complained", "alice"), ("unsubscribed", "alice"),
        ("unsubscribed", "alice")]
    assert {e.message_id for e in ev} == {f"sendgrid:{tag}Ab1"}  # engagement events share the key
    acc, dfr, dlv, bnc, blk, drp, opn, clk, *_ , grp = ev
    assert (acc.ts, acc.event_id, acc.campaign_id, acc.domain, acc.provider) == (1705054502000, f"{tag}-1", "spring-sale", "gmail.com", "gmail")
    assert (dfr.smtp_code, dfr.enhanced_code, dfr.attempt, dfr.bounce_class, dfr.bounce_reason) == (421, "4.7.0", 2, "throttle", "rate_limited")
    assert (dlv.smtp_code, dlv.enhanced_code, dlv.sending_ip, dlv.tls) == (250, "2.0.0", "168.1.1.1", True)
    assert (bnc.smtp_code, bnc.enhanced_code, bnc.bounce_class, bnc.bounce_reason) == (550, "5.1.1", "hard", "user_unknown")
    # the reply says nothing bounces.py knows, and SendGrid "Unclassified": a "blocked" bounce is a block
    assert (blk.detail, blk.bounce_class, blk.bounce_reason, blk.smtp_code, blk.tls) == ("blocked", "block", "blocked", None, False)
    assert (drp.reply, drp.bounce_class, drp.bounce_reason) == ("Bounced Address", "hard", "user_unknown")
    assert (opn.client_ip, opn.sending_ip, opn.user_agent.startswith("Mozilla/5.0 (Windows")) == ("255.255.255.255", None, True)
    assert (clk.url, clk.ts) == ("https://example.com/sale?utm=1", 1705054592000)
    assert (grp.detail, grp.list_id) == ("group", "10")
    bad = [p for p in rx.plog() if p["operator"] == "webhook-sendgrid" and f"{tag}-13" in p["reason"]]
    assert len(bad) == 1 and "no 'email'" in bad[0]["reason"]


def test_sendgrid_bad_signatures_are_rejected_and_nothing_is_written(rx) -> None:
    tag = uniq()
    body = orjson.dumps(sendgrid_batch(tag))
    before = len(rx.read("email-events"))
    other = ec.generate_private_key(ec.SECP256R1())
    tampered_headers = rx.sendgrid_headers(body)
    for headers, payload, why in [
        (rx.sendgrid_headers(body, key=other), body, "bad SendGrid signature"),  # someone else's key
        (tampered_headers, body.replace(b"alice", b"mallory"), "bad SendGrid signature"),  # body changed after signing
        ({**tampered_headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}, body, "bad SendGrid signature"),  # timestamp changed
        ({"Content-Type": "application/json"}, body, "missing X-Twilio-Email-Event-Webhook-Signature"),
    ]:
        r = rx.client.post("/webhooks/sendgrid", content=payload, headers=headers)
        assert r.status_code == 401, r.text
        assert why in r.json()["error"]
    assert len(rx.read("email-events")) == before
    entries = [p for p in rx.plog() if p["operator"] == "webhook-sendgrid" and p["topic"] == "/webhooks/sendgrid"
               and tag.encode() in base64.b64decode(p["value"] or "")]
    assert len(entries) == 4 and sum("bad SendGrid signature" in p["reason"] for p in entries) == 3


def test_malformed_payloads_get_400_and_the_receiver_keeps_running(rx) -> None:
    before = len(rx.read("email-events"))
    garbage = b'[{"event": "delivered", "email": '
    r = rx.client.post("/webhooks/sendgrid", content=garbage, headers=rx.sendgrid_headers(garbage))
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    obj = b'{"event": "delivered"}'  # valid JSON, but not an array
    r = rx.client.post("/webhooks/sendgrid", content=obj, headers=rx.sendgrid_headers(obj))
    assert r.status_code == 400 and "JSON array" in r.json()["error"]
    r = rx.client.post("/webhooks/mailgun", content=b"signature=abc&event=delivered")  # the legacy form post
    assert r.status_code == 400
    r = rx.client.post("/webhooks/ses", content=b"{not json")
    assert r.status_code == 400
    r = rx.client.post("/webhooks/nosuch", content=b"[]")
    assert r.status_code == 404
    assert len(rx.read("email-events")) == before
    reasons = [p["reason"] for p in rx.plog()]
    assert sum(x.startswith("malformed JSON") for x in reasons) >= 3
    # still serving
    tag = uniq()
    body = orjson.dumps(sendgrid_batch(tag)[:3])
    r = rx.client.post("/webhooks/sendgrid", content=body, headers=rx.sendgrid_headers(body))
    assert r.status_code == 200 and r.json()["events"] == 3
    h = rx.client.get("/healthz").json()
    assert h["providers"]["sendgrid"]["rejected_400"] >= 2 and rx.proc.poll() is None


# --- Mailgun --------------------------------------------------------------------------------------

def mailgun_post(data: dict, key: str = MAILGUN_KEY) -> bytes:
    ts, token = str(int(time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return orjson.dumps({"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": data})


def mailgun_event(tag: str, event: str, rcpt: str, **kw) -> dict:
    return {
        "event": event, "id": f"{tag}-{event}-{kw.get('severity', '')}", "timestamp": 1705054505.375624, "log-level": "info",
        "recipient": rcpt, "recipient-domain": rcpt.split("@")[1],
        "envelope": {"sender": "bob@mg.example.org", "transport": "smtp", "targets": rcpt, "sending-ip": "209.61.154.250"},
        "message": {"headers": {"to": rcpt, "message-id": f"{tag}@mg.example.org", "from": "Bob <bob@mg.example.org>",
                                "subject": "Spring sale"}, "attachments": [], "size": 2345},
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
        "tags": ["spring-sale"], "campaigns": [], "user-variables": {}, **kw,
    }


def test_mailgun_events(rx) -> None:
    tag = uniq()
    a, b = f"alice-{tag}@gmail.com", f"bob-{tag}@example.com"
    posts = [
        mailgun_event(tag, "accepted", a, method="http"),
        mailgun_event(tag, "delivered", a, **{"delivery-status": {"tls": True, "mx-host": "gmail-smtp-in.l.google.com",
                      "code": 250, "description": "", "session-seconds": 0.43, "utf8": True, "attempt-no": 1,
                      "message": "OK", "certificate-verified": True}}),
        mailgun_event(tag, "failed", b, severity="permanent", reason="bounce", **{"delivery-status": {
            "tls": True, "mx-host": "mx.example.com", "code": 550, "enhanced-code": "5.1.1", "attempt-no": 1,
            "message": "550 5.1.1 The email account that you tried to reach does not exist.", "description": "",
            "session-seconds": 0.1}}),
        mailgun_event(tag, "failed", b, severity="temporary", reason="generic", **{"delivery-status": {
            "code": 452, "attempt-no": 2, "message": "452 4.2.2 The email account that you tried to reach is over quota.",
            "description": "", "retry-seconds": 600}}),
        mailgun_event(tag, "failed", f"old-{tag}@example.com", severity="permanent", reason="suppress-bounce", **{"delivery-status": {
            "code": 605, "attempt-no": 1, "message": "", "description": "Not delivering to previously bounced address"}}),
        mailgun_event(tag, "opened", a, ip="50.56.129.169", **{"client-info": {"client-type": "browser", "client-os": "Linux",
                      "device-type": "desktop", "client-name": "Chrome", "user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}}),
        mailgun_event(tag, "clicked", a, ip="50.56.129.169", url="https://example.com/sale"),
        mailgun_event(tag, "complained", a),
        mailgun_event(tag, "unsubscribed", a, ip="50.56.129.169"),
        mailgun_event(tag, "stored", a),  # no canonical event: ignored
    ]
    for p in posts:
        r = rx.client.post("/webhooks/mailgun", content=mailgun_post(p))
        assert r.status_code == 200, r.text
    ev = [e for e in rx.events("mailgun") if e.message_id == f"{tag}@mg.example.org"]
    assert [e.type for e in ev] == ["accepted", "delivered", "bounced", "deferred", "dropped", "opened", "clicked",
                                    "complained", "unsubscribed"]
    acc, dlv, bnc, dfr, drp, opn, clk, *_ = ev
    assert (acc.ts, acc.sender, acc.sending_ip, acc.campaign_id) == (1705054505376, "bob@mg.example.org", "209.61.154.250", "spring-sale")
    assert (dlv.smtp_code, dlv.remote_host, dlv.tls, dlv.attempt, dlv.provider) == (250, "gmail-smtp-in.l.google.com", True, 1, "gmail")
    assert (bnc.recipient, bnc.smtp_code, bnc.enhanced_code, bnc.bounce_class, bnc.bounce_reason) == (b, 550, "5.1.1", "hard", "user_unknown")
    assert (dfr.smtp_code, dfr.enhanced_code, dfr.bounce_class, dfr.bounce_reason, dfr.attempt) == (452, "4.2.2", "soft", "mailbox_full", 2)
    assert (drp.detail, drp.smtp_code, drp.bounce_class, drp.reply) == ("suppressed", None, "hard", "Not delivering to previously bounced address")
    assert (opn.client_ip, opn.user_agent) == ("50.56.129.169", "Mozilla/5.0 (X11; Linux x86_64)")
    assert clk.url == "https://example.com/sale"
    assert rx.client.get("/healthz").json()["providers"]["mailgun"]["ignored"] >= 1

    before = len(rx.read("email-events"))
    forged = mailgun_post(mailgun_event(tag, "delivered", a), key="not-the-key")
    r = rx.client.post("/webhooks/mailgun", content=forged)
    assert r.status_code == 401 and r.json()["error"] == "bad Mailgun signature"
    unsigned = orjson.dumps({"event-data": mailgun_event(tag, "delivered", a)})
    assert rx.client.post("/webhooks/mailgun", content=unsigned).status_code == 401
    assert len(rx.read("email-events")) == before


# --- Amazon SES through SNS ------------------------------------------------------------------------

def ses_mail(tag: str, dest: list[str]) -> dict:
    return {"timestamp": "2024-01-12T10:15:02.000Z", "source": "Sender <sender@example.com>",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com", "sendingAccountId": "123456789012",
            "messageId": f"0100018d{tag}-000000", "destination": dest, "headersTruncated": False,
            "headers": [{"name": "Message-ID", "value": f"<{tag}@example.com>"}],
            "commonHeaders": {"from": ["Sender <sender@example.com>"], "to": dest, "messageId": f"<{tag}@example.com>",
                              "subject": "Spring sale"},
            "tags": {"ses:configuration-set": ["marketing"], "ses:outgoing-ip": ["54.240.8.1"], "campaign": ["spring-sale"]}}


def test_ses_notifications_through_sns(rx) -> None:
    tag = uniq()
    a, b, c = f"alice-{tag}@gmail.com", f"bob-{tag}@example.com", f"carol-{tag}@yahoo.com"
    mail = ses_mail(tag, [a, b, c])
    notes = [
        ("1", {"eventType": "Send", "mail": mail, "send": {}}),
        ("2", {"eventType": "Delivery", "mail": mail, "delivery": {
            "timestamp": "2024-01-12T10:15:03.456Z", "processingTimeMillis": 1456, "recipients": [a],
            "smtpResponse": "250 2.0.0 OK 1705054503 x1si123.456 - gsmtp", "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "142.250.102.26"}}),
        ("1", {"eventType": "Bounce", "mail": mail, "bounce": {
            "feedbackId": f"{tag}-fb", "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2024-01-12T10:15:04.000Z",
            "reportingMTA": "dsn; mx.example.com", "bouncedRecipients": [
                {"emailAddress": b, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}),
        ("2", {"eventType": "DeliveryDelay", "mail": mail, "deliveryDelay": {
            "timestamp": "2024-01-12T10:20:00.000Z", "delayType": "TransientCommunicationFailure", "expirationTime": "2024-01-13T10:15:02.000Z",
            "delayedRecipients": [{"emailAddress": c, "status": "4.4.1", "diagnosticCode": "smtp; 421 4.4.1 Connection timed out"}]}}),
        ("2", {"notificationType": "Complaint", "mail": mail, "complaint": {  # identity notification form
            "feedbackId": f"{tag}-cf", "complaintSubType": None, "complainedRecipients": [{"emailAddress": a}],
            "timestamp": "2024-01-12T11:00:00.000Z", "userAgent": "Yahoo!-Mail-Feedback/2.0", "complaintFeedbackType": "abuse",
            "arrivalDate": "2024-01-12T10:15:03.000Z"}}),
        ("2", {"eventType": "Open", "mail": {**mail, "destination": [a]}, "open": {
            "ipAddress": "192.0.2.1", "timestamp": "2024-01-12T10:30:00.000Z", "userAgent": "Mozilla/5.0 (iPhone)"}}),
        ("2", {"eventType": "Reject", "mail": {**mail, "destination": [c]}, "reject": {"reason": "Bad content"}}),
    ]
    for version, note in notes:
        r = rx.client.post("/webhooks/ses", content=rx.sns("Notification", orjson.dumps(note).decode(), version, Subject="Amazon SES Email Event Notification"),
                           headers={"x-amz-sns-message-type": "Notification"})
        assert r.status_code == 200, r.text
    ev = [e for e in rx.events("ses") if e.message_id == f"{tag}@example.com"]
    assert [(e.type, e.recipient) for e in ev] == [
        ("accepted", a), ("accepted", b), ("accepted", c), ("delivered", a), ("bounced", b), ("deferred", c),
        ("complained", a), ("opened", a), ("dropped", c)]
    dlv, bnc, dfr, cmp_, opn, rej = ev[3:]
    assert all(e.queue_id == f"0100018d{tag}-000000" and e.campaign_id == "spring-sale" for e in ev)
    assert (ev[0].sender, ev[0].sending_ip, ev[0].ts) == ("sender@example.com", "54.240.8.1", 1705054502000)
    assert (dlv.smtp_code, dlv.enhanced_code, dlv.remote_ip, dlv.latency_ms, dlv.ts) == (250, "2.0.0", "142.250.102.26", 1456, 1705054503456)
    assert (bnc.smtp_code, bnc.enhanced_code, bnc.bounce_class, bnc.bounce_reason, bnc.remote_host, bnc.event_id) == (
        550, "5.1.1", "hard", "user_unknown", "mx.example.com", f"{tag}-fb")
    assert (dfr.smtp_code, dfr.enhanced_code, dfr.bounce_class) == (421, "4.4.1", "soft")
    assert (cmp_.user_agent, cmp_.detail) == ("Yahoo!-Mail-Feedback/2.0", "abuse")
    assert (opn.client_ip, opn.user_agent) == ("192.0.2.1", "Mozilla/5.0 (iPhone)")
    assert (rej.detail, rej.reply) == ("reject", "Bad content")


def test_sns_subscription_and_forgeries(rx) -> None:
    tag = uniq()
    confirm = rx.certs.url(f"/?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}&Token={tag}")
    r = rx.client.post("/webhooks/ses", content=rx.sns("SubscriptionConfirmation", "You have chosen to subscribe ...", "2",
                                                       Token=tag, SubscribeURL=confirm))
    assert r.status_code == 200 and r.json()["note"] == f"subscribed to {TOPIC_ARN}"
    assert any(tag in h for h in rx.certs.hits)  # the receiver visited SubscribeURL

    before = len(rx.read("email-events"))
    note = orjson.dumps({"eventType": "Send", "mail": ses_mail(tag, [f"x-{tag}@gmail.com"]), "send": {}}).decode()
    good = orjson.loads(rx.sns("Notification", note, "2"))
    hits = len(rx.certs.hits)
    cases = [
        ({**good, "Message": note.replace("gmail", "evil")}, "bad SNS signature"),  # changed after signing
        ({**good, "Signature": base64.b64encode(b"x" * 256).decode()}, "bad SNS signature"),
        (orjson.loads(rx.sns("Notification", note, "2", cert_url=rx.certs.url("/evil.pem", host="localhost"))), "not an allowed SNS host"),
        ({**good, "SignatureVersion": "3"}, "unsupported SignatureVersion"),
        ({**good, "TopicArn": "arn:aws:sns:us-east-1:999999999999:other"}, "not one of the accepted topics"),
    ]
    for msg, why in cases:
        r = rx.client.post("/webhooks/ses", content=orjson.dumps(msg))
        assert r.status_code == 401, r.text
        assert why in r.json()["error"]
    assert not any("evil" in h for h in rx.certs.hits[hits:])  # a certificate from a foreign host is never fetched
    assert len(rx.read("email-events")) == before
    r = rx.client.post("/webhooks/ses", content=rx.sns("Notification", "this is not SES JSON", "1"))
    assert r.status_code == 400 and "not SES JSON" in r.json()["error"]
    r = rx.client.post("/webhooks/ses", content=orjson.dumps(good))  # the untouched original still passes
    assert r.status_code == 200 and r.json()["events"] == 1


def test_sns_verifier_defaults_reject_http_and_foreign_hosts() -> None:
    fetched = []
    v = SnsVerifier(fetch=lambda url: fetched.append(url) or b"")
    assert v.check_url("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem")
    assert v.check_url("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem")
    for url in ("http://sns.us-east-1.amazonaws.com/x.pem", "https://sns.us-east-1.amazonaws.com.evil.io/x.pem",
                "https://evil.io/sns.us-east-1.amazonaws.com/x.pem", "https://s3.amazonaws.com/x.pem", None):
        with pytest.raises(WebhookError) as e:
            v.check_url(url)
        assert e.value.status == 401
    assert fetched == []


# --- Postmark -------------------------------------------------------------------------------------

def postmark_records(tag: str) -> list[dict]:
    mid = f"883953f4-6105-42a2-{tag}"
    base = {"MessageID": mid, "ServerID": 23, "MessageStream": "outbound", "Tag": "welcome-email",
            "Metadata": {"campaign_id": "onboarding"}}
    bounce = {**base, "RecordType": "Bounce", "ID": 4323372036854775807, "Name": "Hard bounce", "From": "sender@example.com",
              "BouncedAt": "2024-01-12T10:15:04.9070259Z", "DumpAvailable": True, "Inactive": True, "CanActivate": True,
              "Subject": "Welcome", "Content": "<Full dump of bounce>"}
    return [
        {**base, "RecordType": "Delivery", "Recipient": f"alice-{tag}@gmail.com", "DeliveredAt": "2024-01-12T10:15:03.9070259Z",
         "Details": "smtp;250 2.0.0 OK  1705054503 gsmtp"},
        {**bounce, "Type": "HardBounce", "TypeCode": 1, "Email": f"bob-{tag}@example.com",
         "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
         "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."},
        {**bounce, "Type": "Transient", "TypeCode": 2, "Email": f"carol-{tag}@yahoo.com", "Name": "Message delayed",
         "Description": "The server could not temporarily deliver your message (ex: Message is delayed due to network troubles).",
         "Details": "smtp;421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints"},
        {**bounce, "RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512, "Email": f"alice-{tag}@gmail.com",
         "Name": "Spam complaint", "Description": "The subscriber explicitly marked this message as spam.", "Details": "Test spam complaint details"},
        {**base, "RecordType": "Open", "FirstOpen": True, "Recipient": f"alice-{tag}@gmail.com", "ReceivedAt": "2024-01-12T10:30:00Z",
         "Platform": "WebMail", "ReadSeconds": 5, "UserAgent": "Mozilla/5.0 (Windows NT 10.0)", "Client": {"Name": "Chrome 35.0.1916.153"},
         "OS": {"Name": "OS X 10.7 Lion"}, "Geo": {"IP": "188.2.95.4"}},
        {**base, "RecordType": "Click", "ClickLocation": "HTML", "Recipient": f"alice-{tag}@gmail.com", "ReceivedAt": "2024-01-12T10:31:00Z",
         "Platform": "Desktop", "UserAgent": "Mozilla/5.0", "OriginalLink": "https://example.com/welcome"},
        {**base, "RecordType": "SubscriptionChange", "Recipient": f"dave-{tag}@example.com", "ChangedAt": "2024-01-12T11:00:00Z",
         "Origin": "Recipient", "SuppressSending": True, "SuppressionReason": "ManualSuppression"},
        {**base, "RecordType": "SubscriptionChange", "Recipient": f"bob-{tag}@example.com", "ChangedAt": "2024-01-12T11:00:00Z",
         "Origin": "Recipient", "SuppressSending": True, "SuppressionReason": "HardBounce"},  # reported by the bounce already
        {**bounce, "Type": "AutoResponder", "TypeCode": 64, "Email": f"erin-{tag}@example.com", "Details": "I am on vacation"},
    ]


def test_postmark_records_and_basic_auth(rx) -> None:
    tag = uniq()
    auth = "Basic " + base64.b64encode(POSTMARK_AUTH.encode()).decode()
    answers = []
    for rec in postmark_records(tag):
        r = rx.client.post("/webhooks/postmark", content=orjson.dumps(rec), headers={"Authorization": auth})
        assert r.status_code == 200, r.text
        answers.append(r.json()["events"])
    assert answers == [1, 1, 1, 1, 1, 1, 1, 0, 0]
    ev = [e for e in rx.events("postmark") if tag in e.message_id]
    assert [(e.type, e.recipient.split("-")[0]) for e in ev] == [
        ("delivered", "alice"), ("bounced", "bob"), ("deferred", "carol"), ("complained", "alice"), ("opened", "alice"),
        ("clicked", "alice"), ("unsubscribed", "dave")]
    dlv, bnc, dfr, *_ = ev
    assert {e.message_id for e in ev} == {f"postmark:883953f4-6105-42a2-{tag}"}
    assert (dlv.smtp_code, dlv.enhanced_code, dlv.campaign_id, dlv.ts) == (250, "2.0.0", "onboarding", 1705054503907)
    assert (bnc.smtp_code, bnc.enhanced_code, bnc.bounce_class, bnc.bounce_reason, bnc.sender) == (550, "5.1.1", "hard", "user_unknown", "sender@example.com")
    assert (dfr.smtp_code, dfr.bounce_class, dfr.bounce_reason) == (421, "throttle", "rate_limited")
    assert ev[5].url == "https://example.com/welcome"

    before = len(rx.read("email-events"))
    rec = orjson.dumps(postmark_records(tag)[0])
    wrong = "Basic " + base64.b64encode(b"postmark:guess").decode()
    for headers in ({"Authorization": wrong}, {}, {"Authorization": "Bearer xyz"}):
        r = rx.client.post("/webhooks/postmark", content=rec, headers=headers)
        assert r.status_code == 401
    r = rx.client.post("/webhooks/postmark", content=b'{"Recipient": "x@example.com"}', headers={"Authorization": auth})
    assert r.status_code == 400 and "RecordType" in r.json()["error"]
    assert len(rx.read("email-events")) == before
    assert any(p["reason"] == "bad Postmark credentials" for p in rx.plog())


# --- no loss when the log does not take the events ------------------------------------------------

def test_answers_503_when_the_log_fails_then_recovers(tmp_path) -> None:
    import uvicorn

    from mailroom.email.ingest.webhooks import Postmark
    from mailroom.email.ingest.webhooks.app import create_app
    from mailroom.email.ingest.webhooks.sink import EventSink

    with open_log(f"embedded:{tmp_path}") as log:
        sink = EventSink(log, "events-x", partitions=1)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(sink, [Postmark(POSTMARK_AUTH)]), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                assert time.monotonic() < deadline and thread.is_alive(), "in-thread receiver did not start"
                time.sleep(0.02)
            auth = {"Authorization": "Basic " + base64.b64encode(POSTMARK_AUTH.encode()).decode()}
            rec = orjson.dumps(postmark_records("t503")[0])
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                assert client.post("/webhooks/postmark", content=rec, headers=auth).status_code == 200
                log.delete_topic("events-x")  # the log refuses: the provider must be told to retry
                r = client.post("/webhooks/postmark", content=rec, headers=auth)
                assert r.status_code == 503 and "could not write" in r.json()["error"]
                log.create_topic("events-x", partitions=1)
                assert client.post("/webhooks/postmark", content=rec, headers=auth).status_code == 200  # the retry lands
        finally:
            server.should_exit = True
            thread.join(timeout=20)
        c = log.consumer()
        c.assign([TopicPartition("events-x", 0)])
        got = [v for b in c.poll(1000, timeout=0.5) for v in b.values]
        c.close()
        assert [decode(v).type for v in got] == ["delivered"]


# --- throughput -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_throughput_of_batched_sendgrid_posts(rx, capsys) -> None:
    per_post, posts, workers = 1000, 40, 4
    tag = uniq()
    bodies = []
    for i in range(posts):
        evs = [{"email": f"user{j}-{tag}@gmail.com", "timestamp": 1705054502 + j, "event": "delivered",
                "sg_event_id": f"{tag}-{i}-{j}", "sg_message_id": f"{tag}{i}x{j}.filter0001.16648.5515E0B88.0",
                "smtp-id": f"<{tag}{i}x{j}@ismtpd-555>", "response": "250 2.0.0 OK", "ip": "168.1.1.1", "tls": 1}
               for j in range(per_post)]
        body = orjson.dumps(evs)
        bodies.append((body, rx.sendgrid_headers(body)))
    before = len(rx.read("email-events"))

    def send(chunk):
        with httpx.Client(base_url=rx.base, timeout=60) as c:
            for body, h in chunk:
                r = c.post("/webhooks/sendgrid", content=body, headers=h)
                assert r.status_code == 200 and r.json()["events"] == per_post

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(send, [bodies[i::workers] for i in range(workers)]))
    elapsed = time.perf_counter() - t0
    rate = posts * per_post / elapsed
    assert len(rx.read("email-events")) - before == posts * per_post  # every acknowledged event is in the log
    with capsys.disabled():
        print(f"\nwebhook receiver: {posts * per_post:,} SendGrid events in {posts} signed posts, {workers} clients: "
              f"{elapsed:.2f} s = {rate:,.0f} events/s")
    assert rate > 2_000


def test_verifiers_accept_pem_keys_and_enforce_max_age() -> None:
    from mailroom.email.ingest.webhooks import Mailgun, SendGrid

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    body = b'[{"email": "a@example.com", "event": "processed", "timestamp": 1705054502, "sg_message_id": "abc.filter1"}]'

    def signed(ts: str) -> dict:
        sig = base64.b64encode(key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
        return {"X-Twilio-Email-Event-Webhook-Signature": sig, "X-Twilio-Email-Event-Webhook-Timestamp": ts}

    sg = SendGrid(pem, max_age_s=300)
    assert [e.type for e in sg.handle(body, signed(str(int(time.time())))).events] == ["accepted"]
    with pytest.raises(WebhookError, match="old"):
        sg.handle(body, signed(str(int(time.time()) - 3600)))  # a replay of an hour-old post
    with pytest.raises(WebhookError, match="no SendGrid verification key"):
        SendGrid(None).handle(body, signed("1"))
    mg = Mailgun(MAILGUN_KEY, max_age_s=300)
    post = orjson.loads(mailgun_post(mailgun_event("t", "delivered", "a@example.com")))
    assert len(mg.handle(orjson.dumps(post), {}).events) == 1
    post["signature"]["timestamp"] = str(int(post["signature"]["timestamp"]) - 3600)
    post["signature"]["signature"] = hmac.new(MAILGUN_KEY.encode(), (post["signature"]["timestamp"] + post["signature"]["token"]).encode(),
                                              hashlib.sha256).hexdigest()
    with pytest.raises(WebhookError, match="old"):
        mg.handle(orjson.dumps(post), {})
