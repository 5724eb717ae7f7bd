"""Helpers shared by the crash tests of both backends: run the writer process and kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl

from mochi_resources.lake import Lake

WRITER = Path(__file__).with_name("lake_writer.py")
REPO = Path(__file__).resolve().parents[2]


def run_writer(version: int, stop_at: str, env: dict) -> None:
    """Run the writer; with a stop point, SIGKILL it once it reports being mid-write."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(WRITER), str(version), stop_at], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env, text=True)
    try:
        if stop_at == "none":
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert "DONE" in out
            return
        line = proc.stdout.readline()
        assert line.strip() == "MIDWAY", proc.stderr.read() if proc.poll() is not None else line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            stream.close()


def write_partition(lake: Lake, version: int) -> None:
    """What the writer process writes, in this process (for the versions nobody kills)."""
    from lake_writer import partition

    traders, trades = partition(version)
    lake.replace_folders({
        lake.folder_key("trades", "traders", "SYN_KILL", "breakout-long"): {"data.parquet": traders},
        lake.folder_key("trades", "trades", "SYN_KILL", "breakout-long"): {"data.parquet": trades},
    })


def partition_versions(lake: Lake) -> tuple[set[int], set[int], int]:
    """(versions in traders, versions in trades, trades rows) as Mochi reads the partition."""
    traders = lake.read_table(lake.key("trades", "traders", "SYN_KILL", "breakout-long"))
    trades = lake.read_table(lake.key("trades", "trades", "SYN_KILL", "breakout-long"))
    return set(traders["version"].to_list()), set(trades["version"].unique().to_list()), trades.height


def final_versions(read) -> tuple[set[int], set[int]]:
    """Versions in the final (Hive-visible) objects, read with `read(key) -> bytes`."""
    import io

    out = []
    for table in ("traders", "trades"):
        df = pl.read_parquet(io.BytesIO(read(table)), columns=["version"])
        out.append(set(df["version"].unique().to_list()))
    return out[0], out[1]
