"""Which errors a retry can fix, declared once for every asset.

An asset's retry policy (automation/retries.py) re-runs a failed step after a pause. That helps
with what may pass (the S3 lake throttling or unreachable, the data provider answering 5xx or
timing out after its own retries): `LakeError`, `ProviderUnavailable` and any exception Mochi does
not know. Everything else Mochi raises says something no retry changes (a bad request, a refused
API key, missing bars, a range shorter than the ATR warm-up, a trades table that does not match
its traders): `fails_at_once` turns it into `dg.Failure(allow_retries=False)`, so the step fails
on its first attempt and its message, not "Exceeded max_retries", is what the user sees.

A canceled run (Ctrl-C or SIGTERM, interrupt.py) is never retried either: no attempt of an asset,
first or retry, starts once `interrupt.STOP` is set; an interruption raised inside an asset, and
any error raised while the run is being stopped, leave it as `interrupt.RunInterrupted`, which
Dagster does not retry (a plain `DagsterExecutionInterruptedError` it retries under the asset's
retry policy), so Dagster ends the run CANCELED.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

from mochi_assets import interrupt
from mochi_resources.errors import LakeError, MochiError, ProviderUnavailable

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (LakeError, ProviderUnavailable)


@contextmanager
def permanent_errors_fail_at_once() -> Iterator[None]:
    interrupt.check()  # a run being stopped starts no attempt (nor retry) of a step
    try:
        yield
    except interrupt.RunInterrupted:
        raise
    except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt) as exc:
        raise interrupt.RunInterrupted(str(exc) or interrupt.MESSAGE) from exc
    except Exception as exc:
        if interrupt.STOP.is_set():  # whatever failed while the run is being stopped: the stop wins
            raise interrupt.RunInterrupted(interrupt.MESSAGE) from exc
        if isinstance(exc, TRANSIENT_ERRORS) or not isinstance(exc, MochiError):
            raise
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def fails_at_once(fn: Callable) -> Callable:
    """Decorate an asset function (below `@dg.asset`): permanent errors skip the retries."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            with permanent_errors_fail_at_once():
                yield from fn(*args, **kwargs)

        return generator

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with permanent_errors_fail_at_once():
            return fn(*args, **kwargs)

    return call
