"""`mochi import-bars`: good files land and feed later backtests; broken files write nothing."""

import datetime as dt
import os
import subprocess
import sys

import polars as pl
import pytest

from mochi_assets.market_data.synthetic import synthetic_minute_bars

pytestmark = pytest.mark.e2e
MOCHI = [sys.executable, "-m", "mochi_assets.cli"]


def run(args, home):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    env["MOCHI_HOME"] = str(home)
    return subprocess.run([*MOCHI, *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def bars_csv(tmp_path):
    """Real-looking user bars: synthetic minutes written as a CSV with ISO timestamps."""
    bars = synthetic_minute_bars("SYN:USERDATA", dt.date(2024, 3, 4), dt.date(2024, 4, 19))
    path = tmp_path / "ACME.csv"
    bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    return path, bars


def test_import_then_backtest_uses_the_imported_bars(tmp_path, bars_csv):
    path, bars = bars_csv
    home = tmp_path / "home"
    proc = run(["import-bars", "ACME", str(path), "--tick-size", "0.01", "--timezone", "America/New_York"], home)
    assert proc.returncode == 0, proc.stderr
    assert f"Imported {bars.height} bars of ACME" in proc.stdout
    req = tmp_path / "acme.yaml"
    req.write_text(
        "ticker: ACME\nstart: 2024-03-04\nend: 2024-04-19\natr: {short: 3, long: 5}\n"
        "scenarios:\n  breakout-long: {direction: long, offset_ticks: [0], stop_atr: [1.0], limit_atr: [1.0]}\n"
    )
    proc = run(["backtest", "--request", str(req), "--no-progress"], home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "synthetic data" not in proc.stdout
    lake = home / "lake"
    raw = pl.read_parquet(next(lake.glob("*raw/bars_minute/ticker=ACME/data.parquet")))
    assert raw.equals(bars.filter(pl.col("ts").is_in(raw["ts"].implode())))
    assert raw.height == bars.height
    meta = pl.read_parquet(next(lake.glob("*ticker-meta/ticker_meta/ticker=ACME/data.parquet")))
    assert meta.row(0, named=True)["source"] == "import" and meta["tick_size"].item() == 0.01


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda df: df.drop("close"), "close"),
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("not a time")).otherwise(pl.col("ts")).alias("ts")), "not a timestamp"),
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.col("low") - 5).otherwise(pl.col("high")).alias("high")), "below low"),
        (lambda df: pl.concat([df.head(10), df.slice(5, 1), df.slice(10)]), "duplicate"),
    ],
    ids=["missing-column", "unparsable-ts", "high-below-low", "duplicate-ts"],
)
def test_broken_files_get_one_clear_error_and_write_nothing(tmp_path, bars_csv, mutate, words):
    path, _ = bars_csv
    broken = tmp_path / "broken.csv"
    mutate(pl.read_csv(path)).write_csv(broken)
    home = tmp_path / "home"
    proc = run(["import-bars", "ACME", str(broken), "--tick-size", "0.01", "--timezone", "America/New_York"], home)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mochi: error: broken.csv") and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not home.exists()


def test_bad_options_are_named(tmp_path, bars_csv):
    path, _ = bars_csv
    proc = run(["import-bars", "ACME", str(path), "--tick-size", "0", "--timezone", "America/New_York"], tmp_path / "h")
    assert proc.returncode == 2 and "--tick-size" in proc.stderr
    proc = run(["import-bars", "ACME", str(path), "--tick-size", "0.01", "--timezone", "Nowhere"], tmp_path / "h")
    assert proc.returncode == 2 and "--timezone" in proc.stderr
    proc = run(["import-bars", "../x", str(path), "--tick-size", "0.01", "--timezone", "UTC"], tmp_path / "h")
    assert proc.returncode == 2 and "ticker" in proc.stderr
