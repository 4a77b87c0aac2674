"""An in-memory key-value store (for the test driver and small transient state)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from .store import KeyValueStore


class InMemoryStore(KeyValueStore):
    """A dict plus a lazily sorted key list for range scans."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = None

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            if self._data.pop(key, None) is not None:
                self._sorted = None
        else:
            if key not in self._data:
                self._sorted = None
            self._data[key] = value

    def range(self, lo: bytes | None = None, hi: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        if self._sorted is None:
            self._sorted = sorted(self._data)
        keys = self._sorted
        i = 0 if lo is None else bisect.bisect_left(keys, lo)
        j = len(keys) if hi is None else bisect.bisect_left(keys, hi)
        for k in keys[i:j]:
            v = self._data.get(k)
            if v is not None:
                yield k, v

    def approximate_count(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()
        self._sorted = None
