"""The conformance runner starts each case with fresh UDF state: ksqlDB makes a UDF instance
per query, so a counting UDF (BAD_UDF) must not carry its count from one case to the next."""

from __future__ import annotations

from pathlib import Path

from mailroom.functions import builtin_registry, load_folder
from mailroom.sql.qtt import Case, run_case

UDF = '''
from typing import Optional
from mailroom.functions.api import udf

_calls = 0


def reset_counter() -> None:
    global _calls
    _calls = 0


@udf(name="every_other_test", description="NULL on the 1st, 3rd, ... call")
def every_other(arg: Optional[str]) -> str:
    global _calls
    n, _calls = _calls, _calls + 1
    return None if n % 2 == 0 else arg
'''

CASE = {
    "statements": [
        "CREATE STREAM TEST (ID INT KEY, data STRING) WITH (kafka_topic='test_topic', value_format='JSON');",
        "CREATE STREAM OUTPUT AS SELECT ID, every_other_test(DATA) AS X FROM TEST;",
    ],
    "inputs": [{"topic": "test_topic", "key": i, "value": {"data": f"d{i}"}} for i in range(3)],
    "outputs": [{"topic": "OUTPUT", "key": 0, "value": {"X": None}}, {"topic": "OUTPUT", "key": 1, "value": {"X": "d1"}},
                {"topic": "OUTPUT", "key": 2, "value": {"X": None}}],
}


def test_each_case_starts_with_reset_udf_state(tmp_path: Path) -> None:
    (tmp_path / "counting.py").write_text(UDF)
    registry = builtin_registry()
    assert not load_folder(tmp_path, registry).failed
    # three calls leave the counter odd: without the reset the second run would be shifted
    first = run_case(Case("t.json", "one", CASE), registry)
    second = run_case(Case("t.json", "two", CASE), registry)
    assert (first.status, first.reason) == ("passed", "")
    assert (second.status, second.reason) == ("passed", "")
