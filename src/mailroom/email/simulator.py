"""A deterministic simulator of an email service provider's event stream.

Messages go to a mix of mailbox providers, each with its own delivery, deferral and bounce
rates; a deferred message is retried and then delivered or expires; delivered ones may be
opened and clicked. Same seed, same stream.

    from mailroom.email.simulator import simulate
    for batch in simulate(messages=1000, seed=7):   # lists of event dicts, time-ordered per message
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# provider: (share of recipients, domains, P(deferred first), P(bounce), P(open | delivered))
PROVIDERS: dict[str, tuple[float, tuple[str, ...], float, float, float]] = {
    "gmail": (0.38, ("gmail.com", "googlemail.com"), 0.04, 0.010, 0.30),
    "microsoft": (0.24, ("outlook.com", "hotmail.com", "live.com"), 0.06, 0.015, 0.22),
    "yahoo": (0.14, ("yahoo.com", "aol.com"), 0.09, 0.020, 0.18),
    "apple": (0.09, ("icloud.com", "me.com"), 0.03, 0.008, 0.45),
    "corporate": (0.15, ("acme-corp.com", "globex.example", "initech.io", "umbrella.net"), 0.05, 0.030, 0.15),
}
MTAS = ("mta-1", "mta-2", "mta-3", "mta-4")
DEFER_REPLIES = (
    (421, "4.7.28", "421-4.7.28 Our system has detected an unusual rate of unsolicited mail"),
    (450, "4.2.1", "450 4.2.1 The user you are trying to contact is receiving mail too quickly"),
    (452, "4.2.2", "452 4.2.2 Mailbox full"),
    (421, "4.7.0", "421 4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume"),
)
BOUNCE_REPLIES = (
    (550, "5.1.1", "550 5.1.1 The email account that you tried to reach does not exist"),
    (554, "5.7.1", "554 5.7.1 Service unavailable; client host blocked using Spamhaus"),
    (552, "5.2.2", "552 5.2.2 Mailbox full"),
)


@dataclass
class SimConfig:
    messages: int = 100_000
    seed: int = 42
    start_ms: int = 1_764_000_000_000
    rate_per_s: float = 5_000.0  # messages injected per second of event time
    campaigns: int = 20


def simulate(messages: int = 100_000, seed: int = 42, batch: int = 10_000, start_ms: int = 1_764_000_000_000) -> Iterator[list[dict]]:
    """Events of ``messages`` messages, ``batch`` messages at a time."""
    rng = np.random.default_rng(seed)
    names = list(PROVIDERS)
    shares = np.array([PROVIDERS[n][0] for n in names])
    shares /= shares.sum()
    for first in range(0, messages, batch):
        n = min(batch, messages - first)
        prov = rng.choice(len(names), size=n, p=shares)
        inject = start_ms + ((first + np.arange(n)) * 1000 / 5000).astype(np.int64) + rng.integers(0, 200, n)
        u = rng.random((n, 4))
        events: list[dict] = []
        for i in range(n):
            name = names[prov[i]]
            _, domains, p_defer, p_bounce, p_open = PROVIDERS[name]
            mid = f"<{first + i:010d}.{seed}@mailroom.sim>"
            domain = domains[int(u[i, 0] * 997) % len(domains)]
            base = {
                "message_id": mid,
                "recipient": f"user{(first + i) * 7919 % 1_000_003}@{domain}",
                "domain": domain,
                "provider": name,
                "campaign_id": f"c{(first + i) % 20:03d}",
                "mta": MTAS[(first + i) % len(MTAS)],
            }
            t = int(inject[i])
            events.append({**base, "type": "injected", "ts": t})
            t += 50 + int(u[i, 1] * 900)
            attempt = 1
            if u[i, 2] < p_defer:
                code, enh, text = DEFER_REPLIES[int(u[i, 3] * 1000) % len(DEFER_REPLIES)]
                events.append({**base, "type": "deferred", "ts": t, "attempt": attempt, "smtp_code": code, "enhanced_code": enh, "reply": text})
                t += 300_000
                attempt += 1
            if u[i, 2] > 1 - p_bounce:
                code, enh, text = BOUNCE_REPLIES[int(u[i, 3] * 1000) % len(BOUNCE_REPLIES)]
                events.append({**base, "type": "bounced", "ts": t, "attempt": attempt, "smtp_code": code, "enhanced_code": enh, "reply": text})
                continue
            events.append({**base, "type": "delivered", "ts": t, "attempt": attempt, "smtp_code": 250, "enhanced_code": "2.0.0", "reply": "250 2.0.0 OK"})
            if u[i, 3] < p_open:
                t += 60_000 + int(u[i, 1] * 3_600_000)
                events.append({**base, "type": "opened", "ts": t})
                if u[i, 0] < 0.25:
                    events.append({**base, "type": "clicked", "ts": t + 20_000})
        yield events
