"""ksqlDB's public REST conformance files (``../shared/qtt/rest-query-validation-tests``) run
through the server's HTTP API: prints the pass count, and fails only if fewer cases pass than
the number reached so far (cases not supported yet are reported, not failed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mailroom.server.rest_qtt import run_rest_files

FILES = Path(__file__).resolve().parents[2].parent / "shared" / "qtt" / "rest-query-validation-tests"
#: passing cases reached by this version, per file, less a margin of about 5% for cases whose
#: row order depends on timing across partitions (raise them as support grows). Reached:
#: insert-values 28, push-queries 36, pull-against-streams 10, pull-against-materialized 81,
#: pull-with-headers 2, pull-with-limit 6, pull-with-struct-star 0: 163 of 265 (27 skipped).
REACHED = {
    "insert-values.json": 27,
    "push-queries.json": 33,
    "pull-queries-against-streams.json": 9,
    "pull-queries-against-materialized-aggregates.json": 76,
    "pull-queries-with-headers.json": 2,
    "pull-queries-with-limit-clause.json": 5,
    "pull-queries-with-struct-star.json": 0,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REACHED))
def test_rest_conformance(name: str) -> None:
    path = FILES / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the conformance files live in ../shared/qtt beside the repo")
    results = run_rest_files([path])
    counts = Counter(r.status for r in results)
    print(f"\nREST conformance {name}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    for r in results:
        if r.status == "failed":
            print(f"  FAILED {r.case.name}: {r.reason.splitlines()[0][:200] if r.reason else ''}")
    assert counts["passed"] >= REACHED[name], f"{counts['passed']} passed, fewer than the {REACHED[name]} reached before"
