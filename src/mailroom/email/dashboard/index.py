"""A bounded in-memory index of recent messages' events, for the search box's timelines.

Why not a pull query on ``EMAIL_EVENTS WHERE MESSAGE_ID = ...`` each time: a pull query on a
stream reads the stream's whole topic (there is no per-key store for a stream), so one search
would cost a full scan of every event ever sent. The index is fed by the dashboard's push query
on EMAIL_EVENTS and keeps the events of the ``max_messages`` most recently active messages (and
recipient -> message ids for them); older messages fall back to that scan (see search.py).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

#: the event columns a timeline shows, in this order (absent columns are None)
EVENT_FIELDS = ("TS", "TYPE", "MTA", "ATTEMPT", "SMTP_CODE", "ENHANCED_CODE", "REPLY", "LATENCY_MS",
                "BOUNCE_CLASS", "BOUNCE_REASON", "URL", "DETAIL")
_INTERN = {"TYPE", "MTA", "ENHANCED_CODE", "REPLY", "BOUNCE_CLASS", "BOUNCE_REASON", "DETAIL"}


class EventIndex:
    """message id -> its events (compact tuples), recipient -> message ids; least recently
    active messages dropped past ``max_messages``."""

    def __init__(self, max_messages: int = 50_000) -> None:
        self.max_messages = max_messages
        self._events: OrderedDict[str, list[tuple]] = OrderedDict()
        self._recipient_of: dict[str, str] = {}
        self._by_recipient: dict[str, set[str]] = {}
        self.events_seen = 0
        self.evicted = 0

    def add(self, row: dict[str, Any]) -> None:
        """One EMAIL_EVENTS row (column name -> value)."""
        mid = row.get("MESSAGE_ID")
        if not mid:
            return
        ev = tuple(sys.intern(v) if f in _INTERN and isinstance(v, str) else v
                   for f, v in ((f, row.get(f)) for f in EVENT_FIELDS))
        evs = self._events.get(mid)
        if evs is None:
            evs = self._events[mid] = []
        else:
            self._events.move_to_end(mid)
        evs.append(ev)
        self.events_seen += 1
        rcpt = row.get("RECIPIENT")
        if isinstance(rcpt, str) and rcpt and mid not in self._recipient_of:
            r = rcpt.lower()
            self._recipient_of[mid] = r
            self._by_recipient.setdefault(r, set()).add(mid)
        while len(self._events) > self.max_messages:
            old, _ = self._events.popitem(last=False)
            self.evicted += 1
            r = self._recipient_of.pop(old, None)
            if r is not None:
                ids = self._by_recipient.get(r)
                if ids is not None:
                    ids.discard(old)
                    if not ids:
                        del self._by_recipient[r]

    def events(self, message_id: str) -> list[dict[str, Any]] | None:
        """The message's events in time order, or None when the index does not hold it."""
        evs = self._events.get(message_id)
        if evs is None:
            return None
        out = [dict(zip(EVENT_FIELDS, e)) for e in evs]
        out.sort(key=lambda e: e["TS"] if isinstance(e["TS"], int) else 0)
        return out

    def messages_of(self, recipient: str) -> list[str]:
        """The ids of the indexed messages to ``recipient`` (case-insensitive)."""
        return sorted(self._by_recipient.get(recipient.lower(), ()))

    def clear(self) -> None:
        self._events.clear()
        self._recipient_of.clear()
        self._by_recipient.clear()
        self.events_seen = 0
        self.evicted = 0

    def stats(self) -> dict[str, int]:
        return {"messages": len(self._events), "events": self.events_seen, "evicted": self.evicted,
                "max_messages": self.max_messages}
