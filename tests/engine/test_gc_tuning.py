"""A running App collects cyclic garbage rarely (its caches hold many live objects), without
lowering a threshold the process set higher itself."""

from __future__ import annotations

import gc

from mailroom.engine import App, Topology
from mailroom.engine.app import GC_THRESHOLD
from mailroom.log import open_log


def test_an_app_raises_the_collectors_thresholds_and_never_lowers_them(tmp_path) -> None:
    before = gc.get_threshold()
    log = open_log(f"embedded:{tmp_path / 'log'}")
    log.create_topic("in", 1)
    top = Topology()
    top.stream("in").to("out")
    log.create_topic("out", 1)
    try:
        gc.set_threshold(700, 10, 10)
        App(top, "gc-a", log, state_dir=tmp_path / "s").run(idle_timeout=0.1)
        assert gc.get_threshold() == GC_THRESHOLD
        gc.set_threshold(GC_THRESHOLD[0] * 2, 5, 5)
        App(top, "gc-b", log, state_dir=tmp_path / "s").run(idle_timeout=0.1)
        assert gc.get_threshold() == (GC_THRESHOLD[0] * 2, 5, 5)
    finally:
        gc.set_threshold(*before)
        log.close()
