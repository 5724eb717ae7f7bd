"""A run that fails after `mochi` asked to cancel it ends canceled, whatever order the two
processes' status updates reached the run storage in."""

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from mochi_assets.runner import _cancel_runs
from tests.instances import mochi_instance_for_test


def test_a_run_that_failed_after_the_cancel_request_is_reported_canceled():
    with mochi_instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="scenario_job", status=dg.DagsterRunStatus.STARTED)

        def stop(_grace: float) -> None:
            # what the worker did in the race: its start's status update landed after the request,
            # so its stop (RunInterrupted in the first step) failed the run instead of canceling it
            current = instance.get_run_by_id(run.run_id)
            instance.report_run_failed(current, "Execution was interrupted unexpectedly.")

        _cancel_runs(instance, [run], stop)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED


def test_a_run_that_had_failed_before_the_request_stays_failed():
    with mochi_instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="scenario_job", status=dg.DagsterRunStatus.STARTED)
        instance.report_run_failed(run, "step trades failed: a real error")
        _cancel_runs(instance, [instance.get_run_by_id(run.run_id)], lambda _grace: None)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
