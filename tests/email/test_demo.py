"""The simulator and the demo on the embedded log."""

from __future__ import annotations

from rich.console import Console

from mailroom.email.demo import run_demo
from mailroom.email.simulator import simulate


def test_simulator_is_deterministic_and_plausible() -> None:
    a = [e for b in simulate(messages=3000, seed=5, batch=1000) for e in b]
    b = [e for b in simulate(messages=3000, seed=5, batch=1000) for e in b]
    assert a == b
    assert a != [e for b in simulate(messages=3000, seed=6, batch=1000) for e in b]
    finals = {}
    for e in a:
        if e["type"] in ("delivered", "bounced", "expired", "dropped"):
            finals[e["message_id"]] = e["type"]
    assert 0.99 * 3000 <= len(finals) < 3000  # nearly every message ends; a few stay stuck in a queue
    share = sum(1 for v in finals.values() if v == "delivered") / 3000
    assert 0.9 < share < 1.0


def test_demo_runs_the_whole_application(tmp_path) -> None:
    """Server + dashboard + SQL and alerting pipelines + simulated outage, as `make demo` runs them."""
    console = Console(file=open(tmp_path / "out.txt", "w"), width=160)
    summary = run_demo(tmp_path / "demo", messages=12000, outage="gmail:3m:1m", port=0, duration=0, console=console,
                       catch_up_timeout=240)
    assert summary["caught_up"], (tmp_path / "demo" / "server.log").read_text()[-3000:]
    providers = {r["provider"]: r for r in summary["providers"]}
    assert {"gmail", "microsoft", "yahoo"} <= set(providers)
    # the outage shows: gmail's worst minute is an outage, no other provider's is
    assert providers["gmail"]["worst_minute"] < 0.2
    assert all(r["worst_minute"] > 0.5 for p, r in providers.items() if p != "gmail" and r["worst_minute"] is not None)
    assert sum(r["delivered"] for r in providers.values()) > 0.8 * 12000
    kinds = {(a["KIND"], a["SUBJECT"]) for a in summary["alerts"]}
    assert ("deferral_spike", "gmail") in kinds, summary["alerts"]
    out = (tmp_path / "out.txt").read_text()
    assert "/dashboard" in out and "mailbox providers" in out
