"""State: key-value and window stores, the write-back cache, changelogs, checkpoints, restore.

    from mailroom.state import LmdbEnv, CachingStore
    env = LmdbEnv("state/task-0_0")
    counts = CachingStore(env.store("counts"))
    counts.put(b"gmail.com", b"1")
    changes = counts.flush()      # -> [(b"gmail.com", b"1")]: send these to the changelog
"""

from .cache import CachingStore
from .changelog import CHANGELOG_CONFIG, Changelog, changelog_topic, restore
from .checkpoint import Checkpoint
from .expiry import ExpiryIndex
from .lmdb_store import LmdbEnv, LmdbStore
from .memory_store import InMemoryStore
from .store import KeyValueStore
from .window_store import WindowStore, split_window_key, window_key

__all__ = [
    "CHANGELOG_CONFIG",
    "CachingStore",
    "Changelog",
    "Checkpoint",
    "ExpiryIndex",
    "InMemoryStore",
    "KeyValueStore",
    "LmdbEnv",
    "LmdbStore",
    "WindowStore",
    "changelog_topic",
    "restore",
    "split_window_key",
    "window_key",
]
