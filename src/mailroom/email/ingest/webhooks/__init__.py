"""ESP webhooks -> canonical email events (:mod:`mailroom.email.events`).

One module per provider maps its payloads and checks that they are authentic:

- :mod:`.sendgrid`: SendGrid Event Webhook (ECDSA-signed JSON arrays)
- :mod:`.mailgun`: Mailgun webhooks (``event-data`` with an HMAC-SHA256 ``signature``)
- :mod:`.ses`: Amazon SES notifications through SNS (signature checked by :mod:`.sns`)
- :mod:`.postmark`: Postmark webhooks (HTTP Basic auth)

Each provider object has ``handle(body, headers) -> Mapped`` (events, per-item errors, ignored
count) and raises :class:`WebhookError` (status 400/401, reason) for a payload rejected whole.
:func:`.app.create_app` serves them over HTTP (``mailroom ingest webhooks``).

    from mailroom.email.ingest.webhooks import Mailgun
    mapped = Mailgun(signing_key).handle(body, headers)
"""

from __future__ import annotations

from .common import Mapped, WebhookError
from .mailgun import Mailgun
from .postmark import Postmark
from .sendgrid import SendGrid
from .ses import Ses
from .sns import SnsVerifier

__all__ = ["Mailgun", "Mapped", "Postmark", "SendGrid", "Ses", "SnsVerifier", "WebhookError"]
