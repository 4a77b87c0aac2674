"""Serdes the engine's sources and sinks use: bytes <-> Python objects, a batch at a time.

A serde decodes a list of raw bytes into a list of objects or a polars DataFrame (columnar),
and encodes back. A record that cannot be decoded is reported, not raised: ``decode`` returns
the values plus the positions and reasons of the bad ones, which the task sends to the
processing log while the rest go on.
"""

from __future__ import annotations

import operator
import struct
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
import numpy as np
import orjson
import polars as pl

from ..formats.windowed import (
    decode_session_windowed,
    decode_time_windowed,
    encode_session_windowed,
    encode_time_windowed,
)
from .codec import pack, unpack
from .windows import SessionWindowed, Windowed

_Q = struct.Struct(">q")


class Serde(Protocol):
    """Batch serde."""

    def decode(self, raw: Sequence[bytes | None]) -> tuple[list[Any] | pl.DataFrame, list[tuple[int, str]]]:
        """(values, [(position, reason) of each record that could not be decoded])."""
        ...

    def encode(self, values: list[Any] | pl.DataFrame) -> list[bytes | None]:
        ...


_JUST_STR = frozenset({str})


class BytesSerde:
    """Raw bytes, unchanged."""

    def decode(self, raw):
        return list(raw), []

    def encode(self, values):
        return list(values)


class StringSerde:
    """UTF-8 text."""

    def decode(self, raw):
        try:  # the usual batch: no NULL, all UTF-8 (one C-level pass)
            return list(map(bytes.decode, raw)), []
        except (TypeError, UnicodeDecodeError):
            pass
        out, bad = [], []
        for i, b in enumerate(raw):
            try:
                out.append(None if b is None else b.decode())
            except UnicodeDecodeError as e:
                out.append(None)
                bad.append((i, f"not UTF-8: {e}"))
        return out, bad

    def encode(self, values):
        if _JUST_STR.issuperset(map(type, values)):  # (the usual case: one C call per value)
            return list(map(str.encode, values))
        return [v.encode() if type(v) is str else None if v is None else str(v).encode() for v in values]


class Int64Serde:
    """A signed 64-bit big-endian integer (Kafka's LongSerializer)."""

    _S = struct.Struct(">q")

    def decode(self, raw):
        out, bad = [], []
        for i, b in enumerate(raw):
            if b is None:
                out.append(None)
            elif len(b) != 8:
                out.append(None)
                bad.append((i, f"expected 8 bytes for a BIGINT, got {len(b)}"))
            else:
                out.append(self._S.unpack(b)[0])
        return out, bad

    def encode(self, values):
        return [None if v is None else self._S.pack(int(v)) for v in values]


def _dumps_numbers(values: list[Any]) -> list[bytes] | None:
    """JSON of a list of plain ints/floats in one orjson call, split at the commas (a number's
    JSON has none); None when the values are not all such numbers."""
    if not values or not all(type(v) is int or type(v) is float for v in values):
        return None
    try:
        return orjson.dumps(values)[1:-1].split(b",")
    except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits: per value, as before
        return None


class JsonSerde:
    """JSON documents as Python objects (orjson); the general, row-wise form."""

    def decode(self, raw):
        loads = orjson.loads
        try:
            return [None if b is None else loads(b) for b in raw], []
        except orjson.JSONDecodeError:
            pass
        out, bad = [], []
        for i, b in enumerate(raw):
            try:
                out.append(None if b is None else loads(b))
            except orjson.JSONDecodeError as e:
                out.append(None)
                bad.append((i, f"invalid JSON: {e}"))
        return out, bad

    def encode(self, values):
        if isinstance(values, pl.DataFrame):
            values = values.to_dicts()
        fast = _dumps_numbers(values)
        if fast is not None:
            return fast
        dumps = orjson.dumps
        return [None if v is None else dumps(v) for v in values]


_scratch = threading.local()


def _newlines(text: bytes) -> int:
    """How many b"\\n" ``text`` holds: numpy compares several times faster than bytes.count,
    into a scratch buffer kept per thread (a fresh one per batch costs more in page faults)."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < len(text):
        buf = _scratch.buf = np.empty(max(len(text), 1 << 21), dtype=bool)
    out = buf[: len(text)]
    np.equal(np.frombuffer(text, dtype=np.uint8), 10, out=out)
    return int(np.count_nonzero(out))


#: polars types whose JSON form msgspec decodes to exactly the Python type polars builds them from
_PY_TYPES: dict[Any, type] = {pl.String: str, pl.Int64: int, pl.Int32: int, pl.Int16: int, pl.Int8: int,
                              pl.UInt64: int, pl.UInt32: int, pl.UInt16: int, pl.UInt8: int,
                              pl.Float64: float, pl.Float32: float, pl.Boolean: bool}
_ATTRS: dict[int, Any] = {}


def _attr(i: int):
    """A getter of a struct's i-th field (``_f{i}``), cached."""
    g = _ATTRS.get(i)
    if g is None:
        g = _ATTRS[i] = operator.attrgetter(f"_f{i}")
    return g


def _struct_decoder(schema: dict[str, pl.DataType]):
    """msgspec's decoder of one JSON object into a struct of the schema's fields (each optional,
    NULL when absent), or None when a field's type has no exact msgspec counterpart."""
    fields = []
    for i, (name, dtype) in enumerate(schema.items()):
        py = _PY_TYPES.get(dtype if isinstance(dtype, type) else type(dtype))
        if py is None:
            return None
        fields.append((f"_f{i}", py | None, None))
    rename = {f"_f{i}": name for i, name in enumerate(schema)}
    row = msgspec.defstruct("JsonColumnsRow", fields, rename=rename, gc=False)
    return msgspec.json.Decoder(row).decode


class JsonColumnsSerde:
    """JSON objects decoded straight into columns (only the fields of ``schema``).

    The fast path: polars decodes a whole batch in native code. A batch with a malformed
    record falls back to decoding record by record, so only that record is lost (and reported).
    """

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self._rows = _struct_decoder(schema)

    def decode(self, raw):
        if self._rows is not None and raw and None not in raw:
            # each record parsed on its own by msgspec into a struct of just the wanted fields
            # (the others are skipped unparsed): twice as fast as polars' NDJSON reader, and a
            # record cannot spill into its neighbours. Any surprise (not an object, a value of
            # another type, a number out of range) falls through to the paths below.
            try:
                rows = list(map(self._rows, raw))
                return pl.DataFrame({f: pl.Series(f, list(map(_attr(i), rows)), dtype=t)
                                     for i, (f, t) in enumerate(self.schema.items())}), []
            except Exception:  # noqa: BLE001 - (msgspec's, or polars' on a value out of the type's range)
                pass
        # records are joined into NDJSON: one that spans lines (two documents, or pretty-printed)
        # would parse "fine" but shift later rows off their records, so no record may hold a
        # newline (counted on the joined text: one pass in C). A blank record is a skipped line
        # (the row count then differs), and two documents on one line are a parse error: both
        # fall back to the per-record path below.
        if raw and None not in raw:
            joined = b"\n".join(raw)
            if _newlines(joined) == len(raw) - 1:
                try:
                    df = pl.read_ndjson(joined, schema=self.schema)
                    if len(df) == len(raw):
                        return df, []
                except Exception:
                    pass
        rows, bad = [], []
        for i, b in enumerate(raw):
            if b is None:
                rows.append(None)
                continue
            try:
                doc = orjson.loads(b)
                if not isinstance(doc, dict):
                    raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
                rows.append(doc)
            except (orjson.JSONDecodeError, ValueError) as e:
                rows.append(None)
                bad.append((i, f"invalid JSON: {e}"))
        fields = list(self.schema)
        df = pl.DataFrame(
            {f: [None if r is None else r.get(f) for r in rows] for f in fields}, schema=self.schema, strict=False
        )
        return df, bad

    def encode(self, values):
        if isinstance(values, pl.DataFrame):
            return [orjson.dumps(r) for r in values.to_dicts()]
        fast = _dumps_numbers(values)
        if fast is not None:
            return fast
        return [None if v is None else orjson.dumps(v) for v in values]


class MsgpackSerde:
    """Any msgpack-able Python value (the engine's format for its internal topics)."""

    #: a Windowed key is just a tuple to it: sinks need not switch to the windowed layout
    handles_windowed = True

    def decode(self, raw):
        out, bad = [], []
        for i, b in enumerate(raw):
            try:
                out.append(None if b is None else unpack(b, use_list=False))
            except Exception as e:
                out.append(None)
                bad.append((i, f"invalid msgpack: {e}"))
        return out, bad

    def encode(self, values):
        if isinstance(values, pl.DataFrame):
            values = values.to_dicts()
        return [None if v is None else pack(v) for v in values]


BYTES = BytesSerde()
MSGPACK = MsgpackSerde()
STRING = StringSerde()
INT64 = Int64Serde()
JSON = JsonSerde()


class WindowedSerde:
    """Windowed keys as Kafka Streams writes them: the inner key's bytes, then the window start
    (8 bytes, big-endian) for time windows, or the end and the start for session windows.
    Decoded keys are :class:`~.windows.Windowed`; a time window's end is ``start + size_ms``."""

    handles_windowed = True

    def __init__(self, inner: Serde, *, session: bool = False, size_ms: int | None = None) -> None:
        self.inner = inner
        self.session = session
        self.size_ms = size_ms

    def encode(self, values):
        inner = self.inner.encode([None if w is None else w.key for w in values])
        if not self.session and None not in values and not any(isinstance(w, SessionWindowed) for w in values):
            q = _Q.pack  # time windows (the usual case): key + 8-byte BE start, as encode_time_windowed
            return [bytes(kb or b"") + q(w.start) for w, kb in zip(values, inner)]
        out = []
        for w, kb in zip(values, inner):
            if w is None:
                out.append(None)
            elif self.session or isinstance(w, SessionWindowed):
                out.append(encode_session_windowed(kb or b"", w.start, w.end))
            else:
                out.append(encode_time_windowed(kb or b"", w.start))
        return out

    def decode(self, raw):
        parts, bad = [], []
        for i, b in enumerate(raw):
            try:
                if b is None:
                    parts.append(None)
                elif self.session:
                    parts.append(decode_session_windowed(b))
                else:
                    parts.append(decode_time_windowed(b))
            except Exception as e:  # noqa: BLE001 - reported, not raised
                parts.append(None)
                bad.append((i, str(e)))
        keys, bad_inner = self.inner.decode([None if p is None else p.key for p in parts])
        out = []
        for p, k in zip(parts, keys):
            if p is None:
                out.append(None)
            elif self.session:
                out.append(SessionWindowed(k, p.start, p.end))
            else:
                end = p.start + self.size_ms if self.size_ms is not None else p.start
                out.append(Windowed(k, p.start, end))
        return out, bad + bad_inner
