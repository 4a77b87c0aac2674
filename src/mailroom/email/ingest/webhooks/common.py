"""What the webhook mappers share: the rejection error, the result of a payload, and helpers
that turn provider fields into canonical event fields."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...bounces import domain_of, explain_bounce, mailbox_provider, rules
from ...events import EmailEvent
from ..base import iso_ms


class WebhookError(Exception):
    """A payload rejected as a whole: ``status`` is the HTTP answer (400 malformed, 401 not
    authentic, 413 too large), ``reason`` says why (it goes to the processing log)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Mapped:
    """What one accepted payload yields: the canonical events, the items that could not be
    mapped (each a reason, for the processing log; the rest of the payload still counts),
    how many items were of kinds with no canonical event, and an optional note for the answer."""

    events: list[EmailEvent] = field(default_factory=list)
    item_errors: list[str] = field(default_factory=list)
    ignored: int = 0
    note: str | None = None


def parse_json(body: bytes) -> Any:
    """The JSON of a body, or a 400 :class:`WebhookError`."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise WebhookError(400, f"malformed JSON: {e}") from None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header, case-insensitively (Starlette's headers already are; plain dicts too)."""
    v = headers.get(name)
    if v is None:
        low = name.lower()
        for k, val in headers.items():
            if k.lower() == low:
                return val
    return v


def to_ms(value: Any) -> int:
    """Epoch ms of a provider time: unix seconds (int, float or digits) or an ISO-8601 string."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"no time stamp: {value!r}")
    if isinstance(value, (int, float)):
        return int(round(float(value) * 1000))
    s = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return int(round(float(s) * 1000))
    return iso_ms(s)


def now_ms() -> int:
    return int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)


def clean_id(mid: Any) -> str | None:
    """A Message-ID without angle brackets and blanks, None when empty."""
    if not mid or not isinstance(mid, str):
        return None
    s = mid.strip().strip("<>").strip()
    return s or None


def lower_addr(addr: Any) -> str | None:
    """A recipient address, lower-cased, without ``Name <...>`` around it."""
    if not addr or not isinstance(addr, str):
        return None
    s = addr.strip()
    m = re.search(r"<([^<>]*)>", s)
    if m:
        s = m.group(1)
    return s.strip().lower() or None


_CODE = re.compile(r"^\s*(?:smtp;\s*)?([245]\d\d)(?:[ -]|$)", re.I)
_ENH = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


def smtp_parts(text: Any, code: Any = None, enhanced: Any = None) -> tuple[int | None, str | None, str | None]:
    """(basic code, enhanced code, reply text) from what a provider gives: a reply such as
    ``550 5.1.1 user unknown`` or ``smtp; 550 ...`` (DSN diagnostic code), and/or separate codes."""
    reply = str(text).strip() if text not in (None, "") else None
    if reply and reply.lower().startswith("smtp;"):
        reply = reply[5:].strip()
    c: int | None = None
    if isinstance(code, int) and not isinstance(code, bool) and 200 <= code <= 599:
        c = code
    elif isinstance(code, str) and code.strip().isdigit() and 200 <= int(code) <= 599:
        c = int(code)
    if c is None and reply:
        m = _CODE.match(reply)
        if m:
            c = int(m.group(1))
    e = None
    if isinstance(enhanced, str) and _ENH.fullmatch(enhanced.strip()):
        e = enhanced.strip()
    if e is None and reply:
        m = _ENH.search(reply[:40])
        if m:
            e = m.group(1)
    return c, e, reply


def classify(code: int | None, enhanced: str | None, reply: str | None,
             fallback: tuple[str, str] | None = None) -> tuple[str, str]:
    """(class, reason) through :mod:`...bounces`; ``fallback`` (the provider's own verdict) wins
    when the reply says nothing classifiable or only its basic code decided (a bare ``554``
    says less than a provider's "content" or "invalid address")."""
    if code is None and enhanced is None and not reply:
        return fallback or ("unknown", "undefined")
    cls, reason, rule_id = explain_bounce(code, enhanced, reply)
    if fallback and (cls == "unknown" or rule_id in _code_only_rules()):
        return fallback
    return cls, reason


def _code_only_rules() -> frozenset[str]:
    return frozenset(r.id for r in rules() if r.text is None and r.enhanced is None)


def recipient_fields(rcpt: Any) -> dict[str, Any]:
    """recipient, domain and mailbox provider of an address."""
    r = lower_addr(rcpt)
    d = domain_of(r) if r else None
    return {"recipient": r, "domain": d, "provider": mailbox_provider(d) if d else None}


def str_or_none(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, list):
        return str(v[0]) if v else None
    return str(v)


def int_or_none(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None
