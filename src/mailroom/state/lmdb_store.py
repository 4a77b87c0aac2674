"""The durable key-value store: LMDB.

Why LMDB and not RocksDB: measured on this machine kind (500k 11-byte keys, 100-byte values,
batches of 10k): LMDB puts 2.2M/s vs RocksDB (rocksdict) 1.2M/s, gets 3.2M/s vs 0.77M/s. Its
readers also work from other processes while a writer runs, which interactive queries can use.
With the write-back cache in front, the store sees one batched write per commit.

One LMDB environment per task folder holds every store of that task as a named database.
Durability comes from the changelog topic, so commits skip fsync (``sync=False``): a killed
process loses nothing the OS has, and a lost machine is rebuilt from the changelog.

Memory: LMDB reads through a shared mmap of its file, and every page a lookup or a write walks
stays mapped, counted in the process's RSS: a 1M-key store touched at random maps all of its
file (about 900 MiB for 1M 200-byte values). The data is the OS page cache's to keep, not the
process's, so the environment drops its mapped pages (``madvise(MADV_DONTNEED)``: the file's
pages stay in the page cache, the next access maps them again at the cost of a minor fault)
once about :data:`MAPPED_BUDGET` bytes of pages may have been mapped, over all the process's
environments, since the last drop. That is the mmap counterpart of RocksDB's bounded block cache.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import operator
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import lmdb

from .store import KeyValueStore

MAP_SIZE = 1 << 38  # address space only: the file grows as data does
_key_of = operator.itemgetter(0)
_value_of = operator.itemgetter(1)
#: bound on the pages mapped by all the process's environments together (see the module
#: docstring); None: no bound
MAPPED_BUDGET: int | None = 96 << 20
_PAGE = mmap.PAGESIZE
_TXN_ITEMS = 4096  # puts per write transaction (see put_many)
_MADV_DONTNEED = 4

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _madvise = _libc.madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _madvise.restype = ctypes.c_int
except (OSError, AttributeError):  # no libc madvise (not Linux): mapped pages are left to the OS
    _madvise = None


#: the open environments (trimmed together) and the bytes touched since the last trim
_open_envs: weakref.WeakSet = weakref.WeakSet()
_touched = 0


def _mapping_of(path: Path) -> tuple[int, int] | None:
    """(start, length) of this process's mapping of ``path`` (LMDB does not tell its address)."""
    target = str(path)
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if line.rstrip("\n").endswith(target):
                    lo, hi = line.split(None, 1)[0].split("-")
                    return int(lo, 16), int(hi, 16) - int(lo, 16)
    except OSError:
        pass
    return None


class LmdbEnv:
    """An LMDB environment (one folder) shared by the stores of one task."""

    def __init__(self, path: str | Path, *, max_dbs: int = 256, map_size: int = MAP_SIZE) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(self.path), map_size=map_size, max_dbs=max_dbs, sync=False, metasync=False, readahead=False, lock=True
        )
        self._lock = threading.Lock()
        self._map: tuple[int, int] | None = None
        _open_envs.add(self)

    def touched(self, keys: int) -> None:
        """Note ``keys`` key accesses; drop every environment's mapped pages when the process's
        budget may be reached. Each access counts the pages of a root-to-leaf walk: a
        pessimistic estimate (branch pages are mostly shared), but a cheap one."""
        global _touched
        if MAPPED_BUDGET is None or _madvise is None:
            return
        _touched += keys * 3 * _PAGE
        if _touched >= MAPPED_BUDGET:
            _touched = 0
            for env in list(_open_envs):
                env.trim()

    def trim(self) -> None:
        """Unmap the pages of the data file from this process (they stay in the page cache)."""
        if _madvise is None:
            return
        if self._map is None:
            self._map = _mapping_of(self.path.resolve() / "data.mdb")
            if self._map is None:
                return
        start, length = self._map
        used = (self.env.info()["last_pgno"] + 1) * _PAGE  # only the part of the map the file covers
        _madvise(start, min(length, -(-used // _PAGE) * _PAGE), _MADV_DONTNEED)

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
        _open_envs.discard(self)
        self.env.close()


class LmdbStore(KeyValueStore):
    """A named LMDB database."""

    def __init__(self, env: LmdbEnv, name: str) -> None:
        self.name = name
        self._owner = env
        self._env = env.env
        self._db = self._env.open_db(name.encode())

    def get(self, key: bytes) -> bytes | None:
        with self._env.begin(db=self._db, buffers=False) as txn:
            v = txn.get(key)
        self._owner.touched(1)
        return v

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._env.begin(db=self._db) as txn:
            get = txn.get
            if len(keys) <= _TXN_ITEMS:
                out = [get(k) for k in keys]
                self._owner.touched(len(keys))
                return out
            out = []
            for i in range(0, len(keys), _TXN_ITEMS):  # the mapped pages are bounded mid-way too
                out += [get(k) for k in keys[i : i + _TXN_ITEMS]]
                self._owner.touched(_TXN_ITEMS)
            return out

    def put(self, key: bytes, value: bytes | None) -> None:
        self.put_many([(key, value)])

    def put_many(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        if isinstance(items, list) and len(items) > 1024:
            # in key order the B-tree is walked once, not at random: about 1.7x faster for a
            # commit's worth of keys (a stable sort: a key given twice keeps its last value)
            items = sorted(items, key=_key_of)
        if not isinstance(items, list):
            items = list(items)
        # in chunks of a bounded size: a write transaction holds a private copy of every page it
        # changes (malloc'd, and kept by LMDB for reuse), so one huge transaction of random keys
        # would hold a copy of most of the store (a crash mid-way is as after any flush: the
        # changelog is the truth, the store is rebuilt or caught up from it)
        # without deletes, LMDB's own loop (putmulti) does the puts: no Python call per item
        puts_only = None not in map(_value_of, items)
        for i in range(0, len(items), _TXN_ITEMS):
            chunk = items[i : i + _TXN_ITEMS] if len(items) > _TXN_ITEMS else items
            with self._env.begin(db=self._db, write=True) as txn:
                if puts_only:
                    txn.cursor().putmulti(chunk)
                else:
                    put, delete = txn.put, txn.delete
                    for k, v in chunk:
                        if v is None:
                            delete(k)
                        else:
                            put(k, v)
            self._owner.touched(min(len(items) - i, _TXN_ITEMS))

    def range(self, lo: bytes | None = None, hi: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        with self._env.begin(db=self._db) as txn:
            cur = txn.cursor()
            ok = cur.set_range(lo) if lo is not None else cur.first()
            if not ok:
                return
            n = 0
            for k, v in cur:
                if hi is not None and k >= hi:
                    break
                n += 1
                yield k, v
        self._owner.touched(1 + n // 8)  # a scan walks pages in order: many entries per page

    def approximate_count(self) -> int:
        with self._env.begin(db=self._db) as txn:
            return txn.stat(self._db)["entries"]

    def clear(self) -> None:
        with self._env.begin(write=True) as txn:
            txn.drop(self._db, delete=False)
