"""Processes the end-to-end tests look for."""

from pathlib import Path


def worker_pids(home: Path) -> list[int]:
    """Pids of `run_worker` processes started for this MOCHI_HOME (mochi_assets/run_worker.py)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"mochi_assets.run_worker" in (proc / "cmdline").read_bytes() and \
                    f"MOCHI_HOME={home}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
