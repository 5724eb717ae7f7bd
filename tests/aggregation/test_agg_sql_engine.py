"""The DuckDB engine behind the SqlEngine seam."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from mochi_resources.errors import MochiError
from mochi_resources.sql_engine import DuckDBEngine, ParquetFile, SqlEngine


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


def _cgroup(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def test_threads_and_memory_follow_the_pods_cgroup_limits(tmp_path, monkeypatch):
    from mochi_resources import sql_engine

    monkeypatch.setattr(sql_engine.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    # cgroup v2: a limit of 1500m CPU is 2 threads; "max" is no limit (the 8 CPUs of the affinity)
    v2 = _cgroup(tmp_path / "v2", {"cpu.max": "150000 100000", "memory.max": str(2 * 2**30)})
    assert sql_engine.cpu_limit(v2) == 2
    assert sql_engine.memory_limit_bytes(v2) == 2 * 2**30
    # DuckDB's memory: 80% of the pod's limit, at most 1 GiB (it spills beyond)
    assert sql_engine.default_memory_limit(v2) == "1024MiB"
    small = _cgroup(tmp_path / "v2small", {"memory.max": str(2**30)})
    assert sql_engine.default_memory_limit(small) == "819MiB"
    unlimited = _cgroup(tmp_path / "max", {"cpu.max": "max 100000", "memory.max": "max"})
    assert sql_engine.cpu_limit(unlimited) == 8 and sql_engine.memory_limit_bytes(unlimited) is None
    assert sql_engine.default_memory_limit(unlimited) == "1024MiB"
    # cgroup v1: quota -1 is no limit
    v1 = _cgroup(tmp_path / "v1", {"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000",
                                   "memory/memory.limit_in_bytes": str(2**30)})
    assert sql_engine.cpu_limit(v1) == 3 and sql_engine.memory_limit_bytes(v1) == 2**30
    v1_free = _cgroup(tmp_path / "v1free", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000",
                                            "memory/memory.limit_in_bytes": str(2**63 - 4096)})
    assert sql_engine.cpu_limit(v1_free) == 8 and sql_engine.memory_limit_bytes(v1_free) is None
    # no cgroup files: the affinity; a quota below one CPU still gives one thread
    assert sql_engine.cpu_limit(tmp_path / "none") == 8
    assert sql_engine.cpu_limit(_cgroup(tmp_path / "small", {"cpu.max": "20000 100000"})) == 1
    # the engine takes them when not told otherwise, and DuckDB gets them
    monkeypatch.setattr(sql_engine, "CGROUP_ROOT", v2)
    engine = DuckDBEngine()
    assert (engine.threads, engine.memory_limit) == (2, "1024MiB")
    out = engine.query("SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m", {})
    assert out["t"].item() == 2 and out["m"].item().startswith("1.0")
    assert DuckDBEngine(threads=1, memory_limit="256MB").threads == 1


def test_a_parquet_file_input_is_read_by_duckdb_itself(tmp_path):
    path = tmp_path / "t.parquet"
    pl.DataFrame({"k": [1, 2, 3], "v": [1.0, 2.0, 4.0], "s": ["a", "b", "c"]}).write_parquet(path)
    engine = DuckDBEngine(threads=1)
    source = ParquetFile(str(path), ("k", "v"))
    out = engine.run_script([("total", "SELECT SUM(v) AS v FROM t WHERE k > 1"), ("cols", "SELECT * FROM t LIMIT 0")],
                            {"t": source})
    assert out["total"].rows() == [(6.0,)]
    assert out["cols"].columns == ["k", "v"]  # only the columns asked for
    with pytest.raises(MochiError, match=r"SQL input table 't': .*t.parquet has no column\(s\) w"):
        engine.query("SELECT 1", {"t": ParquetFile(str(path), ("k", "w"))})
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not parquet PAR1")
    with pytest.raises(MochiError, match="SQL input table 't': the trades is not a readable Parquet file"):
        engine.query("SELECT 1", {"t": ParquetFile(str(bad), ("k",), label="the trades")})
    with pytest.raises(MochiError, match="not a plain identifier"):
        engine.query("SELECT 1", {"t": ParquetFile(str(path), ('k" FROM x; --',))})
