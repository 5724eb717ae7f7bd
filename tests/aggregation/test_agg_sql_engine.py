"""The DuckDB engine behind the SqlEngine seam."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from mochi_resources.errors import MochiError
from mochi_resources.sql_engine import DuckDBEngine, SqlEngine


def test_query_reads_polars_and_arrow_inputs():
    engine = DuckDBEngine(threads=1, memory_limit="256MB")
    assert isinstance(engine, SqlEngine) and engine.name == "duckdb"
    a = pl.DataFrame({"k": [1, 2, 3], "v": [1.0, 2.0, 4.0]})
    b = pa.table({"k": [2, 3, 4], "w": ["x", "y", "z"]})
    out = engine.query("SELECT a.k, a.v, b.w FROM a JOIN b ON a.k = b.k ORDER BY a.k", {"a": a, "b": b})
    assert isinstance(out, pl.DataFrame)
    assert out.rows() == [(2, 2.0, "x"), (3, 4.0, "y")]


def test_run_script_materializes_in_order():
    engine = DuckDBEngine()
    t = pl.DataFrame({"g": ["a", "a", "b"], "x": [1.0, 2.0, 5.0]})
    out = engine.run_script(
        [
            ("sums", "SELECT g, SUM(x) AS s FROM t GROUP BY g"),
            ("total", "SELECT SUM(s) AS s FROM sums;"),
        ],
        {"t": t},
    )
    assert list(out) == ["sums", "total"]
    assert sorted(out["sums"].rows()) == [("a", 3.0), ("b", 5.0)]
    assert out["total"].rows() == [(8.0,)]


def test_bad_statements_and_names_raise_mochi_errors():
    engine = DuckDBEngine()
    t = pl.DataFrame({"x": [1]})
    with pytest.raises(MochiError, match="statement 'broken' failed"):
        engine.run_script([("broken", "SELECT nope FROM t")], {"t": t})
    with pytest.raises(MochiError, match="used twice"):
        engine.run_script([("t", "SELECT 1 AS one")], {"t": t})
    with pytest.raises(MochiError, match="not a plain identifier"):
        engine.run_script([("x; DROP", "SELECT 1 AS one")], {"t": t})
    with pytest.raises(MochiError, match="input table name 'bad-name'"):
        engine.query("SELECT 1", {"bad-name": t})
    with pytest.raises(MochiError, match="SQL query failed"):
        engine.query("SELECT nope FROM t", {"t": t})
    with pytest.raises(MochiError, match="threads"):
        DuckDBEngine(threads=0)
