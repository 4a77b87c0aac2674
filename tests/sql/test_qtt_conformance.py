"""ksqlDB's public conformance cases (../shared/qtt): none that passed before may fail now.

The list of passing cases lives in tests/sql/qtt_passing.txt and only grows:
`make qtt` runs the whole set, prints the pass rate per file and adds newly passing cases.
"""

from __future__ import annotations

from pathlib import Path

from mailroom.functions import builtin_registry, load_folder
from mailroom.sql.qtt import run_files

ROOT = Path(__file__).resolve().parents[2]
QTT = ROOT.parent / "shared" / "qtt" / "query-validation-tests"
PASSING = Path(__file__).with_name("qtt_passing.txt")
UDFS = ROOT / "tests" / "functions" / "qtt_udfs"


def test_public_conformance_cases_that_passed_still_pass() -> None:
    assert QTT.is_dir(), f"ksqlDB's conformance cases are expected in {QTT} (../shared/qtt beside the checkout)"
    registry = builtin_registry()
    if UDFS.is_dir():
        report = load_folder(UDFS, registry)
        assert not report.failed, f"test UDFs failed to load: {report.failed}"
    results = run_files(sorted(QTT.glob("*.json")), registry=registry)
    passed = {r.case.id for r in results if r.status == "passed"}
    expected = {line for line in PASSING.read_text().splitlines() if line}
    lost = sorted(expected - passed)
    why = {r.case.id: r.reason.splitlines()[0] if r.reason else "" for r in results}
    assert not lost, f"{len(lost)} conformance cases no longer pass, e.g.:\n" + "\n".join(f"  {c}: {why.get(c, 'not run')}" for c in lost[:10])
    ran = [r for r in results if r.status != "skipped"]
    assert len(passed) >= len(expected) and ran, "the public set must run"
