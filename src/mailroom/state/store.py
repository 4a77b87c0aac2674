"""The key-value store interface the engine's operators talk to.

Stores are stacked wrappers, each adding one concern (as in Kafka Streams): the engine sees a
:class:`KeyValueStore`; under it may sit a write-back cache (:mod:`.cache`), which on flush
hands its changes to the changelog, over the durable store on disk (:mod:`.lmdb_store`) or an
in-memory one (:mod:`.memory_store`). Keys and values are bytes; ``None`` as a value means
"deleted" wherever changes are passed around.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence


class KeyValueStore(abc.ABC):
    """Bytes to bytes, ordered by key."""

    name: str

    @abc.abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The values of ``keys`` (None where absent), in order."""
        return [self.get(k) for k in keys]

    @abc.abstractmethod
    def put(self, key: bytes, value: bytes | None) -> None:
        """Set ``key`` to ``value`` (None deletes it)."""

    def put_many(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply several puts (None values delete)."""
        for k, v in items:
            self.put(k, v)

    def delete(self, key: bytes) -> None:
        self.put(key, None)

    @abc.abstractmethod
    def range(self, lo: bytes | None = None, hi: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Entries with lo <= key < hi, ascending (None: unbounded)."""

    def prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Entries whose key starts with ``prefix``."""
        return self.range(prefix, _prefix_end(prefix))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.range()

    @abc.abstractmethod
    def approximate_count(self) -> int:
        """About how many entries the store holds."""

    def flush(self) -> list[tuple[bytes, bytes | None]]:
        """Make every change durable; returns the changes made since the last flush
        (only caching stores track them; others return [])."""
        return []

    def clear(self) -> None:
        """Remove every entry."""
        self.put_many((k, None) for k, _ in list(self.items()))

    def close(self) -> None:
        """Release resources."""


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix``."""
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return None
    b[-1] += 1
    return bytes(b)
