"""Ctrl-C (SIGINT) and SIGTERM during the simulation of `mochi backtest` cancel the run promptly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mochi_assets.runner import IN_FLIGHT, failure_message, recover_dead_runs
from tests.processes import worker_pids

pytestmark = pytest.mark.e2e

MOCHI = [sys.executable, "-m", "mochi_assets.cli"]
# three weeks of bars and 76,800 traders: the trades step lasts several seconds even on a quiet machine
REQUEST = """
ticker: SYN:GOLD
start: 2024-03-04
end: 2024-03-22
atr: {short: 3, long: 5, alpha: 0.5}
entry_times: ["09:30", "10:00", "10:30", "11:00", "11:30", "13:00", "14:00", "15:00"]
duration_min: [30, 60, 120, 180, 240, 390]
timeout_min: [30, 60]
scenarios:
  breakout-long:
    direction: long
    offset_ticks: [0, 5, 10, 20, 30, 40, 80, 120, 160, 200]
    stop_atr: [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    limit_atr: [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
"""


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    return {**env, "MOCHI_HOME": str(home)}


def _trades_running(home: Path) -> bool:
    """The trades step writes its chunks: its Parquet file, in the lake's staging, has row groups (the
    first chunk also loads the compiled kernels, which no flag can interrupt)."""
    for partial in (home / "lake" / ".staging").glob(".*.parquet.partial"):
        try:
            if partial.stat().st_size > 4096:
                return True
        except FileNotFoundError:
            continue
    return False


def _interrupt_during_trades(home: Path, req: Path, signum: int) -> tuple[subprocess.CompletedProcess, float]:
    proc = subprocess.Popen([*MOCHI, "backtest", "--request", str(req), "--no-progress"], env=_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not _trades_running(home):
        assert proc.poll() is None, "the backtest ended before its simulation started"
        assert time.monotonic() < deadline, "the simulation never started"
        time.sleep(0.05)
    time.sleep(0.3)  # between kernel chunks
    assert proc.poll() is None, "the simulation ended before the signal: the grid is too small"
    sent = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.monotonic() - sent


def test_sigint_and_sigterm_cancel_the_run_and_free_the_pool(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # this test's view of the same instance
    req = tmp_path / "gold.yaml"
    req.write_text(REQUEST)
    for signum in (signal.SIGINT, signal.SIGTERM):
        stopped, seconds = _interrupt_during_trades(home, req, signum)
        assert seconds < 10, f"{signum!r}: the process took {seconds:.1f} s to stop"
        assert stopped.returncode == 128 + signum, stopped.stderr[-3000:]
        last = stopped.stderr.strip().splitlines()[-1]
        assert last.startswith("mochi: interrupted: run ") and "(scenario_job, " in last and last.endswith(" canceled")
        run_id = last.removeprefix("mochi: interrupted: run ").split(" ")[0]
        with dg.DagsterInstance.get() as instance:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED
            info = instance.event_log_storage.get_concurrency_info("mochi_simulation")
            assert info.active_slot_count == 0 and not info.claimed_slots
            assert not [p for p in info.pending_steps if p.run_id == run_id]
        partial = list((home / "lake").rglob("*.partial"))
        assert partial == [], partial

    # what the next `mochi` command does first: the canceled runs were ended, none is found dead
    with dg.DagsterInstance.get() as instance:
        assert recover_dead_runs(instance) == []
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT))


def test_sigterm_cancels_parallel_scenario_runs_and_ends_their_workers(tmp_path, monkeypatch):
    """Two scenarios run in two worker processes: SIGTERM cancels both runs, frees the pool, and
    no worker outlives the command."""
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("MOCHI_PARALLEL_RUNS", "2")
    short = REQUEST.split("scenarios:")[1].replace("breakout-long", "breakout-short").replace("direction: long",
                                                                                                "direction: short")
    req = tmp_path / "gold.yaml"
    req.write_text(REQUEST + short.removeprefix("\n"))
    stopped, seconds = _interrupt_during_trades(home, req, signal.SIGTERM)
    assert seconds < 15, f"the process took {seconds:.1f} s to stop"
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("mochi: interrupted: run ") and "(scenario_job, " in last and last.endswith(" canceled")
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="scenario_job"))
        assert runs
        others = [r for r in runs if r.status != dg.DagsterRunStatus.CANCELED]
        if others:  # the whole story, untruncated: why each run that was not canceled ended so
            pytest.fail("runs not canceled:\n" + "\n".join(
                f"{r.run_id} {r.status}: {failure_message(instance, r.run_id)}" for r in others
            ) + "\nmochi's stderr:\n" + stopped.stderr[-5000:])
        info = instance.event_log_storage.get_concurrency_info("mochi_simulation")
        assert info.active_slot_count == 0 and not info.claimed_slots and not info.pending_steps
    assert list((home / "lake").rglob("*.partial")) == []
    assert worker_pids(home) == []
