"""Sources (log records -> batches) and sinks (batches -> log records)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from ...log import RecordBatch
from ..batch import Batch
from ..node import Node
from ..serdes import Serde, StringSerde, WindowedSerde
from ..windows import Windowed


class SourceNode(Node):
    """Decodes a topic's records. Records that do not decode go to the processing log."""

    def __init__(
        self,
        name: str,
        topic: str,
        key_serde: Serde,
        value_serde: Serde,
        timestamp_field: str | None = None,
        prepare: Callable[[Batch], tuple[Batch, list[tuple[int, str]]]] | None = None,
    ) -> None:
        super().__init__(name)
        self.topic = topic
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.timestamp_field = timestamp_field
        #: a hook run on each decoded batch before it goes down the topology: it may rewrite
        #: values, keys and timestamps (event time) and reject records (position, reason),
        #: which go to the processing log (the SQL layer builds its rows here)
        self.prepare = prepare

    def _prepare(self, batch: Batch) -> Batch:
        if self.prepare is None or not len(batch):
            return batch
        out, bad = self.prepare(batch)
        if bad:
            for i, reason in bad:
                self.ctx.processing_log.report(
                    reason, operator=self.name, topic=batch.topic, partition=batch.partition,
                    offset=None if batch.offsets is None else int(batch.offsets[i]),
                )
            keep = np.ones(len(out), dtype=bool)
            keep[[i for i, _ in bad]] = False
            out = out.take(keep)
        return out

    def ingest(self, rb: RecordBatch) -> int | None:
        """Decode a polled batch and push it down the topology. Returns the latest timestamp of
        its decoded records (event time, with ``timestamp_field``), None if none decoded."""
        raw_values = rb.values
        key_column = _string_keys(rb) if type(self.key_serde) is StringSerde else None
        if key_column is not None:  # (the keys' list is made only if an operator reads it)
            keys, bad_k = None, []
        else:
            keys, bad_k = self.key_serde.decode(rb.keys)
        values, bad_v = self.value_serde.decode(raw_values)
        if isinstance(keys, pl.DataFrame):
            keys = keys.to_dicts() if keys.width > 1 else keys.to_series().to_list()
        ts = rb.timestamps
        bad = {i: r for i, r in bad_k}
        bad.update({i: r for i, r in bad_v})
        if self.timestamp_field is not None:
            if isinstance(values, pl.DataFrame):
                col = values[self.timestamp_field]
                ts = np.where(col.is_null().to_numpy(), ts, col.fill_null(0).cast(pl.Int64).to_numpy())
            else:
                fts = [v.get(self.timestamp_field) if isinstance(v, dict) else None for v in values]
                ts = np.array([t if isinstance(t, int) else r for t, r in zip(fts, ts.tolist())], dtype=np.int64)
        batch = Batch(keys, values, np.asarray(ts, dtype=np.int64), rb.offsets, rb.topic, rb.partition, rb.headers,
                      key_column=key_column)
        if bad:
            for i, reason in sorted(bad.items()):
                self.ctx.processing_log.report(
                    reason,
                    operator=self.name,
                    topic=rb.topic,
                    partition=rb.partition,
                    offset=int(rb.offsets[i]),
                    key=rb.keys[i],
                    value=raw_values[i],
                )
            keep = np.ones(len(batch), dtype=bool)
            keep[list(bad)] = False
            batch = batch.take(keep)
        batch = self._prepare(batch)
        self.ctx.count("records-in", len(batch))
        self.process(batch)
        return int(batch.timestamps.max()) if len(batch) else None


def _string_keys(rb: RecordBatch) -> pl.Series | None:
    """A batch's keys as UTF-8 text in one native pass (a Series), as :class:`StringSerde` would
    decode them; None if a key is not valid UTF-8 (the serde then reports it)."""
    try:
        return pl.from_arrow(rb.key_array.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return None


class SinkNode(Node):
    """Encodes records and sends them to a topic (partitioned by key, as Kafka does)."""

    def __init__(self, name: str, topic: str, key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(name)
        self.topic = topic
        self.key_serde = key_serde
        self.value_serde = value_serde

    def wants_old_values(self) -> bool:
        return False  # a topic gets the new values only

    def process(self, batch: Batch) -> None:
        if not len(batch):
            return
        serde = self.key_serde
        if batch.keys and isinstance(batch.keys[0], Windowed) and not getattr(serde, "handles_windowed", False):
            serde = self.key_serde = WindowedSerde(serde)  # windowed keys in Kafka Streams' layout
        keys = serde.encode(batch.keys)
        values = self.value_serde.encode(batch.values)
        self.ctx.send(self.topic, keys, values, batch.timestamps, batch.headers)
        self.ctx.count("records-out", len(batch))
