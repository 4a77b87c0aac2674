"""Table operators."""

from __future__ import annotations

from ..batch import Batch
from ..node import Node


class ToStreamNode(Node):
    """A table's changes as plain stream records (the old values are dropped, or kept next to
    the new ones with ``with_old``)."""

    def __init__(self, name: str, with_old: bool = False) -> None:
        super().__init__(name)
        self.with_old = with_old

    def wants_old_values(self) -> bool:
        return self.with_old  # (otherwise they are dropped here)

    def process(self, batch: Batch) -> None:
        if self.with_old:
            old = batch.old_values or [None] * len(batch)
            rows = [{"old": o, "new": n} for o, n in zip(old, batch.rows())]
            batch = Batch(batch.keys, rows, batch.timestamps, batch.offsets, batch.topic, batch.partition, batch.headers)
        elif batch.old_values is not None:
            batch = Batch(batch.keys, batch.values, batch.timestamps, batch.offsets, batch.topic, batch.partition, batch.headers)
        self.forward(batch)
