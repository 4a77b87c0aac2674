"""The durable key-value store: LMDB.

Why LMDB and not RocksDB: measured on this machine kind (500k 11-byte keys, 100-byte values,
batches of 10k): LMDB puts 2.2M/s vs RocksDB (rocksdict) 1.2M/s, gets 3.2M/s vs 0.77M/s. Its
readers also work from other processes while a writer runs, which interactive queries can use.
With the write-back cache in front, the store sees one batched write per commit.

One LMDB environment per task folder holds every store of that task as a named database.
Durability comes from the changelog topic, so commits skip fsync (``sync=False``): a killed
process loses nothing the OS has, and a lost machine is rebuilt from the changelog.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import lmdb

from .store import KeyValueStore

MAP_SIZE = 1 << 38
_key_of = operator.itemgetter(0)  # address space only: the file grows as data does


class LmdbEnv:
    """An LMDB environment (one folder) shared by the stores of one task."""

    def __init__(self, path: str | Path, *, max_dbs: int = 256, map_size: int = MAP_SIZE) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(self.path), map_size=map_size, max_dbs=max_dbs, sync=False, metasync=False, readahead=False, lock=True
        )
        self._lock = threading.Lock()

    def store(self, name: str) -> LmdbStore:
        """The store ``name`` (created if missing)."""
        return LmdbStore(self, name)

    def drop(self, name: str) -> None:
        """Delete the store ``name`` and its data."""
        db = self.env.open_db(name.encode())
        with self.env.begin(write=True) as txn:
            txn.drop(db, delete=True)

    def names(self) -> list[str]:
        with self.env.begin() as txn:
            return [k.decode() for k, _ in txn.cursor()]

    def sync(self) -> None:
        self.env.sync(True)

    def close(self) -> None:
        self.env.close()


class LmdbStore(KeyValueStore):
    """A named LMDB database."""

    def __init__(self, env: LmdbEnv, name: str) -> None:
        self.name = name
        self._env = env.env
        self._db = self._env.open_db(name.encode())

    def get(self, key: bytes) -> bytes | None:
        with self._env.begin(db=self._db, buffers=False) as txn:
            return txn.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._env.begin(db=self._db) as txn:
            get = txn.get
            return [get(k) for k in keys]

    def put(self, key: bytes, value: bytes | None) -> None:
        self.put_many([(key, value)])

    def put_many(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        if isinstance(items, list) and len(items) > 1024:
            # in key order the B-tree is walked once, not at random: about 1.7x faster for a
            # commit's worth of keys (a stable sort: a key given twice keeps its last value)
            items = sorted(items, key=_key_of)
        with self._env.begin(db=self._db, write=True) as txn:
            put, delete = txn.put, txn.delete
            for k, v in items:
                if v is None:
                    delete(k)
                else:
                    put(k, v)

    def range(self, lo: bytes | None = None, hi: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        with self._env.begin(db=self._db) as txn:
            cur = txn.cursor()
            ok = cur.set_range(lo) if lo is not None else cur.first()
            if not ok:
                return
            for k, v in cur:
                if hi is not None and k >= hi:
                    break
                yield k, v

    def approximate_count(self) -> int:
        with self._env.begin(db=self._db) as txn:
            return txn.stat(self._db)["entries"]

    def clear(self) -> None:
        with self._env.begin(write=True) as txn:
            txn.drop(self._db, delete=False)
