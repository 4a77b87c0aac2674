"""Bounce classification, mailbox providers and address helpers (plain functions; the SQL UDFs
in :mod:`mailroom.email.udfs` wrap them).

    classify_bounce(550, "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist")
        -> ("hard", "user_unknown")
    mailbox_provider("gmail-smtp-in.l.google.com") -> "gmail"
    domain_of("Jane <Jane@Example.COM>") -> "example.com"

The rules are data (:mod:`mailroom.email.bounce_rules`): operators add their own, ahead of the
defaults, from a JSON file (a list of rule objects) with :func:`load_rules`, or by naming files
in the environment variable ``MAILROOM_BOUNCE_RULES`` (``os.pathsep``-separated), read on first use.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .bounce_rules import RULES as DEFAULT_RULES

CLASSES: tuple[str, ...] = ("hard", "soft", "block", "throttle", "policy", "dns", "expired", "unknown")
REASONS: tuple[str, ...] = (
    "user_unknown", "mailbox_full", "mailbox_disabled", "bad_address", "blocklisted", "blocked", "content_rejected",
    "rate_limited", "greylisted", "auth_failed", "policy", "relay_denied", "message_too_big", "dns_failure",
    "network_error", "expired", "system_error", "transient", "undefined", "not_a_bounce",
)

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"^\s*([245]\d\d)(?:[ -]|$)")


@dataclass(frozen=True)
class Rule:
    id: str
    cls: str
    reason: str
    code: re.Pattern | None = None
    enhanced: re.Pattern | None = None
    text: re.Pattern | None = None

    @classmethod
    def from_dict(cls, d: dict) -> Rule:
        unknown = set(d) - {"id", "class", "reason", "code", "enhanced", "text", "comment"}
        if unknown:
            raise ValueError(f"bounce rule {d.get('id', d)!r}: unknown keys {sorted(unknown)}")
        if d.get("class") not in CLASSES:
            raise ValueError(f"bounce rule {d.get('id', d)!r}: class must be one of {', '.join(CLASSES)}")
        if not d.get("reason"):
            raise ValueError(f"bounce rule {d.get('id', d)!r}: needs a reason")
        if not any(d.get(k) for k in ("code", "enhanced", "text")):
            raise ValueError(f"bounce rule {d.get('id', d)!r}: needs at least one of code, enhanced, text")
        return cls(
            id=str(d.get("id", "")), cls=d["class"], reason=d["reason"],
            code=re.compile(d["code"]) if d.get("code") else None,
            enhanced=re.compile(d["enhanced"]) if d.get("enhanced") else None,
            text=re.compile(d["text"], re.IGNORECASE) if d.get("text") else None,
        )

    def matches(self, code: str, enhanced: str, text: str) -> bool:
        if self.code is not None and not (code and self.code.fullmatch(code)):
            return False
        if self.enhanced is not None and not (enhanced and self.enhanced.fullmatch(enhanced)):
            return False
        if self.text is not None and not (text and self.text.search(text)):
            return False
        return True


_lock = threading.Lock()
_operator_rules: list[Rule] = []
_default_rules: list[Rule] = [Rule.from_dict(d) for d in DEFAULT_RULES]
_env_loaded = False


def load_rules(path: str | Path) -> int:
    """Add the rules of a JSON file (a list of rule objects, see :mod:`bounce_rules`) ahead of
    those already loaded; returns how many. Raises ValueError on a malformed rule."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict):
        data = data.get("rules", [])
    return add_rules(data)


def add_rules(rules: list[dict]) -> int:
    """Add rules (dicts) ahead of the existing ones (later additions win over earlier ones)."""
    parsed = [Rule.from_dict(d) for d in rules]
    with _lock:
        _operator_rules[:0] = parsed
    _classify_cached.cache_clear()
    return len(parsed)


def reset_rules() -> None:
    """Drop the operator rules (tests)."""
    global _env_loaded
    with _lock:
        _operator_rules.clear()
        _env_loaded = True
    _classify_cached.cache_clear()


def _load_env() -> None:
    global _env_loaded
    if _env_loaded:
        return
    _env_loaded = True
    for p in filter(None, os.environ.get("MAILROOM_BOUNCE_RULES", "").split(os.pathsep)):
        load_rules(p)


def rules() -> list[Rule]:
    """The rules in the order they are tried."""
    _load_env()
    return [*_operator_rules, *_default_rules]


def split_reply(code: int | str | None, enhanced: str | None, text: str | None) -> tuple[str, str, str]:
    """Normalize (basic code, enhanced code, text), taking missing codes from the text."""
    text = (text or "").strip()
    c = str(code).strip() if code not in (None, "", 0) else ""
    if not c and text:
        m = _BASIC.match(text)
        if m:
            c = m.group(1)
    e = (enhanced or "").strip()
    if not e and text:
        m = _ENHANCED.search(text)
        if m:
            e = m.group(0)
    return c, e, text


def explain_bounce(code: int | str | None, enhanced: str | None = None, text: str | None = None) -> tuple[str, str, str]:
    """(class, reason, id of the rule that decided)."""
    _load_env()
    return _classify_cached(*split_reply(code, enhanced, text))


@lru_cache(maxsize=65536)
def _classify_cached(c: str, e: str, text: str) -> tuple[str, str, str]:
    if c[:1] == "2" or (not c and e[:1] == "2"):
        return "unknown", "not_a_bounce", "2xx"
    if not (c or e or text):
        return "unknown", "undefined", ""
    temporary = c[:1] == "4" or (not c and e[:1] == "4")
    for r in rules():
        if r.matches(c, e, text):
            cls = r.cls
            if temporary and cls == "hard":
                cls = "soft"  # a 4xx is never a permanent failure, whatever the text says
            return cls, r.reason, r.id
    return "unknown", "undefined", ""


def classify_bounce(code: int | str | None, enhanced: str | None = None, text: str | None = None) -> tuple[str, str]:
    """(class, reason) of an SMTP reply: basic code (RFC 5321), enhanced code (RFC 3463) and
    text together; codes missing from the arguments are taken from the text."""
    cls, reason, _ = explain_bounce(code, enhanced, text)
    return cls, reason


# --- mailbox providers ------------------------------------------------------------------------------

#: provider -> regexes over a recipient domain or an MX / relay host name (full match, lower case)
PROVIDERS: dict[str, tuple[str, ...]] = {
    "gmail": (r"gmail\.com", r"googlemail\.com", r"(.+\.)?google\.com", r"(.+\.)?googlemail\.com", r".+\.gmail\.com", r"(.+\.)?1e100\.net"),
    "microsoft": (r"(.+\.)?(outlook|hotmail|live|msn|windowslive|passport)\.[a-z.]+", r"(.+\.)?outlook\.com", r".+\.protection\.outlook\.com",
                  r"(.+\.)?hotmail\.com", r"(.+\.)?olc\.protection\.outlook\.com", r"(.+\.)?microsoft\.com"),
    "yahoo": (r"(.+\.)?yahoo\.[a-z.]+", r"(ymail|rocketmail|aol|aim|verizon|att|sbcglobal|bellsouth|frontier|currently)\.(com|net)",
              r"(.+\.)?yahoodns\.net", r"(.+\.)?aol\.com", r"(.+\.)?yahoo\.net", r"(.+\.)?yahoo\.com"),
    "apple": (r"(icloud|me|mac)\.com", r"(.+\.)?mail\.icloud\.com", r"(.+\.)?icloud\.com", r"(.+\.)?apple\.com"),
    "comcast": (r"comcast\.net", r"(.+\.)?comcast\.net"),
    "gmx": (r"(gmx|web)\.(de|net|com|at|ch)", r"(.+\.)?(gmx|web)\.(de|net)", r"(.+\.)?kundenserver\.de"),
    "yandex": (r"(.+\.)?yandex\.[a-z.]+", r"ya\.ru"),
    "mailru": (r"(mail|inbox|list|bk)\.ru", r"(.+\.)?mail\.ru"),
    "proton": (r"proton(mail)?\.(me|com|ch)", r"pm\.me", r"(.+\.)?protonmail\.ch"),
    "zoho": (r"(.+\.)?zoho(mail)?\.[a-z.]+",),
    "fastmail": (r"fastmail\.[a-z.]+", r"(.+\.)?messagingengine\.com"),
    "orange": (r"(orange|wanadoo)\.fr", r"(.+\.)?orange\.fr"),
    "tencent": (r"(qq|foxmail)\.com", r"(.+\.)?qq\.com"),
    "netease": (r"(163|126|yeah)\.(com|net)", r"(.+\.)?(163|126)\.com", r"(.+\.)?netease\.com"),
    "proofpoint": (r"(.+\.)?pphosted\.com", r"(.+\.)?ppe-hosted\.com"),
    "mimecast": (r"(.+\.)?mimecast\.com",),
}
_PROVIDER_RE = [(name, re.compile("|".join(f"(?:{p})" for p in pats))) for name, pats in PROVIDERS.items()]
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


@lru_cache(maxsize=65536)
def mailbox_provider(domain_or_mx: str | None) -> str:
    """The mailbox provider of a recipient domain, an address or an MX/relay host name
    (``gmail``, ``microsoft``, ``yahoo``, ``apple``, ...), ``other`` when unknown, ``unknown``
    for an empty input. A relay written ``host[ip]:port`` is accepted."""
    if not domain_or_mx:
        return "unknown"
    s = domain_or_mx.strip().lower()
    if "@" in s:
        s = domain_of(s) or ""
    s = s.split("[", 1)[0].rstrip(".")
    if not s or s == "none":
        return "unknown"
    for name, rx in _PROVIDER_RE:
        if rx.fullmatch(s):
            return name
    return "other"


_ANGLE = re.compile(r"<([^<>]*)>")


def domain_of(address: str | None) -> str | None:
    """The domain of an e-mail address, lower-cased, without a trailing dot; accepts
    ``Name <a@b>``, ``<a@b>`` and source routes; None when there is no ``@domain``."""
    if not address:
        return None
    s = address.strip()
    m = _ANGLE.search(s)
    if m:
        s = m.group(1)
    s = s.strip().strip("<>").strip()
    if "@" not in s:
        return None
    d = s.rsplit("@", 1)[1].strip().rstrip(".").lower()
    if d.startswith("[") and d.endswith("]"):
        return d  # address literal
    return d if d and _HOSTNAME.match(d) else None
