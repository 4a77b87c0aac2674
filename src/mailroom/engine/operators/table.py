"""Table operators."""

from __future__ import annotations

from ..batch import Batch
from ..node import Node


class ToStreamNode(Node):
    """A table's changes as plain stream records (the old values are dropped)."""

    def process(self, batch: Batch) -> None:
        if batch.old_values is not None:
            batch = Batch(batch.keys, batch.values, batch.timestamps, batch.offsets, batch.topic, batch.partition, batch.headers)
        self.forward(batch)
