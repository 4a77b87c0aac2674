"""Postmark webhooks -> canonical events.

One post is one record, told apart by ``RecordType``::

    {"RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce",
     "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "MessageStream": "outbound", "Tag": "welcome",
     "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
     "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
     "Email": "john@example.com", "From": "sender@example.com", "BouncedAt": "2019-11-05T16:33:54.9070259Z", ...}

Delivery -> delivered; Bounce -> bounced, deferred (``Transient``: Postmark retries), dropped
(the address was inactive/suppressed: ``ManuallyDeactivated``, ``Unconfirmed``,
``TemplateRenderingFailed``, ``SMTPApiError``), complained (``SpamComplaint``), unsubscribed
(``Unsubscribe``), ignored (auto-replies, address changes, ...); SpamComplaint -> complained;
Open -> opened; Click -> clicked; SubscriptionChange -> unsubscribed when sending was suppressed
by the recipient or by hand (suppressions caused by a bounce or complaint were already reported
by those records, and a reactivation has no canonical event: both are ignored).

The message id is ``postmark:<MessageID>`` (Postmark's id is on every record, the Message-ID
header on none). Authentication: HTTP Basic credentials set in the webhook URL.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

from ...events import EmailEvent
from .common import (
    Mapped,
    WebhookError,
    classify,
    header,
    lower_addr,
    parse_json,
    recipient_fields,
    smtp_parts,
    str_or_none,
    to_ms,
)

#: bounce Type -> (canonical type, class, reason); class/reason are the fallback when Details says nothing
BOUNCE_TYPES: dict[str, tuple[str | None, str | None, str | None]] = {
    "HardBounce": ("bounced", "hard", "user_unknown"), "SoftBounce": ("bounced", "soft", "transient"),
    "Transient": ("deferred", "soft", "transient"), "DnsError": ("bounced", "dns", "dns_failure"),
    "BadEmailAddress": ("bounced", "hard", "bad_address"), "Blocked": ("bounced", "block", "blocked"),
    "SpamNotification": ("bounced", "block", "content_rejected"), "VirusNotification": ("bounced", "block", "content_rejected"),
    "DMARCPolicy": ("bounced", "policy", "policy"), "Unknown": ("bounced", "unknown", "undefined"),
    "ChallengeVerification": ("deferred", "policy", "policy"),
    "ManuallyDeactivated": ("dropped", "policy", "policy"), "Unconfirmed": ("dropped", "policy", "policy"),
    "SMTPApiError": ("dropped", "unknown", "undefined"), "TemplateRenderingFailed": ("dropped", "unknown", "undefined"),
    "SpamComplaint": ("complained", None, None), "Unsubscribe": ("unsubscribed", None, None),
    "AutoResponder": (None, None, None), "AddressChange": (None, None, None), "Subscribe": (None, None, None),
    "OpenRelayTest": (None, None, None), "InboundError": (None, None, None),
}
TIME_FIELDS = {"Delivery": "DeliveredAt", "Bounce": "BouncedAt", "SpamComplaint": "BouncedAt", "Open": "ReceivedAt",
               "Click": "ReceivedAt", "SubscriptionChange": "ChangedAt"}


class Postmark:
    """Checks Basic auth and maps Postmark webhook posts. ``credentials`` is ``user:password``."""

    name = "postmark"

    def __init__(self, credentials: str | None) -> None:
        self.credentials = credentials.encode() if credentials else None

    def verify(self, headers: Mapping[str, str]) -> None:
        if self.credentials is None:
            raise WebhookError(401, "no Postmark credentials configured (--postmark-user user:password)")
        auth = header(headers, "Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic" or not value:
            raise WebhookError(401, "missing Basic Authorization")
        try:
            got = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError(401, "Authorization is not base64") from None
        if not hmac.compare_digest(got, self.credentials):
            raise WebhookError(401, "bad Postmark credentials")

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Mapped:
        """Authenticate, parse and map one post."""
        self.verify(headers)
        rec = parse_json(body)
        if not isinstance(rec, dict) or not isinstance(rec.get("RecordType"), str):
            raise WebhookError(400, "a Postmark webhook body is a JSON object with a RecordType")
        out = Mapped()
        try:
            ev = map_record(rec)
        except (ValueError, TypeError) as e:
            out.item_errors.append(f"{rec.get('RecordType')} record for message {rec.get('MessageID')}: {e}")
            return out
        if ev is None:
            out.ignored += 1
        else:
            out.events.append(ev)
        return out


def map_record(r: dict) -> EmailEvent | None:
    """One Postmark record -> a canonical event, None for records with no canonical meaning."""
    kind = r["RecordType"]
    if kind not in TIME_FIELDS:
        return None
    mid = str_or_none(r.get("MessageID"))
    if not mid:
        raise ValueError("no MessageID")
    rcpt = recipient_fields(r.get("Recipient") or r.get("Email"))
    if not rcpt["recipient"]:
        raise ValueError("no Recipient/Email")
    ts = to_ms(r.get(TIME_FIELDS[kind]))
    meta = r.get("Metadata") if isinstance(r.get("Metadata"), dict) else {}
    kw: dict[str, Any] = {}
    if kind == "Delivery":
        type_ = "delivered"
        code, enh, reply = smtp_parts(r.get("Details"))
        kw.update(smtp_code=code, enhanced_code=enh, reply=reply)
    elif kind in ("Bounce", "SpamComplaint"):
        btype = str(r.get("Type") or ("SpamComplaint" if kind == "SpamComplaint" else "Unknown"))
        type_, fcls, freason = BOUNCE_TYPES.get(btype, ("bounced", "unknown", "undefined"))
        if type_ is None:
            return None
        if type_ in ("bounced", "deferred", "dropped"):
            code, enh, reply = smtp_parts(r.get("Details"))
            fb = (fcls, freason) if fcls else None
            cls, reason = classify(code, enh, reply, fb) if type_ != "dropped" else (fcls, freason)
            if btype == "Blocked" and cls == "unknown":
                cls, reason = "block", "blocked"
            kw.update(smtp_code=code, enhanced_code=enh, reply=reply or str_or_none(r.get("Description")),
                      bounce_class=cls, bounce_reason=reason,
                      detail="suppressed" if type_ == "dropped" else None)
        kw["event_id"] = str_or_none(r.get("ID"))
        kw["sender"] = lower_addr(r.get("From"))
    elif kind == "Open":
        type_ = "opened"
        kw.update(user_agent=str_or_none(r.get("UserAgent")), detail=None if r.get("FirstOpen", True) else "repeat")
    elif kind == "Click":
        type_ = "clicked"
        kw.update(user_agent=str_or_none(r.get("UserAgent")), url=str_or_none(r.get("OriginalLink")))
    else:  # SubscriptionChange
        if not r.get("SuppressSending") or r.get("SuppressionReason") not in ("ManualSuppression", None):
            return None
        type_ = "unsubscribed"
        kw["detail"] = str_or_none(r.get("Origin"))
    return EmailEvent(
        type=type_, ts=ts, message_id=f"postmark:{mid}", queue_id=mid, source="postmark", **rcpt,
        campaign_id=str_or_none(meta.get("campaign_id") or r.get("Tag")), list_id=str_or_none(r.get("MessageStream")),
        account_id=str_or_none(r.get("ServerID")), **kw,
    )
