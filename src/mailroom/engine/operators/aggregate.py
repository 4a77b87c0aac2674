"""Stream aggregation into a table: count, reduce, aggregate per key.

State lives in the task's key-value store (through the write-back cache). With caching on,
each batch touches each key's state once (pre-aggregated per batch where the aggregator can),
and the coalesced changes are emitted at commit; with caching off every record's update is
emitted in order. Emitted changes carry the previous value (``old_values``) so tables built on
them can retract it. Records with a NULL key are skipped, counted and reported to the processing log.
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import Any

import numpy as np
import polars as pl

from ..codec import pack, packer, unpack
from ...state import ExpiryIndex
from ..aggregators import Aggregator, ReduceAggregator
from ..batch import Batch
from ..node import Node

_TS = struct.Struct(">q")
_NO_TS = -(1 << 62)
_DIRTY_BYTES = 140  # what a changed key's deferred write will hold in the cache, beyond its key
_KEY_BYTES_GUESS = 16  # a key's size, where counting each would cost a pass (a cache budget, not exact)
_ABSENT = object()  # no state yet
_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})  # come back from msgpack as they were
_IS_STR = str.__instancecheck__
_PLAIN_KEYS = frozenset({str, bytes})  # equal as Python objects exactly when their encodings are
_E_KEY, _E_TS, _E_STATE = itemgetter(0), itemgetter(1), itemgetter(2)  # of a _hot entry


def encode_key(key: Any) -> bytes:
    return pack(key)


def decode_key(raw: bytes) -> Any:
    return unpack(raw, use_list=False)


class AggregateNode(Node):
    """Per-key aggregation of a stream."""

    def __init__(self, name: str, store_name: str, agg: Aggregator, ttl_ms: int | None = None) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.agg = agg
        #: state TTL: a key not updated for this long (in stream time) is deleted, and its
        #: deletion emitted as a tombstone carrying the last value as the old value
        self.ttl_ms = ttl_ms
        self.expiry: ExpiryIndex | None = None
        self._next_due: int | None = None
        #: lookup key -> [key bytes, max timestamp, state, True if it had a value at the last commit, raw value now]
        self._hot: dict[Any, list] = {}
        #: whether every key so far was a str (None: no key seen yet)
        self._simple: bool | None = None
        #: lookup keys of ``_hot`` changed since their state was last put in the store
        self._dirty: dict[Any, None] = {}

    def init(self, ctx) -> None:
        super().init(ctx)
        self.store = ctx.kv_store(self.store_name)
        if self.ttl_ms is not None:
            self.expiry = ExpiryIndex(ctx.kv_store(self.store_name + "-expiry"))

    def _touch(self, kb: bytes, previous_ts: int | None, ts: int) -> None:
        """Reschedule a key's expiry after an update (TTL only)."""
        ttl = self.ttl_ms
        due = ts + ttl
        self.expiry.set(kb, due, None if previous_ts is None else previous_ts + ttl)
        if self._next_due is not None and due < self._next_due:
            self._next_due = due

    def advance(self, stream_time: int, wall_time: int) -> None:
        self._expire(stream_time)

    def _expire(self, stream_time: int) -> None:
        if self.expiry is None or (self._next_due is not None and stream_time < self._next_due):
            return
        keys, old, ts = [], [], []
        for due, kb in self.expiry.due(stream_time):
            self.expiry.remove(kb, due)
            raw = self.store.get(kb)
            if raw is None or _TS.unpack_from(raw)[0] + self.ttl_ms != due:
                continue  # updated (or deleted) since this entry was made
            self.store.delete(kb)
            self.ctx.count("state-ttl-expired")
            if not self.ctx.caching:  # with caching the deletion goes out at commit
                keys.append(decode_key(kb))
                old.append(self.agg.result(self.agg.decode(raw[8:])))
                ts.append(stream_time)
        nxt = self.expiry.due(1 << 62, limit=1)
        self._next_due = nxt[0][0] if nxt else 1 << 62
        if keys:
            self.forward(Batch(keys, [None] * len(keys), np.asarray(ts, dtype=np.int64), old_values=old))

    def _load(self, kbs: list[bytes]) -> list[tuple[int, Any] | None]:
        out = []
        for raw in self.store.get_many(kbs):
            out.append(None if raw is None else (_TS.unpack_from(raw)[0], self.agg.decode(raw[8:])))
        return out

    def _value(self, ts: int, agg: Any) -> bytes:
        return _TS.pack(ts) + self.agg.encode(agg)

    def process(self, batch: Batch) -> None:
        ks = batch.key_series()
        if ks is not None and not ks.null_count():
            nulls = []  # (a key column says so at once)
        else:
            nulls = [i for i, k in enumerate(batch.keys) if k is None]
        if nulls:
            self.ctx.null_keys(self.name, batch, nulls)
            keep = np.ones(len(batch), dtype=bool)
            keep[nulls] = False
            batch = batch.take(keep)
            if not len(batch):
                return
        if self.expiry is not None and len(batch.timestamps):
            # keys already due before the batch's earliest record expire before it touches them
            self._expire(max(self.ctx.stream_time, int(batch.timestamps.min())))
        if self.ctx.caching and self.expiry is None:
            self._process_hot(batch)
        elif self.ctx.caching and self.agg.batchable:
            self._process_batched(batch)
        else:
            self._process_records(batch)

    # -- caching, no TTL: the node's own cache of decoded state --------------------------------------
    # Between two commits each touched key has one entry in ``self._hot``: its state decoded once
    # (not decoded and re-encoded per batch), and the raw value it had at the last commit (the
    # "old" value emitted at commit: no second store read for it). Every batch still writes the
    # encoded state to the store (the write-back cache), so readers of the store (table joins,
    # getters) see the same values as before; at commit the entries are emitted and dropped.
    def _lookup_keys(self, keys: list) -> tuple[list, bool]:
        """Keys to index ``_hot`` by: the keys themselves when all are str or bytes (equal as
        Python objects exactly when their encodings are), else their encodings (1 == 1.0 == True)."""
        if self._simple is not False:
            if _PLAIN_KEYS.issuperset(map(type, keys)):
                self._simple = True
                return keys, True
            if self._simple:  # from now on by encoding: re-key what is cached
                self._dirty = {self._hot[k][0]: None for k in self._dirty}
                self._hot = {e[0]: e for e in self._hot.values()}
            self._simple = False
        return [encode_key(k) for k in keys], False

    def _load_hot(self, lks: list, simple: bool) -> None:
        """Make ``_hot`` entries for the keys not in it yet (one store read for all of them)."""
        hot = self._hot
        new = [k for k in dict.fromkeys(lks) if k not in hot]
        if not new:
            return
        kbs = list(map(packer(), new)) if simple else new  # (encode_key, without a call each)
        # an aggregator whose merge replaces the state needs only the stored timestamp
        decode = (lambda raw: None) if self.agg.replaces and self.agg.batchable else self.agg.decode
        ts_of = _TS.unpack_from
        # (keys not in _hot have no deferred write: no need to run it for this read)
        for k, kb, raw in zip(new, kbs, self.store.get_many_deferred(kbs)):
            if raw is None:
                hot[k] = [kb, _NO_TS, _ABSENT, None, None]
            else:  # (the old raw value is read again at commit: not held, 1M keys must fit in memory)
                hot[k] = [kb, ts_of(raw)[0], decode(raw[8:]), True, None]

    def _put_hot(self, lks: dict | list, all_present: bool = False) -> None:
        """Mark the keys ``lks`` (distinct) changed; drop stateless entries (``all_present``: the
        caller knows there are none; ``lks`` is then a dict). Their state is encoded and put
        once, when the store is next read or flushed (``defer``), not per batch."""
        hot, dirty = self._hot, self._dirty
        if all_present:
            n0 = len(dirty)
            dirty.update(lks)
            self.store.defer(self._write_dirty, (len(dirty) - n0) * (_DIRTY_BYTES + _KEY_BYTES_GUESS))
            return
        nbytes = 0
        for k in lks:
            e = hot[k]
            if e[2] is _ABSENT:  # new, and its records failed: nothing to keep
                del hot[k]
                dirty.pop(k, None)
            elif k not in dirty:
                dirty[k] = None
                nbytes += len(e[0]) + _DIRTY_BYTES
        self.store.defer(self._write_dirty, nbytes)

    def _write_dirty(self) -> None:
        """Put the state of every key changed since the last write (the store's deferred writer)."""
        dirty, self._dirty = self._dirty, {}
        es = [e for e in map(self._hot.get, dirty) if e is not None and e[2] is not _ABSENT]
        enc = packer() if type(self.agg).encode is Aggregator.encode else self.agg.encode
        raws = list(map(bytes.__add__, map(_TS.pack, map(_E_TS, es)), map(enc, map(_E_STATE, es))))
        for e, raw in zip(es, raws):
            e[4] = raw
        self.store.put_many(list(zip(map(_E_KEY, es), raws)))

    def _process_hot(self, batch: Batch) -> None:
        ks = batch.key_series()
        if (ks is not None and self._simple is not False and hasattr(self.agg, "partial_columns")
                and ks.dtype in (pl.String, pl.Binary) and not ks.null_count()):
            self._process_columns(ks, batch)
            return
        keys = batch.keys
        lks, simple = self._lookup_keys(keys)
        hot = self._hot
        if self.agg.batchable:
            partials = self.agg.partial(lks, batch)
            ts_by_key = _max_ts(lks, batch.timestamps)
            self._load_hot(list(partials), simple)
            merge, init = self.agg.merge, self.agg.initial
            for k, part in partials.items():
                e = hot[k]
                a = e[2]
                e[2] = merge(init() if a is _ABSENT else a, part)
                t = ts_by_key[k]
                if t > e[1]:
                    e[1] = t
            self._put_hot(partials)
            return
        self._load_hot(lks, simple)
        if type(self.agg) is ReduceAggregator:
            self._reduce_hot(lks, batch)
            return
        add, init = self.agg.add, self.agg.initial
        for i, (lk, k, v, t) in enumerate(zip(lks, keys, batch.rows(), batch.timestamps.tolist())):
            e = hot[lk]
            a = e[2]
            try:
                e[2] = add(init() if a is _ABSENT else a, k, v)
            except Exception as ex:  # a failing aggregate function skips the record
                self._report_failure(ex, batch, i)
                continue
            if t > e[1]:
                e[1] = t
        self._put_hot(dict.fromkeys(lks))

    def _reduce_hot(self, lks: list, batch: Batch) -> None:
        """A reduce's records, calling only the user's reducer per record (the first value of a
        key starts its aggregate: no call)."""
        hot, reducer = self._hot, self.agg.reducer
        for i, (lk, v, t) in enumerate(zip(lks, batch.rows(), batch.timestamps.tolist())):
            e = hot[lk]
            a = e[2]
            if a is _ABSENT or a is None:
                e[2] = v
            else:
                try:
                    e[2] = reducer(a, v)
                except Exception as ex:  # a failing reducer skips the record
                    self._report_failure(ex, batch, i)
                    continue
            if t > e[1]:
                e[1] = t
        # (a key's first value starts it without a call: no key is left without a state)
        self._put_hot(dict.fromkeys(lks), all_present=True)

    def _report_failure(self, ex: Exception, batch: Batch, i: int) -> None:
        """A failing aggregate function: record ``i`` of ``batch`` is skipped and reported."""
        self.ctx.processing_log.report(
            f"{type(ex).__name__}: {ex}", operator=self.name, topic=batch.topic, partition=batch.partition,
            offset=None if batch.offsets is None else int(batch.offsets[i]),
        )

    def _process_columns(self, ks: pl.Series, batch: Batch) -> None:
        """The batchable path for keys that come as a (string) column: pre-aggregated per key in
        native code, so only each distinct key costs Python work."""
        uniq, partials, max_ts = self.agg.partial_columns(ks, batch)
        self._simple = True  # (str or bytes keys: equal exactly when their encodings are)
        self._load_hot(uniq, True)
        hot, merge, init = self._hot, self.agg.merge, self.agg.initial
        for k, part, t in zip(uniq, partials, max_ts):
            e = hot[k]
            a = e[2]
            e[2] = merge(init() if a is _ABSENT else a, part)
            if t > e[1]:
                e[1] = t
        self._put_hot(uniq)

    def _commit_hot(self) -> None:
        self._write_dirty()  # (before the entries leave _hot)
        hot = self._hot
        self._hot = {}
        # the values as of the last commit, from under the cache, before this flush replaces them
        # (only if a node downstream reads them: a table written to a topic does not)
        with_old = self.children_want_old_values()
        inner = getattr(self.store, "inner", None)
        existed = [e[0] for e in hot.values() if e[3] is not None] if with_old else []
        olds = iter(inner.get_many(existed) if inner is not None and existed else [])
        self.store.flush()  # to the store and the changelog, as the task would next
        if not hot:
            return
        res, decode = self.agg.result, self.agg.decode
        simple = self._simple is True
        entries = hot.values()
        keys = list(hot) if simple else [decode_key(e[0]) for e in entries]
        ts = list(map(_E_TS, entries))
        if type(self.agg).result is _identity_result and _SCALARS.issuperset(map(type, map(_E_STATE, entries))):
            new = list(map(_E_STATE, entries))  # (scalars come back from the store as they are)
        else:  # the state as the store holds it (msgpack turns tuples into lists, ...)
            new = [res(a if type(a) in _SCALARS else decode(e[4][8:])) for e in entries for a in (e[2],)]
        old = None
        if with_old:
            old = []
            for e in entries:
                if e[3] is None:
                    old.append(None)
                else:
                    o = next(olds, None)
                    old.append(None if o is None else res(decode(o[8:])))
        self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))

    def _process_batched(self, batch: Batch) -> None:
        partials = self.agg.partial(batch.keys, batch)
        uniq = list(partials)
        kbs = [encode_key(k) for k in uniq]
        ts_by_key = _max_ts(batch.keys, batch.timestamps)
        current = self._load(kbs)
        init = self.agg.initial
        puts = []
        for k, kb, cur in zip(uniq, kbs, current):
            ts0, a = cur if cur is not None else (-(1 << 62), init())
            ts1 = max(ts0, ts_by_key[k])
            puts.append((kb, self._value(ts1, self.agg.merge(a, partials[k]))))
            if self.expiry is not None:
                self._touch(kb, None if cur is None else ts0, ts1)
        self.store.put_many(puts)

    def _process_records(self, batch: Batch) -> None:
        kbs = [encode_key(k) for k in batch.keys]
        uniq = list(dict.fromkeys(kbs))
        state = dict(zip(uniq, self._load(uniq)))
        first_ts = {kb: s[0] for kb, s in state.items() if s is not None}  # for the TTL index
        emit = not self.ctx.caching
        out_keys, out_new, out_old, out_ts = [], [], [], []
        agg, init = self.agg, self.agg.initial
        for i, (k, kb, v, ts) in enumerate(zip(batch.keys, kbs, batch.rows(), batch.timestamps.tolist())):
            cur = state[kb]
            ts0, a = cur if cur is not None else (-(1 << 62), init())
            try:
                new = agg.add(a, k, v)
            except Exception as e:  # a failing aggregate function skips the record
                self._report_failure(e, batch, i)
                continue
            state[kb] = (max(ts0, ts), new)
            if emit:
                out_keys.append(k)
                out_new.append(agg.result(new))
                out_old.append(None if cur is None else agg.result(a))
                out_ts.append(ts)
                self.store.put(kb, self._value(max(ts0, ts), new))
        if self.expiry is not None:
            for kb, s in state.items():
                if s is not None:
                    self._touch(kb, first_ts.get(kb), s[0])
        if not emit:
            self.store.put_many((kb, self._value(*s)) for kb, s in state.items() if s is not None)
        elif out_keys:
            self.forward(Batch(out_keys, out_new, np.asarray(out_ts, dtype=np.int64), old_values=out_old))

    def commit(self) -> None:
        if not self.ctx.caching:
            return
        if self.expiry is None:
            self._commit_hot()
            return
        changes = self.store.flush_with_old()
        if not changes:
            return
        keys, new, old, ts = [], [], [], []
        res = self.agg.result
        for kb, o, n in changes:
            keys.append(decode_key(kb))
            new.append(None if n is None else res(self.agg.decode(n[8:])))
            old.append(None if o is None else res(self.agg.decode(o[8:])))
            ts.append(_TS.unpack_from(n)[0] if n is not None else self.ctx.stream_time)
        self.forward(Batch(keys, new, np.asarray(ts, dtype=np.int64), old_values=old))


_identity_result = Aggregator.result


def _max_ts(keys: list, timestamps: np.ndarray) -> dict:
    """Each key's latest timestamp: a dict built in C from the records in timestamp order (the
    last write per key is its maximum); already in order, as usual, there is nothing to sort."""
    if len(timestamps) > 1 and (timestamps[1:] < timestamps[:-1]).any():
        order = np.argsort(timestamps, kind="stable")
        return dict(zip([keys[i] for i in order.tolist()], timestamps[order].tolist()))
    return dict(zip(keys, timestamps.tolist()))
