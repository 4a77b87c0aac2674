"""A deterministic simulator of an email service provider's event stream.

Messages arrive (Poisson, ``rate_per_s`` per second of event time) and go to a mix of mailbox
providers (gmail, microsoft, yahoo, apple, corporate domains), each with its own deferral and
bounce rates and reply texts. Delivery attempts see what real senders see:

- greylisting: a first attempt answered ``451 4.7.1``, accepted on the retry;
- throttling episodes: minutes during which a provider defers much more (``421 4.7.28``,
  ``421 4.7.0 [TSS04]``, ``451 4.7.650``);
- scripted outages (:class:`Outage`): every attempt to the provider is deferred (connection
  timed out, lost connection, ``421 4.3.2``) and retried later;
- retries with backoff (5, 10, 20, 40, 60 minutes), expiry after ``max_attempts`` deferrals;
- suppression-list drops, and a few messages stuck in a queue (no event after some point);
- opens, clicks, complaints and unsubscribes of delivered mail, and bulk campaigns.

Events come out in event-time order (a k-way merge of each generation chunk's sorted runs), so a
consumer's stream time follows event time. Same seed and chunk size, same stream, byte for byte.

Two ways out of one generator:

    for events in simulate(messages=1000, seed=7):          # lists of event dicts (tests, tools)
        ...
    for keys, values, ts in simulate_batches(messages=10**6, seed=7):   # columns, no per-event Python
        producer.send_batch("email-events", values, keys, timestamps=ts)

Generation works on numpy arrays of codes; :func:`simulate_batches` renders the JSON with Arrow
string kernels, :func:`simulate` builds dicts from the same codes (an independent path; the
tests hold the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .bounces import classify_bounce

MINUTE = 60_000
HOUR = 60 * MINUTE

# event type codes (indices into TYPES)
TYPES = ("injected", "dropped", "delivered", "deferred", "bounced", "expired", "opened", "clicked", "complained", "unsubscribed")
INJECTED, DROPPED, DELIVERED, DEFERRED, BOUNCED, EXPIRED, OPENED, CLICKED, COMPLAINED, UNSUBSCRIBED = range(len(TYPES))
_ATTEMPT_TYPES = (DELIVERED, DEFERRED, BOUNCED, EXPIRED)
_LIFECYCLE = (INJECTED, DROPPED, DELIVERED, DEFERRED, BOUNCED, EXPIRED)


@dataclass(frozen=True)
class Provider:
    """A mailbox provider's share of recipients and its behaviour."""

    name: str
    share: float
    domains: tuple[str, ...]
    mx: str
    p_defer: float  # a random deferral of an attempt
    p_bounce: float  # a bounce of a non-deferred attempt
    p_greylist: float  # a greylisted first attempt
    p_open: float  # an open of a delivered message
    ok_reply: str
    defer_replies: tuple[tuple[int | None, str, str], ...]
    throttle_replies: tuple[tuple[int | None, str, str], ...]
    bounce_replies: tuple[tuple[int | None, str, str], ...]  # hard, block, full: picked 70/20/10


_GENERIC_DEFER = ((451, "4.3.0", "451 4.3.0 Temporary local problem, please try later"),
                  (452, "4.2.2", "452 4.2.2 Mailbox full, try again later"))

PROVIDERS: tuple[Provider, ...] = (
    Provider("gmail", 0.38, ("gmail.com", "googlemail.com"), "gmail-smtp-in.l.google.com", 0.02, 0.010, 0.0, 0.30,
             "250 2.0.0 OK  1764000000 d9443c01a7336-2ac3e9f1b0si1234567.311 - gsmtp",
             ((452, "4.2.2", "452-4.2.2 The email account that you tried to reach is over quota. gsmtp"),
              (421, "4.7.28", "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail. gsmtp")),
             ((421, "4.7.28", "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. gsmtp"),
              (421, "4.7.0", "421-4.7.0 Try again later, closing connection. gsmtp")),
             ((550, "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. gsmtp"),
              (550, "5.7.1", "550-5.7.1 Our system has detected that this message is likely unsolicited mail. gsmtp"),
              (552, "5.2.2", "552-5.2.2 The recipient's inbox is out of storage space. gsmtp"))),
    Provider("microsoft", 0.24, ("outlook.com", "hotmail.com", "live.com"), "outlook-com.olc.protection.outlook.com", 0.03, 0.015, 0.0, 0.22,
             "250 2.6.0 <queued@mailroom.sim> [InternalId=123456789] Queued mail for delivery",
             ((451, "4.7.500", "451 4.7.500 Server busy. Please try again later from [203.0.113.11]. (S77719)"),) + _GENERIC_DEFER[:1],
             ((451, "4.7.650", "451 4.7.650 The mail server [203.0.113.11] has been temporarily rate limited due to IP reputation. (S775)"),),
             ((550, "5.5.0", "550 5.5.0 Requested action not taken: mailbox unavailable (S2017)"),
              (550, "5.7.1", "550 5.7.1 Unfortunately, messages from [203.0.113.11] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150)"),
              (552, "5.2.2", "552 5.2.2 Mailbox full"))),
    Provider("yahoo", 0.14, ("yahoo.com", "aol.com"), "mta5.am0.yahoodns.net", 0.05, 0.020, 0.0, 0.18,
             "250 ok dirdel",
             ((421, "4.7.0", "421 4.7.0 [TSS04] Messages from 203.0.113.11 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1"),),
             ((421, "4.7.0", "421 4.7.0 [TSS04] Messages from 203.0.113.11 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1"),),
             ((554, "5.1.1", "554 5.1.1 Sorry, your message to this address cannot be delivered: this account does not exist"),
              (553, "5.7.1", "553 5.7.1 [BL21] Connections will not be accepted from 203.0.113.11, because the ip is in Spamhaus's list"),
              (552, "5.2.2", "552 5.2.2 Mailbox full"))),
    Provider("apple", 0.09, ("icloud.com", "me.com"), "mx01.mail.icloud.com", 0.02, 0.008, 0.0, 0.45,
             "250 2.0.0 Ok: queued as 4F1A2B3C4D",
             _GENERIC_DEFER,
             ((421, "4.7.0", "421 4.7.0 Too many concurrent SMTP connections; please try again later"),),
             ((550, "5.1.1", "550 5.1.1 <user@icloud.com>: user does not exist"),
              (554, "5.7.1", "554 5.7.1 [CS01] Message rejected due to local policy"),
              (552, "5.2.2", "552 5.2.2 Mailbox full"))),
    Provider("corporate", 0.15, ("acme-corp.com", "globex.example", "initech.io", "umbrella.net"), "mx.corp-mail.example", 0.03, 0.030, 0.25, 0.15,
             "250 2.0.0 Ok: queued as 9C8B7A6F5E",
             _GENERIC_DEFER,
             ((450, "4.2.1", "450 4.2.1 The user you are trying to contact is receiving mail too quickly"),),
             ((550, "5.1.1", "550 5.1.1 <user>: Recipient address rejected: User unknown in virtual mailbox table"),
              (554, "5.7.1", "554 5.7.1 Service unavailable; Client host [203.0.113.11] blocked using zen.spamhaus.org"),
              (552, "5.2.2", "552 5.2.2 Mailbox full"))),
)
MTAS: tuple[tuple[str, str], ...] = (("mta-1", "203.0.113.11"), ("mta-2", "203.0.113.12"), ("mta-3", "203.0.113.13"), ("mta-4", "203.0.113.14"))
GREYLIST_REPLY = (451, "4.7.1", "451 4.7.1 Greylisted, please try again later")
OUTAGE_REPLIES = (
    (None, "4.4.1", "connect to {mx}[198.51.100.25]:25: Connection timed out"),
    (None, "4.4.2", "lost connection with {mx}[198.51.100.25] while receiving the initial server greeting"),
    (421, "4.3.2", "421 4.3.2 Service not available, closing transmission channel"),
)
EXPIRED_REPLY = (None, "4.4.7", "message expired: delivery temporarily suspended after {n} attempts")
DROPPED_REPLY = (None, "5.7.1", "recipient is on the suppression list: not sent")
_UNITS = {"ms": 1, "s": 1000, "m": MINUTE, "min": MINUTE, "h": HOUR}


def parse_duration(text: str) -> int:
    """Milliseconds of ``90s``, ``15m``, ``2h``, ``500ms`` (a bare number is milliseconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h)")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "ms"])


@dataclass(frozen=True)
class Outage:
    """A scripted outage: from ``start_ms`` after the simulation's start, for ``duration_ms``,
    every delivery attempt to ``provider`` is deferred (timeouts, lost connections, 421s)."""

    provider: str
    start_ms: int
    duration_ms: int

    @classmethod
    def parse(cls, spec: str) -> Outage:
        """``PROVIDER:START:DURATION``, e.g. ``gmail:15m:10m``."""
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError(f"outage {spec!r}: expected PROVIDER:START:DURATION, e.g. gmail:15m:10m")
        if parts[0] not in {p.name for p in PROVIDERS}:
            raise ValueError(f"outage {spec!r}: unknown provider (one of {', '.join(p.name for p in PROVIDERS)})")
        return cls(parts[0], parse_duration(parts[1]), parse_duration(parts[2]))


@dataclass(frozen=True)
class SimConfig:
    """How the simulated sender behaves (the defaults: a mid-size ESP on an ordinary day)."""

    rate_per_s: float = 50.0  # messages injected per second of event time
    max_attempts: int = 6  # deferrals before a message expires
    backoff_ms: tuple[int, ...] = (5 * MINUTE, 10 * MINUTE, 20 * MINUTE, 40 * MINUTE, 60 * MINUTE)
    throttling: bool = True  # throttling episodes
    throttle_every_ms: int = 3 * HOUR  # mean time between one provider's episodes
    throttle_p_defer: float = 0.35  # deferral probability during an episode
    outages: tuple[Outage, ...] = ()
    p_drop: float = 0.003  # suppressed: dropped at once
    p_stall: float = 0.0005  # stuck in a queue before the first attempt: no event after injection
    p_stall_deferred: float = 0.01  # stuck in a queue after a first deferral
    campaign_size: int = 5_000  # bulk messages per campaign
    p_transactional: float = 0.15
    p_click: float = 0.25  # of opens
    p_complain: float = 0.001  # of deliveries
    p_unsubscribe: float = 0.01  # of opens


# -- lookup tables (code -> text) --------------------------------------------------------------------
_DOMAINS = [d for p in PROVIDERS for d in p.domains]
_DOM_PROVIDER = np.array([i for i, p in enumerate(PROVIDERS) for _ in p.domains], dtype=np.int16)
_DOM_FIRST = np.cumsum([0] + [len(p.domains) for p in PROVIDERS])[:-1]
_NDOM = np.array([len(p.domains) for p in PROVIDERS])


def _reply_table() -> tuple[list[tuple], dict[str, np.ndarray]]:
    """Every reply the simulator writes, with its classification, and per-provider index arrays."""
    replies: list[tuple] = []
    index: dict[str, list[list[int]]] = {k: [] for k in ("ok", "defer", "throttle", "bounce", "grey", "outage", "expired", "dropped")}

    def add(code: int | None, enh: str, text: str, final_ok: bool = False) -> int:
        cls, reason = (None, None) if final_ok else classify_bounce(code, enh, text)
        replies.append((code, enh, text, cls, reason))
        return len(replies) - 1

    for p in PROVIDERS:
        index["ok"].append([add(int(p.ok_reply[:3]), p.ok_reply[4:9] if p.ok_reply[4:5] == "2" else None, p.ok_reply, True)])
        index["defer"].append([add(*r) for r in p.defer_replies])
        index["throttle"].append([add(*r) for r in p.throttle_replies])
        index["bounce"].append([add(*r) for r in p.bounce_replies])
        index["grey"].append([add(*GREYLIST_REPLY)])
        index["outage"].append([add(c, e, t.format(mx=p.mx)) for c, e, t in OUTAGE_REPLIES])
        index["dropped"].append([add(*DROPPED_REPLY)])
    arrays = {k: np.array(v, dtype=np.int16) if len({len(x) for x in v}) == 1 else v for k, v in index.items() if k != "expired"}
    return replies, arrays


REPLIES, _R = _reply_table()
_N_FIXED_REPLIES = len(REPLIES)


@lru_cache(maxsize=64)
def _expired_reply(n: int) -> int:
    """Index of the expiry reply after ``n`` attempts (added on first use; a fixed set per config)."""
    code, enh, text = EXPIRED_REPLY
    REPLIES.append((code, enh, text.format(n=n), "expired", "expired"))
    return len(REPLIES) - 1


def _pick(table: list[list[int]] | np.ndarray, prov: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A reply index per attempt: from its provider's list, chosen by the uniform ``u``."""
    out = np.empty(len(prov), dtype=np.int16)
    for i in range(len(PROVIDERS)):
        m = prov == i
        if m.any():
            choices = np.asarray(table[i], dtype=np.int16)
            out[m] = choices[np.minimum((u[m] * len(choices)).astype(np.int64), len(choices) - 1)]
    return out


# -- episodes --------------------------------------------------------------------------------------
class _Episodes:
    """Per-provider time intervals (throttling episodes, outages), extended lazily as time goes on."""

    def __init__(self, cfg: SimConfig, seed: int, start_ms: int) -> None:
        self.cfg, self.seed, self.start = cfg, seed, start_ms
        self.throttle: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, np.int64), np.empty(0, np.int64)) for _ in PROVIDERS]
        self.until = start_ms
        self.outages = [[(start_ms + o.start_ms, start_ms + o.start_ms + o.duration_ms) for o in cfg.outages if o.provider == p.name]
                        for p in PROVIDERS]

    def _extend(self, t: int) -> None:
        """Draw throttling episodes up to ``t`` (one day at a time, each day from its own seed)."""
        while self.until <= t:
            day = (self.until - self.start) // (24 * HOUR)
            for i in range(len(PROVIDERS)):
                if not self.cfg.throttling:
                    continue
                rng = np.random.default_rng([self.seed, 7, int(day), i])
                n = rng.poisson(24 * HOUR / self.cfg.throttle_every_ms)
                s = self.until + np.sort(rng.integers(0, 24 * HOUR, n))
                e = s + rng.integers(2 * MINUTE, 12 * MINUTE, n)
                self.throttle[i] = (np.concatenate([self.throttle[i][0], s]), np.concatenate([self.throttle[i][1], e]))
            self.until += 24 * HOUR

    def mask(self, prov: np.ndarray, t: np.ndarray, outage: bool) -> np.ndarray:
        """Which (provider, time) pairs fall in an episode (outage=True: in a scripted outage)."""
        out = np.zeros(len(t), dtype=bool)
        if not len(t):
            return out
        if not outage:
            self._extend(int(t.max()))
        for i in range(len(PROVIDERS)):
            if outage:
                for s, e in self.outages[i]:
                    out |= (prov == i) & (t >= s) & (t < e)
                continue
            starts, ends = self.throttle[i]
            if not len(starts):
                continue
            m = prov == i
            j = np.searchsorted(starts, t[m], side="right") - 1
            out[m] = (j >= 0) & (t[m] < ends[np.maximum(j, 0)])
        return out


# -- generation ------------------------------------------------------------------------------------
_COLS = ("msg", "typ", "ts", "attempt", "reply", "lat", "dom", "mta", "camp", "user")


def _chunk(cfg: SimConfig, seed: int, k: int, first: int, n: int, t0: float, eps: _Episodes) -> tuple[dict[str, np.ndarray], float]:
    """Every event of messages ``first .. first+n`` (arrivals after ``t0``), sorted by time."""
    rng = np.random.default_rng([seed, k])
    inj_f = t0 + np.cumsum(rng.exponential(1000.0 / cfg.rate_per_s, n))
    inject = inj_f.astype(np.int64)
    shares = np.array([p.share for p in PROVIDERS])
    prov = rng.choice(len(PROVIDERS), size=n, p=shares / shares.sum()).astype(np.int16)
    dom = (_DOM_FIRST[prov] + rng.integers(0, 1 << 30, n) % _NDOM[prov]).astype(np.int16)
    mta = rng.integers(0, len(MTAS), n).astype(np.int8)
    msg = first + np.arange(n, dtype=np.int64)
    camp = np.where(rng.random(n) < cfg.p_transactional, -1, msg // cfg.campaign_size).astype(np.int32)
    user = rng.integers(0, 10_000_000, n).astype(np.int32)
    parts: list[tuple[np.ndarray, int | np.ndarray, np.ndarray, int | np.ndarray, int | np.ndarray]] = []  # (local idx, typ, ts, attempt, reply)

    def emit(idx: np.ndarray, typ, ts: np.ndarray, attempt=0, reply=-1) -> None:
        if len(idx):
            parts.append((idx, typ, ts, attempt, reply))

    everyone = np.arange(n)
    emit(everyone, INJECTED, inject)
    u = rng.random((n, 3))
    dropped = u[:, 0] < cfg.p_drop
    stalled0 = (u[:, 0] >= cfg.p_drop) & (u[:, 0] < cfg.p_drop + cfg.p_stall)  # stuck before the first attempt
    d = np.nonzero(dropped)[0]
    emit(d, DROPPED, inject[d] + 5, 0, _R["dropped"][prov[d], 0])
    alive = ~(dropped | stalled0)
    t = inject + rng.integers(200, 3000, n)  # time in the incoming queue
    delivered_ts = np.full(n, -1, dtype=np.int64)
    p_defer = np.array([p.p_defer for p in PROVIDERS])
    p_bounce = np.array([p.p_bounce for p in PROVIDERS])
    p_grey = np.array([p.p_greylist for p in PROVIDERS])
    for attempt in range(1, cfg.max_attempts + 1):
        idx = np.nonzero(alive)[0]
        if not len(idx):
            break
        pk, tk = prov[idx], t[idx]
        v = rng.random((len(idx), 5))
        out = eps.mask(pk, tk, outage=True)
        thr = eps.mask(pk, tk, outage=False) & ~out
        grey = (attempt == 1) & (v[:, 0] < p_grey[pk]) & ~out
        rand_defer = v[:, 1] < np.where(thr, cfg.throttle_p_defer, p_defer[pk])
        defer = out | grey | rand_defer
        bounce = ~defer & (v[:, 2] < p_bounce[pk])
        deliver = ~defer & ~bounce
        reply = _pick(_R["ok"], pk, v[:, 3])
        reply[bounce] = _pick(_R["bounce"], pk[bounce], np.where(v[bounce, 3] < 0.7, 0.0, np.where(v[bounce, 3] < 0.9, 0.5, 0.99)))
        rd = rand_defer & ~out & ~grey
        reply[rd] = np.where(thr[rd], _pick(_R["throttle"], pk[rd], v[rd, 3]), _pick(_R["defer"], pk[rd], v[rd, 3]))
        reply[grey] = _pick(_R["grey"], pk[grey], v[grey, 3])
        reply[out] = _pick(_R["outage"], pk[out], v[out, 3])
        # the SMTP session's own time: a timed-out connect takes 30 s, a delivery a second or so
        session = np.where(out & (reply == _pick(_R["outage"], pk, np.zeros(len(pk)))), 30_000,
                           (200 + v[:, 4] * 1800).astype(np.int64))
        ts = tk + session
        typ = np.where(defer, DEFERRED, np.where(bounce, BOUNCED, DELIVERED)).astype(np.int8)
        emit(idx, typ, ts, attempt, reply)
        delivered_ts[idx[deliver]] = ts[deliver]
        alive[idx[deliver | bounce]] = False
        di = idx[defer]
        if attempt == cfg.max_attempts:
            emit(di, EXPIRED, ts[defer] + 1, attempt, _expired_reply(attempt))
            alive[di] = False
            break
        # retry after the backoff (+-10%); a few deferred messages get stuck in the queue for good
        back = cfg.backoff_ms[min(attempt, len(cfg.backoff_ms)) - 1]
        t[di] = ts[defer] + (back * (0.9 + 0.2 * v[defer, 4])).astype(np.int64)
        if attempt == 1:
            alive[di[rng.random(len(di)) < cfg.p_stall_deferred]] = False

    # engagement of delivered mail
    dv = np.nonzero(delivered_ts >= 0)[0]
    e = rng.random((len(dv), 6))
    p_open = np.array([p.p_open for p in PROVIDERS])[prov[dv]]
    opened = e[:, 0] < p_open
    open_ts = delivered_ts[dv] + np.minimum(rng.lognormal(np.log(20 * MINUTE), 1.2, len(dv)), 12 * HOUR).astype(np.int64)
    o = dv[opened]
    emit(o, OPENED, open_ts[opened])
    clicked = opened & (e[:, 1] < cfg.p_click)
    emit(dv[clicked], CLICKED, open_ts[clicked] + 2_000 + (e[clicked, 2] * 120_000).astype(np.int64))
    unsub = opened & (e[:, 3] < cfg.p_unsubscribe)
    emit(dv[unsub], UNSUBSCRIBED, open_ts[unsub] + 5_000 + (e[unsub, 2] * 300_000).astype(np.int64))
    compl = e[:, 4] < cfg.p_complain
    emit(dv[compl], COMPLAINED, delivered_ts[dv[compl]] + (HOUR * (0.1 + 3 * e[compl, 5])).astype(np.int64))

    local = np.concatenate([p[0] for p in parts])
    cols = {
        "msg": msg[local],
        "typ": np.concatenate([np.broadcast_to(np.asarray(p[1], np.int8), len(p[0])) for p in parts]),
        "ts": np.concatenate([p[2] for p in parts]).astype(np.int64),
        "attempt": np.concatenate([np.broadcast_to(np.asarray(p[3], np.int16), len(p[0])) for p in parts]),
        "reply": np.concatenate([np.broadcast_to(np.asarray(p[4], np.int16), len(p[0])) for p in parts]),
    }
    cols["lat"] = np.where(np.isin(cols["typ"], _ATTEMPT_TYPES), cols["ts"] - inject[local], -1)
    cols["dom"], cols["mta"], cols["camp"], cols["user"] = dom[local], mta[local], camp[local], user[local]
    order = np.argsort(cols["ts"], kind="stable")  # a message's events keep their order on equal times
    return {c: a[order] for c, a in cols.items()}, float(inj_f[-1])


def _columns(messages: int | None, seed: int, batch: int, start_ms: int, config: SimConfig | None,
             max_events: int | None) -> Iterator[dict[str, np.ndarray]]:
    """Event-time ordered column batches: a k-way merge of the chunks' sorted runs."""
    cfg = config or SimConfig()
    if messages is None and max_events is None:
        raise ValueError("give messages or max_events")
    eps = _Episodes(cfg, seed, start_ms)
    runs: list[dict[str, np.ndarray]] = []
    t0, first, k, emitted = float(start_ms), 0, 0, 0
    while True:
        more = messages is None or first < messages
        if more:
            n = batch if messages is None else min(batch, messages - first)
            run, t0 = _chunk(cfg, seed, k, first, n, t0, eps)
            runs.append(run)
            first, k = first + n, k + 1
            cutoff = int(t0)  # later chunks' events all come at or after their first arrival > t0
        else:
            cutoff = None
        heads, rest = [], []
        for r in runs:
            j = len(r["ts"]) if cutoff is None else int(np.searchsorted(r["ts"], cutoff, side="left"))
            if j:
                heads.append({c: a[:j] for c, a in r.items()})
            if j < len(r["ts"]):
                rest.append({c: a[j:] for c, a in r.items()} if j else r)
        runs = rest
        if heads:
            cat = {c: np.concatenate([h[c] for h in heads]) for c in _COLS}
            order = np.argsort(cat["ts"], kind="stable")  # merges the sorted runs
            out = {c: a[order] for c, a in cat.items()}
            if max_events is not None and emitted + len(order) >= max_events:
                yield {c: a[: max_events - emitted] for c, a in out.items()}
                return
            emitted += len(order)
            yield out
        if not more and not runs:
            return


# -- rendering: JSON with Arrow kernels --------------------------------------------------------------
def _frag_array(strings: Sequence[str | None]) -> pa.Array:
    return pa.array(list(strings), type=pa.string())


@lru_cache(maxsize=8)
def _fragments(seed: int, nreplies: int) -> dict[str, pa.Array]:
    def js(s: str) -> str:
        return orjson.dumps(s).decode()

    reply_frag = []
    for code, enh, text, cls, reason in REPLIES[:nreplies]:
        f = "" if code is None else f',"smtp_code":{code}'
        f += "" if enh is None else f',"enhanced_code":{js(enh)}'
        f += f',"reply":{js(text)}'
        f += "" if cls is None else f',"bounce_class":{js(cls)},"bounce_reason":{js(reason)}'
        reply_frag.append(f)
    return {
        "type": _frag_array([f'{{"type":"{t}","ts":' for t in TYPES]),
        "dom": _frag_array([f'@{d}","domain":"{d}","provider":"{PROVIDERS[_DOM_PROVIDER[i]].name}"' for i, d in enumerate(_DOMAINS)]),
        "mx": _frag_array([f',"remote_host":"{PROVIDERS[_DOM_PROVIDER[i]].mx}"' for i in range(len(_DOMAINS))]),
        "mta": _frag_array([f',"mta":"{m}","sending_ip":"{ip}"' for m, ip in MTAS]),
        "reply": _frag_array(reply_frag),
        "mid_suffix": pa.scalar(f".{seed}@mailroom.sim", pa.string()),
    }


def _mask_null(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    """``arr`` with nulls where ``mask`` is false."""
    return pc.if_else(pa.array(mask), arr, pa.scalar(None, arr.type))


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "", null_handling="skip")


def _message_ids(msg: np.ndarray, seed: int) -> pa.Array:
    num = pc.utf8_lpad(pc.cast(pa.array(msg), pa.string()), 10, "0")
    return pc.binary_join_element_wise(num, _fragments(seed, 0)["mid_suffix"], "")


def render(cols: dict[str, np.ndarray], seed: int) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(keys, JSON values, timestamps) of a column batch, built by Arrow kernels."""
    fr = _fragments(seed, len(REPLIES))
    typ, camp = cols["typ"], cols["camp"]
    mid = _message_ids(cols["msg"], seed)
    lifecycle = typ <= EXPIRED
    attempt_like = np.isin(typ, _ATTEMPT_TYPES)
    camp_s = pc.utf8_lpad(pc.cast(pa.array(camp), pa.string()), 5, "0")
    campaign = pc.if_else(pa.array(camp >= 0), pc.binary_join_element_wise('"c', camp_s, ""), '"transactional')
    has_reply = cols["reply"] >= 0
    values = _join(
        fr["type"].take(pa.array(typ)), pc.cast(pa.array(cols["ts"]), pa.string()),
        ',"message_id":"', mid, '","source":"simulator","recipient":"user', pc.cast(pa.array(cols["user"]), pa.string()),
        fr["dom"].take(pa.array(cols["dom"])), ',"campaign_id":', campaign, '"',
        _mask_null(fr["mta"].take(pa.array(cols["mta"])), lifecycle),
        _mask_null(pc.binary_join_element_wise(',"attempt":', pc.cast(pa.array(cols["attempt"]), pa.string()), ""), cols["attempt"] > 0),
        _mask_null(fr["mx"].take(pa.array(cols["dom"])), attempt_like & (typ != EXPIRED)),
        _mask_null(fr["reply"].take(pa.array(np.where(has_reply, cols["reply"], 0))), has_reply),
        _mask_null(pc.binary_join_element_wise(',"latency_ms":', pc.cast(pa.array(cols["lat"]), pa.string()), ""), cols["lat"] >= 0),
        "}",
    )
    return mid.cast(pa.binary()), values.cast(pa.binary()), cols["ts"]


def to_dicts(cols: dict[str, np.ndarray], seed: int) -> list[dict]:
    """The same events as dicts, one by one (the reference for :func:`render`)."""
    out = []
    for m, typ, ts, att, rep, lat, d, mt, c, u in zip(*(cols[c].tolist() for c in _COLS)):
        dom = _DOMAINS[d]
        prov = PROVIDERS[_DOM_PROVIDER[d]]
        e = {"type": TYPES[typ], "ts": ts, "message_id": f"{m:010d}.{seed}@mailroom.sim", "source": "simulator",
             "recipient": f"user{u}@{dom}", "domain": dom, "provider": prov.name,
             "campaign_id": f"c{c:05d}" if c >= 0 else "transactional"}
        if typ <= EXPIRED:
            e["mta"], e["sending_ip"] = MTAS[mt]
        if att > 0:
            e["attempt"] = att
        if typ in _ATTEMPT_TYPES and typ != EXPIRED:
            e["remote_host"] = prov.mx
        if rep >= 0:
            code, enh, text, cls, reason = REPLIES[rep]
            e.update({k: v for k, v in (("smtp_code", code), ("enhanced_code", enh), ("reply", text),
                                         ("bounce_class", cls), ("bounce_reason", reason)) if v is not None})
        if lat >= 0:
            e["latency_ms"] = lat
        out.append(e)
    return out


def simulate_batches(
    messages: int | None = 100_000,
    seed: int = 42,
    batch: int = 10_000,
    start_ms: int = 1_764_000_000_000,
    *,
    config: SimConfig | None = None,
    max_events: int | None = None,
) -> Iterator[tuple[pa.Array, pa.Array, np.ndarray]]:
    """The events as ``(keys, values, timestamps)`` columns for ``producer.send_batch(topic,
    values, keys, timestamps=ts)``: keys are message ids, values JSON (Arrow binary arrays).

    ``messages`` messages (``None``: as many as ``max_events`` needs), generated ``batch`` at a
    time; ``max_events`` stops the stream after that many events."""
    for cols in _columns(messages, seed, batch, start_ms, config, max_events):
        yield render(cols, seed)


def simulate(
    messages: int | None = 100_000,
    seed: int = 42,
    batch: int = 10_000,
    start_ms: int = 1_764_000_000_000,
    *,
    config: SimConfig | None = None,
    max_events: int | None = None,
) -> Iterator[list[dict]]:
    """The same events as :func:`simulate_batches`, as lists of dicts (null fields left out)."""
    for cols in _columns(messages, seed, batch, start_ms, config, max_events):
        yield to_dicts(cols, seed)


__all__ = ["MTAS", "PROVIDERS", "TYPES", "Outage", "Provider", "SimConfig", "parse_duration", "render", "simulate",
           "simulate_batches", "to_dicts"]
