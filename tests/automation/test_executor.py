"""The executor is chosen when a run starts, from MOCHI_EXECUTOR (never when the code is imported)."""

import dagster as dg

from mochi_assets import launch
from mochi_assets.definitions import defs
from mochi_assets.partitions import TICKER_DIMENSION
from mochi_assets.request import parse_request
from mochi_assets.request_asset import request_run_config
from mochi_assets.runner import failure_message

from tests.automation.requests import small_request
from tests.instances import mochi_instance_for_test


def _run_request(instance):
    request = parse_request(small_request(scenarios=1))
    instance.add_dynamic_partitions(TICKER_DIMENSION, [request.ticker_key])
    run = launch.create_run(instance, defs, "request_job", request.ticker_key, run_config=request_run_config(request))
    return launch.execute(instance, run)


def test_mochi_executor_is_read_when_the_run_starts(mochi_home, monkeypatch):
    with mochi_instance_for_test() as instance:
        monkeypatch.setenv("MOCHI_EXECUTOR", "bogus")  # set after the definitions were imported
        failed = _run_request(instance)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        events = instance.all_logs(failed.run_id)
        assert any("MOCHI_EXECUTOR: 'bogus' is not one of in_process, multiprocess, k8s" in (e.message or "")
                   or "MOCHI_EXECUTOR: 'bogus'" in str(e.dagster_event) for e in events), failure_message(
                       instance, failed.run_id)
        monkeypatch.setenv("MOCHI_EXECUTOR", "multiprocess")
        ok = _run_request(instance)
        assert ok.status == dg.DagsterRunStatus.SUCCESS
        assert any("multiprocess" in (e.message or "").lower() or "process for step" in (e.message or "").lower()
                   for e in instance.all_logs(ok.run_id))
