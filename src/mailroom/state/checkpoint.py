"""Checkpoints: how far each store of a task reflects its changelog.

Written (atomically) after each commit; on start a task restores only from the checkpointed
offset on. A missing or unreadable checkpoint means "restore from the beginning", never an
error: the changelog is the truth, the local store is a cache of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from ..log import TopicPartition


class Checkpoint:
    """A file of {changelog partition: offset}."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[TopicPartition, int]:
        try:
            raw = orjson.loads(self.path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        return {TopicPartition(t, int(p)): int(o) for t, p, o in raw}

    def write(self, offsets: dict[TopicPartition, int]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps([[tp.topic, tp.partition, o] for tp, o in offsets.items()]))
        os.replace(tmp, self.path)

    def delete(self) -> None:
        """Forget it (done when a task starts writing, so a crash mid-way forces a full restore)."""
        self.path.unlink(missing_ok=True)
