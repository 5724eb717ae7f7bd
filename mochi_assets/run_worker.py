"""A worker process of `mochi backtest`: executes, one after another, runs its parent created.

`mochi backtest` executes up to `MOCHI_PARALLEL_RUNS` runs of a ticker's scenarios at once
(runner.py): one in its own process, each other one in such a worker, so that two scenarios use the
machine's two cores; the simulation
step still runs one at a time across all of them (its Dagster pool). A worker is started with
DAGSTER_HOME set; it imports the definitions and says `ready`, then reads run ids from stdin, one
per line, executes each run in process on the instance (as launch.execute does for the parent),
and writes `done <run_id>` when the run ended, whatever its status (the parent reads the status
from the instance). It ends at end of input, or at once when its parent is gone (a `mochi` that was
killed must not leave runs executing that nothing watches). SIGINT is ignored: the parent decides.
SIGTERM asks the run in progress to stop between units of work (interrupt.STOP), as Ctrl-C does in
a single-process backtest, and the worker ends after it; an idle worker ends at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PARENT_POLL_S = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(70)
        time.sleep(PARENT_POLL_S)


def main() -> int:
    from mochi_assets import interrupt

    parent = os.getppid()
    executing = threading.Event()

    def on_sigterm(*_) -> None:
        if not executing.is_set():
            os._exit(128 + signal.SIGTERM)  # idle: nothing to stop cleanly
        interrupt.STOP.set()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_sigterm)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()

    import dagster as dg

    from mochi_assets import launch
    from mochi_assets.definitions import defs  # noqa: F401  (imports paid before the first run)

    instance = dg.DagsterInstance.get()
    print("ready", flush=True)
    for line in sys.stdin:
        run_id = line.strip()
        if not run_id:
            continue
        run = instance.get_run_by_id(run_id)
        if run is not None and not interrupt.STOP.is_set():
            executing.set()
            try:
                launch.execute(instance, run)
            except Exception as exc:  # the parent reports the run's status; say why it crashed
                print(f"error {run_id} {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
            finally:
                executing.clear()
        print(f"done {run_id}", flush=True)
        if interrupt.STOP.is_set():
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
