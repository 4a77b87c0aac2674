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
from ..aggregators import COMBINED_COUNT
from ..batch import Batch
from ..codec import pack, unpack
from ..node import Node
from .source_sink import SourceNode

#: record formats: values as Arrow IPC with keys/timestamps in msgpack; values as msgpack rows;
#: one Arrow IPC frame holding the values and, in two extra columns, the keys and timestamps
_COLUMNAR, _ROWS, _FRAME = 1, 2, 3
_K, _T = "__mailroom_key", "__mailroom_ts"
COUNT_COLUMN = COMBINED_COUNT
_IS_STR = str.__instancecheck__


def key_bytes(keys: list[Any]) -> pa.Array:
    """Keys as bytes for hashing: UTF-8 for strings (one Arrow pass when all are), msgpack for
    other keys. A string key hashes the same whatever else shares its batch (a NULL or an int
    key beside it must not move it to another partition)."""
    if keys and all(map(_IS_STR, keys)):
        return pa.array(keys, type=pa.string()).cast(pa.binary())
    return pa.array([k.encode() if isinstance(k, str) else pack(k) for k in keys], type=pa.binary())


def _ipc(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc_stream(buf)
    return buf.getvalue()


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
        ks = batch.key_series()
        if ks is not None and not (ks.dtype == pl.String and ks.null_count() == 0):
            ks = None  # (only all-string key columns: other keys hash as their msgpack bytes)
        if nparts <= 1:
            parts = np.zeros(n, dtype=np.int32)
        elif ks is not None:  # the key column's UTF-8 bytes, straight from Arrow
            parts = partitions_for(ks.to_arrow().cast(pa.binary()), nparts)
        else:
            parts = partitions_for(key_bytes(batch.keys), nparts)
        values = batch.values
        if (isinstance(values, pl.DataFrame) and batch.headers is None and _K not in values.columns
                and _T not in values.columns and (ks is not None or all(map(_IS_STR, batch.keys)))):
            out_vals, out_parts, out_ts = self._frames(batch, parts, ks)
        else:
            out_vals, out_parts, out_ts = self._payloads(batch, parts)
        self.ctx.send(self.topic, [None] * len(out_vals), out_vals, out_ts, None, partitions=out_parts)
        self.ctx.count("records-out", n)

    def _frames(self, batch: Batch, parts: np.ndarray, ks: pl.Series | None = None) -> tuple[list, list, list]:
        """Columnar values with string keys: keys and timestamps ride as columns of the frame,
        which is reordered by partition once and cut into zero-copy slices (no per-row Python)."""
        ts = batch.timestamps
        kcol = ks.alias(_K) if ks is not None else pl.Series(_K, batch.keys, dtype=pl.String)
        frame = batch.values.with_columns(kcol, pl.Series(_T, ts, dtype=pl.Int64))
        counts = np.bincount(parts)
        if (parts[1:] < parts[:-1]).any():
            order = np.argsort(parts, kind="stable")
            frame = frame[order]
            ts = ts[order]
        out_vals, out_parts, out_ts = [], [], []
        start = 0
        for p, c in enumerate(counts.tolist()):
            if not c:
                continue
            out_vals.append(pack({"f": _FRAME, "v": _ipc(frame.slice(start, c))}))
            out_parts.append(p)
            out_ts.append(int(ts[start : start + c].max()))
            start += c
        return out_vals, out_parts, out_ts

    def _payloads(self, batch: Batch, parts: np.ndarray) -> tuple[list, list, list]:
        n = len(batch)
        columnar = isinstance(batch.values, pl.DataFrame)
        out_vals, out_parts, out_ts = [], [], []
        for p in np.unique(parts).tolist():
            idx = np.nonzero(parts == p)[0]
            part = batch if len(idx) == n else batch.take(idx)
            ts = part.timestamps
            payload: dict[str, Any] = {"k": part.keys, "t": ts.tolist()}
            if columnar:
                payload["f"] = _COLUMNAR
                payload["v"] = _ipc(part.values)
            else:
                payload["f"] = _ROWS
                payload["v"] = part.values
            if part.headers is not None:
                payload["h"] = part.headers
            out_vals.append(pack(payload))
            out_parts.append(p)
            out_ts.append(int(ts.max()))
        return out_vals, out_parts, out_ts


class BatchRepartitionSource(SourceNode):
    """Reads what :class:`BatchRepartitionSink` wrote: each log record back into its rows."""

    def __init__(self, name: str, topic: str) -> None:
        super().__init__(name, topic, None, None)  # type: ignore[arg-type]

    def ingest(self, rb: RecordBatch) -> int | None:
        # each readable record: (keys, values: a frame or rows, timestamps, headers or None)
        pieces: list[tuple[list, Any, np.ndarray, list | None]] = []
        offs: list[int] = []
        frame_only = True
        for i, raw in enumerate(rb.values):
            try:
                payload = unpack(raw)
                f = payload["f"]
                if f == _FRAME:
                    df = pl.read_ipc_stream(io.BytesIO(payload["v"]))
                    piece = (None, df, None, None)  # (split into keys, values, times below)
                else:
                    vals = pl.read_ipc_stream(io.BytesIO(payload["v"])) if f == _COLUMNAR else payload["v"]
                    # keys come back as lists where they were tuples (msgpack): composite keys are tuples
                    keys = [tuple(k) if isinstance(k, list) else k for k in payload["k"]]
                    piece = (keys, vals, np.asarray(payload["t"], dtype=np.int64), payload.get("h"))
                    frame_only = False
            except Exception as e:  # noqa: BLE001 - a damaged record is reported, the rest go on
                self.ctx.processing_log.report(f"unreadable repartition record: {e}", operator=self.name,
                                               topic=rb.topic, partition=rb.partition, offset=int(rb.offsets[i]))
                continue
            pieces.append(piece)
            offs.append(int(rb.offsets[i]))
        if not pieces:
            return None
        if frame_only:  # the usual case: one frame for all, keys and times split off once
            full = pieces[0][1] if len(pieces) == 1 else pl.concat([p[1] for p in pieces], how="vertical_relaxed")
            lens = [len(p[1]) for p in pieces]
            batch = Batch(None, full.drop(_K, _T), full[_T].to_numpy().astype(np.int64, copy=False),
                          np.repeat(np.asarray(offs, dtype=np.int64), lens), rb.topic, rb.partition, None,
                          key_column=full[_K])  # (the keys' list is made only if an operator reads it)
            self.ctx.count("records-in", len(batch))
            self.process(batch)
            return int(batch.timestamps.max())
        pieces = [(p[1][_K].to_list(), p[1].drop(_K, _T), p[1][_T].to_numpy(), None) if p[0] is None else p
                  for p in pieces]
        lens = [len(p[0]) for p in pieces]
        if len(pieces) == 1:
            keys = pieces[0][0]
        else:
            keys = [k for p in pieces for k in p[0]]
        frames = [p[1] for p in pieces if isinstance(p[1], pl.DataFrame)]
        if len(frames) == len(pieces):
            values: Any = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")
        else:  # (never mixed by one sink, but be safe): rows, in record order
            values = [v for p in pieces for v in (p[1].to_dicts() if isinstance(p[1], pl.DataFrame) else p[1])]
        headers = None
        if not frame_only and any(p[3] is not None for p in pieces):
            headers = [h for p in pieces for h in (p[3] if p[3] is not None else [None] * len(p[0]))]
        ts = pieces[0][2] if len(pieces) == 1 else np.concatenate([p[2] for p in pieces])
        offsets = np.repeat(np.asarray(offs, dtype=np.int64), lens)
        batch = Batch(keys, values, np.asarray(ts, dtype=np.int64), offsets, rb.topic, rb.partition, headers)
        self.ctx.count("records-in", len(batch))
        self.process(batch)
        return int(batch.timestamps.max())


class CountCombineNode(Node):
    """A combiner before a count's repartition topic: with caching on, the records between two
    commits become one row per distinct key, carrying how many records it stands for
    (``COUNT_COLUMN``) and their latest timestamp, so the topic (and the count after it) handles
    distinct keys, not records.

    Batches are gathered as they come (their key, timestamp and offset columns) and reduced in
    one native group-by when ``max_rows`` have gathered or at commit, before the task's outputs
    are flushed and its input offsets committed (or, exactly-once, in the same transaction): a
    crash before that loses nothing, the input is read again. A reduction that still holds more
    than half of ``max_rows`` keys goes out at once, so many distinct keys do not pile up.

    With caching off every record's update must be emitted, so batches pass unchanged; so do
    batches without a string key column or with NULL keys (the count reports those), after what
    was gathered before them.
    """

    #: rows gathered before they are reduced
    max_rows = 262_144

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._pending: list[pl.DataFrame] = []
        self._rows = 0
        self._source: tuple[str | None, int] | None = None

    def process(self, batch: Batch) -> None:
        ks = batch.key_series()
        if (not self.ctx.caching or ks is None or ks.dtype != pl.String or ks.null_count()
                or batch.headers is not None or len(batch) < 2):
            self._flush()
            self.forward(batch)
            return
        n = len(batch)
        if isinstance(batch.values, pl.DataFrame) and COUNT_COLUMN in batch.values.columns:
            counts = batch.values[COUNT_COLUMN].cast(pl.Int64)  # (already combined upstream)
        else:
            counts = pl.repeat(1, n, dtype=pl.Int64, eager=True)
        offsets = batch.offsets if batch.offsets is not None else np.full(n, -1, dtype=np.int64)
        self._pending.append(pl.DataFrame({"k": ks, "n": counts, "t": batch.timestamps, "o": offsets}))
        self._rows += n
        src = (batch.topic, batch.partition)
        self._source = src if self._source in (None, src) else (None, batch.partition)
        if self._rows >= self.max_rows:
            self._reduce()
            if self._rows > self.max_rows // 2:
                self._flush()

    def _reduce(self) -> None:
        """The gathered rows as one row per key (first-seen key order)."""
        frame = self._pending[0] if len(self._pending) == 1 else pl.concat(self._pending, rechunk=False)
        g = frame.group_by("k", maintain_order=True).agg(
            pl.col("n").sum(), pl.col("t").max(), pl.col("o").max())
        self._pending = [g]
        self._rows = len(g)

    def _flush(self) -> None:
        if not self._pending:
            return
        self._reduce()
        g = self._pending[0]
        topic, partition = self._source
        self._pending, self._rows, self._source = [], 0, None
        offsets = g["o"].to_numpy().astype(np.int64, copy=False)
        self.forward(Batch(None, pl.DataFrame({COUNT_COLUMN: g["n"]}),
                           g["t"].to_numpy().astype(np.int64, copy=False),
                           None if (offsets < 0).any() else offsets,
                           topic, partition, key_column=g["k"]))

    def commit(self) -> None:
        self._flush()

    def close(self) -> None:
        self._pending, self._rows, self._source = [], 0, None  # (not committed: read again)
