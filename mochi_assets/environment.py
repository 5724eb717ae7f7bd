"""Process-wide environment variables that the `mochi` command checks before it imports anything.

A bad value of these failed far from where it was set: NUMBA_NUM_THREADS=0 raised a traceback
from inside numba's import, and MOCHI_EXECUTOR=bogus failed the first run with Dagster's generic
"Failure during initialization for job ...". `environment_problem()` names the variable instead;
the CLI calls it first (cli.py). Runs launched elsewhere (the web UI, a schedule) still meet
MOCHI_EXECUTOR in `execution.mochi_executor`, whose error names it in the run's events.
"""

from __future__ import annotations

import os

EXECUTORS = ("in_process", "multiprocess", "k8s")


def unknown_executor(kind: str) -> str:
    """The message for an executor kind that is not one of EXECUTORS."""
    return f"MOCHI_EXECUTOR: {kind!r} is not one of {', '.join(EXECUTORS)}"


def environment_problem(environ: dict[str, str] | None = None) -> str | None:
    """One line naming the first bad variable, or None."""
    env = os.environ if environ is None else environ
    kind = env.get("MOCHI_EXECUTOR")
    if kind and kind not in EXECUTORS:
        return unknown_executor(kind)
    threads = env.get("NUMBA_NUM_THREADS")
    if threads is not None and threads.strip():
        try:
            count = int(threads)
        except ValueError:
            return f"NUMBA_NUM_THREADS: {threads!r} is not a whole number (the simulation's threads, e.g. 2)"
        if count < 1:
            return f"NUMBA_NUM_THREADS: {count} must be at least 1 (the simulation's threads, e.g. 2)"
    return None
