"""The unit that flows between operators: a batch of records of one task, as columns.

Keys are a list of Python objects. Values are either a list (any Python objects: the general
form a Python function sees) or a polars DataFrame (the columnar form: vectorized filters,
projections and pre-aggregation work on it without per-record Python). Each form is made from
the other only when an operator needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl


@dataclass
class Batch:
    """Records in processing order."""

    keys: list[Any]
    values: list[Any] | pl.DataFrame
    timestamps: np.ndarray
    offsets: np.ndarray | None = None
    topic: str | None = None
    partition: int = -1
    headers: list | None = None
    #: For table changes: the previous value of each key (None: there was none).
    old_values: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def columnar(self) -> bool:
        return isinstance(self.values, pl.DataFrame)

    def rows(self) -> list[Any]:
        """The values as a list (dicts for columnar values)."""
        if isinstance(self.values, pl.DataFrame):
            self.values = self.values.to_dicts()
        return self.values

    def frame(self) -> pl.DataFrame:
        """The values as a DataFrame (rows must be dicts)."""
        if not isinstance(self.values, pl.DataFrame):
            self.values = pl.from_dicts(self.values) if self.values else pl.DataFrame()
        return self.values

    def take(self, idx: np.ndarray) -> Batch:
        """The records at positions ``idx`` (an int array or a boolean mask), in that order."""
        if idx.dtype == bool:
            if idx.all():
                return self
            idx = np.nonzero(idx)[0]
        il = idx.tolist()
        vals = self.values[idx] if isinstance(self.values, pl.DataFrame) else [self.values[i] for i in il]
        return Batch(
            [self.keys[i] for i in il],
            vals,
            self.timestamps[idx],
            None if self.offsets is None else self.offsets[idx],
            self.topic,
            self.partition,
            None if self.headers is None else [self.headers[i] for i in il],
            None if self.old_values is None else [self.old_values[i] for i in il],
            self.extra,
        )

    def with_values(self, values: list[Any] | pl.DataFrame, keys: list[Any] | None = None) -> Batch:
        """The same records with new values (and keys)."""
        return Batch(
            self.keys if keys is None else keys,
            values,
            self.timestamps,
            self.offsets,
            self.topic,
            self.partition,
            self.headers,
            None,
            self.extra,
        )

    @staticmethod
    def empty() -> Batch:
        return Batch([], [], np.empty(0, dtype=np.int64))
