"""Run Debian's ``pflogsumm`` on a Postfix log and read back the numbers mailroom's report also has.

pflogsumm's text output gives, per recipient domain, only sent and deferral counts ("Host/Domain
Summary: Message Delivery"); bounces come by relay ("message bounce detail (by relay)") and
recipient rejects by address ("message reject detail", without ``--verbose-msg-detail``);
totals come from "Grand Totals". It has no count of expired mail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PFLOGSUMM = shutil.which("pflogsumm") or "/usr/sbin/pflogsumm"

_TOTAL = re.compile(r"^\s+(\d+)([km]?)\s+(received|delivered|forwarded|deferred|bounced|rejected|held|discarded)\b(.*)$")
_DEFERRALS = re.compile(r"\((\d+)([km]?)\s+deferrals\)")
_DOMAIN_ROW = re.compile(r"^\s+(\d+)([km]?)\s+(\d+)([km]?)\s+(\d+)([km]?)\s+[\d.]+ [smhd]\s+[\d.]+ [smhd]\s+(\S+)$")
_RELAY_HEAD = re.compile(r"^  (\S+) \(total: (\d+)\)$")
_COUNT_ITEM = re.compile(r"^\s+(\d+)\s+(\S+)$")


def _n(digits: str, unit: str) -> int:
    return int(digits) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


@dataclass
class Pflogsumm:
    """What pflogsumm said about one log."""

    text: str
    totals: dict[str, int] = field(default_factory=dict)  # received, delivered, deferred, deferrals, bounced, rejected
    sent: dict[str, int] = field(default_factory=dict)  # recipient domain -> delivered
    defers: dict[str, int] = field(default_factory=dict)  # recipient domain -> deferral lines
    bounced_by_relay: dict[str, int] = field(default_factory=dict)  # relay (host[ip]:port) -> bounces
    rejected_rcpts: Counter = field(default_factory=Counter)  # recipient address -> RCPT rejects
    reject_totals: dict[tuple[str, str], int] = field(default_factory=dict)  # (RCPT|cleanup|..., reason) -> rejects


def sections(text: str) -> dict[str, list[str]]:
    """pflogsumm's output split at its underlined titles: title -> lines."""
    lines = text.splitlines()
    out: dict[str, list[str]] = {}
    title = ""
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip()) \
                and len(lines[i + 1].strip()) >= len(lines[i].strip()) - 1:
            title = lines[i].strip()
            out[title] = []
            i += 2
            continue
        out.setdefault(title, []).append(lines[i])
        i += 1
    return out


def parse(text: str) -> Pflogsumm:
    """Read pflogsumm's default text report."""
    r = Pflogsumm(text)
    secs = sections(text)
    for line in secs.get("Grand Totals", []):
        m = _TOTAL.match(line)
        if m:
            r.totals[m.group(3)] = _n(m.group(1), m.group(2))
            if m.group(3) == "deferred":
                d = _DEFERRALS.search(m.group(4))
                r.totals["deferrals"] = _n(d.group(1), d.group(2)) if d else 0
    for title, lines in secs.items():
        if title.startswith("Host/Domain Summary: Message Delivery"):
            for line in lines:
                m = _DOMAIN_ROW.match(line)
                if m:
                    dom = m.group(7)
                    r.sent[dom] = _n(m.group(1), m.group(2))
                    r.defers[dom] = _n(m.group(5), m.group(6))
    for line in secs.get("message bounce detail (by relay)", []):
        m = _RELAY_HEAD.match(line)
        if m:
            r.bounced_by_relay[m.group(1)] = int(m.group(2))
    in_rcpt_reject, group = False, ""
    for line in secs.get("message reject detail", []):
        if line.startswith("  ") and not line.startswith("   ") and line.strip():
            group = line.strip()  # RCPT, cleanup, ...
            continue
        if line.startswith("    ") and not line.startswith("     "):
            in_rcpt_reject = "Recipient address rejected" in line  # a reason heading
            t = re.search(r"^\s+(.*) \(total: (\d+)\)$", line)
            if t:
                r.reject_totals[(group, t.group(1))] = int(t.group(2))
            continue
        m = _COUNT_ITEM.match(line)
        if m and in_rcpt_reject:
            r.rejected_rcpts[m.group(2)] += int(m.group(1))
    return r


def run(logfile: str | Path, *extra: str) -> Pflogsumm:
    """pflogsumm on ``logfile`` (whole file), parsed."""
    p = subprocess.run([PFLOGSUMM, *extra, str(logfile)], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"pflogsumm failed ({p.returncode}): {p.stderr}")
    return parse(p.stdout)
