"""The real `mochi` command end to end on a few weeks of synthetic minute bars (offline)."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.e2e

MOCHI = [sys.executable, "-m", "mochi_assets.cli"]
REQUEST = """
ticker: SYN:GOLD
start: 2024-03-01
end: 2024-04-19
atr: {short: 3, long: 5, alpha: 0.5}
entry_times: ["09:30"]
duration_min: 90
scenarios:
  breakout-long: {direction: long, stop_atr: [0.5, 1.0], limit_atr: [1.0]}
  breakout-short: {direction: short, offset_ticks: [0, 30], stop_atr: [1.0], limit_atr: [1.0, 2.0]}
"""


def run(args, home: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    environ.update({"MOCHI_HOME": str(home), **env})
    return subprocess.run(args, capture_output=True, text=True, env=environ, timeout=600)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli") / "home"
    req = home.parent / "gold.yaml"
    req.write_text(REQUEST)
    proc = run([*MOCHI, "backtest", "--request", str(req)], home)
    return home, proc


def test_backtest_runs_and_reports(backtest):
    home, proc = backtest
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Backtest of SYN:GOLD (synthetic data)" in out
    assert "2 scenarios (breakout-long, breakout-short)" in out
    assert f"Results in {home / 'lake'}" in out
    assert "Leaderboard" in out and "dsr" in out and "net_pnl_ticks" in out and "net_r" in out
    # seven weeks of noise-like synthetic bars: nothing beats luck, and the sentence says so
    assert "Verdict: No trader in this backtest beats what luck explains: the best DSR is" in out
    assert "eligible" in out.split("Leaderboard")[1].splitlines()[1]
    # the progress bar went to stderr and reached the end
    assert "100%" in proc.stderr
    board = pl.read_parquet(next((home / "lake").glob("*rankings/leaderboard/ticker=SYN_GOLD/data.parquet")))
    assert set(board["scenario"]) == {"breakout-long", "breakout-short"}
    assert (home / "dagster" / "dagster.yaml").is_file()


def test_results_command_reads_the_finished_backtest(backtest):
    home, _ = backtest
    proc = run([*MOCHI, "results", "SYN:GOLD"], home)
    assert proc.returncode == 0, proc.stderr
    assert "SYN:GOLD leaderboard (synthetic data)" in proc.stdout
    assert "Verdict: No trader in this backtest beats what luck explains" in proc.stdout
    assert "years.png" in proc.stdout
    proc = run([*MOCHI, "results", "SYN:GOLD", "--scenario", "breakout-short", "--top", "3"], home)
    assert proc.returncode == 0 and len(proc.stdout.strip().splitlines()) >= 5
    assert "SYN:GOLD scenario breakout-short (synthetic data)" in proc.stdout
    proc = run([*MOCHI, "results"], home)
    assert proc.stdout.strip().splitlines() == ["SYN_GOLD"]
    proc = run([*MOCHI, "results", "SYN:SILVER"], home)
    assert proc.returncode == 2 and "no results for SYN:SILVER" in proc.stderr


def test_dagster_cli_rematerializes_a_partition(backtest):
    """The runs live in $MOCHI_HOME/dagster: the stock Dagster CLI works on the same instance."""
    home, _ = backtest
    proc = run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "mochi_assets.definitions",
         "--select", "raw_bars", "--partition", "SYN_GOLD"],
        home, DAGSTER_HOME=str(home / "dagster"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RUN_SUCCESS" in proc.stderr + proc.stdout


def test_bad_request_writes_nothing(tmp_path):
    home = tmp_path / "home"
    bad = tmp_path / "bad.yaml"
    bad.write_text("ticker: SYN:GOLD\nstart: 2024-05-01\nend: 2024-04-01\natr: {alpha: 2}\n")
    proc = run([*MOCHI, "backtest", "--request", str(bad)], home)
    assert proc.returncode == 2
    assert "bad.yaml: invalid backtest request" in proc.stderr
    assert "atr.alpha" in proc.stderr and "end: the date range is inverted" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not home.exists()


def test_unknown_ticker_fails_up_front(tmp_path):
    home = tmp_path / "home"
    proc = run([*MOCHI, "backtest", "NOPE", "--start", "2024-01-01", "--end", "2024-02-01"], home)
    assert proc.returncode == 2
    assert "ticker NOPE: no bars available" in proc.stderr and "POLYGON_API_KEY" in proc.stderr
    assert not (home / "lake").exists() or not any((home / "lake").rglob("*.json"))


def test_every_command_has_help(tmp_path):
    for cmd in ([], ["backtest"], ["import-bars"], ["results"], ["refresh"], ["submit"], ["ui"]):
        proc = run([*MOCHI, *cmd, "--help"], tmp_path)
        assert proc.returncode == 0 and "Usage:" in proc.stdout
