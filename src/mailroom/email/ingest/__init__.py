"""Parsers that turn MTA logs into canonical email events (:mod:`mailroom.email.events`).

Every parser is incremental: ``feed(line, line_no)`` returns the events that line completes;
lines that do not parse are recorded in ``parser.errors`` (:class:`ParseError`: line number,
reason, the line) and skipped, never raised. ``parser.counts`` tells how many lines were parsed,
ignored (other programs, informational lines) and bad.

    from mailroom.email.ingest import parser_for
    p = parser_for("postfix")
    for n, line in enumerate(open("/var/log/mail.log"), 1):
        for event in p.feed(line, n):
            ...
"""

from __future__ import annotations

from .base import LogParser, ParseError


def parser_for(kind: str, **options) -> LogParser:
    """A new parser of ``kind``: postfix, exim, powermta or kumomta."""
    if kind == "postfix":
        from .postfix import PostfixParser

        return PostfixParser(**options)
    if kind == "exim":
        from .exim import EximParser

        return EximParser(**options)
    if kind == "powermta":
        from .powermta import PowerMtaParser

        return PowerMtaParser(**options)
    if kind == "kumomta":
        from .kumomta import KumoMtaParser

        return KumoMtaParser(**options)
    raise ValueError(f"unknown log kind {kind!r} (postfix, exim, powermta, kumomta)")


__all__ = ["LogParser", "ParseError", "parser_for"]
