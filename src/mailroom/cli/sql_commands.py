"""SQL commands: the ksqlDB conformance runner (``mailroom qtt``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer


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


def register(app: typer.Typer) -> None:
    app.command("qtt")(qtt)
