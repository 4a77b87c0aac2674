import cProfile, pstats, sys, tempfile, time, threading
from pathlib import Path
from mailroom.email import pipelines
from mailroom.email.simulator import simulate_batches
from mailroom.log import open_log
from mailroom.sql.executor import SqlExecutor
from mailroom.sql.runtime import LogRuntime
from mailroom.functions import builtin_registry, load_entry_points
from mailroom.engine import App

N = int(sys.argv[1])
only = sys.argv[2] if len(sys.argv) > 2 else None
tmp = Path(tempfile.mkdtemp())
log = open_log(f"embedded:{tmp}/log")
log.create_topic("email-events", 4)
with log.producer() as p:
    for keys, values, ts in simulate_batches(messages=None, seed=11, max_events=N):
        p.send_batch("email-events", values, keys, timestamps=ts)
    p.flush(60)
apps = []
class R(LogRuntime):
    def start_query(self, query_id, topology, source_topics):
        app = App(topology, f"q_{query_id}", self.log, state_dir=self.state_dir, processing_guarantee=self.guarantee)
        apps.append((query_id, app))
rt = R(log, tmp / "state")
reg = builtin_registry(); load_entry_points(registry=reg)
SqlExecutor(rt, reg).execute_script(pipelines.all_sql(["events", "email_state", "mta_health", "campaign_stats"]))
pr = cProfile.Profile()
for qid, app in apps:
    if only and only not in qid: continue
    t0 = time.perf_counter(); n = 0
    pr.enable()
    idle = 0
    while idle < 3:
        k = app.step(timeout=0.05)
        n += k
        idle = 0 if k else idle + 1
    app.commit()
    pr.disable()
    print(qid, n, "records", f"{time.perf_counter()-t0:.2f}s")
pstats.Stats(pr).sort_stats(sys.argv[3] if len(sys.argv) > 3 else "cumulative").print_stats(45)
