"""Window stores: values per (key, window start), kept in time segments so that expiry drops
whole segments instead of scanning entries (Kafka Streams' segmented stores).

Inside a segment an entry's key is ``len(key) u32 BE | key | start u64 BE``: the length prefix
keeps keys that are prefixes of other keys apart, and big-endian start times sort
chronologically, so a key's windows in a time range are one contiguous scan.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from .store import KeyValueStore

_LEN = struct.Struct(">I")
_TS = struct.Struct(">q")


def window_key(key: bytes, start: int) -> bytes:
    return _LEN.pack(len(key)) + key + _TS.pack(start)


def split_window_key(wk: bytes) -> tuple[bytes, int]:
    (n,) = _LEN.unpack_from(wk)
    return wk[4 : 4 + n], _TS.unpack_from(wk, 4 + n)[0]


class WindowStore:
    """Windows of one store, segmented by window start."""

    def __init__(self, name: str, make_segment: Callable[[str], KeyValueStore], drop_segment: Callable[[str], None],
                 retention_ms: int, segment_ms: int | None = None) -> None:
        self.name = name
        self.retention_ms = retention_ms
        self.segment_ms = segment_ms or max(retention_ms // 2, 60_000)
        self._make = make_segment
        self._drop = drop_segment
        self._segments: dict[int, KeyValueStore] = {}
        self.observed_time = -(1 << 62)
        self._pending: Callable[[], None] | None = None  # an operator's deferred writes (see defer)

    def defer(self, write: Callable[[], None]) -> None:
        """Let an operator put its changes later: ``write()`` puts them, and every read, scan,
        expiry and flush of this store calls it first (once); see ``CachingStore.defer``."""
        self._pending = write

    def _sync(self) -> None:
        write = self._pending
        if write is not None:
            self._pending = None
            write()

    def _segment_id(self, start: int) -> int:
        return start // self.segment_ms

    def _segment(self, sid: int, create: bool = True) -> KeyValueStore | None:
        seg = self._segments.get(sid)
        if seg is None and create:
            seg = self._segments[sid] = self._make(f"{self.name}.{sid}")
        return seg

    def put(self, key: bytes, start: int, value: bytes | None) -> None:
        """Set the window of ``key`` starting at ``start`` (None deletes). Expired windows are ignored."""
        if start < self.observed_time - self.retention_ms:
            return
        self._segment(self._segment_id(start)).put(window_key(key, start), value)

    def get(self, key: bytes, start: int) -> bytes | None:
        self._sync()
        seg = self._segment(self._segment_id(start), create=False)
        return seg.get(window_key(key, start)) if seg else None

    def get_many(self, windows: list[tuple[bytes, int]], *, keyed: bool = False, deferred: bool = False) -> list[bytes | None]:
        """The values of several (key, start) windows: one read per segment they fall in.
        ``keyed``: the items are (window key, start), the window key already made.
        ``deferred``: without running the deferred writer (for that writer itself, reading
        windows it holds no deferred change for)."""
        if not deferred:
            self._sync()
        out: list[bytes | None] = [None] * len(windows)
        by_seg: dict[int, list[int]] = {}
        seg_ms = self.segment_ms
        for i, (_k, start) in enumerate(windows):
            by_seg.setdefault(start // seg_ms, []).append(i)
        for sid, idx in by_seg.items():
            seg = self._segments.get(sid)
            if seg is None:
                continue
            wks = [windows[i][0] for i in idx] if keyed else [window_key(*windows[i]) for i in idx]
            for i, v in zip(idx, seg.get_many(wks)):
                out[i] = v
        return out

    def put_many(self, items: list[tuple[bytes, int, bytes | None]], *, keyed: bool = False) -> None:
        """Several :meth:`put` s, one batch per segment. Expired windows are ignored.
        ``keyed``: the items are (window key, start, value), the window key already made."""
        horizon = self.observed_time - self.retention_ms
        seg_ms = self.segment_ms
        by_seg: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, start, value in items:
            if start >= horizon:
                by_seg.setdefault(start // seg_ms, []).append((key if keyed else window_key(key, start), value))
        for sid, puts in by_seg.items():
            self._segment(sid).put_many(puts)

    def fetch(self, key: bytes, t_from: int, t_to: int) -> Iterator[tuple[int, bytes]]:
        """(start, value) of ``key``'s windows with t_from <= start <= t_to, ascending."""
        self._sync()
        for sid in sorted(s for s in self._segments if self._segment_id(t_from) <= s <= self._segment_id(t_to)):
            for wk, v in self._segments[sid].range(window_key(key, t_from), window_key(key, t_to + 1)):
                yield split_window_key(wk)[1], v

    def all(self) -> Iterator[tuple[bytes, int, bytes]]:
        """Every (key, start, value)."""
        self._sync()
        for sid in sorted(self._segments):
            for wk, v in self._segments[sid].items():
                k, s = split_window_key(wk)
                yield k, s, v

    def advance(self, stream_time: int) -> list[str]:
        """Note the stream time; drop segments entirely older than the retention. Returns their names."""
        horizon = self._segment_id(max(self.observed_time, stream_time) - self.retention_ms)
        expired = [s for s in self._segments if s < horizon]
        if expired:
            self._sync()  # (deferred writes land before their segment goes, as they would have)
        self.observed_time = max(self.observed_time, stream_time)
        dropped = []
        for sid in expired:
            name = f"{self.name}.{sid}"
            self._segments.pop(sid).close()
            self._drop(name)
            dropped.append(name)
        return dropped

    def flush(self) -> None:
        """Flush every (caching) segment to its store and changelog."""
        self._sync()
        for sid in sorted(self._segments):
            self._segments[sid].flush()

    def flush_with_old(self) -> list[tuple[bytes, bytes | None, bytes | None]]:
        """Flush every (caching) segment; (window key, old, new) of each change."""
        self._sync()
        out: list = []
        for sid in sorted(self._segments):
            seg = self._segments[sid]
            if hasattr(seg, "flush_with_old"):
                out += seg.flush_with_old()
            else:
                out += [(k, None, v) for k, v in seg.flush()]
        return out

    def restore_put(self, wk: bytes, value: bytes | None) -> None:
        """Apply one changelog record (a window key, as the changelog holds it)."""
        _k, start = split_window_key(wk)
        seg = self._segment(self._segment_id(start))
        getattr(seg, "inner", seg).put(wk, value)  # under the cache: a restored value is not a new change

    def segments(self) -> dict[int, KeyValueStore]:
        return self._segments

    def attach(self, sid: int, store: KeyValueStore) -> None:
        """Adopt an existing segment (when reopening a task's stores)."""
        self._segments[sid] = store
