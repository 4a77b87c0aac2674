"""Mailgun webhooks (the JSON ``event-data`` form) -> canonical events.

One post is one event::

    {"signature": {"timestamp": "1529006854", "token": "a8ce0edb...", "signature": "d2271d12..."},
     "event-data": {"event": "failed", "severity": "permanent", "reason": "bounce", "id": "G9Bn5sl1TC6nu79C8C0bwg",
                    "timestamp": 1521233195.375624, "recipient": "alice@example.com", "recipient-domain": "example.com",
                    "envelope": {"sender": "bob@mg.example.org", "sending-ip": "209.61.154.250", "targets": "..."},
                    "message": {"headers": {"message-id": "20130503182626.18666.16540@mg.example.org", ...}, "size": 111},
                    "delivery-status": {"code": 550, "enhanced-code": "5.1.1", "message": "...", "description": "...",
                                        "attempt-no": 1, "mx-host": "mx.example.com", "tls": true},
                    "tags": [...], "campaigns": [...], "user-variables": {...}}}

``accepted``; ``delivered``; ``failed`` -> deferred (severity temporary), bounced (permanent),
dropped (Mailgun did not try: reason ``suppress-*``), expired (reason ``old``); ``rejected`` ->
dropped (reject); ``opened``; ``clicked``; ``complained``; ``unsubscribed``; others are ignored.

Authenticity: ``signature.signature`` is the hex HMAC-SHA256 of ``timestamp + token`` under the
webhook signing key.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from ...events import EmailEvent
from .common import (
    Mapped,
    WebhookError,
    classify,
    clean_id,
    int_or_none,
    lower_addr,
    parse_json,
    recipient_fields,
    smtp_parts,
    str_or_none,
    to_ms,
)

TYPES = {
    "accepted": "accepted", "delivered": "delivered", "failed": "bounced", "rejected": "dropped",
    "opened": "opened", "clicked": "clicked", "complained": "complained", "unsubscribed": "unsubscribed",
}
#: Mailgun failure reasons -> (class, reason) when the reply says nothing classifiable
REASONS = {
    "suppress-bounce": ("hard", "user_unknown"), "suppress-unsubscribe": ("policy", "policy"),
    "suppress-complaint": ("policy", "policy"), "espblock": ("block", "blocked"), "old": ("expired", "expired"),
    "greylisted": ("soft", "greylisted"), "blacklisted": ("block", "blocklisted"), "blocklisted": ("block", "blocklisted"),
}


class Mailgun:
    """Verifies and maps Mailgun webhook posts."""

    name = "mailgun"

    def __init__(self, signing_key: str | None, *, max_age_s: float | None = None) -> None:
        self.key = signing_key.encode() if signing_key else None
        self.max_age_s = max_age_s

    def verify(self, payload: dict) -> None:
        """Raise a 401 :class:`WebhookError` unless ``signature`` is valid."""
        if self.key is None:
            raise WebhookError(401, "no Mailgun webhook signing key configured (--mailgun-signing-key)")
        sig = payload.get("signature")
        if not isinstance(sig, dict) or not all(isinstance(sig.get(k), (str, int)) for k in ("timestamp", "token", "signature")):
            raise WebhookError(401, "missing signature {timestamp, token, signature}")
        ts, token = str(sig["timestamp"]), str(sig["token"])
        want = hmac.new(self.key, (ts + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, str(sig["signature"]).lower()):
            raise WebhookError(401, "bad Mailgun signature")
        if self.max_age_s is not None:
            try:
                age = time.time() - float(ts)
            except ValueError:
                raise WebhookError(401, f"bad signature timestamp {ts!r}") from None
            if abs(age) > self.max_age_s:
                raise WebhookError(401, f"signature timestamp {ts} is {age:.0f}s old (max {self.max_age_s:.0f}s)")

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Mapped:
        """Parse, verify and map one post."""
        payload = parse_json(body)
        if not isinstance(payload, dict):
            raise WebhookError(400, "a Mailgun webhook body is a JSON object with signature and event-data")
        self.verify(payload)
        data = payload.get("event-data")
        if not isinstance(data, dict):
            raise WebhookError(400, "no event-data object")
        out = Mapped()
        type_ = TYPES.get(data.get("event"))  # type: ignore[arg-type]
        if type_ is None:
            if isinstance(data.get("event"), str):
                out.ignored += 1
            else:
                out.item_errors.append("event-data has no 'event'")
            return out
        try:
            out.events.append(map_event(data, type_))
        except (ValueError, TypeError) as e:
            out.item_errors.append(f"{data.get('event')} event {data.get('id')}: {e}")
        return out


def map_event(d: dict, type_: str) -> EmailEvent:
    """One Mailgun event-data object -> one canonical event (ValueError when unusable)."""
    rcpt = recipient_fields(d.get("recipient"))
    if not rcpt["recipient"]:
        raise ValueError("no recipient")
    ts = to_ms(d.get("timestamp"))
    msg = d.get("message") if isinstance(d.get("message"), dict) else {}
    hdrs = msg.get("headers") if isinstance(msg.get("headers"), dict) else {}
    mid = clean_id(hdrs.get("message-id") or hdrs.get("Message-Id"))
    if not mid:
        storage = d.get("storage") if isinstance(d.get("storage"), dict) else {}
        key = storage.get("key") or d.get("id")
        if not key:
            raise ValueError("no message-id header, storage key or event id")
        mid = f"mailgun:{key}"
    env = d.get("envelope") if isinstance(d.get("envelope"), dict) else {}
    ds = d.get("delivery-status") if isinstance(d.get("delivery-status"), dict) else {}
    reason = str_or_none(d.get("reason"))
    code = enh = reply = None
    bclass = breason = detail = None
    if type_ in ("delivered", "bounced", "dropped"):
        text = ds.get("message") or ds.get("description") or None
        code, enh, reply = smtp_parts(text, ds.get("code"), ds.get("enhanced-code"))
        if reply and ds.get("description") and ds.get("message") and ds["description"] not in reply:
            reply = f"{reply} {ds['description']}"
    if d.get("event") == "failed":
        severity = d.get("severity")
        if reason and reason.startswith("suppress-"):
            type_, detail = "dropped", "suppressed"
        elif reason == "old":
            type_ = "expired"
        elif severity == "temporary":
            type_ = "deferred"
        fb = REASONS.get(reason or "")
        if type_ == "expired":
            bclass, breason = "expired", "expired"
        elif type_ == "dropped":
            bclass, breason = fb or ("unknown", "undefined")
            code = code if code and code < 600 else None
        else:
            bclass, breason = classify(code, enh, reply, fb or (("soft", "transient") if type_ == "deferred" else None))
    elif type_ == "dropped":  # rejected: Mailgun refused the send request itself
        detail = "reject"
        rej = d.get("reject") if isinstance(d.get("reject"), dict) else {}
        reply = str_or_none(rej.get("reason") or reason)
    client = d.get("client-info") if isinstance(d.get("client-info"), dict) else {}
    engagement = type_ in ("opened", "clicked", "complained", "unsubscribed")
    uv = d.get("user-variables") if isinstance(d.get("user-variables"), dict) else {}
    campaigns = d.get("campaigns") or []
    campaign = uv.get("campaign_id") or (campaigns[0].get("id") if campaigns and isinstance(campaigns[0], dict) else None) \
        or str_or_none(d.get("tags"))
    tls = ds.get("tls")
    return EmailEvent(
        type=type_, ts=ts, message_id=mid, queue_id=str_or_none((d.get("storage") or {}).get("key")) if isinstance(d.get("storage"), dict) else None,
        event_id=str_or_none(d.get("id")), source="mailgun", sender=lower_addr(env.get("sender")), **rcpt,
        campaign_id=str_or_none(campaign), account_id=str_or_none(uv.get("account_id")),
        sending_ip=str_or_none(env.get("sending-ip")), remote_host=str_or_none(ds.get("mx-host")),
        client_ip=str_or_none(d.get("ip")) if engagement else None,
        attempt=int_or_none(ds.get("attempt-no")), smtp_code=code if code and code < 600 else None,
        enhanced_code=enh, reply=reply, tls=tls if isinstance(tls, bool) else None,
        size=int_or_none(msg.get("size")), bounce_class=bclass, bounce_reason=breason,
        url=str_or_none(d.get("url")), user_agent=str_or_none(client.get("user-agent")), detail=detail,
    )
