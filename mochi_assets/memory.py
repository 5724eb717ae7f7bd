"""Large freed blocks go back to the system: glibc malloc's mmap threshold, fixed.

glibc serves an allocation from its heap below the mmap threshold and maps it on its own above;
a mapped block returns to the system when freed, freed heap memory mostly stays with the
process. The threshold starts at 128 KiB and, whenever a mapped block is freed, rises to that
block's size (up to 32 MiB): after the first steps of a backtest freed arrays of some MB, arrays of
that size came from the heap and the process kept their memory between steps. Fixing the
threshold (mallopt M_MMAP_THRESHOLD, which also stops it from rising) keeps large arrays mapped.
Measured with `benchmarks/bench_pipeline.py` (README, "Benchmarks"): `single` kept about 770 MB
between steps and peaked at 1,460 MB; with the threshold fixed at 64 KiB, 590 MB and 1,281 MB in
35.5 s against 37.7 s. `four` peaked at 1,941-2,102 MB over five runs; fixed at 64 KiB, 1,751 MB
for 289 s of CPU (against 270-278 s); at 1 MiB (the default: fewer, larger mappings), 1,746 MB for
279 s.

`MOCHI_MALLOC_MMAP_THRESHOLD` (bytes) sets the threshold, `0` leaves glibc's own behaviour; glibc's
`MALLOC_MMAP_THRESHOLD_`, when set, wins. Elsewhere than glibc (musl, macOS) nothing is changed.
Applied once when `mochi_assets` is imported, so in every process that runs steps: `mochi`, its
worker processes, Dagster's code server and run processes, the Kubernetes step pods.

Also here, for the same processes: `freeze_long_lived`, which takes the objects of the big imports
out of the garbage collector's full scans (`gc.freeze`; called at the end of definitions.py and
reporting/graphs.py, and once the Dagster instance's storage is loaded).
"""

from __future__ import annotations

import ctypes
import os

from mochi_resources.errors import MochiError

THRESHOLD_ENV = "MOCHI_MALLOC_MMAP_THRESHOLD"
DEFAULT_THRESHOLD = 2**20
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_MAX_THRESHOLD = 32 * 2**20  # glibc's HEAP_MAX_SIZE / 2 on 64-bit: larger values are refused


def threshold_from_env() -> int:
    text = os.environ.get(THRESHOLD_ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = int(text)
    except ValueError:
        raise MochiError(f"{THRESHOLD_ENV}: {text!r} is not a whole number of bytes") from None
    if not 0 <= value <= _MAX_THRESHOLD:
        raise MochiError(f"{THRESHOLD_ENV}: {value} must be between 0 (glibc's default) and {_MAX_THRESHOLD}")
    return value


def fix_mmap_threshold() -> int | None:
    """Fix glibc's mmap threshold (see the module docstring); the value set, or None if nothing was."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return None
    value = threshold_from_env()
    if value == 0:
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return value if mallopt(_M_MMAP_THRESHOLD, value) == 1 else None


_UNFREEZE_AT_EXIT: list[bool] = []  # the atexit handler is registered once


def freeze_long_lived() -> None:
    """Move every object alive now (the code location's modules, classes, functions: several
    hundred thousand) out of the cyclic garbage collector's reach (`gc.freeze`), so that its full
    collections scan only what steps allocate. A backtest's process runs several full collections;
    with the imports in the heap each scanned about 450,000 objects: in `single` 8 of them took
    1.5 s of the process's (GIL-holding) time. Frozen objects are never freed, which is what they
    would be anyway: they live as long as the process. At exit they are unfrozen again, so that
    the interpreter's teardown frees them as before (frozen, DuckDB's bindings report them as
    leaked). Called once the definitions are loaded, again after later large imports."""
    import atexit
    import gc

    if not _UNFREEZE_AT_EXIT:
        atexit.register(gc.unfreeze)
        _UNFREEZE_AT_EXIT.append(True)
    gc.freeze()
