"""The engine's internal encoding of Python values (state, repartition topics): msgpack, with
the SQL value types msgpack lacks (Decimal, datetime, date, time) as extension types, so they
come back as what they were."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
from collections.abc import Callable
from typing import Any

import msgpack

_DECIMAL, _DATETIME, _DATE, _TIME = 1, 2, 3, 4
_EPOCH = dt.datetime(1970, 1, 1)


def _default(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(_DECIMAL, str(obj).encode())
    if isinstance(obj, dt.datetime):
        delta = obj.replace(tzinfo=None) - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return msgpack.ExtType(_DATETIME, micros.to_bytes(8, "big", signed=True))
    if isinstance(obj, dt.date):
        return msgpack.ExtType(_DATE, obj.toordinal().to_bytes(4, "big", signed=True))
    if isinstance(obj, dt.time):
        micros = ((obj.hour * 60 + obj.minute) * 60 + obj.second) * 1_000_000 + obj.microsecond
        return msgpack.ExtType(_TIME, micros.to_bytes(8, "big", signed=True))
    if isinstance(obj, (set, frozenset)):
        return list(obj)  # type: ignore[return-value]
    raise TypeError(f"cannot encode {type(obj).__name__} in the engine's state")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _DATETIME:
        return _EPOCH + dt.timedelta(microseconds=int.from_bytes(data, "big", signed=True))
    if code == _DATE:
        return dt.date.fromordinal(int.from_bytes(data, "big", signed=True))
    if code == _TIME:
        m = int.from_bytes(data, "big", signed=True)
        return dt.time(m // 3_600_000_000, m // 60_000_000 % 60, m // 1_000_000 % 60, m % 1_000_000)
    return msgpack.ExtType(code, data)


# one Packer per thread, reused: ``msgpack.packb`` makes a new Packer on every call, which is
# most of its cost for the small values state holds (a Packer resets itself after an error)
_local = threading.local()


def pack(obj: Any) -> bytes:
    """Encode a value (msgpack, with Decimal/datetime/date/time)."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, default=_default, autoreset=True)
    return packer.pack(obj)


def packer() -> Callable[[Any], bytes]:
    """This thread's :func:`pack` as a bound C method: ``list(map(packer(), values))`` encodes a
    batch without a Python call per value."""
    try:
        return _local.packer.pack
    except AttributeError:
        pack(None)
        return _local.packer.pack


def unpack(raw: bytes, *, use_list: bool = True) -> Any:
    """Decode what :func:`pack` made (``use_list=False``: arrays as tuples, e.g. for keys)."""
    return msgpack.unpackb(raw, raw=False, use_list=use_list, strict_map_key=False, ext_hook=_ext_hook)
