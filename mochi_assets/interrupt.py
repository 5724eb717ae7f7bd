"""Stopping `mochi backtest` on Ctrl-C or SIGTERM.

The CLI installs `install()`: the first SIGINT or SIGTERM only records the signal (`SIGNALLED`);
the runner (runner.py), which waits for each run in the main thread while Dagster executes it
in another, then marks the run CANCELING and sets `STOP`. Long work checks `STOP` between units
(the simulation between trader chunks, `check()`), and every asset checks it before it starts
(failures.py), raising `RunInterrupted`, so Dagster ends the run as CANCELED. A second signal ends
the process at once.

Why `RunInterrupted` and not Dagster's plain interruption: Dagster's error boundary around an op's
compute and output handling (`op_execution_error_boundary`, dagster/_core/execution/plan/utils.py)
turns a `DagsterExecutionInterruptedError` into `RetryRequested` when the op has a retry policy
("respect retry policy when interrupts occur"). The step is then up for retry instead of
interrupted, the run stays in flight for the retry's delay (SIMULATION_RETRY: 0 to 60 s), and the
retry, interrupted again, fails the step "after 2 attempts": the run ended FAILURE instead of
CANCELED. That boundary re-raises a `DagsterError` untouched, and the step's handler
(`dagster_event_sequence_for_step`, plan/execute_plan.py) catches `DagsterExecutionInterruptedError`
before its catch-all: an error that is both is an interruption no retry policy retries, and
Dagster ends the run CANCELED (the run is CANCELING) as for an op without a retry policy.
"""

from __future__ import annotations

import os
import signal
import threading

import dagster as dg

SIGNALLED = threading.Event()  # a stop was asked (set by the signal handler)
STOP = threading.Event()  # the running run was marked canceling: long work must stop now
_received: list[int] = []


def _handle(signum: int, _frame) -> None:
    if SIGNALLED.is_set():
        os._exit(128 + signum)  # the second signal: at once
    _received.append(signum)
    SIGNALLED.set()


def install() -> None:
    """Route SIGINT and SIGTERM to `_handle` (call from the main thread)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handle)


def signal_number() -> int:
    """The first signal received (SIGINT when the stop was asked otherwise)."""
    return _received[0] if _received else int(signal.SIGINT)


class RunInterrupted(dg.DagsterExecutionInterruptedError, dg.DagsterError):
    """Dagster's interruption, which no retry policy retries (see the module's docstring)."""


MESSAGE = "interrupted (Ctrl-C or SIGTERM): the run was canceled"


def check() -> None:
    """Raise `RunInterrupted` when the run was asked to stop (between units of long work)."""
    if STOP.is_set():
        raise RunInterrupted(MESSAGE)
