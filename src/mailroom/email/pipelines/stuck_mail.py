"""STUCK_MAIL: messages with no final state a while after their last event (a Python pipeline).

ksqlDB SQL cannot say "nothing happened for 4 hours": that needs a timer. This pipeline is the
engine's Processor API instead: per message its last delivery state and time live in a store,
and an expiry index (``deadline + message id``, changelogged like any store) says which message
is due next. Time is stream time (the largest event time the task has seen), so a replay finds
the same stuck messages as the live run did.

A message is stuck when stream time reaches ``last event time + stuck_after_ms`` and it has had
no final event (delivered, bounced, expired, dropped). The check runs record by record, before
the record itself is applied, so the result does not depend on how the input was batched: a
message whose next event comes ``stuck_after_ms`` or more after the previous one was stuck in
between. Each idle spell is reported once, as a ``STUCK_MAIL`` record and an ``ALERTS`` record
of KIND ``stuck_mail``. Engagement events (opened, clicked, ...) never change the state.

Run it with the SQL pipelines (``mailroom run`` accepts Python pipeline files)::

    mailroom run src/mailroom/email/pipelines/*.sql src/mailroom/email/pipelines/stuck_mail.py \\
        --param stuck_after_ms=14400000

or in Python: ``App(topology(), APPLICATION_ID, open_log(url)).run()``.
"""

from __future__ import annotations

from typing import Any

import orjson

from mailroom.engine import Processor, Topology
from mailroom.state import ExpiryIndex
from mailroom.email.events import ENGAGEMENT_TYPES, FINAL_TYPES

APPLICATION_ID = "email-stuck-mail"
HOUR = 3600_000
INPUT_TOPIC, STUCK_TOPIC, ALERTS_TOPIC = "email-events", "STUCK_MAIL", "ALERTS"


class StuckMailDetector(Processor):
    """Emits a STUCK_MAIL row (keyed by message id) for each message that went idle unfinished.

    ``forget_after_ms``: how long a finished (or reported) message is remembered, so that a late
    non-final event cannot reopen it; after that its state is dropped.
    """

    stores = ("stuck-mail-state", "stuck-mail-due")

    def __init__(self, stuck_after_ms: int = 4 * HOUR, forget_after_ms: int = 48 * HOUR, name: str = "") -> None:
        super().__init__(name)
        if stuck_after_ms <= 0 or forget_after_ms <= 0:
            raise ValueError("stuck_after_ms and forget_after_ms must be positive")
        self.stuck_after = int(stuck_after_ms)
        self.forget_after = int(forget_after_ms)

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.state = ctx.kv_store("stuck-mail-state")
        self.due = ExpiryIndex(ctx.kv_store("stuck-mail-due"))
        self.now = -(1 << 62)
        first = self.due.due(1 << 61, limit=1)  # restored state: the earliest deadline
        self.next_due = first[0][0] if first else 1 << 62

    def _schedule(self, key: bytes, st: dict, expiry: int) -> None:
        self.due.set(key, expiry, st.get("due"))
        st["due"] = expiry
        self.next_due = min(self.next_due, expiry)

    def process(self, batch: Any) -> None:
        keys, rows, stamps = batch.keys, batch.rows(), batch.timestamps.tolist()
        out: tuple[list, list, list] = ([], [], [])
        for key, ev, ts in zip(keys, rows, stamps):
            if ts > self.now:
                self.now = ts
                if self.now >= self.next_due:
                    self._fire(out)
            if not isinstance(ev, dict) or key is None:
                continue
            typ = ev.get("type")
            if typ is None or typ in ENGAGEMENT_TYPES:
                continue
            kb = key.encode() if isinstance(key, str) else bytes(key)
            raw = self.state.get(kb)
            st = orjson.loads(raw) if raw is not None else {}
            if st.get("final"):
                continue  # a late non-final event never reopens a finished message
            last = max(ts, st.get("last", ts))
            st.update(state=typ, last=last, rep=False)
            for f in ("recipient", "domain", "provider"):
                if ev.get(f) is not None:
                    st[f] = ev[f]
            if typ in FINAL_TYPES:
                st["final"] = True
                self._schedule(kb, st, last + self.forget_after)
            else:
                self._schedule(kb, st, last + self.stuck_after)
            self.state.put(kb, orjson.dumps(st))
        self.emit(*out)

    def _fire(self, out: tuple[list, list, list]) -> None:
        """Handle every deadline up to stream time: report stuck messages, forget old ones."""
        for expiry, kb in self.due.due(self.now):
            self.due.remove(kb, expiry)
            raw = self.state.get(kb)
            st = orjson.loads(raw) if raw is not None else None
            if st is None or st.get("due") != expiry:
                continue
            if st.get("final") or st.get("rep"):
                self.state.delete(kb)
                continue
            mid = kb.decode(errors="replace")
            out[0].append(mid)
            out[1].append({"STATE": st.get("state"), "RECIPIENT": st.get("recipient"), "DOMAIN": st.get("domain"),
                           "PROVIDER": st.get("provider"), "LAST_TS": st["last"], "AGE_MS": self.now - st["last"],
                           "DETECTED_TS": self.now})
            out[2].append(self.now)
            st["rep"] = True
            self._schedule(kb, st, st["last"] + self.forget_after)
            self.state.put(kb, orjson.dumps(st))
        nxt = self.due.due(1 << 61, limit=1)
        self.next_due = nxt[0][0] if nxt else 1 << 62


def stuck_alert(message_id: str, row: dict) -> tuple[str, dict]:
    """The ALERTS record of a STUCK_MAIL row."""
    hours = row["AGE_MS"] / HOUR
    return f"stuck_mail:{message_id}:{row['LAST_TS']}", {
        "KIND": "stuck_mail", "SUBJECT": message_id, "VALUE": float(row["AGE_MS"]), "BASELINE": None,
        "WINDOW_START": row["LAST_TS"], "TS": row["DETECTED_TS"],
        "MESSAGE": (f"message {message_id} to {row.get('RECIPIENT') or '?'} ({row.get('PROVIDER') or '?'}) has been "
                    f"'{row.get('STATE')}' for {hours:.1f} h with no final state"),
    }


def topology(stuck_after_ms: int | str = 4 * HOUR, forget_after_ms: int | str = 48 * HOUR, input_topic: str = INPUT_TOPIC,
             stuck_topic: str = STUCK_TOPIC, alerts_topic: str = ALERTS_TOPIC) -> Topology:
    """events -> StuckMailDetector -> STUCK_MAIL, and each stuck message as a stuck_mail ALERT.

    Parameters may be given as strings (as ``mailroom run --param`` passes them)."""
    top = Topology()
    stuck = top.stream(input_topic).process(
        lambda: StuckMailDetector(int(stuck_after_ms), int(forget_after_ms)), stores=StuckMailDetector.stores)
    stuck.to(stuck_topic)
    stuck.map(stuck_alert).to(alerts_topic)
    return top
