"""Window stores: fetch by key and time range; expiry drops whole segments."""

from __future__ import annotations

from mailroom.state import InMemoryStore, WindowStore, split_window_key, window_key


def make():
    dropped = []
    ws = WindowStore("w", InMemoryStore, dropped.append, retention_ms=10_000, segment_ms=5_000)
    return ws, dropped


def test_fetch_keeps_keys_apart_and_orders_by_time() -> None:
    ws, _ = make()
    for start in (0, 1000, 2000, 7000):
        ws.put(b"ab", start, b"ab%d" % start)
    ws.put(b"abc", 1000, b"other key")
    assert list(ws.fetch(b"ab", 500, 7000)) == [(1000, b"ab1000"), (2000, b"ab2000"), (7000, b"ab7000")]
    assert list(ws.fetch(b"abc", 0, 10_000)) == [(1000, b"other key")]
    assert split_window_key(window_key(b"k", 42)) == (b"k", 42)


def test_old_segments_are_dropped() -> None:
    ws, dropped = make()
    ws.put(b"k", 1000, b"old")
    ws.put(b"k", 26_000, b"new")
    ws.advance(26_000)
    assert dropped == ["w.0"]
    assert list(ws.fetch(b"k", 0, 30_000)) == [(26_000, b"new")]
    ws.put(b"k", 2000, b"too late")  # beyond retention: ignored
    assert ws.get(b"k", 2000) is None


def test_deferred_writes_land_before_any_read_and_before_their_segment_expires() -> None:
    ws, dropped = make()
    calls = []

    def write() -> None:
        calls.append(1)
        ws.put_many([(b"k", 0, b"a"), (b"k", 6_000, b"b")])

    ws.defer(write)
    ws.advance(9_000)  # nothing expires yet: the writer waits
    assert calls == []
    assert list(ws.fetch(b"k", 0, 10_000)) == [(0, b"a"), (6_000, b"b")]
    assert calls == [1]
    ws.defer(write)
    ws.get_many([(b"other", 0)], deferred=True)  # the writer's own read of other windows: still waiting
    assert calls == [1]
    ws.advance(100_000)  # the segments go: the deferred write landed first (then went with them)
    assert calls == [1, 1] and dropped == ["w.0", "w.1"] and list(ws.all()) == []
