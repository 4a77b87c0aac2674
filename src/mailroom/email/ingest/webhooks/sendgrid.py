"""SendGrid Event Webhook -> canonical events.

The body is a JSON array of events::

    [{"email": "alice@example.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
      "event": "bounce", "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 user unknown",
      "bounce_classification": "Invalid Address", "sg_event_id": "...",
      "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "category": ["cat facts"]}, ...]

``processed`` -> accepted; ``deferred``; ``delivered``; ``bounce`` -> bounced (``type`` bounce or
blocked: a blocked one is classified ``block`` when the reply says nothing more);
``dropped`` -> dropped; ``open`` -> opened; ``click`` -> clicked; ``spamreport`` -> complained;
``unsubscribe``/``group_unsubscribe`` -> unsubscribed; other events (group_resubscribe, account
status) are counted as ignored.

The message id is ``sendgrid:<X-Message-Id>`` (the part of ``sg_message_id`` before
``.filter``/``.recvd-``): engagement events carry no ``smtp-id``, so only that id keeps every
event of one message under one key. ``queue_id`` is the full ``sg_message_id``.

Signed Event Webhook: ``X-Twilio-Email-Event-Webhook-Signature`` is a base64 DER ECDSA (P-256,
SHA-256) signature over ``X-Twilio-Email-Event-Webhook-Timestamp`` + the raw body, checked with
the public key shown in SendGrid's settings (base64 DER, or PEM).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...events import EmailEvent
from .common import (
    Mapped,
    WebhookError,
    classify,
    clean_id,
    header,
    int_or_none,
    parse_json,
    recipient_fields,
    smtp_parts,
    str_or_none,
    to_ms,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

TYPES = {
    "processed": "accepted", "deferred": "deferred", "delivered": "delivered", "bounce": "bounced",
    "dropped": "dropped", "open": "opened", "click": "clicked", "spamreport": "complained",
    "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed",
}
#: SendGrid's bounce_classification -> (class, reason), when the reply itself is not classifiable
CLASSIFICATIONS = {
    "Invalid Address": ("hard", "user_unknown"), "Mailbox Unavailable": ("hard", "mailbox_disabled"),
    "Technical": ("soft", "system_error"), "Content": ("block", "content_rejected"),
    "Reputation": ("block", "blocklisted"), "Frequency or Volume Too High": ("throttle", "rate_limited"),
}
#: dropped reasons -> (class, reason)
DROP_REASONS = (
    (re.compile(r"bounced address", re.I), ("hard", "user_unknown")),
    (re.compile(r"unsubscribed", re.I), ("policy", "policy")),
    (re.compile(r"spam reporting", re.I), ("policy", "policy")),
    (re.compile(r"invalid", re.I), ("hard", "bad_address")),
    (re.compile(r"spam content", re.I), ("block", "content_rejected")),
)
_XMID = re.compile(r"^(.*?)\.(?:filter|recvd-)")


def load_public_key(text: str | bytes) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: PEM, or the base64 DER shown in its settings."""
    data = text.encode() if isinstance(text, str) else text
    data = data.strip()
    if data.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(data)
    else:
        key = serialization.load_der_public_key(base64.b64decode(data))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the SendGrid verification key must be an ECDSA public key")
    return key


class SendGrid:
    """Verifies and maps SendGrid Event Webhook posts."""

    name = "sendgrid"

    def __init__(self, public_key: ec.EllipticCurvePublicKey | str | bytes | None, *, max_age_s: float | None = None) -> None:
        self.key = load_public_key(public_key) if isinstance(public_key, (str, bytes)) else public_key
        self.max_age_s = max_age_s

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise a 401 :class:`WebhookError` unless the body carries a valid signature."""
        if self.key is None:
            raise WebhookError(401, "no SendGrid verification key configured (--sendgrid-key)")
        sig = header(headers, SIGNATURE_HEADER)
        ts = header(headers, TIMESTAMP_HEADER)
        if not sig or not ts:
            raise WebhookError(401, f"missing {SIGNATURE_HEADER} / {TIMESTAMP_HEADER} header")
        try:
            raw_sig = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError(401, "signature is not base64") from None
        try:
            self.key.verify(raw_sig, ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise WebhookError(401, "bad SendGrid signature") from None
        if self.max_age_s is not None:
            try:
                age = time.time() - float(ts)
            except ValueError:
                raise WebhookError(401, f"bad signature timestamp {ts!r}") from None
            if abs(age) > self.max_age_s:
                raise WebhookError(401, f"signature timestamp {ts} is {age:.0f}s old (max {self.max_age_s:.0f}s)")

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Mapped:
        """Verify, parse and map one post."""
        self.verify(body, headers)
        return map_events(parse_json(body))


def map_events(payload: Any) -> Mapped:
    """The canonical events of a parsed SendGrid payload (a list of event objects)."""
    if not isinstance(payload, list):
        raise WebhookError(400, "a SendGrid Event Webhook body is a JSON array of events")
    out = Mapped()
    for i, ev in enumerate(payload):
        if not isinstance(ev, dict):
            out.item_errors.append(f"event {i}: not an object")
            continue
        kind = ev.get("event")
        type_ = TYPES.get(kind) if isinstance(kind, str) else None
        if type_ is None:
            if isinstance(kind, str) and kind:
                out.ignored += 1
            else:
                out.item_errors.append(f"event {i}: no 'event' field")
            continue
        try:
            out.events.append(map_event(ev, type_))
        except (ValueError, TypeError) as e:
            out.item_errors.append(f"event {i} ({kind}, sg_event_id {ev.get('sg_event_id')}): {e}")
    return out


def map_event(ev: dict, type_: str) -> EmailEvent:
    """One SendGrid event -> one canonical event (ValueError when unusable)."""
    kind = ev["event"]
    rcpt = recipient_fields(ev.get("email"))
    if not rcpt["recipient"]:
        raise ValueError("no 'email'")
    ts = to_ms(ev.get("timestamp"))
    sg_mid = str_or_none(ev.get("sg_message_id"))
    if sg_mid:
        m = _XMID.match(sg_mid)
        mid = f"sendgrid:{m.group(1) if m else sg_mid}"
    elif clean_id(ev.get("smtp-id")):
        mid = clean_id(ev.get("smtp-id"))
    elif ev.get("sg_event_id"):
        mid = f"sendgrid:{ev['sg_event_id']}"
    else:
        raise ValueError("no sg_message_id, smtp-id or sg_event_id")
    code = enh = reply = None
    bclass = breason = detail = None
    if type_ in ("deferred", "bounced", "delivered"):
        code, enh, reply = smtp_parts(ev.get("response") or ev.get("reason"), enhanced=ev.get("status"))
    if type_ == "deferred":
        bclass, breason = classify(code, enh, reply, ("soft", "transient"))
    elif type_ == "bounced":
        blocked = ev.get("type") == "blocked"
        fb = CLASSIFICATIONS.get(ev.get("bounce_classification") or "") or (("block", "blocked") if blocked else None)
        bclass, breason = classify(code, enh, reply, fb)
        detail = "blocked" if blocked else None
    elif type_ == "dropped":
        reply = str_or_none(ev.get("reason"))
        bclass, breason = next((v for rx, v in DROP_REASONS if reply and rx.search(reply)), ("unknown", "undefined"))
    elif type_ == "unsubscribed" and kind == "group_unsubscribe":
        detail = "group"
    tls = ev.get("tls")
    ip = str_or_none(ev.get("ip"))
    engagement = type_ in ("opened", "clicked")
    campaign = str_or_none(ev.get("campaign_id") or ev.get("marketing_campaign_id") or ev.get("singlesend_id")
                           or ev.get("category"))
    return EmailEvent(
        type=type_, ts=ts, message_id=mid, queue_id=sg_mid, event_id=str_or_none(ev.get("sg_event_id")),
        source="sendgrid", **rcpt, campaign_id=campaign,
        list_id=str_or_none(ev.get("asm_group_id")), account_id=str_or_none(ev.get("account_id")),
        sending_ip=None if engagement else ip, client_ip=ip if engagement else None,
        attempt=int_or_none(ev.get("attempt")), smtp_code=code, enhanced_code=enh, reply=reply,
        tls=bool(tls) if tls in (0, 1, True, False) else None,
        bounce_class=bclass, bounce_reason=breason, url=str_or_none(ev.get("url")),
        user_agent=str_or_none(ev.get("useragent")), detail=detail,
    )
