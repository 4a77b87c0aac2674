"""Memory bounds of state: the write-back cache asks for a commit by bytes (not only entries),
and LMDB's mapped pages are dropped once the process's budget may be reached, so a store much
larger than the budget is read and written at random within a bounded RSS, and reads stay right."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mailroom.state import CachingStore, InMemoryStore, LmdbEnv
from mailroom.state import lmdb_store


def _mapped_kib(path: Path) -> int:
    """RSS of this process's mapping of ``path`` (kB), from /proc/self/smaps."""
    target, total, inside = str(path.resolve()), 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                inside = line.rstrip("\n").endswith(target)
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


def test_cache_is_full_by_bytes_and_empties_on_flush() -> None:
    cache = CachingStore(InMemoryStore("s"), max_bytes=100_000)
    cache.put_many([(b"k%05d" % i, b"x" * 500) for i in range(100)])  # ~60 kB with overhead
    assert not cache.full and 50_000 < cache.size_bytes < 100_000
    cache.put_many([(b"k%05d" % i, b"y" * 500) for i in range(100, 200)])
    assert cache.full
    assert len(cache.flush()) == 200
    assert not cache.full and cache.size_bytes == 0
    cache.put(b"gone", None)  # deletions count too (a key and an entry)
    assert cache.size_bytes > 0


@pytest.mark.skipif(lmdb_store._madvise is None, reason="needs Linux madvise")
def test_lmdb_mapped_pages_stay_within_the_budget(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lmdb_store, "MAPPED_BUDGET", 8 << 20)
    env = LmdbEnv(tmp_path / "env")
    store = env.store("s")
    n = 60_000  # 12 MB of values: a store of ~30 MB, several times the budget
    rng = random.Random(2)
    values = {b"m%07d" % i: rng.randbytes(200) for i in range(n)}
    items = list(values.items())
    rng.shuffle(items)
    for i in range(0, n, 5_000):
        store.put_many(items[i : i + 5_000])
    keys = list(values)
    peak = 0
    for _ in range(6):
        sample = rng.sample(keys, 5_000)
        assert store.get_many(sample) == [values[k] for k in sample]  # right after any trim
        peak = max(peak, _mapped_kib(env.path / "data.mdb"))
    data_kib = (env.path / "data.mdb").stat().st_size // 1024
    assert data_kib > 12_000, "the store must be larger than the budget for this test to mean anything"
    assert peak <= 12 * 1024, f"mapped {peak} kB of a {data_kib} kB store with an 8 MB budget"
    env.trim()
    assert _mapped_kib(env.path / "data.mdb") < 1024
    assert store.get(keys[0]) == values[keys[0]]
    env.close()
