"""A stream application in a process of its own, for the integration tests (killed, restarted).

    python -m tests.engine.app_worker LOG_URL APP_ID GUARANTEE STATE_DIR WORKLOAD [STEP_DELAY_S]

Workloads (input topic "<APP_ID>-in", JSON values {"id", "domain", "type"}):
- ``count``: events per domain (re-keyed through a repartition topic) -> "<APP_ID>-out"
- ``latest``: the latest event type per message id (no re-keying) -> "<APP_ID>-out"

Prints "processed N" after every commit, so a test knows when the worker is mid-stream.
STEP_DELAY_S (default 0) sleeps after each poll: a test that must kill the worker mid-stream
slows it down, so that the kill lands before the engine is through the input.
Runs until SIGTERM.
"""

from __future__ import annotations

import sys
import time

from mailroom.engine import App, Topology
from mailroom.log import open_log


def topology(app_id: str, workload: str) -> Topology:
    top = Topology()
    events = top.stream(f"{app_id}-in")
    if workload == "count":
        events.group_by("domain").count().to_stream().to(f"{app_id}-out")
    elif workload == "latest":
        events.group_by_key().reduce(lambda old, new: new).to_stream().to(f"{app_id}-out")
    else:
        raise SystemExit(f"unknown workload {workload}")
    return top


def main() -> None:
    import faulthandler
    import logging
    import signal as _signal

    faulthandler.register(_signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    url, app_id, guarantee, state_dir, workload = sys.argv[1:6]
    delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    log = open_log(url)
    app = App(topology(app_id, workload), app_id, log, state_dir=state_dir, processing_guarantee=guarantee,
              commit_interval_ms=50, max_poll_records=500)
    done = 0
    orig_commit = app.commit

    def commit() -> None:
        orig_commit()
        print(f"processed {done}", flush=True)

    app.commit = commit
    import signal

    signal.signal(signal.SIGTERM, lambda *_: app.stop())
    try:
        while not app._stop.is_set():
            done += app.step(timeout=0.1)
            if delay:
                time.sleep(delay)
    finally:
        app.close()
        log.close()


if __name__ == "__main__":
    main()
