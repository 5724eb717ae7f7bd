"""A `mochi backtest` killed with SIGKILL during its simulation never blocks the next one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from filelock import FileLock

from mochi_assets.runner import INSTANCE_LOCK

pytestmark = pytest.mark.e2e

MOCHI = [sys.executable, "-m", "mochi_assets.cli"]
# about a quarter of a year and 1,600 traders: the simulation step lasts a few seconds
REQUEST = """
ticker: SYN:GOLD
start: 2024-01-02
end: 2024-03-29
atr: {short: 3, long: 5, alpha: 0.5}
entry_times: ["09:30", "10:30", "11:30", "13:00"]
duration_min: [60, 120, 240, 480]
scenarios:
  breakout-long: {direction: long, offset_ticks: [0, 10, 20, 40, 80], stop_atr: [0.5, 1.0, 1.5, 2.0, 3.0], limit_atr: [1.0, 2.0, 3.0, 4.0]}
"""


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    return {**env, "MOCHI_HOME": str(home)}


def _trades_started(home: Path) -> bool:
    db = home / "dagster" / "history" / "runs.db"
    if not db.exists():
        return False
    # under the lock `mochi` holds while it creates the instance's databases (two processes creating
    # runs.db at once: "table runs already exists")
    with FileLock(str(home / "dagster" / INSTANCE_LOCK)), dg.DagsterInstance.get() as instance:
        for run in instance.get_runs(dg.RunsFilter(job_name="scenario_job")):
            starts = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_START).records
            if any(r.event_log_entry.step_key == "trades" for r in starts):
                return True
    return False


def test_a_killed_backtest_is_failed_and_the_next_one_finishes(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # this test's view of the same instance
    req = tmp_path / "gold.yaml"
    req.write_text(REQUEST)
    proc = subprocess.Popen([*MOCHI, "backtest", "--request", str(req), "--no-progress"], env=_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not _trades_started(home):
        assert proc.poll() is None, "the backtest ended before its simulation started"
        assert time.monotonic() < deadline, "the simulation never started"
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    again = subprocess.run([*MOCHI, "backtest", "--request", str(req), "--no-progress"], env=_env(home),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"left behind by process {proc.pid}, which is gone: marked failed, its pool slots freed" in again.stderr
    with dg.DagsterInstance.get() as instance:
        killed = [r for r in instance.get_runs() if r.tags.get("mochi/pid") == str(proc.pid)]
        assert killed and all(r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for r in killed)
        assert any(r.job_name == "scenario_job" and r.status == dg.DagsterRunStatus.FAILURE for r in killed)
        info = instance.event_log_storage.get_concurrency_info("mochi_simulation")
        assert info.active_slot_count == 0
