"""Compiled kernels that release the GIL (numba ``nogil=True``), run as tasks on a few Python threads.

Used where a numba ``prange`` kernel would do the same work but costs seconds of compiling on a
fresh install (the PBO's splits, the packing of a chunk's trades, the synthetic generator's
dates): the kernel is a plain compiled loop over its part, and the parts are handed to Python
threads here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np


def run_tasks(tasks: Sequence[Callable[[], object]], threads: int, name: str) -> None:
    """Run every task, at most `threads` at once (in this thread when one is enough); a task's
    exception is raised here. `name` prefixes the threads' names."""
    workers = min(threads, len(tasks))
    if workers <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


def run_ranges(n: int, task: Callable[[int, int], object], name: str) -> None:
    """Cut 0 .. n - 1 into as many contiguous ranges as numba's thread count (NUMBA_NUM_THREADS, the
    pod's CPU limit; at most n) and run ``task(start, stop)`` for each, the ranges side by side."""
    threads = max(1, min(int(numba.config.NUMBA_NUM_THREADS), n))
    bounds = np.linspace(0, n, threads + 1).round().astype(np.int64)
    run_tasks([functools.partial(task, int(bounds[k]), int(bounds[k + 1])) for k in range(threads)], threads, name)
