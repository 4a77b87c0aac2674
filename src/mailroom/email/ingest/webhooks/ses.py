"""Amazon SES event notifications delivered by SNS -> canonical events.

The body is an SNS message (``Type`` SubscriptionConfirmation, Notification, ...); a
Notification's ``Message`` is the SES JSON (``eventType`` for configuration-set event
publishing, ``notificationType`` for identity notifications)::

    {"eventType": "Bounce",
     "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2017-08-05T00:41:02.669Z",
                "feedbackId": "...", "reportingMTA": "dsn; mta.example.com",
                "bouncedRecipients": [{"emailAddress": "r@example.com", "action": "failed", "status": "5.1.1",
                                       "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
     "mail": {"timestamp": "...", "source": "sender@example.com", "messageId": "EXAMPLE7c191be45-...",
              "destination": ["r@example.com"], "commonHeaders": {"messageId": "<...>", ...},
              "tags": {"ses:outgoing-ip": ["54.240.0.1"], ...}}}

Send -> accepted; Delivery -> delivered; Bounce -> bounced (``Suppressed``/
``OnAccountSuppressionList`` subtypes -> dropped: SES never tried); Complaint -> complained;
Open -> opened; Click -> clicked; DeliveryDelay -> deferred; Reject -> dropped (reject);
Rendering Failure -> dropped; Subscription (unsubscribe all) -> unsubscribed. One event per
recipient; Open/Click name no recipient, so theirs is the message's only destination if it has one.

The message id is the ``Message-ID`` header (``mail.commonHeaders.messageId``) when present,
else ``ses:<mail.messageId>``; ``queue_id`` is SES's message id.

A SubscriptionConfirmation is confirmed by visiting its ``SubscribeURL`` (same host rules as the
certificate) when ``confirm_subscriptions`` is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ...events import EmailEvent
from .common import (
    Mapped,
    WebhookError,
    classify,
    clean_id,
    lower_addr,
    parse_json,
    recipient_fields,
    smtp_parts,
    str_or_none,
    to_ms,
)
from .sns import SnsVerifier, urllib_fetch

#: bounce subtype -> (class, reason) when the diagnostic code says nothing classifiable
BOUNCE_SUBTYPES = {
    "NoEmail": ("hard", "user_unknown"), "MailboxFull": ("soft", "mailbox_full"),
    "MessageTooLarge": ("policy", "message_too_big"), "ContentRejected": ("block", "content_rejected"),
    "AttachmentRejected": ("block", "content_rejected"), "Suppressed": ("hard", "user_unknown"),
    "OnAccountSuppressionList": ("hard", "user_unknown"), "UnsubscribedRecipient": ("policy", "policy"),
}
DELAY_TYPES = {
    "InternalFailure": ("soft", "system_error"), "General": ("soft", "transient"), "MailboxFull": ("soft", "mailbox_full"),
    "SpamDetected": ("block", "content_rejected"), "RecipientServerError": ("soft", "system_error"),
    "IPFailure": ("block", "blocklisted"), "TransientCommunicationFailure": ("soft", "network_error"),
    "BYOIPHostNameLookupUnavailable": ("dns", "dns_failure"), "SendingDeferral": ("throttle", "rate_limited"),
}


class Ses:
    """Verifies SNS posts and maps the SES notifications they carry."""

    name = "ses"

    def __init__(self, verifier: SnsVerifier | None = None, *, confirm_subscriptions: bool = True,
                 confirm: Callable[[str], bytes] | None = None) -> None:
        self.verifier = verifier or SnsVerifier()
        self.confirm_subscriptions = confirm_subscriptions
        self.confirm = confirm or urllib_fetch
        self.confirmed: list[str] = []

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Mapped:
        """Parse and verify the SNS envelope, confirm a subscription or map a notification."""
        msg = parse_json(body)
        if not isinstance(msg, dict) or "Type" not in msg:
            raise WebhookError(400, "not an SNS message (a JSON object with Type, Message, Signature, ...)")
        self.verifier.verify(msg)
        kind = msg["Type"]
        if kind == "SubscriptionConfirmation":
            if not self.confirm_subscriptions:
                return Mapped(note=f"subscription to {msg.get('TopicArn')} not confirmed (confirmation off)")
            url = self.verifier.check_url(msg.get("SubscribeURL"), "SubscribeURL")
            try:
                self.confirm(url)
            except Exception as e:
                raise WebhookError(502, f"confirming the subscription at {url} failed: {type(e).__name__}: {e}") from None
            self.confirmed.append(str(msg.get("TopicArn")))
            return Mapped(note=f"subscribed to {msg.get('TopicArn')}")
        if kind == "UnsubscribeConfirmation":
            return Mapped(note=f"unsubscribed from {msg.get('TopicArn')}")
        try:
            ses = orjson.loads(msg.get("Message") or "")
        except orjson.JSONDecodeError as e:
            raise WebhookError(400, f"the SNS Message is not SES JSON: {e}") from None
        if not isinstance(ses, dict):
            raise WebhookError(400, "the SNS Message is not an SES notification object")
        return map_notification(ses, event_id=str_or_none(msg.get("MessageId")))


def _dsn_host(v: Any) -> str | None:
    """``dsn; mta.example.com`` -> ``mta.example.com``."""
    s = str_or_none(v)
    return s.split(";", 1)[-1].strip() or None if s else None


def _addr_list(v: Any) -> list[str]:
    return [a for a in v if isinstance(a, str)] if isinstance(v, list) else []


def map_notification(n: dict, event_id: str | None = None) -> Mapped:
    """The canonical events of one SES notification (event publishing or identity notification)."""
    out = Mapped()
    kind = n.get("eventType") or n.get("notificationType")
    mail = n.get("mail")
    if not isinstance(kind, str) or not isinstance(mail, dict):
        raise WebhookError(400, "an SES notification needs eventType/notificationType and mail")
    hdrs = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    ses_id = str_or_none(mail.get("messageId"))
    mid = clean_id(hdrs.get("messageId")) or (f"ses:{ses_id}" if ses_id else None)
    if not mid:
        raise WebhookError(400, "the SES mail object has no messageId")
    tags = mail.get("tags") if isinstance(mail.get("tags"), dict) else {}
    base = {
        "message_id": mid, "queue_id": ses_id, "source": "ses", "sender": lower_addr(mail.get("source")),
        "sending_ip": str_or_none(tags.get("ses:outgoing-ip")),
        "campaign_id": str_or_none(tags.get("campaign") or tags.get("campaign_id") or tags.get("ses:configuration-set")),
        "account_id": str_or_none(mail.get("sendingAccountId")),
    }
    destinations = _addr_list(mail.get("destination"))

    def add(type_: str, rcpt: Any, ts_value: Any, eid: str | None = None, **kw: Any) -> None:
        try:
            ts = to_ms(ts_value if ts_value is not None else mail.get("timestamp"))
            out.events.append(EmailEvent(type=type_, ts=ts, event_id=eid, **base, **recipient_fields(rcpt), **kw))
        except (ValueError, TypeError) as e:
            out.item_errors.append(f"SES {kind} for {rcpt}: {e}")

    def obj(name: str) -> dict:
        v = n.get(name)
        return v if isinstance(v, dict) else {}

    if kind == "Send":
        for r in destinations:
            add("accepted", r, mail.get("timestamp"), event_id)
    elif kind == "Delivery":
        d = obj("delivery")
        code, enh, reply = smtp_parts(d.get("smtpResponse"))
        for r in _addr_list(d.get("recipients")) or destinations:
            add("delivered", r, d.get("timestamp"), event_id, smtp_code=code, enhanced_code=enh, reply=reply,
                mta=str_or_none(d.get("reportingMTA")), remote_ip=str_or_none(d.get("remoteMtaIp")),
                latency_ms=d.get("processingTimeMillis") if isinstance(d.get("processingTimeMillis"), int) else None)
    elif kind == "Bounce":
        b = obj("bounce")
        btype, sub = b.get("bounceType"), b.get("bounceSubType")
        suppressed = sub in ("Suppressed", "OnAccountSuppressionList")
        fb = BOUNCE_SUBTYPES.get(sub or "") or {"Permanent": ("hard", "undefined"), "Transient": ("soft", "transient")}.get(btype or "")
        recips = [r for r in b.get("bouncedRecipients") or [] if isinstance(r, dict)]
        if not recips:
            out.item_errors.append("SES Bounce without bouncedRecipients")
        for r in recips:
            code, enh, reply = smtp_parts(r.get("diagnosticCode"), enhanced=r.get("status"))
            cls, reason = classify(code, enh, reply, fb)
            add("dropped" if suppressed else "bounced", r.get("emailAddress"), b.get("timestamp"), b.get("feedbackId") or event_id,
                smtp_code=code, enhanced_code=enh, reply=reply or str_or_none(sub), bounce_class=cls, bounce_reason=reason,
                remote_host=_dsn_host(b.get("reportingMTA")), detail="suppressed" if suppressed else None)
    elif kind == "Complaint":
        c = obj("complaint")
        for r in [r for r in c.get("complainedRecipients") or [] if isinstance(r, dict)]:
            add("complained", r.get("emailAddress"), c.get("timestamp"), c.get("feedbackId") or event_id,
                user_agent=str_or_none(c.get("userAgent")), detail=str_or_none(c.get("complaintFeedbackType")))
    elif kind in ("Open", "Click"):
        o = obj(kind.lower())
        rcpt = destinations[0] if len(destinations) == 1 else None
        add("opened" if kind == "Open" else "clicked", rcpt, o.get("timestamp"), event_id,
            client_ip=str_or_none(o.get("ipAddress")), user_agent=str_or_none(o.get("userAgent")), url=str_or_none(o.get("link")))
    elif kind == "DeliveryDelay":
        d = obj("deliveryDelay")
        fb = DELAY_TYPES.get(d.get("delayType") or "", ("soft", "transient"))
        for r in [r for r in d.get("delayedRecipients") or [] if isinstance(r, dict)]:
            code, enh, reply = smtp_parts(r.get("diagnosticCode"), enhanced=r.get("status"))
            cls, reason = classify(code, enh, reply, fb)
            add("deferred", r.get("emailAddress"), d.get("timestamp"), event_id, smtp_code=code, enhanced_code=enh,
                reply=reply or str_or_none(d.get("delayType")), bounce_class=cls, bounce_reason=reason,
                remote_host=_dsn_host(d.get("reportingMTA")))
    elif kind == "Reject":
        for r in destinations:
            add("dropped", r, mail.get("timestamp"), event_id, reply=str_or_none(obj("reject").get("reason")),
                bounce_class="block", bounce_reason="content_rejected", detail="reject")
    elif kind == "Rendering Failure":
        f = obj("failure")
        for r in destinations:
            add("dropped", r, mail.get("timestamp"), event_id, reply=str_or_none(f.get("errorMessage")),
                detail="rendering_failure")
    elif kind == "Subscription":
        s = obj("subscription")
        prefs = s.get("newTopicPreferences") if isinstance(s.get("newTopicPreferences"), dict) else {}
        if prefs.get("unsubscribeAll"):
            for r in destinations:
                add("unsubscribed", r, s.get("timestamp"), event_id, list_id=str_or_none(s.get("contactList")))
        else:
            out.ignored += 1
    else:
        out.ignored += 1
    return out
