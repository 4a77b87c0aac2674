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
    files: list[Path] = typer.Argument(..., help="SQL scripts to run, in order (ksqlDB's --queries-file mode)"),
    log_url: str = LogOption,
    state_dir: Path = typer.Option(Path(".mailroom/state"), "--state-dir", help="where the queries keep their local state"),
    guarantee: str = typer.Option("exactly_once", "--guarantee", help="exactly_once or at_least_once"),
    udf_dir: Path | None = typer.Option(None, "--udf-dir", help="a folder of Python UDF files to load first"),
) -> None:
    """Run SQL scripts headless: create their streams and tables and keep their persistent
    queries running until Ctrl-C / SIGTERM.

    Running the same scripts again after a stop (or a crash) resumes the same queries: their ids
    come from the scripts, so they pick up their committed offsets and restore their state.
    """
    import signal
    import threading

    from ..functions import builtin_registry, load_folder
    from ..log import open_log
    from ..sql.executor import SqlExecutor
    from ..sql.metastore import SqlError
    from ..sql.parser import SqlSyntaxError, parse
    from ..sql.runtime import LogRuntime
    from ..sql import ast as A

    registry = builtin_registry()
    if udf_dir is not None:
        for f in load_folder(udf_dir, registry).failed:
            typer.echo(f"could not load {f.path}: {f.error}", err=True)
    log = open_log(log_url)
    runtime = LogRuntime(log, state_dir, processing_guarantee=guarantee)
    ex = SqlExecutor(runtime, registry)
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
    typer.echo(f"running {len(runtime.queries())} persistent queries on {log_url}; Ctrl-C to stop", err=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        dead = [q for q, (app, t) in runtime.apps.items() if not t.is_alive()]
        if dead:
            typer.echo(f"queries stopped unexpectedly: {dead}", err=True)
            break
    runtime.close()
    log.close()


def register(app: typer.Typer) -> None:
    app.command("qtt")(qtt)
    app.command("run")(run)
