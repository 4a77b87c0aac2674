"""The unit that flows between operators: a batch of records of one task, as columns.

Keys are a list of Python objects. Values are either a list (any Python objects: the general
form a Python function sees) or a polars DataFrame (the columnar form: vectorized filters,
projections and pre-aggregation work on it without per-record Python). Each form is made from
the other only when an operator needs it.

Keys may also come as a column (a polars Series: a frame's key column, or string keys decoded
in one native pass): then the list is made only when an operator reads ``keys``; grouping,
hashing and pre-aggregation use the column (:meth:`Batch.key_series`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl


class Batch:
    """Records in processing order.

    ``Batch(keys, values, timestamps, offsets=None, topic=None, partition=-1, headers=None,
    old_values=None, extra=None, key_column=None)``: ``keys`` may be None when ``key_column``
    (a Series) is given; the list is then made from it on first use.
    """

    def __init__(
        self,
        keys: list[Any] | None,
        values: list[Any] | pl.DataFrame,
        timestamps: np.ndarray,
        offsets: np.ndarray | None = None,
        topic: str | None = None,
        partition: int = -1,
        headers: list | None = None,
        old_values: list[Any] | None = None,
        extra: dict[str, Any] | None = None,
        key_column: pl.Series | None = None,
    ) -> None:
        if keys is None and key_column is None:
            raise ValueError("a batch needs keys (a list, or a key column)")
        self._keys = keys
        #: the keys as a column (None: only the list); dropped when ``keys`` is assigned
        self._key_column = key_column
        self.values = values
        self.timestamps = timestamps
        self.offsets = offsets
        self.topic = topic
        self.partition = partition
        self.headers = headers
        #: For table changes: the previous value of each key (None: there was none).
        self.old_values = old_values
        self.extra = {} if extra is None else extra

    @property
    def keys(self) -> list[Any]:
        """The keys as a list (made from the key column on first use)."""
        if self._keys is None:
            self._keys = self._key_column.to_list()
        return self._keys

    @keys.setter
    def keys(self, keys: list[Any]) -> None:
        self._keys = keys
        self._key_column = None

    def key_series(self) -> pl.Series | None:
        """The keys as a polars Series, if they came as one (else None). An operator that
        changes keys makes a new batch (or assigns ``keys``), never edits the list in place."""
        return self._key_column

    def __len__(self) -> int:
        return len(self._keys) if self._keys is not None else len(self._key_column)

    def __repr__(self) -> str:
        return f"Batch({len(self)} records of {self.topic}[{self.partition}], {'columnar' if self.columnar else 'rows'})"

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
        ks = self._key_column
        return Batch(
            None if ks is not None and self._keys is None else [self.keys[i] for i in il],
            vals,
            self.timestamps[idx],
            None if self.offsets is None else self.offsets[idx],
            self.topic,
            self.partition,
            None if self.headers is None else [self.headers[i] for i in il],
            None if self.old_values is None else [self.old_values[i] for i in il],
            self.extra,
            None if ks is None else ks.gather(idx),
        )

    def with_values(self, values: list[Any] | pl.DataFrame, keys: list[Any] | None = None) -> Batch:
        """The same records with new values (and keys)."""
        return Batch(
            self._keys if keys is None else keys,
            values,
            self.timestamps,
            self.offsets,
            self.topic,
            self.partition,
            self.headers,
            None,
            self.extra,
            self._key_column if keys is None else None,
        )

    def with_key_series(self, series: pl.Series, values: list[Any] | pl.DataFrame | None = None) -> Batch:
        """The same records keyed by the column ``series`` (its list made only if read), with
        new values if given."""
        return Batch(None, self.values if values is None else values, self.timestamps, self.offsets, self.topic,
                     self.partition, self.headers, None, self.extra, series)

    @staticmethod
    def empty() -> Batch:
        return Batch([], [], np.empty(0, dtype=np.int64))
