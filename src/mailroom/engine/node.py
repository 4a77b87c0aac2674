"""Processor nodes: what a task runs. One instance per task (each holds that task's state).

A node gets a batch in :meth:`Node.process`, and passes results to its children with
:meth:`Node.forward`. At commit the task calls :meth:`Node.commit` (nodes with cached state
flush it and emit the coalesced changes), and when stream time moves :meth:`Node.advance`
(windows close, timers fire, state expires).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .batch import Batch

if TYPE_CHECKING:
    from .context import TaskContext


class Node:
    """A processor node."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: list[Node] = []
        self.ctx: TaskContext | None = None

    def init(self, ctx: TaskContext) -> None:
        """Called once, before the first batch (open stores here)."""
        self.ctx = ctx

    def process(self, batch: Batch) -> None:
        self.forward(batch)

    def forward(self, batch: Batch) -> None:
        if not len(batch):
            return
        for child in self.children:
            child.process(batch)

    def wants_old_values(self) -> bool:
        """Whether this node (or one after it) reads the ``old_values`` of the table changes it
        gets: a table operator with nobody downstream who does can skip reading them. True
        unless a node knows better (the safe answer for nodes that do not say)."""
        return True

    def children_want_old_values(self) -> bool:
        return any(c.wants_old_values() for c in self.children)

    def commit(self) -> None:
        """Flush cached state (emitting what it coalesced)."""

    def advance(self, stream_time: int, wall_time: int) -> None:
        """Stream time (or wall-clock time) moved on."""

    def close(self) -> None:
        """Release resources."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"
