"""Cancel requested just before a worker starts the run: the run still ends CANCELED."""

import dagster as dg

from mochi_assets.runner import _cancel_runs
from tests.instances import mochi_instance_for_test


@dg.op
def noop() -> None:
    pass


@dg.job
def tiny():
    noop()


def _start(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """What a worker's execute_run writes first: the start event (it sets the status to STARTED)."""
    instance.report_dagster_event(
        dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name), run.run_id
    )


def test_a_start_after_the_cancel_request_is_still_a_cancel():
    with mochi_instance_for_test() as instance:
        run = instance.create_run_for_job(tiny)

        def worker_starts_then_stops(_grace: float) -> None:
            _start(instance, run)  # handed to the worker just before the signal: overwrites CANCELING
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
            instance.report_run_failed(instance.get_run_by_id(run.run_id), "stopped by STOP")

        _cancel_runs(instance, [run], worker_starts_then_stops)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED


def test_a_failure_before_the_cancel_request_stays_a_failure():
    with mochi_instance_for_test() as instance:
        run = instance.create_run_for_job(tiny)
        _start(instance, run)
        instance.report_run_failed(instance.get_run_by_id(run.run_id), "a step failed")
        _cancel_runs(instance, [run], lambda _grace: None)  # the signal came after the run had ended
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE

        second = instance.create_run_for_job(tiny)
        _start(instance, second)  # started first, then canceled and failed while stopping

        def fails_while_stopping(_grace: float) -> None:
            instance.report_run_failed(instance.get_run_by_id(second.run_id), "a step failed")

        _cancel_runs(instance, [second], fails_while_stopping)
        assert instance.get_run_by_id(second.run_id).status == dg.DagsterRunStatus.FAILURE
