"""Compiled kernels that release the GIL (numba ``nogil=True``), run as tasks on a few Python threads.

Used where a numba ``prange`` kernel would do the same work but costs seconds of compiling on a
fresh install (the PBO's splits, the packing of a chunk's trades): the kernel is a plain compiled
loop over its part, and the parts are handed to Python threads here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor


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
