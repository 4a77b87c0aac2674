"""Differential tests: SQL expressions evaluated by the vectorized compiler (polars) and by the
row compiler give the same values, over data full of NULLs and edge cases."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from mailroom.engine.batch import Batch
from mailroom.formats.types import SqlType
from mailroom.functions import builtin_registry
from mailroom.functions.registry import Overload
from mailroom.sql.columnar import frame_of
from mailroom.sql.expressions import ExpressionCompiler, Scope
from mailroom.sql.parser import parse_expression
from mailroom.sql.vectorized import Unsupported, VectorCompiler

I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)
COLUMNS = {
    "S": SqlType.STRING, "T": SqlType.STRING,
    "I": SqlType.INT, "J": SqlType.INT,
    "B": SqlType.BIGINT, "C": SqlType.BIGINT,
    "D": SqlType.DOUBLE, "E": SqlType.DOUBLE,
    "F": SqlType.BOOLEAN, "G": SqlType.BOOLEAN,
}
S_VALS = [None, "", "abc", "ABC", "a%c", "_x", "é☃", "10", "a\nb", "delivered", "x_y%z"]
I_VALS = [None, 0, 1, -1, 7, -7, I32[0], I32[1], 3]
B_VALS = [None, 0, 1, -1, 10, -10, I64[0], I64[1], 2**40]
D_VALS = [None, 0.0, -0.0, 1.5, -2.5, 1e308, -1e308, float("inf"), 3.0, 10.0]
F_VALS = [None, True, False]


def _rows(n: int = 400) -> list[dict]:
    rng = np.random.default_rng(7)
    pick = lambda vals: vals[int(rng.integers(len(vals)))]  # noqa: E731
    rows = []
    for _ in range(n):
        rows.append({"S": pick(S_VALS), "T": pick(S_VALS), "I": pick(I_VALS), "J": pick(I_VALS),
                     "B": pick(B_VALS), "C": pick(B_VALS), "D": pick(D_VALS), "E": pick(D_VALS),
                     "F": pick(F_VALS), "G": pick(F_VALS)})
    return rows


ROWS = _rows()

SUPPORTED = [
    # columns, literals, arithmetic (Java overflow, DOUBLE division by zero)
    "S", "I + J", "I - J", "I * J", "B + C", "B * C", "B - C", "I + B", "I * 3", "B * 1000000007",
    "D + E", "D * E", "D - E", "D / E", "B / 3", "B % 3", "I / -7", "I % -7", "B / 2", "I + D", "D / 0.0E0",
    "S + T", "S || T", "S || I", "-D", "-5", "I / 1",
    # comparisons and three-valued logic
    "I = J", "I < J", "B >= C", "I <> B", "S < T", "S = 'abc'", "D > E", "D = 3", "F = G", "F",
    "F AND G", "F OR G", "NOT F", "NOT (F AND G) OR I > 0", "(I > 0) AND (S = 'abc')", "S IS NULL",
    "D IS NOT NULL", "S IS DISTINCT FROM T", "I IS NOT DISTINCT FROM J", "I BETWEEN -1 AND 7",
    "S NOT BETWEEN 'a' AND 'b'",
    # IN, LIKE
    "S IN ('abc', 'delivered', '')", "S NOT IN ('abc', 'x')", "I IN (1, J, NULL)", "I NOT IN (0, -1)",
    "B IN (1, 10)", "S LIKE 'a%'", "S LIKE '%c'", "S LIKE '_x'", "S NOT LIKE '%b%'", "S LIKE 'a!%c' ESCAPE '!'",
    "S LIKE 'a_b'", "S LIKE '%'",
    # CASE, casts, functions
    "CASE WHEN I > 0 THEN 'pos' WHEN I < 0 THEN 'neg' END",
    "CASE S WHEN 'abc' THEN 1 WHEN 'delivered' THEN 6 ELSE 0 END",
    "CASE WHEN F THEN I ELSE B END", "CASE WHEN F THEN D ELSE I END", "CASE WHEN G THEN NULL ELSE S END",
    "SUM_LIKE(CASE WHEN S = 'abc' THEN 1 ELSE 0 END)",
    "CAST(I AS BIGINT)", "CAST(B AS INT)", "CAST(I AS DOUBLE)", "CAST(B AS STRING)", "CAST(F AS STRING)",
    "CAST(NULL AS STRING)", "COALESCE(S, T)", "COALESCE(S, T, 'none')", "IFNULL(I, J)", "COALESCE(B, C, 0)",
    "LEN(S) + 1", "UCASE(S)", "LCASE(T)", "SUBSTRING(S, 2)", "SUBSTRING(S, 2, 1)", "CONCAT(S, T)", "ABS(I)",
    "ABS(D)", "ROUND(D)", "TRIM(S)",
    "UPPER_PY(S)", "CASE WHEN S IS NOT NULL THEN UPPER_PY(S) END", "UPPER_VEC(S)", "CONCAT(UPPER_VEC(S), T)", "F AND FAILS(S)", "COALESCE(S, UPPER_PY(T))",
]

#: the row path returns a value outside the column's type here (ABS(-2^31) as an INT, ROUND of 1e308
#: as a BIGINT): the vectorized evaluation fails, and the operator uses the row path for the batch
FALLBACK = {"ABS(I)", "ROUND(D)"}

ROW_ONLY = ["D % E", "B / C", "-I", "CAST(S AS INT)", "CAST(D AS BIGINT)", "D = B", "ARRAY[I, J]", "S->X"]


VEC_CALLS: list[int] = []


def _upper_vec(arr):
    import pyarrow.compute as pc

    VEC_CALLS.append(len(arr))
    return pc.utf8_upper(arr)


def _registry():
    reg = builtin_registry()
    reg.register_scalar("UPPER_PY", Overload([SqlType.STRING], SqlType.STRING, lambda s: s.upper()))
    reg.register_scalar("SUM_LIKE", Overload([SqlType.INT], SqlType.INT, lambda v: v * 2))
    # a vectorized UDF (as @udf(vectorized=True) makes it): whole Arrow columns in and out
    reg.register_scalar("UPPER_VEC", Overload([SqlType.STRING], SqlType.STRING, lambda s: s.upper(),
                                              vectorized=_upper_vec))

    def fails(s):
        if s == "abc":
            raise ValueError("no abc")
        return True

    reg.register_scalar("FAILS", Overload([SqlType.STRING], SqlType.BOOLEAN, fails))
    return reg


def _scope() -> Scope:
    scope = Scope()
    for name, t in COLUMNS.items():
        scope.add(name, name, t, "X")
    return scope


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def _both(text: str):
    row_errors: list[str] = []
    vec_errors: list[str] = []
    reg = _registry()
    e = parse_expression(text)
    scope = _scope()
    row = ExpressionCompiler(reg, on_error=row_errors.append).compile(e, scope)
    vc = VectorCompiler(ExpressionCompiler(reg, on_error=vec_errors.append))
    v = vc.compile(e, scope)
    expected = [row.fn(r) for r in ROWS]
    df = frame_of(Batch(list(range(len(ROWS))), ROWS, np.zeros(len(ROWS), dtype=np.int64)), vc.columns, "\0NULL")
    assert df is not None
    try:
        got = df.select(v.as_type(row.type).alias("x"))["x"].to_list()
    except Exception:  # noqa: BLE001 - the columnar nodes then run the row path for the batch
        got = None
    return expected, got, row_errors, vec_errors


@pytest.mark.parametrize("text", SUPPORTED)
def test_vectorized_equals_row_path(text: str) -> None:
    expected, got, row_errors, vec_errors = _both(text)
    if text in FALLBACK:  # a value the column type cannot hold: the batch takes the row path
        assert got is None
        return
    assert got is not None
    bad = [(r, x, y) for r, x, y in zip(ROWS, expected, got) if not _same(x, y)]
    assert not bad, f"{text}: {len(bad)} differences, e.g. row {bad[0][0]}: row path {bad[0][1]!r}, vectorized {bad[0][2]!r}"
    # a failing UDF reports to the processing log exactly as often on both paths
    assert sorted(vec_errors) == sorted(row_errors)


def test_failing_udf_is_reported_once_per_evaluated_row() -> None:
    _, got, row_errors, vec_errors = _both("F AND FAILS(S)")
    assert row_errors and len(vec_errors) == len(row_errors)
    assert all("no abc" in m for m in vec_errors)


@pytest.mark.parametrize("text", ROW_ONLY)
def test_unsupported_keeps_the_row_path(text: str) -> None:
    vc = VectorCompiler(ExpressionCompiler(_registry()))
    with pytest.raises(Unsupported):
        vc.compile(parse_expression(text), _scope())


def test_frame_of_refuses_values_of_other_types() -> None:
    rows = [{"I": 1}, {"I": "x"}]
    assert frame_of(Batch([1, 2], rows, np.zeros(2, dtype=np.int64)), {"I": SqlType.INT}, "\0NULL") is None
    null_row = [{"I": 1}, {"\0NULL": True}]
    assert frame_of(Batch([1, 2], null_row, np.zeros(2, dtype=np.int64)), {"I": SqlType.INT}, "\0NULL") is None
    ok = frame_of(Batch([1, 2], [{"I": 1}, {}], np.zeros(2, dtype=np.int64)), {"I": SqlType.INT}, "\0NULL")
    assert ok is not None and ok["I"].to_list() == [1, None] and ok.schema["I"] == pl.Int32


def test_columnar_source_decode_matches_ksqldb_rules() -> None:
    from mailroom.formats.types import Column
    from mailroom.sql.serdes import ColumnarValueSerde

    cols = [Column("TYPE", SqlType.STRING), Column("N", SqlType.BIGINT), Column("D", SqlType.DOUBLE)]
    serde = ColumnarValueSerde(cols, "JSON")
    vals, bad = serde.decode([b'{"type": "a", "n": 1, "d": 2}', b'{"TYPE": "b", "N": null}'])
    assert isinstance(vals, pl.DataFrame) and not bad
    assert vals.to_dicts() == [{"TYPE": "a", "N": 1, "D": 2.0}, {"TYPE": "b", "N": None, "D": None}]
    # a number into a STRING column is text, as per record; a bad record is reported, the rest decode
    rows, bad = serde.decode([b'{"type": 5, "n": "7"}', b'not json', None])
    assert rows[0] == {"TYPE": "5", "N": 7, "D": None} and rows[2] is None
    assert [i for i, _ in bad] == [1] and "invalid JSON" in bad[0][1]


def test_vectorized_udf_is_called_once_per_batch() -> None:
    VEC_CALLS.clear()
    expected, got, _, _ = _both("UPPER_VEC(S)")
    assert got == expected
    assert VEC_CALLS == [len(ROWS)]  # one call over the whole column, not one per row
