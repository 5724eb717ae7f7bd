"""A worker process of a parallel backtest dies under its run: the run fails, its pool slot is
freed, and the command says so on its last line (once, no retry)."""

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
from filelock import FileLock

from mochi_assets.runner import INSTANCE_LOCK
from tests.processes import worker_pids

pytestmark = pytest.mark.e2e

MOCHI = [sys.executable, "-m", "mochi_assets.cli"]
REQUEST = """
ticker: SYN:GOLD
start: 2024-03-04
end: 2024-04-26
atr: {short: 3, long: 5, alpha: 0.5}
entry_times: ["09:30", "14:00"]
duration_min: [60, 240]
scenarios:
  breakout-long:
    direction: long
    offset_ticks: [0, 20]
    stop_atr: [0.5, 1.0]
    limit_atr: [1.0, 2.0]
  breakout-short:
    direction: short
    offset_ticks: [0, 20]
    stop_atr: [0.5, 1.0]
    limit_atr: [1.0, 2.0]
"""


def test_a_killed_worker_fails_its_run_and_frees_the_pool(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    env.update(MOCHI_HOME=str(home), MOCHI_PARALLEL_RUNS="2")
    req = tmp_path / "gold.yaml"
    req.write_text(REQUEST)
    proc = subprocess.Popen([*MOCHI, "backtest", "--request", str(req), "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        victim = None
        while victim is None:
            assert proc.poll() is None, "the backtest ended before both scenario runs started"
            assert time.monotonic() < deadline, "the two scenario runs never ran at once"
            if (home / "dagster" / "dagster.yaml").exists():
                with FileLock(str(home / "dagster" / INSTANCE_LOCK)), dg.DagsterInstance.get() as instance:
                    started = instance.get_runs(filters=dg.RunsFilter(
                        job_name="scenario_job", statuses=[dg.DagsterRunStatus.STARTED]))
                if len(started) == 2 and worker_pids(home):
                    victim = worker_pids(home)[0]
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "worker process executing run " in last and "ended unexpectedly" in last, err[-3000:]
    assert err.count("ended unexpectedly") == 1
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="scenario_job"))
        statuses = sorted(r.status.value for r in runs)
        assert statuses == ["FAILURE", "SUCCESS"], statuses  # the other scenario finished
        info = instance.event_log_storage.get_concurrency_info("mochi_simulation")
        assert info.active_slot_count == 0 and not info.claimed_slots and not info.pending_steps
    assert worker_pids(home) == []
