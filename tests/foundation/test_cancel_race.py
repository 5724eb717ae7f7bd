"""Cancel requested while a worker starts the run: the run still ends CANCELED, unless it failed of its own error."""

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


def _interrupted(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """What Dagster writes when a step's RunInterrupted ends a run whose status reads STARTED:
    "Execution was interrupted unexpectedly", an UNEXPECTED_TERMINATION failure."""
    from dagster._core.events import JobFailureData, RunFailureReason
    from dagster._utils.error import SerializableErrorInfo

    error = SerializableErrorInfo("interrupted (Ctrl-C or SIGTERM): the run was canceled", [], "RunInterrupted")
    instance.report_dagster_event(
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_FAILURE.value, job_name=run.job_name,
            message="Execution was interrupted unexpectedly.",
            event_specific_data=JobFailureData(error=error, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
        ),
        run.run_id,
    )


def test_a_stop_after_a_start_that_reached_the_run_storage_late_is_still_a_cancel():
    """The start event came first, but its status update reached the run storage after the cancel
    request's (a worker and the `mochi` process, each writing the event log first): the status read
    STARTED when the stop interrupted the run, and Dagster ended it failed."""
    with mochi_instance_for_test() as instance:
        run = instance.create_run_for_job(tiny)
        _start(instance, run)

        def start_lands_late_then_stop(_grace: float) -> None:
            # the worker's start status overwrites CANCELING (its event stays before the request's)
            instance.run_storage.handle_run_event(
                run.run_id, dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name)
            )
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
            _interrupted(instance, instance.get_run_by_id(run.run_id))

        _cancel_runs(instance, [run], start_lands_late_then_stop)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
