"""Cost of Python UDFs in SQL projections on the batch path, beside a built-in of similar work.

    .venv/bin/python bench/udf_bench.py [--rows 1000000] [--repeat 3]

Three forms of "upper-case a string column" over the same 1M-row column, compiled by the SQL
layer's vectorized compiler exactly as a projection `SELECT f(S) ...` is: the built-in UCASE, a
scalar Python UDF (called per value), and a vectorized UDF (``@udf(vectorized=True)``: one call
per batch over Arrow arrays). Best of --repeat, in alternation. Targets (issue #5): scalar UDF at
most 2x the built-in, vectorized at most 1.2x. Prints a table and writes bench/results/udf.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import polars as pl
import pyarrow.compute as pc

from mailroom.formats.types import SqlType
from mailroom.functions import builtin_registry
from mailroom.functions.registry import Overload
from mailroom.sql.expressions import ExpressionCompiler, Scope
from mailroom.sql.parser import parse_expression
from mailroom.sql.vectorized import VectorCompiler

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    reg = builtin_registry()
    reg.register_scalar("UPPER_PY", Overload([SqlType.STRING], SqlType.STRING, lambda s: s.upper()))
    reg.register_scalar("UPPER_VEC", Overload([SqlType.STRING], SqlType.STRING, lambda s: s.upper(),
                                              vectorized=lambda a: pc.utf8_upper(a)))
    scope = Scope()
    scope.add("S", "S", SqlType.STRING, "X")
    df = pl.DataFrame({"S": [f"user{i}@example{i % 97}.com" if i % 50 else None for i in range(args.rows)]})
    forms = {"built-in UCASE": "UCASE(S)", "scalar Python UDF": "UPPER_PY(S)", "vectorized Python UDF": "UPPER_VEC(S)"}
    exprs = {k: VectorCompiler(ExpressionCompiler(reg)).compile(parse_expression(t), scope).expr for k, t in forms.items()}
    best = {k: float("inf") for k in forms}
    outs = {}
    for _ in range(args.repeat):
        for k, e in exprs.items():
            t0 = time.perf_counter()
            outs[k] = df.select(e.alias("x"))["x"]
            best[k] = min(best[k], time.perf_counter() - t0)
    assert outs["scalar Python UDF"].to_list() == outs["built-in UCASE"].to_list() == outs["vectorized Python UDF"].to_list()
    base = best["built-in UCASE"]
    results = [{"form": k, "expression": forms[k], "seconds": round(v, 4), "rows_per_s": round(args.rows / v),
                "ratio_to_builtin": round(v / base, 2)} for k, v in best.items()]
    print(f"{'form':24} {'rows/s':>14} {'x built-in':>11}")
    for r in results:
        print(f"{r['form']:24} {r['rows_per_s']:>14,} {r['ratio_to_builtin']:>11}")
    out = ROOT / "bench" / "results" / "udf.json"
    out.write_text(json.dumps({"bench": "udf", "rows": args.rows, "repeat": args.repeat, "results": results,
                               "machine": {"python": platform.python_version(), "platform": platform.platform()},
                               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
