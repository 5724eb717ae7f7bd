"""glibc's mmap threshold, fixed when mochi_assets is imported (mochi_assets/memory.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from mochi_assets import memory
from mochi_resources.errors import MochiError

ROOT = Path(__file__).resolve().parents[2]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_the_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(memory.THRESHOLD_ENV, raising=False)
    assert memory.threshold_from_env() == memory.DEFAULT_THRESHOLD == 1048576
    monkeypatch.setenv(memory.THRESHOLD_ENV, " 65536 ")
    assert memory.threshold_from_env() == 65536
    monkeypatch.setenv(memory.THRESHOLD_ENV, "0")
    assert memory.threshold_from_env() == 0
    assert memory.fix_mmap_threshold() is None  # 0: glibc's own behaviour
    for bad, says in (("64k", "not a whole number of bytes"), ("-1", "must be between 0"),
                      (str(64 * 2**20), "must be between 0")):
        monkeypatch.setenv(memory.THRESHOLD_ENV, bad)
        with pytest.raises(MochiError, match=f"{memory.THRESHOLD_ENV}: .*{says}"):
            memory.threshold_from_env()


@pytest.mark.skipif(not GLIBC, reason="mallopt's mmap threshold is glibc's")
def test_glibc_takes_the_threshold_unless_its_own_variable_is_set(monkeypatch):
    monkeypatch.delenv(memory.THRESHOLD_ENV, raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert memory.fix_mmap_threshold() == 1048576
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert memory.fix_mmap_threshold() is None


def _rss_kb() -> int:
    return int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmRSS")).split()[1])


@pytest.mark.skipif(not GLIBC, reason="mallopt's mmap threshold is glibc's")
def test_a_freed_large_block_goes_back_to_the_system_with_the_threshold_fixed():
    """What the threshold is for: after glibc's threshold rose past 8 MB (a mapped 16 MB block freed),
    8 MB blocks come from the heap and stay with the process when freed (below a block still in
    use, the heap cannot shrink); fixed, they are mapped and go back."""
    script = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.malloc.restype = ctypes.c_void_p; libc.free.argtypes = [ctypes.c_void_p]\n"
        "libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]\n"
        "if sys.argv[1] == 'fixed': libc.mallopt(-3, 65536)\n"
        "libc.free(libc.malloc(16 << 20))\n"  # raises glibc's dynamic threshold to 16 MB
        "blocks = [libc.malloc(8 << 20) for _ in range(8)]\n"
        "fence = libc.malloc(1 << 20)\n"  # kept: the heap cannot shrink below it
        "for b in blocks: ctypes.memset(b, 1, 8 << 20)\n"
        "before = int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
        "for b in blocks: libc.free(b)\n"
        "after = int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
        "print(before - after)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    freed = {mode: int(subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                      check=True, env=env).stdout) for mode in ("dynamic", "fixed")}
    assert freed["fixed"] > 60 * 1024  # the 64 MB went back to the system
    assert freed["dynamic"] < 16 * 1024  # from the heap: kept by the process


def test_mochi_refuses_a_bad_threshold_before_any_work(tmp_path):
    env = {**os.environ, "MOCHI_HOME": str(tmp_path / "home"), memory.THRESHOLD_ENV: "lots",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mochi_assets.cli", "backtest", "SYN:GOLD", "--start", "2024-01-01",
                           "--end", "2024-01-31", "--no-progress"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"mochi: error: {memory.THRESHOLD_ENV}: 'lots' is not a whole number of bytes"
    assert not (tmp_path / "home").exists()


def test_the_long_lived_imports_are_out_of_the_collectors_scans():
    """memory.freeze_long_lived: the definitions' and the graphs' imports are frozen (gc.freeze),
    so full collections during a backtest scan only what its steps allocate."""
    import gc

    import mochi_assets.definitions  # noqa: F401
    import mochi_assets.reporting.graphs  # noqa: F401

    frozen = gc.get_freeze_count()
    assert frozen > 100_000  # the code location's modules alone hold a few hundred thousand objects
    assert len(gc.get_objects()) < frozen  # what is still scanned is a fraction of it
