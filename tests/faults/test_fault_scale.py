"""A 100,000-trader scenario on two weeks of synthetic minute bars, through the real `mochi`
command, twice in two homes (the second on one thread): each run stays within the documented
memory budget, and the two give byte-identical aggregates, rankings, leaderboard and graph CSVs.
The two runs are started together (separate homes, nothing shared; the peak RSS is each process
tree's own): their serial parts (start-up, Dagster bookkeeping, the single-threaded run) overlap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# README "Limits": peak RSS of `mochi backtest` for this request stays below this budget
MEMORY_BUDGET_MB = 3072
TIMES = [f"{h:02d}:{m:02d}" for h in range(8, 13) for m in (0, 30)]
REQUEST = f"""
ticker: SYN:GOLD
start: 2024-03-04
end: 2024-03-15
atr: {{short: 3, long: 5, alpha: 0.5}}
scenarios:
  grid-long:
    direction: long
    entry_times: {TIMES}
    offset_ticks: [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    stop_atr: [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0]
    limit_atr: [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0]
    duration_min: [30, 60, 90, 120, 180, 240, 300, 360, 420, 480]
"""
COMPARED = ("*aggregates/**/*.parquet", "*rankings/**/*.parquet", "*graphs/**/*.csv")


def start_backtest(request: Path, home: Path, log: Path, **extra_env) -> subprocess.Popen:
    """Start `mochi backtest --request` with its output to `log`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    env.update({"MOCHI_HOME": str(home), **extra_env})
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "mochi_assets.cli", "backtest", "--request", str(request),
                                 "--no-progress"], stdout=out, stderr=subprocess.STDOUT, env=env)


def finish(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for a started backtest: its exit status and peak RSS in MB (of it and its children)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    request = root / "grid.yaml"
    request.write_text(REQUEST)
    runs = []
    # the second run on one thread wherever Mochi's libraries would use several
    one_thread = {"NUMBA_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}
    started = {name: start_backtest(request, root / name, root / f"{name}.log", **env)
               for name, env in (("a", {}), ("b", one_thread))}
    for name, proc in started.items():
        code, peak_mb = finish(proc)
        runs.append((root / name / "lake", code, peak_mb, (root / f"{name}.log").read_text()))
    return runs


def test_a_100000_trader_scenario_runs_within_the_memory_budget(two_runs):
    for lake, code, peak_mb, log in two_runs:
        assert code == 0, log[-3000:]
        assert "1 scenarios (grid-long)" in log or "grid-long" in log
        assert peak_mb < MEMORY_BUDGET_MB, f"peak RSS {peak_mb:.0f} MB"
    import polars as pl

    traders = pl.read_parquet(next(two_runs[0][0].glob("*trades/traders/**/data.parquet")))
    assert traders.height == 100_000


def test_identical_backtests_give_byte_identical_results(two_runs):
    (lake_a, *_), (lake_b, *_) = two_runs
    files = sorted(p.relative_to(lake_a) for pattern in COMPARED for p in lake_a.glob(pattern) if "_mochi" not in p.parts)
    names = {p.parts[1] for p in files}
    assert {"trader_summary", "trader_by_year", "scenario_stats", "rankings", "leaderboard", "years_graph"} <= names
    different = [str(p) for p in files if (lake_a / p).read_bytes() != (lake_b / p).read_bytes()]
    assert different == []
