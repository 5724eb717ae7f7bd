"""The real `mochi` command end to end on a few weeks of synthetic minute bars (offline)."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mochi_assets.launch import LOCATION_NAME, runs_filter_of_location
from tests.processes import worker_pids

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
walk_forward: {is_sessions: 12, oos_sessions: 6, min_trades: 3, top: 2, mc_paths: 50, spa_reps: 50, random_paths: 200}
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
    # the command ends without the interpreter's teardown (cli._exit_without_teardown): all its
    # output was written, and its scenario workers (if it ran the scenarios in parallel) are gone
    assert out.rstrip().endswith(".")  # the verdict's sentence, the last thing printed
    assert worker_pids(home) == []


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


def test_results_shows_the_walk_forward_of_every_scenario(backtest):
    home, _ = backtest
    proc = run([*MOCHI, "results", "SYN:GOLD", "--walk-forward"], home)
    assert proc.returncode == 0, proc.stderr
    for scenario in ("breakout-long", "breakout-short"):
        assert f"SYN:GOLD scenario {scenario}: walk-forward (rolling, 12 in-sample / 6 out-of-sample" in proc.stdout
    assert proc.stdout.count("Robustness of the top traders:") == 2
    assert proc.stdout.count("verdict: ") == 2 and "walk_forward.png" in proc.stdout


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


def _instance(home: Path, monkeypatch) -> dg.DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return dg.DagsterInstance.get()


def test_cli_runs_carry_the_mochi_location_origin(backtest, monkeypatch):
    """Runs of `mochi backtest` are runs of the `mochi` code location: the UI's Overview timeline,
    Jobs pages and asset pages find them by that origin."""
    home, proc = backtest
    assert proc.returncode == 0, proc.stderr[-3000:]
    with _instance(home, monkeypatch) as instance:
        runs = instance.get_runs(runs_filter_of_location())
        cli_runs = [r for r in instance.get_runs() if "mochi/request_id" in r.tags]
        assert {r.run_id for r in runs} == {r.run_id for r in cli_runs} and len(runs) >= 5
        jobs = sorted(r.job_name for r in runs)
        assert jobs[:5] == ["leaderboard_job", "request_job", "scenario_job", "scenario_job", "ticker_job"]
        for run in runs:
            origin = run.remote_job_origin
            assert origin.location_name == LOCATION_NAME == "mochi"
            assert origin.repository_origin.get_label() == "__repository__@mochi"


def test_an_unchanged_rerun_launches_no_simulation(backtest, monkeypatch):
    home, _ = backtest
    req = home.parent / "gold.yaml"
    with _instance(home, monkeypatch) as instance:
        trades_before = len(instance.fetch_materializations(dg.AssetKey("trades"), limit=100).records)
        proc = run([*MOCHI, "backtest", "--request", str(req), "--no-progress"], home)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Up to date, not re-run (code and data versions unchanged): bars and scenarios, breakout-long, " \
               "breakout-short, leaderboard" in proc.stdout
        assert len(instance.fetch_materializations(dg.AssetKey("trades"), limit=100).records) == trades_before
        newest = instance.get_runs(runs_filter_of_location(), limit=1)[0]
        assert newest.job_name == "request_job"  # the request is re-materialized: same hash, nothing follows


class _RefusingPolygon(BaseHTTPRequestHandler):
    """A Polygon stand-in that refuses every key (HTTP 401) and counts the requests."""

    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hits.append(self.path)
        body = json.dumps({"status": "ERROR", "error": "Unknown API Key"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def refusing_polygon():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingPolygon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _RefusingPolygon.hits = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _retried_steps(home: Path, monkeypatch) -> list[str]:
    with _instance(home, monkeypatch) as instance:
        return [
            r.event_log_entry.step_key
            for run_ in instance.get_runs()
            for r in instance.get_records_for_run(run_.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY).records
        ]


def test_a_wrong_polygon_key_fails_once_and_says_so(tmp_path, refusing_polygon, monkeypatch):
    home = tmp_path / "home"
    proc = run([*MOCHI, "backtest", "C:EURUSD", "--start", "2024-01-02", "--end", "2024-03-01", "--no-progress"], home,
               POLYGON_API_KEY="wrong-key", MOCHI_POLYGON_BASE_URL=refusing_polygon, MOCHI_POLYGON_RPM="0")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mochi: error: step raw_bars failed: ") and "refused POLYGON_API_KEY (HTTP 401" in last
    assert "max_retries" not in proc.stderr and "wrong-key" not in proc.stderr
    assert len(_RefusingPolygon.hits) == 1  # one request, one attempt: no retry can fix a key
    assert _retried_steps(home, monkeypatch) == []


# A range too short for the ATR warm-up no longer reaches a step: the warm-up is loaded before
# `start`, and a source without enough earlier bars is refused before any run, in one line naming
# the range and the first session that would work (tests/market_data/test_md_warmup.py).
