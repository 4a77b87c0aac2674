"""Repartition topics that carry columnar batches: one log record per (batch, partition).

Re-keying a stream sends its records through an internal topic so that each lands in the
partition of its new key. Writing one log record per row costs an encode, a hash and a produce
per row; here the sink hashes all keys at once (vectorized murmur2), splits the batch by
partition, and writes each part as ONE record: its keys, timestamps and values, with columnar
values as Arrow IPC. The source turns such a record back into the rows, in order. Offsets and
commits stay per log record, so at-least-once and exactly-once work as for any topic.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ...log import RecordBatch, partitions_for
from ..batch import Batch
from ..codec import pack, unpack
from ..node import Node
from .source_sink import SourceNode

_COLUMNAR, _ROWS = 1, 2


def key_bytes(keys: list[Any]) -> pa.Array:
    """Keys as bytes for hashing: UTF-8 for strings (one Arrow pass), msgpack otherwise."""
    if keys and all(type(k) is str for k in keys):
        return pa.array(keys, type=pa.string()).cast(pa.binary())
    return pa.array([pack(k) for k in keys], type=pa.binary())


class BatchRepartitionSink(Node):
    """Writes a batch to a repartition topic: one record per partition it touches."""

    def __init__(self, name: str, topic: str) -> None:
        super().__init__(name)
        self.topic = topic

    def process(self, batch: Batch) -> None:
        n = len(batch)
        if not n:
            return
        # (a NULL key goes along too, to whatever partition its hash picks: the operator after the
        # repartition drops it and reports it, as it would without one)
        nparts = self.ctx.partitions_of(self.topic)
        parts = partitions_for(key_bytes(batch.keys), nparts) if nparts > 1 else np.zeros(n, dtype=np.int32)
        values = batch.values
        columnar = isinstance(values, pl.DataFrame)
        out_vals, out_parts, out_ts = [], [], []
        for p in np.unique(parts).tolist():
            idx = np.nonzero(parts == p)[0]
            part = batch if len(idx) == n else batch.take(idx)
            ts = part.timestamps
            payload: dict[str, Any] = {"k": part.keys, "t": ts.tolist()}
            if columnar:
                buf = io.BytesIO()
                part.values.write_ipc_stream(buf)
                payload["f"] = _COLUMNAR
                payload["v"] = buf.getvalue()
            else:
                payload["f"] = _ROWS
                payload["v"] = part.values
            if part.headers is not None:
                payload["h"] = part.headers
            out_vals.append(pack(payload))
            out_parts.append(p)
            out_ts.append(int(ts.max()))
        self.ctx.send(self.topic, [None] * len(out_vals), out_vals, out_ts, None, partitions=out_parts)
        self.ctx.count("records-out", n)


class BatchRepartitionSource(SourceNode):
    """Reads what :class:`BatchRepartitionSink` wrote: each log record back into its rows."""

    def __init__(self, name: str, topic: str) -> None:
        super().__init__(name, topic, None, None)  # type: ignore[arg-type]

    def ingest(self, rb: RecordBatch) -> int | None:
        keys: list[Any] = []
        frames: list[pl.DataFrame] = []
        rows: list[Any] = []
        ts_parts, off_parts = [], []
        headers: list | None = None
        for i, raw in enumerate(rb.values):
            try:
                payload = unpack(raw)
                if payload["f"] == _COLUMNAR:
                    frames.append(pl.read_ipc_stream(io.BytesIO(payload["v"])))
                else:
                    rows.extend(payload["v"])
            except Exception as e:  # noqa: BLE001 - a damaged record is reported, the rest go on
                self.ctx.processing_log.report(f"unreadable repartition record: {e}", operator=self.name,
                                               topic=rb.topic, partition=rb.partition, offset=int(rb.offsets[i]))
                continue
            # keys come back as lists where they were tuples (msgpack): composite keys are tuples
            keys.extend(tuple(k) if isinstance(k, list) else k for k in payload["k"])
            ts_parts.append(np.asarray(payload["t"], dtype=np.int64))
            off_parts.append(np.full(len(payload["k"]), rb.offsets[i], dtype=np.int64))
            if "h" in payload:
                headers = (headers or [None] * (len(keys) - len(payload["k"]))) + list(payload["h"])
            elif headers is not None:
                headers.extend([None] * len(payload["k"]))
        if not keys:
            return None
        values: Any = (pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]) if frames else rows
        if frames and rows:  # (never mixed by one sink, but be safe)
            values = frames[0].to_dicts() + rows
        batch = Batch(keys, values, np.concatenate(ts_parts), np.concatenate(off_parts), rb.topic, rb.partition, headers)
        self.ctx.count("records-in", len(batch))
        self.process(batch)
        return int(batch.timestamps.max())
