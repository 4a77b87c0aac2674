"""ALERTS of provider health: deferral, block and bounce spikes (a Python pipeline).

Per provider and 1-minute window (event time), the rate of deferrals, blocks and bounces among
delivery attempts (delivered + deferred + bounced) is compared with its baseline, the mean of
the previous ``baseline_windows`` healthy windows. A window alerts when it has at least
``min_attempts`` attempts, its rate exceeds ``factor`` x the baseline and a floor, and the
provider was not already alerting for that kind; one ALERTS record per episode.

Why not SQL: a window's row would have to be compared with the rows of the windows before it
(and only the healthy ones), which ksqlDB's SQL has no way to say. Two processors instead:

1. per input partition (no repartition of the events): count each provider's attempts per
   minute in a store; when the partition's stream time passes a minute's end, send one partial
   row per provider (zeros included) keyed by provider, tagged with the partition count;
2. per provider (after a repartition of those few rows): add the partials up; once every
   partition's partial for a minute is in (or ``max_wait_ms`` of stream time later), judge it.

A minute is thus judged as soon as the slowest partition has moved past it, however the input
was batched, and the events themselves never leave their partition.
"""

from __future__ import annotations

from typing import Any

import orjson

from mailroom.engine import Processor, Topology

APPLICATION_ID = "email-alerts"
MINUTE = 60_000
INPUT_TOPIC, ALERTS_TOPIC = "email-events", "ALERTS"
_OUTCOMES = {"delivered": 0, "deferred": 1, "bounced": 2}
#: kind -> (counter index in [attempts, deferred, bounced, blocked], what it is called)
KINDS = {"deferral_spike": (1, "deferral"), "block_spike": (3, "block"), "bounce_spike": (2, "bounce")}
FLOORS = {"deferral_spike": 0.15, "block_spike": 0.05, "bounce_spike": 0.10}


def _mkey(provider: str, window_start: int) -> bytes:
    return provider.encode() + b"\x00" + window_start.to_bytes(8, "big", signed=True)


class ProviderMinuteCounts(Processor):
    """Stage 1: per-partition attempt counts per (provider, minute), emitted when the minute ends."""

    stores = ("alerts-partial-counts",)

    def __init__(self, window_ms: int = MINUTE, name: str = "") -> None:
        super().__init__(name)
        self.window = int(window_ms)

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.counts = ctx.kv_store("alerts-partial-counts")
        self.schedule(self.window, self.close_windows)
        self.closed_before = -(1 << 62)  # windows starting before this are closed
        self.providers: set[str] = set()
        for k, _ in self.counts.range():
            self.providers.add(k.split(b"\x00")[0].decode())

    def process(self, batch: Any) -> None:
        acc: dict[tuple[str, int], list[int]] = {}
        late = 0
        for ev, ts in zip(batch.rows(), batch.timestamps.tolist()):
            if not isinstance(ev, dict):
                continue
            i = _OUTCOMES.get(ev.get("type"))
            prov = ev.get("provider")
            if i is None or not prov:
                continue
            ws = ts - ts % self.window
            if ws < self.closed_before:
                late += 1
                continue
            c = acc.get((prov, ws))
            if c is None:
                c = acc[(prov, ws)] = [0, 0, 0, 0]
            c[0] += 1
            if i:
                c[i] += 1
            if ev.get("bounce_class") == "block":
                c[3] += 1
        if late:
            self.ctx.late(self.name, late)
        for (prov, ws), c in acc.items():
            self.providers.add(prov)
            k = _mkey(prov, ws)
            raw = self.counts.get(k)
            if raw is not None:
                c = [a + b for a, b in zip(orjson.loads(raw), c)]
            self.counts.put(k, orjson.dumps(c))

    def close_windows(self, now: int) -> None:
        """Emit and forget every window that ended at or before stream time ``now``."""
        end = now - now % self.window  # windows starting before this have ended
        pending: dict[int, dict[str, list[int]]] = {}
        for k, raw in list(self.counts.range()):
            prov, ws = k.split(b"\x00", 1)[0].decode(), int.from_bytes(k[-8:], "big", signed=True)
            if ws < end:
                pending.setdefault(ws, {})[prov] = orjson.loads(raw)
                self.counts.delete(k)
        parts = self.ctx.partitions_of(self.source_topic)
        keys, vals, stamps = [], [], []
        for ws in sorted(pending):
            for prov in sorted(self.providers):  # zeros too: the merger waits for every partition
                c = pending[ws].get(prov, [0, 0, 0, 0])
                keys.append(prov)
                vals.append({"ws": ws, "part": self.ctx.partition, "parts": parts, "c": c})
                stamps.append(ws + self.window)
        self.closed_before = max(self.closed_before, end)
        self.emit(keys, vals, stamps)

    source_topic = INPUT_TOPIC


class SpikeDetector(Processor):
    """Stage 2 (keyed by provider): merges the partials of a minute and judges it."""

    stores = ("alerts-merge", "alerts-history")

    def __init__(self, window_ms: int = MINUTE, baseline_windows: int = 5, min_history: int = 3, factor: float = 3.0,
                 min_attempts: int = 30, max_wait_ms: int = 2 * MINUTE, floors: dict[str, float] | None = None,
                 name: str = "") -> None:
        super().__init__(name)
        self.window, self.n, self.min_history, self.factor = int(window_ms), int(baseline_windows), int(min_history), float(factor)
        self.min_attempts, self.max_wait = int(min_attempts), int(max_wait_ms)
        self.floors = {**FLOORS, **(floors or {})}

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.merge = ctx.kv_store("alerts-merge")
        self.history = ctx.kv_store("alerts-history")
        self.schedule(self.window, self.timeout)

    def process(self, batch: Any) -> None:
        out: tuple[list, list, list] = ([], [], [])
        for prov, p in zip(batch.keys, batch.rows()):
            k = _mkey(prov, p["ws"])
            raw = self.merge.get(k)
            m = orjson.loads(raw) if raw is not None else {"seen": [], "c": [0, 0, 0, 0]}
            if p["part"] in m["seen"]:
                continue  # a replayed partial (at-least-once): counted already
            m["seen"].append(p["part"])
            m["c"] = [a + b for a, b in zip(m["c"], p["c"])]
            if len(m["seen"]) >= p["parts"]:
                self.merge.delete(k)
                self._judge(prov, p["ws"], m["c"], out)
            else:
                self.merge.put(k, orjson.dumps(m))
        self.emit(*out)

    def timeout(self, now: int) -> None:
        """Judge minutes some partition never reported (an idle partition) after max_wait_ms."""
        out: tuple[list, list, list] = ([], [], [])
        due = []
        for k, raw in self.merge.range():
            prov, ws = k.split(b"\x00", 1)[0].decode(), int.from_bytes(k[-8:], "big", signed=True)
            if ws + self.window + self.max_wait <= now:
                due.append((ws, prov, k, orjson.loads(raw)["c"]))
        for ws, prov, k, c in sorted(due):
            self.merge.delete(k)
            self._judge(prov, ws, c, out)
        self.emit(*out)

    def _judge(self, prov: str, ws: int, c: list[int], out: tuple[list, list, list]) -> None:
        hk = prov.encode()
        raw = self.history.get(hk)
        h = orjson.loads(raw) if raw is not None else {"last": None, "rates": {k: [] for k in KINDS}, "active": []}
        if h["last"] is not None and ws <= h["last"]:
            return  # judged already (a late, timed-out minute)
        h["last"] = ws
        attempts = c[0]
        if attempts >= self.min_attempts:
            for kind, (i, label) in KINDS.items():
                rate = c[i] / attempts
                rates = h["rates"][kind]
                baseline = sum(rates) / len(rates) if rates else 0.0
                spike = len(rates) >= self.min_history and rate >= self.floors[kind] and rate > self.factor * baseline
                if spike:
                    if kind not in h["active"]:
                        h["active"].append(kind)
                        out[0].append(f"{kind}:{prov}:{ws}")
                        out[1].append({
                            "KIND": kind, "SUBJECT": prov, "VALUE": round(rate, 4), "BASELINE": round(baseline, 4),
                            "WINDOW_START": ws, "TS": ws + self.window, "ATTEMPTS": attempts,
                            "MESSAGE": (f"{prov}: {label} rate {rate:.0%} of {attempts} attempts in the minute from "
                                        f"{_hhmm(ws)} UTC, against a baseline of {baseline:.1%}"),
                        })
                        out[2].append(ws + self.window)
                    continue  # a spiking minute stays out of the baseline
                if kind in h["active"]:
                    h["active"].remove(kind)
                rates.append(rate)
                del rates[: -self.n]
        self.history.put(hk, orjson.dumps(h))


def _hhmm(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def topology(window_ms: int | str = MINUTE, baseline_windows: int | str = 5, min_history: int | str = 3,
             factor: float | str = 3.0, min_attempts: int | str = 30, max_wait_ms: int | str = 2 * MINUTE,
             input_topic: str = INPUT_TOPIC, alerts_topic: str = ALERTS_TOPIC) -> Topology:
    """events -> per-partition minute counts -> (by provider) spike detection -> ALERTS.

    Parameters may be given as strings (as ``mailroom run --param`` passes them)."""

    def stage1() -> ProviderMinuteCounts:
        p = ProviderMinuteCounts(int(window_ms))
        p.source_topic = input_topic
        return p

    top = Topology()
    (top.stream(input_topic)
        .process(stage1, stores=ProviderMinuteCounts.stores)
        .repartition(name="alerts-by-provider")
        .process(lambda: SpikeDetector(int(window_ms), int(baseline_windows), int(min_history), float(factor),
                                       int(min_attempts), int(max_wait_ms)), stores=SpikeDetector.stores)
        .to(alerts_topic))
    return top
