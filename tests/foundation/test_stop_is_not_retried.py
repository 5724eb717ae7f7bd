"""A run stopped by Ctrl-C or SIGTERM ends CANCELED: no step of it is retried once STOP is set.

The race these tests replay, seen in the parallel SIGTERM e2e test under load: `interrupt.check()`
raised Dagster's interruption inside `trades`, whose retry policy made Dagster's error boundary turn
it into a retry (after 0 to 60 s); when the retry started after Mochi's grace, Mochi had marked the
run CANCELED; the retry, interrupted again, failed the step "after 2 attempts" and Dagster wrote
RUN_FAILURE over CANCELED. Each moment is played here in order, in process, by the op itself or by
a logger Dagster calls synchronously with each event: nothing waits on a clock.
"""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from mochi_assets import interrupt
from mochi_assets.automation.retries import SIMULATION_RETRY
from mochi_assets.failures import fails_at_once
from mochi_assets.run_worker import execute_in_thread
from mochi_resources.errors import LakeError
from tests.instances import mochi_instance_for_test

# SIMULATION_RETRY without its pause: Dagster decides to retry the same way, the test need not wait
RETRY = dg.RetryPolicy(max_retries=SIMULATION_RETRY.max_retries)
ATTEMPTS: list[int] = []  # one entry per attempt of the step that ran its body


@pytest.fixture(autouse=True)
def _clean_stop():
    interrupt.STOP.clear()
    ATTEMPTS.clear()
    yield
    interrupt.STOP.clear()


def _signal_arrives(context) -> None:
    """What `runner._cancel_runs` does when Ctrl-C or SIGTERM arrives: the run CANCELING, then STOP."""
    context.instance.report_run_canceling(context.instance.get_run_by_id(context.run_id), message="SIGTERM")
    interrupt.STOP.set()


def _grace_expires(context) -> None:
    """What `runner._cancel_runs` does for a run still in flight STOP_GRACE_S later: CANCELED."""
    context.instance.report_run_canceled(context.instance.get_run_by_id(context.run_id), message="did not stop")


def _chunks(context):
    """The simulation's chunks (simulation/api.py): STOP is checked between them."""
    for i in range(3):
        interrupt.check()
        if i == 0 and not ATTEMPTS[1:]:
            _signal_arrives(context)  # while the first chunk is written
        yield i


@dg.op(retry_policy=RETRY)
@fails_at_once
def simulate(context: dg.OpExecutionContext) -> int:
    ATTEMPTS.append(1)
    if len(ATTEMPTS) > 1:
        _grace_expires(context)  # the retry started after Mochi's grace (its delay was long)
    return sum(_chunks(context))


@dg.op(retry_policy=RETRY)
@fails_at_once
def fails_while_stopping(context: dg.OpExecutionContext) -> None:
    ATTEMPTS.append(1)
    _signal_arrives(context)
    raise LakeError("S3 refused the upload (the kind of error a retry is for)")


@dg.op(retry_policy=RETRY)
@fails_at_once
def fails_then_retries(context: dg.OpExecutionContext) -> None:
    ATTEMPTS.append(1)
    raise LakeError("S3 refused the upload (the kind of error a retry is for)")


class _SignalWhileRetryWaits(logging.Handler):
    """Ctrl-C or SIGTERM arrives while the step waits for its retry (Dagster logs STEP_UP_FOR_RETRY,
    then waits the policy's delay, then starts the retry)."""

    def __init__(self, instance: dg.DagsterInstance):
        super().__init__()
        self.instance = instance

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event")
        if event is not None and event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY:
            run_id = record.dagster_meta["run_id"]
            self.instance.report_run_canceling(self.instance.get_run_by_id(run_id), message="SIGTERM")
            interrupt.STOP.set()


def _run(instance: dg.DagsterInstance, op_def: dg.OpDefinition, handler: logging.Handler | None = None):
    """Execute a one-op job on `instance` in a thread, as `mochi` executes its runs."""
    loggers = {}
    if handler is not None:
        @dg.logger
        def signal_logger(_init_context):
            log = logging.getLogger(f"mochi-test-{id(handler)}")
            log.setLevel(logging.DEBUG)
            log.addHandler(handler)
            return log

        loggers = {"signal": signal_logger}

    @dg.job(executor_def=dg.in_process_executor, logger_defs=loggers or None)
    def stopped():
        op_def()

    results = []
    config = {"loggers": {"signal": {}}} if handler is not None else None
    execute_in_thread(lambda: results.append(stopped.execute_in_process(instance=instance, raise_on_error=False,
                                                                        run_config=config)))
    run = instance.get_run_by_id(results[0].run_id)
    kinds = [r.event_log_entry.dagster_event.event_type for r in instance.get_records_for_run(run.run_id).records
             if r.event_log_entry.dagster_event is not None]
    return run, kinds


def test_an_interruption_in_a_step_with_a_retry_policy_cancels_the_run_without_a_retry():
    with mochi_instance_for_test() as instance:
        run, kinds = _run(instance, simulate)
        assert run.status == dg.DagsterRunStatus.CANCELED  # was FAILURE: "after 2 attempts"
        assert dg.DagsterEventType.RUN_FAILURE not in kinds
        assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
        assert ATTEMPTS == [1]


def test_an_error_raised_while_the_run_stops_is_not_retried():
    with mochi_instance_for_test() as instance:
        run, kinds = _run(instance, fails_while_stopping)
        assert ATTEMPTS == [1]
        assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
        assert run.status == dg.DagsterRunStatus.CANCELED


def test_a_retry_waiting_when_the_signal_comes_does_not_start():
    with mochi_instance_for_test() as instance:
        run, kinds = _run(instance, fails_then_retries, _SignalWhileRetryWaits(instance))
        assert kinds.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1  # before the signal: retried as ever
        assert ATTEMPTS == [1]  # the retry was stopped before the step's body
        assert run.status == dg.DagsterRunStatus.CANCELED


def test_without_a_stop_a_transient_error_is_still_retried():
    with mochi_instance_for_test() as instance:
        run, kinds = _run(instance, fails_then_retries)
        assert ATTEMPTS == [1, 1]
        assert run.status == dg.DagsterRunStatus.FAILURE


WORKER_SCRIPT = """
import os, signal
import dagster as dg
from mochi_assets import interrupt, run_worker
from mochi_assets.failures import fails_at_once

executing = run_worker.install_signal_handlers()
mine = signal.getsignal(signal.SIGTERM)
attempts = []

@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
@fails_at_once
def trades(context):
    attempts.append(1)
    run = context.instance.get_run_by_id(context.run_id)
    context.instance.report_run_canceling(run, message="SIGTERM")  # the parent, then its SIGTERM:
    os.kill(os.getpid(), signal.SIGTERM)
    assert interrupt.STOP.wait(60), "SIGTERM did not reach STOP"  # the worker's handler set it
    interrupt.check()

@dg.job(executor_def=dg.in_process_executor)
def scenario():
    trades()

results = []
with dg.instance_for_test() as instance:
    executing.set()
    run_worker.execute_in_thread(lambda: results.append(scenario.execute_in_process(instance=instance,
                                                                                     raise_on_error=False)))
    executing.clear()
    status = instance.get_run_by_id(results[0].run_id).status
print(status.value, len(attempts), signal.getsignal(signal.SIGTERM) is mine)
"""


def test_sigterm_reaches_stop_in_a_worker_and_its_handler_stays():
    """A worker executes its run in a thread: Dagster does not take its SIGTERM handler over (from
    the main thread it did, raising a bare interruption that was retried, and left SIGTERM ignored)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(WORKER_SCRIPT)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["CANCELED", "1", "True"], done.stderr[-3000:]
