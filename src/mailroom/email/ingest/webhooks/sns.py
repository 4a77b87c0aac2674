"""Amazon SNS message authenticity: the signature over the canonical string, checked with the
signing certificate named by ``SigningCertURL``.

The string to sign is ``name\\nvalue\\n`` for, in order: ``Message``, ``MessageId``, ``Subject``
(only when present), ``Timestamp``, ``TopicArn``, ``Type`` for a Notification; ``Message``,
``MessageId``, ``SubscribeURL``, ``Timestamp``, ``Token``, ``TopicArn``, ``Type`` for a
(Un)SubscriptionConfirmation. ``SignatureVersion`` 1 signs it with RSA PKCS#1 v1.5 over SHA-1,
version 2 over SHA-256.

A certificate is fetched only from an allowed URL (https, a host matching ``cert_host_pattern``,
by default ``sns.<region>.amazonaws.com``), then cached. The fetcher is injectable, so tests and
air-gapped set-ups can serve their own.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .common import WebhookError

DEFAULT_CERT_HOST = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")

Fetcher = Callable[[str], bytes]


def urllib_fetch(url: str, timeout: float = 10.0) -> bytes:
    """GET a URL's body (the default certificate fetcher and subscription confirmer)."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read(1 << 20)


def string_to_sign(msg: dict) -> bytes:
    """The canonical string of an SNS message (see the module doc)."""
    keys = NOTIFICATION_KEYS if msg.get("Type") == "Notification" else CONFIRMATION_KEYS
    parts = []
    for k in keys:
        v = msg.get(k)
        if v is None:
            if k == "Subject":
                continue
            raise WebhookError(400, f"SNS message has no {k}")
        parts.append(f"{k}\n{v}\n")
    return "".join(parts).encode()


class SnsVerifier:
    """Checks SNS signatures; ``fetch`` gets a certificate's PEM by URL (default: urllib GET).

    ``topic_arns``: when given, only these topics are accepted."""

    def __init__(self, *, cert_host_pattern: str = DEFAULT_CERT_HOST, allow_http: bool = False,
                 fetch: Fetcher | None = None, topic_arns: list[str] | None = None, cache_size: int = 64) -> None:
        self.host_re = re.compile(cert_host_pattern)
        self.allow_http = allow_http
        self.fetch = fetch or urllib_fetch
        self.topic_arns = set(topic_arns) if topic_arns else None
        self._certs: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def check_url(self, url: object, what: str = "SigningCertURL") -> str:
        """The URL when its scheme and host are allowed; a 401 otherwise."""
        if not isinstance(url, str) or not url:
            raise WebhookError(401, f"no {what}")
        parts = urlsplit(url)
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in schemes:
            raise WebhookError(401, f"{what} {url!r} is not https")
        if not parts.hostname or not self.host_re.fullmatch(parts.hostname):
            raise WebhookError(401, f"{what} host {parts.hostname!r} is not an allowed SNS host ({self.host_re.pattern})")
        return url

    def certificate(self, url: str) -> x509.Certificate:
        with self._lock:
            cert = self._certs.get(url)
            if cert is not None:
                self._certs.move_to_end(url)
                return cert
        try:
            pem = self.fetch(url)
        except Exception as e:
            raise WebhookError(401, f"cannot fetch the signing certificate {url}: {type(e).__name__}: {e}") from None
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as e:
            raise WebhookError(401, f"the signing certificate at {url} is not a PEM certificate: {e}") from None
        with self._lock:
            self._certs[url] = cert
            while len(self._certs) > self._cache_size:
                self._certs.popitem(last=False)
        return cert

    def verify(self, msg: dict) -> None:
        """Raise a :class:`WebhookError` (401) unless ``msg`` is an authentic SNS message."""
        if msg.get("Type") not in MESSAGE_TYPES:
            raise WebhookError(400, f"unknown SNS message Type {msg.get('Type')!r}")
        version = str(msg.get("SignatureVersion", ""))
        if version not in ("1", "2"):
            raise WebhookError(401, f"unsupported SignatureVersion {version!r} (1 or 2)")
        if self.topic_arns is not None and msg.get("TopicArn") not in self.topic_arns:
            raise WebhookError(401, f"topic {msg.get('TopicArn')!r} is not one of the accepted topics")
        try:
            sig = base64.b64decode(str(msg.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError(401, "Signature is not base64") from None
        if not sig:
            raise WebhookError(401, "no Signature")
        data = string_to_sign(msg)
        cert = self.certificate(self.check_url(msg.get("SigningCertURL")))
        now = dt.datetime.now(dt.timezone.utc)
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise WebhookError(401, "the signing certificate is expired or not yet valid")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookError(401, "the signing certificate has no RSA key")
        algo = hashes.SHA1() if version == "1" else hashes.SHA256()
        try:
            key.verify(sig, data, padding.PKCS1v15(), algo)
        except InvalidSignature:
            raise WebhookError(401, "bad SNS signature") from None
