"""A worker process of `mochi backtest`: executes, one after another, runs its parent created.

With MOCHI_PARALLEL_RUNS=N (N > 1), or by default for a small backtest (`auto_parallel_runs`),
`mochi backtest` executes up to N runs of a ticker's scenarios at once (runner.py): one in its own process, each other one in such a worker; the simulation
step still runs one at a time across all of them (its Dagster pool). A worker is started with
DAGSTER_HOME set; it imports the definitions and says `ready`, then reads run ids from stdin, one
per line, executes each run in process on the instance (as launch.execute does for the parent),
and writes `done <run_id>` when the run ended, whatever its status (the parent reads the status
from the instance). It ends at end of input, or at once when its parent is gone (a `mochi` that was
killed must not leave runs executing that nothing watches). SIGINT is ignored: the parent decides.
SIGTERM asks the run in progress to stop between units of work (interrupt.STOP), as Ctrl-C does in
a single-process backtest, and the worker ends after it; an idle worker ends at once.

The run executes in a thread of the worker, never in its main thread: Dagster's execution replaces
the process's SIGINT and SIGTERM handlers while it runs in the main thread (`capture_interrupts`,
dagster/_core/execution/api.py) with its own, which raise a bare DagsterExecutionInterruptedError
at whatever line a step is at (retried under the step's retry policy) instead of setting STOP, and
on leaving put back SIGINT's handler for both (ignored here): after its first run such a worker
ignored SIGTERM altogether. From another thread Dagster leaves the handlers alone.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from mochi_resources.errors import MochiError

PARENT_POLL_S = 0.5
JOIN_POLL_S = 0.2  # the main thread waits for the run's thread in steps, handling signals between them
_PRESTARTED: list[subprocess.Popen] = []


# With MOCHI_PARALLEL_RUNS unset, two scenario runs execute at once when the largest scenario's
# traders x calendar days of the request is at most this (about as many trades at most): such
# runs are short and spend their time in one-threaded Python (Dagster, plotnine), so a second one
# fills the second core for a few hundred MB. Larger backtests run one scenario at a time: their
# steps already use every core (polars, numba, DuckDB) and each run holds its trades in memory.
AUTO_MAX_TRADER_DAYS = 2_000_000
AUTO_MIN_MEMORY_BYTES = 4 * 2**30  # and only with at least this much memory (the pod's limit, or the machine's)


def parallel_runs(request=None) -> int:
    """How many scenario runs `mochi backtest` executes at once: MOCHI_PARALLEL_RUNS when set;
    otherwise, for `request`, `auto_parallel_runs` (1 without a request).

    One runs in the `mochi` process, each other one in a worker process of its own. Measured on
    the README backtest (README, "Benchmarks"): two at once took 28.4 s and 1,289 MB, one at a time
    44.6 s and 712 MB; on 10 years x 4 x 5,000 traders, 216 s and 5.3 GB
    against 250 s and 3.0 GB, which is why large backtests run one at a time by default."""
    text = os.environ.get("MOCHI_PARALLEL_RUNS", "").strip()
    if not text:
        return 1 if request is None else auto_parallel_runs(request)
    try:
        value = int(text)
    except ValueError:
        raise MochiError(f"MOCHI_PARALLEL_RUNS: {text!r} is not a whole number") from None
    if value < 1:
        raise MochiError(f"MOCHI_PARALLEL_RUNS: {value} must be at least 1")
    return value


def auto_parallel_runs(request, cpus: int | None = None, memory_bytes: int | None = None) -> int:
    """2 for a small backtest of two scenarios or more (largest scenario's traders x days of the
    request at most AUTO_MAX_TRADER_DAYS) with 2 CPUs or more and AUTO_MIN_MEMORY_BYTES of memory;
    1 otherwise. CPUs and memory default to this process's limits (its pod's, in a cluster)."""
    from mochi_assets.request import trader_bounds
    from mochi_resources.sql_engine import cpu_limit, memory_limit_bytes

    bounds = trader_bounds(request)
    if len(bounds) < 2:
        return 1
    cpus = cpu_limit() if cpus is None else cpus
    if memory_bytes is None:
        memory_bytes = memory_limit_bytes() or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    days = (request.end - request.start).days + 1
    small = max(bounds.values()) * days <= AUTO_MAX_TRADER_DAYS
    return 2 if small and cpus >= 2 and memory_bytes >= AUTO_MIN_MEMORY_BYTES else 1


def wants_workers(request, parallel: int) -> bool:
    """Whether a backtest of `request` executes its scenario runs in parallel (two scenarios or more)."""
    return parallel > 1 and (request.scenarios is None or len(request.scenarios) > 1)


def error_line(run_id: str, exc: BaseException) -> str:
    """The one line saying that executing a run raised (the parent reports it as the run's failure)."""
    return f"error {run_id} {type(exc).__name__}: {exc}".replace("\n", " ")


def spawn() -> subprocess.Popen:
    """A worker process (DAGSTER_HOME must be set)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mochi_assets.run_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, bufsize=1, env=os.environ.copy(),
    )


def prestart(count: int) -> None:
    """Start `count` workers now, before this process imports the definitions, so that both import
    at once on two cores; `take_prestarted` hands them to the runner. DAGSTER_HOME must be set; the
    workers wait until its dagster.yaml exists."""
    _PRESTARTED.extend(spawn() for _ in range(count))


def take_prestarted(count: int) -> list[subprocess.Popen]:
    """Up to `count` prestarted workers (the rest are ended)."""
    taken, rest = _PRESTARTED[:count], _PRESTARTED[count:]
    _PRESTARTED.clear()
    for proc in rest:
        proc.terminate()
    return taken


def discard_prestarted() -> None:
    """End the prestarted workers nobody took (the backtest failed before its scenario runs)."""
    for proc in take_prestarted(0):
        proc.wait()


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(70)
        time.sleep(PARENT_POLL_S)


def execute_in_thread(execute: Callable[[], object]) -> None:
    """Call `execute()` in a thread of its own and wait for it here, in the main thread, which keeps
    handling signals meanwhile; re-raise what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            execute()
        except BaseException as exc:  # re-raised in the main thread
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="mochi-run")
    thread.start()
    while thread.is_alive():
        thread.join(JOIN_POLL_S)
    if raised:
        raise raised[0]


def install_signal_handlers() -> threading.Event:
    """A worker's handlers (call from the main thread): SIGINT is ignored; SIGTERM sets
    interrupt.STOP while the returned event (a run executes) is set, else ends the worker at once."""
    from mochi_assets import interrupt

    executing = threading.Event()

    def on_sigterm(*_) -> None:
        if not executing.is_set():
            os._exit(128 + signal.SIGTERM)  # idle: nothing to stop cleanly
        interrupt.STOP.set()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_sigterm)
    return executing


def warm_up() -> None:
    """Pay, while this worker waits for its first run (its parent runs the request and the
    ticker's bars meanwhile, on the other core), what a fresh process's first scenario run pays
    beyond the definitions' imports: the graph modules (plotnine, matplotlib, about 1 s) and
    numba's CPU target, set up at the first call of a compiled kernel (about 0.6 s: its
    registries import scipy.linalg). The kernel runs on two bars; nothing is written. A failure
    is ignored: the run that needs the module imports it again and fails with the real error."""
    try:
        import numpy as np

        from mochi_assets.reporting import graphs  # noqa: F401
        from mochi_assets.simulation.nb import session_bounds_nb
        from mochi_assets.validation import graph  # noqa: F401

        session_bounds_nb(np.zeros(2, dtype=np.int32))
    except Exception:  # noqa: BLE001
        pass


def main() -> int:
    from mochi_assets import interrupt

    parent = os.getppid()
    executing = install_signal_handlers()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()

    import dagster as dg
    from filelock import FileLock

    from mochi_assets import launch
    from mochi_assets.definitions import defs  # noqa: F401  (imports paid before the first run)
    from mochi_assets.home import INSTANCE_LOCK, LOCK_TIMEOUT_S

    # the parent prepares the home (home.ensure_dagster_home) only once the request passed its
    # checks, then creates the instance's storage under this lock (runner.get_instance)
    home = os.environ["DAGSTER_HOME"]
    while not os.path.exists(os.path.join(home, "dagster.yaml")):
        time.sleep(0.05)
    with FileLock(os.path.join(home, INSTANCE_LOCK), timeout=LOCK_TIMEOUT_S):
        instance = dg.DagsterInstance.get()
    print("ready", flush=True)
    # in a thread: a run handed over meanwhile starts at once (a run that waited for the warm-up
    # started seconds after its creation, where a cancel request could cross its start)
    threading.Thread(target=warm_up, daemon=True, name="mochi-warm-up").start()
    for line in sys.stdin:
        run_id = line.strip()
        if not run_id:
            continue
        run = instance.get_run_by_id(run_id)
        if run is not None and not interrupt.STOP.is_set():
            executing.set()
            try:
                execute_in_thread(functools.partial(launch.execute, instance, run))
            except Exception as exc:  # the parent reports the run's status; say why it crashed
                print(error_line(run_id, exc), flush=True)
            finally:
                executing.clear()
        print(f"done {run_id}", flush=True)
        if interrupt.STOP.is_set():
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
