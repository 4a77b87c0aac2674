"""The write-back cache: most of the engine's speed comes from here.

Operators read and write through the cache; between two commits each changed key is held once
(the last value wins). On flush the cache writes every dirty key to the store in one batch and
returns the changes, which the engine sends to the changelog topic and, for cached tables,
downstream: one store write and one changelog record per changed key per commit, not per input
record. With ``enabled=False`` every put is passed on at once and reported by the next flush in
order (ksqlDB's conformance tests need every intermediate update).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence

from .store import KeyValueStore

_DELETED = object()
_value_of = operator.itemgetter(1)
#: bytes a cached entry costs beyond its key and value (dict slot, object headers): an estimate
_ENTRY_OVERHEAD = 100
#: default bound on what a cache holds between two commits
MAX_BYTES = 32 << 20


class CachingStore(KeyValueStore):
    """A write-back cache over ``inner``."""

    def __init__(
        self,
        inner: KeyValueStore,
        *,
        max_entries: int = 1_000_000,
        max_bytes: int = MAX_BYTES,
        enabled: bool = True,
        on_flush: Callable[[list[tuple[bytes, bytes | None]]], None] | None = None,
    ) -> None:
        self.inner = inner
        #: called with the changes of every flush (the task sends them to the changelog)
        self.on_flush = on_flush
        self.name = inner.name
        self.max_entries = max_entries
        #: the cache asks for a commit (``full``) once its puts since the last flush reach this
        #: many bytes (keys, values and per-entry overhead; a key put twice counts twice): the
        #: memory a cache holds is bounded by bytes, whatever the size of the values
        self.max_bytes = max_bytes
        self.enabled = enabled
        self._bytes = 0
        self._dirty: dict[bytes, object] = {}
        self._deletes = False  # whether _dirty holds a deletion
        self._log: list[tuple[bytes, bytes | None]] = []  # uncached mode: every change, in order
        self._pending: Callable[[], None] | None = None  # an operator's deferred writes (see defer)

    @property
    def full(self) -> bool:
        """Whether the engine should commit early to bound memory."""
        return len(self._dirty) >= self.max_entries or self._bytes >= self.max_bytes

    @property
    def size_bytes(self) -> int:
        """About how many bytes the puts since the last flush hold."""
        return self._bytes

    def defer(self, write: Callable[[], None], nbytes: int = 0) -> None:
        """Let an operator put its changes later: ``write()`` puts them, and every read, scan
        and flush of this store calls it first (once), so any reader sees what it would have
        seen had they been put at once. An operator that keeps its state decoded between commits
        thus encodes each changed key once per commit, not once per batch. ``nbytes``: what the
        deferred changes hold, counted toward :attr:`full` now."""
        self._pending = write
        self._bytes += nbytes

    def _sync(self) -> None:
        write = self._pending
        if write is not None:
            self._pending = None
            write()

    def get_many_deferred(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """:meth:`get_many` without running the deferred writer: for that writer itself, reading
        keys it holds no deferred change for."""
        pending, self._pending = self._pending, None
        try:
            return self.get_many(keys)
        finally:
            self._pending = pending

    def get(self, key: bytes) -> bytes | None:
        self._sync()
        v = self._dirty.get(key, None)
        if v is None:
            return self.inner.get(key)
        return None if v is _DELETED else v  # type: ignore[return-value]

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self._sync()
        dirty = self._dirty
        if not dirty:
            return self.inner.get_many(keys)
        missing = [k for k in keys if k not in dirty]
        found = dict(zip(missing, self.inner.get_many(missing))) if missing else {}
        out = []
        for k in keys:
            v = dirty.get(k, None)
            if v is None:
                out.append(found.get(k))
            else:
                out.append(None if v is _DELETED else v)
        return out

    def put(self, key: bytes, value: bytes | None) -> None:
        if not self.enabled:
            self.inner.put(key, value)
            self._log.append((key, value))
            self._bytes += len(key) + (0 if value is None else len(value)) + _ENTRY_OVERHEAD
            return
        self._bytes += len(key) + (0 if value is None else len(value)) + _ENTRY_OVERHEAD
        if value is None:
            self._deletes = True
            self._dirty[key] = _DELETED
        else:
            self._dirty[key] = value

    def put_many(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        if not isinstance(items, list):
            items = list(items)
        if not self.enabled:
            self.inner.put_many(items)
            self._log.extend(items)
            self._bytes += _ENTRY_OVERHEAD * len(items)  # (values are passed on, not held)
            return
        dirty = self._dirty
        if None not in map(_value_of, items):  # the usual case: no deletion, all in C
            dirty.update(items)
            self._bytes += sum(map(len, map(_value_of, items))) + (16 + _ENTRY_OVERHEAD) * len(items)
            return
        nb = 0
        for k, v in items:
            if v is None:
                self._deletes = True
                dirty[k] = _DELETED
            else:
                dirty[k] = v
                nb += len(v)
        self._bytes += nb + (16 + _ENTRY_OVERHEAD) * len(items)

    def range(self, lo: bytes | None = None, hi: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Merged view of the store and the dirty entries (dirty ones win)."""
        self._sync()
        if not self._dirty:
            yield from self.inner.range(lo, hi)
            return
        overlay = sorted(k for k in self._dirty if (lo is None or k >= lo) and (hi is None or k < hi))
        it = iter(self.inner.range(lo, hi))
        nxt = next(it, None)
        for dk in overlay:
            while nxt is not None and nxt[0] < dk:
                yield nxt
                nxt = next(it, None)
            if nxt is not None and nxt[0] == dk:
                nxt = next(it, None)
            v = self._dirty[dk]
            if v is not _DELETED:
                yield dk, v  # type: ignore[misc]
        while nxt is not None:
            yield nxt
            nxt = next(it, None)

    def approximate_count(self) -> int:
        self._sync()
        return self.inner.approximate_count() + sum(1 for v in self._dirty.values() if v is not _DELETED)

    def flush(self) -> list[tuple[bytes, bytes | None]]:
        """Write the dirty keys to the store in one batch; returns the changes (None = deleted)."""
        self._sync()
        self._bytes = 0
        if not self.enabled:
            changes, self._log = self._log, []
        elif not self._dirty:
            return []
        else:
            dirty = self._dirty
            if self._deletes:
                changes = [(k, None if v is _DELETED else v) for k, v in dirty.items()]
            else:  # (no deletion since the last flush: the items as they are, in C)
                changes = list(dirty.items())
            self.inner.put_many(changes)  # type: ignore[arg-type]
            self._dirty = {}
            self._deletes = False
        if self.on_flush is not None and changes:
            self.on_flush(changes)
        return changes  # type: ignore[return-value]

    def flush_with_old(self) -> list[tuple[bytes, bytes | None, bytes | None]]:
        """Like :meth:`flush`, with each key's value as of the previous flush: (key, old, new).

        Cached table operators emit these, so downstream can retract the old value.
        """
        self._sync()
        if not self.enabled or not self._dirty:
            return [(k, None, v) for k, v in self.flush()]
        keys = list(self._dirty)
        old = self.inner.get_many(keys)
        return [(k, o, n) for (k, n), o in zip(self.flush(), old)]

    def clear(self) -> None:
        self._pending = None
        self._bytes = 0
        self._dirty.clear()
        self._deletes = False
        self._log.clear()
        self.inner.clear()

    def close(self) -> None:
        self.inner.close()
