"""The simulation pool: trades partitions launched together run one at a time, and a run that
fails mid-simulation frees its slot (the repo's dagster.yaml, a real on-disk instance)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mochi_assets.definitions import all_assets, build_resources, ticker_assets
from mochi_assets.partitions import SCENARIO_DIMENSION
from mochi_assets.request import parse_request
from mochi_assets.simulation.assets import SIMULATION_POOL

from tests.automation.requests import materialize_request, small_request

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pooled_instance(mochi_home, monkeypatch):
    dagster_home = mochi_home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def _interval(instance, run_id):
    records = instance.get_records_for_run(run_id).records
    steps = [r.event_log_entry for r in records if r.event_log_entry.step_key == "trades"
             and r.event_log_entry.dagster_event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
                                                          dg.DagsterEventType.STEP_FAILURE)]
    start = min(e.timestamp for e in steps if e.dagster_event_type == dg.DagsterEventType.STEP_START)
    end = max(e.timestamp for e in steps if e.dagster_event_type != dg.DagsterEventType.STEP_START)
    return start, end


def test_simulations_launched_together_never_overlap_and_a_failed_one_frees_its_slot(pooled_instance, mochi_home):
    instance = pooled_instance
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    request = parse_request(small_request(scenarios=3))
    ticker = request.ticker_key
    materialize_request(instance, request)
    assert dg.materialize(all_assets, selection=ticker_assets, partition_key=ticker, instance=instance,
                          resources=build_resources()).success
    scenarios = sorted(instance.get_dynamic_partitions(SCENARIO_DIMENSION))
    assert len(scenarios) == 3

    env = {**os.environ, "MOCHI_TEST_SIM_DELAY": "2", "PYTHONPATH": str(ROOT)}
    procs = []
    for i, name in enumerate(scenarios):
        fail = {"MOCHI_TEST_SIM_FAIL": "1"} if i == 1 else {}
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "tests/automation/run_partition.py"), ticker, name],
            env={**env, **fail}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outs = [p.communicate(timeout=180) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 1, 0], [o[1][-2000:] for o in outs]
    run_ids = [o[0].strip().splitlines()[-1] for o in outs]

    intervals = sorted(_interval(instance, run_id) for run_id in run_ids)
    for (_, end), (next_start, _) in zip(intervals, intervals[1:]):
        assert end <= next_start, intervals  # one simulation at a time, failed one included
    info = instance.event_log_storage.get_concurrency_info(SIMULATION_POOL)
    assert info.active_slot_count == 0 and info.slot_count == 1
