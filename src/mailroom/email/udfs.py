"""The email functions as SQL UDFs: CLASSIFY_BOUNCE, BOUNCE_CLASS, BOUNCE_REASON,
MAILBOX_PROVIDER, DOMAIN_OF.

    from mailroom.functions import builtin_registry
    from mailroom.email.udfs import register
    reg = register(builtin_registry())         # or: mailroom run --udf-dir <UDF_DIR> ...

    SELECT DOMAIN_OF(recipient) AS domain, MAILBOX_PROVIDER(remote_host) AS provider,
           CLASSIFY_BOUNCE(smtp_code, enhanced_code, reply)->CLASS AS bounce_class,
           BOUNCE_REASON(smtp_code, enhanced_code, reply) AS reason
    FROM email_events EMIT CHANGES;

Arguments may be NULL: a missing code is read from the reply text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mailroom.functions import FunctionRegistry, udf

from .bounces import classify_bounce, domain_of, mailbox_provider

#: a folder holding one UDF file that declares these functions, for ``load_folder`` / ``mailroom run --udf-dir``
UDF_DIR = Path(__file__).parent / "udf"
NAMES = ("CLASSIFY_BOUNCE", "BOUNCE_CLASS", "BOUNCE_REASON", "MAILBOX_PROVIDER", "DOMAIN_OF")
_META = {"author": "mailroom email", "version": "1.0"}


def _classify(code: Optional[int], enhanced: Optional[str], text: Optional[str]) -> dict:
    """STRUCT<CLASS, REASON> of an SMTP reply."""
    if code is None and not enhanced and not text:
        return None  # type: ignore[return-value]
    c, r = classify_bounce(code, enhanced, text)
    return {"CLASS": c, "REASON": r}


def _bounce_class(code: Optional[int], enhanced: Optional[str], text: Optional[str]) -> Optional[str]:
    """hard, soft, block, throttle, policy, dns, expired or unknown."""
    if code is None and not enhanced and not text:
        return None
    return classify_bounce(code, enhanced, text)[0]


def _bounce_reason(code: Optional[int], enhanced: Optional[str], text: Optional[str]) -> Optional[str]:
    """user_unknown, mailbox_full, blocklisted, rate_limited, ... (see mailroom.email.bounces)."""
    if code is None and not enhanced and not text:
        return None
    return classify_bounce(code, enhanced, text)[1]


def _mailbox_provider(domain_or_mx: str) -> str:
    """gmail, microsoft, yahoo, apple, ... or other, of a domain, address or MX host."""
    return mailbox_provider(domain_or_mx)


def _domain_of(address: str) -> Optional[str]:
    """The lower-cased domain of an e-mail address (NULL when it has none)."""
    return domain_of(address)


def register(registry: FunctionRegistry | None = None) -> FunctionRegistry | None:
    """Declare the email UDFs into ``registry``; with None, into whatever a loader is
    collecting (``load_folder``, ``load_entry_points``) or else the default registry."""
    kw = dict(registry=registry, **_META)
    for sql_type in ("BIGINT",):  # INT widens to BIGINT; one overload keeps NULL literals unambiguous
        udf(name="CLASSIFY_BOUNCE", sql_types=[sql_type, "STRING", "STRING"], returns="STRUCT<CLASS STRING, REASON STRING>",
            description="Bounce class and reason of an SMTP reply (code, enhanced code, text)", **kw)(_classify)
        udf(name="BOUNCE_CLASS", sql_types=[sql_type, "STRING", "STRING"], returns="STRING",
            description="Bounce class of an SMTP reply: hard, soft, block, throttle, policy, dns, expired, unknown", **kw)(_bounce_class)
        udf(name="BOUNCE_REASON", sql_types=[sql_type, "STRING", "STRING"], returns="STRING",
            description="Bounce reason of an SMTP reply: user_unknown, mailbox_full, blocklisted, rate_limited, ...", **kw)(_bounce_reason)
    udf(name="MAILBOX_PROVIDER", description="Mailbox provider of a domain, address or MX host", **kw)(_mailbox_provider)
    udf(name="DOMAIN_OF", description="Domain of an e-mail address", **kw)(_domain_of)
    return registry
