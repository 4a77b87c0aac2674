"""An index of keys by the time they expire: what a state TTL and timers scan.

Entries live in an ordinary key-value store (so they are cached, changelogged and restored like
any state) under ``expiry time (8 bytes, order-preserving) + key``; a range scan up to "now"
yields the keys due, oldest first.
"""

from __future__ import annotations

import struct

from .store import KeyValueStore

_BIAS = 1 << 63
_T = struct.Struct(">Q")


def _time_key(t: int) -> bytes:
    """An 8-byte big-endian encoding of a signed time that sorts like the number."""
    return _T.pack(t + _BIAS)


class ExpiryIndex:
    """Keys ordered by expiry time."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store

    def set(self, key: bytes, expiry: int, previous: int | None = None) -> None:
        """(Re)schedule ``key`` to expire at ``expiry`` (dropping its ``previous`` entry)."""
        if previous is not None and previous != expiry:
            self.store.delete(_time_key(previous) + key)
        self.store.put(_time_key(expiry) + key, b"")

    def remove(self, key: bytes, expiry: int) -> None:
        self.store.delete(_time_key(expiry) + key)

    def due(self, now: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """(expiry, key) of every entry with expiry <= ``now``, oldest first."""
        out = []
        for k, _ in self.store.range(None, _time_key(now + 1)):
            out.append((_T.unpack_from(k)[0] - _BIAS, k[8:]))
            if limit is not None and len(out) >= limit:
                break
        return out
