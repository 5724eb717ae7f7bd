"""Stopping `mochi backtest` on Ctrl-C or SIGTERM.

The CLI installs `install()`: the first SIGINT or SIGTERM only records the signal (`SIGNALLED`);
the runner (runner.py), which waits for each run in the main thread while Dagster executes it
in another, then marks the run CANCELING and sets `STOP`. Long work checks `STOP` between units
(the simulation between trader chunks, `check()`) and raises Dagster's own interruption, so
Dagster ends the run as CANCELED. A second signal ends the process at once.
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


def check() -> None:
    """Raise Dagster's interruption when the run was asked to stop (between units of long work)."""
    if STOP.is_set():
        raise dg.DagsterExecutionInterruptedError("interrupted (Ctrl-C or SIGTERM): the run was canceled")
