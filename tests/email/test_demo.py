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


def test_demo_consumes_everything_it_produced(tmp_path) -> None:
    summary = run_demo(f"embedded:{tmp_path}", messages=5000, console=Console(file=open("/dev/null", "w")))
    assert summary["events_produced"] == summary["events_consumed"] > 5000
    assert summary["by_type"]["injected"] == 5000
