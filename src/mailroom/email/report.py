"""Per-domain delivery counts of canonical events (``mailroom report postfix FILE``).

The JSON form::

    {"totals": {"received", "delivered", "deferred", "deferrals", "bounced", "rejected", "expired"},
     "domains": {"gmail.com": {"delivered", "deferred", "deferrals", "bounced", "expired", "rejected"}, ...}}

counted as pflogsumm counts them (checked against it on a real Postfix's log:
tests/email/test_postfix_real.py): ``received`` messages a client or a local submission handed
over (not Postfix's own notifications), accepted into the queue or refused once they had a queue
id (a header/body reject, a RCPT reject after another recipient was taken: once per queue id);
``delivered``/``bounced`` delivery lines (one per recipient); ``deferred`` messages deferred at
least once, ``deferrals`` deferral lines; ``expired`` recipients returned to sender (pflogsumm
has no such count); ``rejected`` refusals at the door (smtpd or cleanup), under the domain of the
recipient the log line names.

pflogsumm also counts as received a transaction that got a queue id and then no message: one
the client abandoned before DATA, or whose recipients smtpd all discarded (its ``client=`` line
alone); such a transaction leaves no event with its queue id, so mailroom does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .events import EmailEvent

DOMAIN_KEYS = ("delivered", "deferred", "deferrals", "bounced", "expired", "rejected")
TOTAL_KEYS = ("received", "delivered", "deferred", "deferrals", "bounced", "rejected", "expired")


def domain_report(events: Iterable[EmailEvent]) -> dict:
    """The per-domain and total counts (see the module doc) of a stream of events."""
    totals = dict.fromkeys(TOTAL_KEYS, 0)
    domains: dict[str, dict[str, int]] = {}
    deferred_msgs: set[tuple] = set()
    deferred_by_domain: dict[str, set[tuple]] = {}
    accepted_qids: set[tuple] = set()
    dropped_qids: set[tuple] = set()
    for e in events:
        t = e.type
        if t == "accepted":
            totals["received"] += 1
            if e.queue_id:
                accepted_qids.add((e.mta, e.queue_id))
            continue
        if t == "dropped" and e.queue_id:
            # refused after it had a queue id: received, though cleanup may not have logged its
            # Message-ID (no "accepted" event); counted once per queue id, below
            dropped_qids.add((e.mta, e.queue_id))
        if t not in ("delivered", "deferred", "bounced", "expired", "dropped"):
            continue
        if t == "dropped" and e.detail != "reject":
            continue
        dom = e.domain or "(none)"
        d = domains.get(dom)
        if d is None:
            d = domains[dom] = dict.fromkeys(DOMAIN_KEYS, 0)
        if t == "deferred":
            totals["deferrals"] += 1
            d["deferrals"] += 1
            key = (e.mta, e.queue_id or e.message_id)  # queue ids are unique per MTA only
            deferred_msgs.add(key)
            deferred_by_domain.setdefault(dom, set()).add(key)
        elif t == "dropped":
            totals["rejected"] += 1
            d["rejected"] += 1
        else:
            totals[t] += 1
            d[t] += 1
    totals["received"] += len(dropped_qids - accepted_qids)
    totals["deferred"] = len(deferred_msgs)
    for dom, s in deferred_by_domain.items():
        domains[dom]["deferred"] = len(s)
    ordered = dict(sorted(domains.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))
    return {"totals": totals, "domains": ordered}


def report_file(path: str | Path, kind: str = "postfix", **parser_options) -> tuple[dict, list]:
    """(report, parse errors) of a whole log file."""
    from .ingest import parser_for

    parser = parser_for(kind, **parser_options)

    def events():
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                yield from parser.feed(line, n)
        yield from parser.flush()

    rep = domain_report(events())
    return rep, parser.errors


def render_table(report: dict, title: str = "deliveries per recipient domain"):
    """A rich Table of the report."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("domain", no_wrap=True)
    for k in DOMAIN_KEYS:
        table.add_column(k, justify="right")
    for dom, d in report["domains"].items():
        table.add_row(dom, *(f"{d[k]:,}" for k in DOMAIN_KEYS))
    t = report["totals"]
    table.add_section()
    table.add_row("[bold]total[/bold]", *(f"{t[k]:,}" for k in DOMAIN_KEYS))
    return table
