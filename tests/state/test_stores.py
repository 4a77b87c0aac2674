"""Key-value stores (LMDB and in-memory) behave alike; the cache coalesces per key."""

from __future__ import annotations

import random

import pytest

from mailroom.state import CachingStore, InMemoryStore, LmdbEnv


@pytest.fixture(params=["lmdb", "memory"])
def store(request, tmp_path):
    if request.param == "memory":
        yield InMemoryStore("s")
        return
    env = LmdbEnv(tmp_path / "env")
    yield env.store("s")
    env.close()


def test_put_get_delete_range(store) -> None:
    store.put_many([(b"b", b"2"), (b"a", b"1"), (b"c", b"3"), (b"ab", b"x")])
    assert store.get(b"a") == b"1" and store.get(b"zz") is None
    assert store.get_many([b"c", b"nope", b"a"]) == [b"3", None, b"1"]
    assert list(store.range(b"ab", b"c")) == [(b"ab", b"x"), (b"b", b"2")]
    assert [k for k, _ in store.prefix(b"a")] == [b"a", b"ab"]
    store.delete(b"ab")
    assert [k for k, _ in store.items()] == [b"a", b"b", b"c"]
    assert store.approximate_count() == 3


def test_cache_matches_a_dict_and_writes_each_key_once(store) -> None:
    cache = CachingStore(store)
    rng = random.Random(1)
    truth: dict[bytes, bytes] = {}
    for _round in range(3):
        for _ in range(2000):
            k = b"k%03d" % rng.randrange(300)
            if rng.random() < 0.1:
                cache.delete(k)
                truth.pop(k, None)
            else:
                v = b"%d" % rng.randrange(10**6)
                cache.put(k, v)
                truth[k] = v
        assert dict(cache.items()) == truth  # the merged view, before the flush
        changes = cache.flush()
        keys = [k for k, _ in changes]
        assert len(keys) == len(set(keys)) <= 300  # one change per key per flush
        assert dict(store.items()) == truth
        assert cache.flush() == []


def test_uncached_mode_reports_every_change_in_order(store) -> None:
    cache = CachingStore(store, enabled=False)
    cache.put(b"k", b"1")
    cache.put(b"k", b"2")
    cache.delete(b"k")
    assert store.get(b"k") is None
    assert cache.flush() == [(b"k", b"1"), (b"k", b"2"), (b"k", None)]


def test_lmdb_survives_reopen(tmp_path) -> None:
    env = LmdbEnv(tmp_path / "e")
    env.store("a").put_many([(b"%d" % i, b"v") for i in range(1000)])
    env.close()
    env = LmdbEnv(tmp_path / "e")
    assert env.store("a").approximate_count() == 1000
    env.close()
