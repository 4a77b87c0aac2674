"""HTTP basic authentication for ``mailroom server --auth-file FILE``: users, roles, the file.

The file (written by ``mailroom server passwd FILE USER --role ROLE``) holds one user a line::

    # comments and blank lines are ignored
    alice:read-write:scrypt$16384$8$1$<salt, base64>$<hash, base64>
    bob:read-only:scrypt$16384$8$1$...

- the user name: letters, digits and ``. _ @ -`` (no ``:``); the role: ``read-only`` or
  ``read-write``; the password hash: ``hashlib.scrypt`` (N, r, p, a 16-byte random salt, a 32-byte
  key), compared in constant time. Passwords are never stored.
- The file is read again when it changes on disk (``passwd`` takes effect without a restart); a
  file that can no longer be parsed keeps the users of the last good version (and is logged).

Roles (see :func:`read_only_statement` for ``POST /ksql``):

- ``read-only``: pull and push queries (``/query``, ``/query-stream``), ``SHOW``/``LIST``/
  ``DESCRIBE``/``EXPLAIN`` on ``/ksql``, ``/status``, ``/metrics``, the dashboard, and
  ``/close-query`` of the push queries it started itself.
- ``read-write``: everything, including DDL, ``INSERT``, ``TERMINATE``, ``SET``/``DEFINE``,
  ``/inserts-stream`` and ``/close-query`` of any query.

``GET /healthcheck`` and ``GET /info`` need no credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from ..sql import ast as A

READ_ONLY = "read-only"
READ_WRITE = "read-write"
ROLES = (READ_ONLY, READ_WRITE)
#: paths served without credentials (load balancers and version probes call them)
OPEN_PATHS = frozenset({"/healthcheck", "/info"})
REALM = "mailroom"

_USER = re.compile(r"^[A-Za-z0-9._@-]+$")
_N, _R, _P, _SALT, _KEY = 2**14, 8, 1, 16, 32
log = logging.getLogger(__name__)


class AuthFileError(ValueError):
    """The auth file cannot be read or has a bad line."""


@dataclass(frozen=True)
class User:
    """An authenticated user and its role."""

    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == READ_WRITE


# -- passwords -------------------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` (base64) of ``password`` with a new random salt."""
    salt = os.urandom(_SALT)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` value (False for a malformed one)."""
    try:
        algo, n, r, p, salt, key = encoded.split("$")
        if algo != "scrypt":
            return False
        want = base64.b64decode(key, validate=True)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r),
                             p=int(p), dklen=len(want), maxmem=2**26)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, want)


# -- the file --------------------------------------------------------------------------------------------
def parse_auth_file(text: str, source: str = "auth file") -> dict[str, tuple[str, str]]:
    """``{user: (role, hash)}`` of an auth file's text; raises :class:`AuthFileError` naming the line."""
    users: dict[str, tuple[str, str]] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise AuthFileError(f"{source} line {no}: expected USER:ROLE:HASH")
        name, role, hashed = parts
        if not _USER.match(name):
            raise AuthFileError(f"{source} line {no}: bad user name {name!r}")
        if role not in ROLES:
            raise AuthFileError(f"{source} line {no}: unknown role {role!r} (use {' or '.join(ROLES)})")
        if not hashed.startswith("scrypt$") or hashed.count("$") != 5:
            raise AuthFileError(f"{source} line {no}: the password hash is not scrypt$N$r$p$salt$key")
        users[name] = (role, hashed)
    return users


def set_user(path: str | Path, user: str, role: str, password: str) -> bool:
    """Add ``user`` to the auth file at ``path`` (created, mode 0600), or replace its role and
    password, keeping the other lines; written atomically. Returns True if the user was new."""
    if not _USER.match(user):
        raise AuthFileError(f"bad user name {user!r}: letters, digits and . _ @ - only")
    if role not in ROLES:
        raise AuthFileError(f"unknown role {role!r} (use {' or '.join(ROLES)})")
    if not password:
        raise AuthFileError("the password is empty")
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    parse_auth_file("\n".join(lines), str(path))  # refuse to rewrite a broken file
    entry = f"{user}:{role}:{hash_password(password)}"
    new = True
    for i, line in enumerate(lines):
        if line.strip().split(":", 1)[0] == user and not line.strip().startswith("#"):
            lines[i], new = entry, False
    if new:
        lines.append(entry)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return new


class Authenticator:
    """Checks ``Authorization: Basic`` headers against an auth file, read again when it changes.

    A header that verified once is remembered (keyed by a keyed hash of it, never the password)
    until the file changes, so each request does not pay scrypt's ~50 ms again."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, tuple[str, str]] = {}
        self._ok: dict[bytes, User] = {}
        self._key = os.urandom(32)
        self._dummy = hash_password(secrets.token_hex(8))  # checked for unknown users: same time as a known one
        self.reload(strict=True)

    def reload(self, strict: bool = False) -> None:
        """Read the file if it changed since the last read; ``strict``: raise on a bad file
        (at start), else keep the last good users and log the error."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # passwd replaces the file: a new inode
            if stamp == self._stamp:
                return
            users = parse_auth_file(self.path.read_text(), str(self.path))
        except (OSError, AuthFileError) as e:
            if strict:
                raise AuthFileError(str(e)) from None
            log.error("auth file %s: %s (keeping the users read before)", self.path, e)
            return
        with self._lock:
            self._users, self._stamp, self._ok = users, stamp, {}

    @property
    def users(self) -> dict[str, str]:
        """``{user: role}``."""
        return {u: r for u, (r, _) in self._users.items()}

    def check(self, header: str | None) -> User | None:
        """The user of an ``Authorization`` header value, or None if missing or wrong."""
        if not header or not header[:6].lower() == "basic ":
            return None
        self.reload()
        digest = hmac.new(self._key, header.encode(), hashlib.sha256).digest()
        hit = self._ok.get(digest)
        if hit is not None:
            return hit
        try:
            name, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, binascii.Error):
            return None
        entry = self._users.get(name)
        if entry is None:
            verify_password(password, self._dummy)  # as slow as a known user: no probing for names by timing
            return None
        if not verify_password(password, entry[1]):
            return None
        user = User(name, entry[0])
        with self._lock:
            if self._users.get(name) == entry:
                self._ok[digest] = user
        return user


def read_only_statement(stmt: A.Statement) -> bool:
    """Whether a read-only user may run ``stmt`` on ``/ksql``: SHOW/LIST, DESCRIBE, EXPLAIN
    (SELECT and PRINT go to ``/query``, open to both roles). SET/DEFINE change what the whole
    server runs with, so they need read-write like DDL, INSERT and TERMINATE."""
    return isinstance(stmt, (A.Show, A.Describe, A.DescribeFunction, A.Explain, A.QueryStatement, A.PrintTopic))
