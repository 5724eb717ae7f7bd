"""Imported files over the limits (zip and gzip bombs, too many rows) and mixed epoch units are
refused with one line, before the file is inflated or parsed."""

from __future__ import annotations

import gzip
import os
import resource
import subprocess
import sys
import time
import zipfile

import polars as pl
import pytest

from mochi_assets.market_data.imports import read_bars_file
from mochi_resources.errors import BarsError
from mochi_resources.settings import Limits

MB = 1024 * 1024
ROW = b"2024-01-02T09:30:00Z,1.0,1.0,1.0,1.0,0\n"


def gzip_bomb(path, inflated_mb: int):
    """A gzip of `inflated_mb` MB of CSV made of repeated members: small on disk, cheap to make."""
    member = gzip.compress(b"ts,open,high,low,close,volume\n" + ROW * (MB // len(ROW)), compresslevel=9)
    with open(path, "wb") as f:
        for _ in range(inflated_mb):
            f.write(member)
    return path


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = gzip_bomb(tmp_path / "bars.csv.gz", 1024)  # about 1 GiB once inflated
    assert bomb.stat().st_size < 8 * MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(BarsError) as err:
        read_bars_file(bomb, limits=Limits(import_bytes=16 * MB))
    assert str(err.value) == (
        "bars.csv.gz: the decompressed content exceeds the limit of 16,777,216 "
        "(set MOCHI_MAX_IMPORT_BYTES to raise it); refused before inflating further"
    )
    assert time.monotonic() - started < 10
    # at most the limit (plus one chunk) was ever held, never the gigabyte
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = tmp_path / "DAT_ASCII_EURUSD_M1_2024.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("DAT_ASCII_EURUSD_M1_2024.csv", "w", force_zip64=True) as member:
            line = b"20240102 093000;1.1;1.1;1.1;1.1;0\n"
            block = line * (MB // len(line))
            for _ in range(32):
                member.write(block)
    assert bomb.stat().st_size < 4 * MB
    with pytest.raises(BarsError, match=r"^DAT_ASCII_EURUSD_M1_2024.zip: the decompressed content exceeds the limit of 8,388,608 "):
        read_bars_file(bomb, limits=Limits(import_bytes=8 * MB))


def test_row_limits_apply_to_text_and_parquet(tmp_path):
    csv = tmp_path / "bars.csv"
    rows = [f"2024-01-02T09:{m:02d}:00Z,1,1,1,1,0" for m in range(30)]
    csv.write_text("ts,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    with pytest.raises(BarsError, match=r"^bars.csv: the file's 30 rows exceeds the limit of 20 \(set MOCHI_MAX_IMPORT_ROWS"):
        read_bars_file(csv, limits=Limits(import_rows=20))
    pq = tmp_path / "bars.parquet"
    read_bars_file(csv).write_parquet(pq)
    with pytest.raises(BarsError, match=r"^bars.parquet: the file's 30 rows exceeds the limit of 20 "):
        read_bars_file(pq, limits=Limits(import_rows=20))
    with pytest.raises(BarsError, match=r"^bars.parquet: the file's uncompressed size \(.* bytes\) exceeds the limit of 100 "):
        read_bars_file(pq, limits=Limits(import_bytes=100))
    assert read_bars_file(pq, limits=Limits(import_rows=30)).height == 30


def test_mixed_epoch_units_name_the_first_row_that_disagrees(tmp_path):
    start = 1_704_205_800  # 2024-01-02 14:30 UTC, in seconds
    epochs = [start + 60 * i for i in range(10)]
    epochs[6] *= 1000  # one millisecond epoch among seconds
    csv = tmp_path / "mixed.csv"
    csv.write_text("ts,open,high,low,close,volume\n" + "".join(f"{e},1,1,1,1,0\n" for e in epochs))
    with pytest.raises(BarsError) as err:
        read_bars_file(csv)
    assert str(err.value) == (
        f"mixed.csv: row 7: ts '{epochs[6]}' is an epoch in milliseconds while the file's timestamps are in seconds "
        "(mixed epoch units)"
    )
    pq = tmp_path / "mixed.parquet"
    pl.DataFrame({"ts": epochs, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0}).write_parquet(pq)
    with pytest.raises(BarsError, match=r"^mixed.parquet: row 7: ts 1704206160000 is an epoch in milliseconds"):
        read_bars_file(pq)


def test_mochi_import_bars_refuses_a_bomb_in_one_line(tmp_path):
    bomb = gzip_bomb(tmp_path / "bars.csv.gz", 64)
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    env.update({"MOCHI_HOME": str(tmp_path / "home"), "MOCHI_MAX_IMPORT_BYTES": str(4 * MB)})
    proc = subprocess.run(
        [sys.executable, "-m", "mochi_assets.cli", "import-bars", "MY:BARS", str(bomb), "--tick-size", "0.01",
         "--timezone", "UTC"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "mochi: error: bars.csv.gz: the decompressed content exceeds the limit of 4,194,304 "
        "(set MOCHI_MAX_IMPORT_BYTES to raise it); refused before inflating further"
    ]
    assert not list((tmp_path / "home").glob("lake/*raw/imported_bars/**/*.parquet"))
