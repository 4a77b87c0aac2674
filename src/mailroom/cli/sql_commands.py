"""SQL commands: the ksqlDB conformance runner (``mailroom qtt``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

from .options import LogOption


def qtt(
    paths: list[Path] = typer.Argument(..., help="QTT JSON files (ksqlDB's query-validation-tests), or folders of them"),
    report: Path | None = typer.Option(None, "--report", help="write each case's status and ACTUAL output records here (JSON)"),
    name: str | None = typer.Option(None, "--name", "-k", help="run only cases whose name contains this text"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print failures only, and the closing count"),
    udf_dir: Path | None = typer.Option(None, "--udf-dir", help="a folder of Python UDF files to load first"),
    record_passing: Path | None = typer.Option(None, "--record-passing",
                                               help="add the ids of the cases that passed to this file (it only grows)"),
) -> None:
    """Run ksqlDB query-validation test files: one line per case, then `N passed, N failed, N skipped`."""
    from ..functions import builtin_registry, load_folder
    from ..sql.qtt import run_files

    registry = builtin_registry()
    if udf_dir is not None:
        rep = load_folder(udf_dir, registry)
        for f in rep.failed:
            typer.echo(f"could not load {f.path}: {f.error}", err=True)
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    counts: Counter[str] = Counter()

    def show(r) -> None:
        counts[r.status] += 1
        if quiet and r.status != "failed":
            return
        line = f"{r.status.upper():7} {r.case.id}"
        if r.status != "passed" and r.reason:
            first = r.reason.splitlines()[0]
            line += f": {first}"
        typer.echo(line)

    results = run_files(files, registry=registry, on_result=show, name_filter=name)
    typer.echo(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    if record_passing is not None:
        known = set(record_passing.read_text().splitlines()) if record_passing.exists() else set()
        known |= {r.case.id for r in results if r.status == "passed"}
        record_passing.write_text("\n".join(sorted(k for k in known if k)) + "\n")
        typer.echo(f"{len(known)} passing cases recorded in {record_passing}")
    if report is not None:
        out = [{"file": Path(r.case.file).name, "name": r.case.name, "status": r.status, "reason": r.reason,
                "actual": r.actual} for r in results]
        report.write_text(json.dumps(out, indent=1, default=str))
    raise typer.Exit(0)


def run(
    files: list[Path] = typer.Argument(..., help="SQL scripts to run, in order (ksqlDB's --queries-file mode), "
                                              "and Python pipeline files (*.py, see below)"),
    log_url: str = LogOption,
    state_dir: Path = typer.Option(Path(".mailroom/state"), "--state-dir", help="where the queries keep their local state"),
    guarantee: str = typer.Option("exactly_once", "--guarantee", help="exactly_once or at_least_once"),
    udf_dir: Path | None = typer.Option(None, "--udf-dir", help="a folder of Python UDF files to load first"),
    params: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE passed to every Python pipeline's topology() "
                                                              "that takes NAME (repeatable)"),
) -> None:
    """Run SQL scripts headless: create their streams and tables and keep their persistent
    queries running until Ctrl-C / SIGTERM.

    Running the same scripts again after a stop (or a crash) resumes the same queries: their ids
    come from the scripts, so they pick up their committed offsets and restore their state.

    A Python pipeline file (*.py) is what SQL cannot say, in the engine's Python DSL: it defines
    `APPLICATION_ID = "..."` and `topology(**params) -> mailroom.engine.Topology`. It runs as an
    engine application beside the SQL queries, after every SQL script (so it may read and write
    their topics); its missing output topics are created with its input's partition count.
    Files whose name starts with "_" (__init__.py) are skipped, so a folder's *.py can be given.
    """
    import signal
    import threading

    from ..functions import builtin_registry, load_entry_points, load_folder
    from ..log import open_log
    from ..sql.executor import SqlExecutor
    from ..sql.metastore import SqlError
    from ..sql.parser import SqlSyntaxError, parse
    from ..sql.runtime import LogRuntime
    from ..sql import ast as A

    registry = builtin_registry()
    # installed packages' functions (entry point group "mailroom.functions", e.g. the email UDFs)
    for f in load_entry_points(registry=registry).failed:
        typer.echo(f"could not load {f.path}: {f.error}", err=True)
    if udf_dir is not None:
        for f in load_folder(udf_dir, registry).failed:
            typer.echo(f"could not load {f.path}: {f.error}", err=True)
    log = open_log(log_url)
    runtime = LogRuntime(log, state_dir, processing_guarantee=guarantee)
    ex = SqlExecutor(runtime, registry)
    py_files = [f for f in files if f.suffix == ".py" and not f.name.startswith("_")]
    files = [f for f in files if f.suffix != ".py"]
    try:
        pipelines = [load_pipeline(f, params) for f in py_files]
    except (ValueError, OSError, ImportError) as e:
        typer.echo(f"error: {e}", err=True)
        runtime.close()
        raise typer.Exit(1) from None
    for path in files:
        try:
            statements = parse(path.read_text(), ex.variables)
        except SqlSyntaxError as e:
            typer.echo(f"{path}: {e}", err=True)
            runtime.close()
            raise typer.Exit(1) from None
        for stmt in statements:
            if isinstance(stmt, A.InsertValues):
                typer.echo(f"{path}: INSERT ... VALUES is not run in headless mode (it would insert again on every start)", err=True)
                continue
            try:
                res = ex.execute(stmt)
            except SqlError as e:
                typer.echo(f"{path}: {e}", err=True)
                runtime.close()
                raise typer.Exit(1) from None
            typer.echo(f"{res.message or 'done'}: {stmt.text.strip().splitlines()[0][:100]}")
    try:
        py_apps = start_pipelines(pipelines, log, state_dir, guarantee)
    except Exception as e:  # e.g. a pipeline's input topic does not exist
        typer.echo(f"error: could not start the Python pipelines: {type(e).__name__}: {e}", err=True)
        runtime.close()
        raise typer.Exit(1) from None
    for (path, _, _), (app, _) in zip(pipelines, py_apps):
        typer.echo(f"started Python pipeline {app.application_id}: {path}")
    typer.echo(f"running {len(runtime.queries())} persistent queries and {len(py_apps)} Python pipelines on {log_url}; "
               "Ctrl-C to stop", err=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        dead = [q for q, (app, t) in runtime.apps.items() if not t.is_alive()]
        dead += [app.application_id for app, t in py_apps if not t.is_alive()]
        if dead:
            typer.echo(f"queries stopped unexpectedly: {dead}", err=True)
            break
    for app, t in py_apps:
        app.stop()
        t.join(timeout=30)
    runtime.close()
    log.close()


def load_pipeline(path: Path, params: list[str]):
    """(path, application id, topology) of a Python pipeline file (see ``mailroom run --help``)."""
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location(f"mailroom_pipeline_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build, app_id = getattr(module, "topology", None), getattr(module, "APPLICATION_ID", None)
    if not callable(build) or not isinstance(app_id, str):
        raise ValueError(f"{path}: a Python pipeline defines APPLICATION_ID (a string) and topology(**params)")
    pairs = dict(p.split("=", 1) for p in params if "=" in p)
    if bad := [p for p in params if "=" not in p]:
        raise ValueError(f"--param {bad[0]!r}: expected NAME=VALUE")
    sig = inspect.signature(build)
    takes_all = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return path, app_id, build(**{k: v for k, v in pairs.items() if takes_all or k in sig.parameters})


def start_pipelines(pipelines, log, state_dir: Path, guarantee: str):
    """Start each (path, application id, topology) as an engine App on its own thread."""
    import threading

    from ..engine import App

    started = []
    for _, app_id, top in pipelines:
        sources = [s.source_topic for s in top.nodes.values() if s.source_topic and "{app}" not in s.source_topic]
        n = max((log.describe_topic(t).partitions for t in sources), default=1)
        for spec in top.nodes.values():
            if spec.sink_topic and "{app}" not in spec.sink_topic:
                log.create_topic(spec.sink_topic, n, exist_ok=True)
        app = App(top, app_id, log, state_dir=state_dir, processing_guarantee=guarantee)
        t = threading.Thread(target=app.run, name=f"pipeline-{app_id}", daemon=True)
        t.start()
        started.append((app, t))
    return started


def register(app: typer.Typer) -> None:
    app.command("qtt")(qtt)
    app.command("run")(run)
