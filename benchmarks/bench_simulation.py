"""Benchmark of the simulation engine on years of synthetic 24x5 minute bars.

    python benchmarks/bench_simulation.py [--traders 2000 10000] [--years 10]

Each grid size runs in a fresh subprocess so that the peak RSS printed is that grid's own. The
bars are a seeded random walk with an intraday volatility pattern; the ATR is computed here from
daily bars of the America/New York session dates (Wilder 14 and 50, blended half and half, known
from the previous session only), so the benchmark needs nothing but NumPy and polars.

Per grid it prints the end-to-end run (simulate_to_parquet: engine and Parquet writer), where its
seconds went (setup; kernels in a worker thread overlapping the writer in the main thread), and
the same grid once more with nothing written (the engine alone). Other work on the machine slows
the seconds down (the load average is printed beside them); the CPU seconds (all threads of the
process) much less so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mochi_assets.market_data.sessions import parse_session  # noqa: E402
from mochi_assets.simulation.api import _run, simulate_to_parquet  # noqa: E402

TIMEZONE = "America/New_York"
TICK = 0.1
SEED = 20240101


def synthetic_bars(years: int, seed: int = SEED) -> pl.DataFrame:
    """24x5 minute bars (Sunday 22:00 to Friday 22:00 UTC) with session dates and a daily ATR."""
    rng = np.random.default_rng(seed)
    week_minutes = np.arange(5 * 24 * 60, dtype=np.int64)
    first_sunday = dt.datetime(2015, 1, 4, 22, 0, tzinfo=dt.timezone.utc)
    weeks = years * 52
    minute = 60_000_000
    week_us = 7 * 24 * 60 * minute
    start_us = int(first_sunday.timestamp()) * 1_000_000
    ts = (start_us + np.arange(weeks, dtype=np.int64)[:, None] * week_us + week_minutes[None, :] * minute).ravel()
    n = ts.shape[0]
    # Volatility higher in the New York morning and the London open, lower overnight.
    hour = (ts // (60 * minute)) % 24
    pattern = 0.6 + 0.8 * np.exp(-0.5 * ((hour - 14.5) / 2.0) ** 2) + 0.4 * np.exp(-0.5 * ((hour - 8) / 1.5) ** 2)
    sigma = 0.35 * pattern
    steps = rng.standard_normal(n) * sigma
    # Occasional jumps between bars make gaps through levels.
    steps += np.where(rng.random(n) < 0.001, rng.standard_normal(n) * 5, 0.0)
    close = 2000.0 + np.cumsum(steps)
    open_ = np.empty(n)
    open_[0] = 2000.0
    open_[1:] = close[:-1] + np.where(rng.random(n - 1) < 0.01, rng.standard_normal(n - 1) * 0.3, 0.0)
    wick = np.abs(rng.standard_normal((2, n))) * sigma * 0.6
    high = np.round((np.maximum(open_, close) + wick[0]) / TICK) * TICK
    low = np.round((np.minimum(open_, close) - wick[1]) / TICK) * TICK
    open_ = np.round(open_ / TICK) * TICK
    close = np.round(close / TICK) * TICK
    bars = pl.DataFrame(
        {
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "open": open_,
            "high": np.maximum(high, np.maximum(open_, close)),
            "low": np.minimum(low, np.minimum(open_, close)),
            "close": close,
            "volume": np.ones(n),
        }
    )
    bars = bars.with_columns(session_date=pl.col("ts").dt.convert_time_zone(TIMEZONE).dt.date())
    daily = (
        bars.group_by("session_date", maintain_order=True)
        .agg(pl.col("high").max(), pl.col("low").min(), pl.col("close").last())
        .with_columns(prev=pl.col("close").shift(1))
        .with_columns(
            tr=pl.max_horizontal(
                pl.col("high") - pl.col("low"),
                (pl.col("high") - pl.col("prev")).abs(),
                (pl.col("low") - pl.col("prev")).abs(),
            )
        )
    )
    tr = daily["tr"].to_numpy()

    def wilder(period: int) -> np.ndarray:
        out = np.full(tr.shape[0], np.nan)
        if tr.shape[0] >= period:
            out[period - 1] = tr[:period].mean()
            for i in range(period, tr.shape[0]):
                out[i] = out[i - 1] + (tr[i] - out[i - 1]) / period
        # The value used on day D is known at the end of day D-1.
        return np.concatenate([[np.nan], out[:-1]])

    atr_short, atr_long = wilder(14), wilder(50)
    daily = daily.select("session_date").with_columns(
        atr_short=pl.Series(atr_short).fill_nan(None),
        atr_long=pl.Series(atr_long).fill_nan(None),
        atr=pl.Series(0.5 * atr_short + 0.5 * atr_long).fill_nan(None),
    )
    return bars.join(daily, on="session_date", how="left", maintain_order="left")


def trader_grid(count: int, seed: int = SEED) -> pl.DataFrame:
    """A 10,000-trader product grid; smaller counts are a seeded sample of it."""
    axes = itertools.product(
        ["long", "short"],
        [-10, -4, 0, 3, 8],
        [0.25, 0.5, 1.0, 1.5, 2.0],
        [0.5, 1.0, 2.0, 3.0, 5.0],
        [30, 60, 240, 1440],
        [15, 60],
        ["03:00", "08:00", "09:30", "14:00", "20:00"],
    )
    rows = [
        dict(zip(["direction", "offset_ticks", "stop_atr", "limit_atr", "duration_min", "timeout_min", "entry_time"], r))
        for r in axes
    ]
    frame = pl.DataFrame(rows).with_row_index("trader_id", offset=1).with_columns(
        pl.col("trader_id").cast(pl.Int64), scenario=pl.lit("bench"), cost_ticks=pl.lit(2.0)
    )
    if count < frame.height:
        frame = frame.sample(n=count, seed=seed).sort("trader_id")
    elif count > frame.height:
        raise SystemExit(f"--traders at most {frame.height}")
    return frame


def engine_only(bars: pl.DataFrame, grid: pl.DataFrame) -> dict:
    """The same run without the Parquet writer: the tables are made and dropped (api._run is
    what simulate_to_parquet streams to its writer)."""
    started, cpu = time.perf_counter(), time.process_time()
    chunks, _, _, tally = _run(bars, grid, TICK, parse_session("calendar-day", TIMEZONE), 512, streaming=True)
    for _table, _done in chunks:
        pass
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "trades_per_second": tally.trades / seconds,
        "setup_seconds": tally.setup_seconds,
        "simulate_seconds": tally.simulate_seconds,
        "kernel_trades_per_second": tally.trades / tally.simulate_seconds,
    }


def run_child(traders: int, years: int) -> dict:
    t0 = time.perf_counter()
    bars = synthetic_bars(years)
    grid = trader_grid(traders)
    prepare = time.perf_counter() - t0
    # Compile (or load the cached kernels) on a tiny slice so the timing is the simulation itself.
    with tempfile.TemporaryDirectory() as tmp:
        simulate_to_parquet(bars.head(20_000), grid.head(4), Path(tmp) / "warm.parquet", tick_size=TICK, timezone=TIMEZONE)
        path = Path(tmp) / "trades.parquet"
        cpu = time.process_time()
        report = simulate_to_parquet(bars, grid, path, tick_size=TICK, timezone=TIMEZONE)
        cpu = time.process_time() - cpu
        size_mb = path.stat().st_size / 2**20
    engine = engine_only(bars, grid)
    return {
        "bars": bars.height,
        "traders": report.traders,
        "trades": report.trades,
        "sessions": report.sessions,
        "seconds": report.seconds,
        "trades_per_second": report.trades / report.seconds,
        "cpu_seconds": cpu,
        "setup_seconds": report.setup_seconds,
        "simulate_seconds": report.simulate_seconds,
        "write_seconds": report.write_seconds,
        "engine": engine,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "prepare_seconds": prepare,
        "parquet_mb": size_mb,
        "exit_reasons": report.exit_reasons,
        "ambiguous_bars": report.ambiguous_bars,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traders", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_child(args.child, args.years)))
        return
    for count in args.traders:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(count), "--years", str(args.years)],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        e = r["engine"]
        print(
            f"bars {r['bars']:,}  traders {r['traders']:,}  trades {r['trades']:,}  "
            f"seconds {r['seconds']:.2f}  trades/s {r['trades_per_second']:,.0f}  "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB  load {load_average()}\n"
            f"  with the writer: CPU {r['cpu_seconds']:.2f} s of all threads; setup {r['setup_seconds']:.2f} s, kernels {r['simulate_seconds']:.2f} s "
            f"and Parquet writing {r['write_seconds']:.2f} s overlapped (worker and main thread)\n"
            f"  engine only, nothing written: {e['seconds']:.2f} s, {e['trades_per_second']:,.0f} trades/s, "
            f"CPU {e['cpu_seconds']:.2f} s "
            f"(setup {e['setup_seconds']:.2f} s, kernels {e['simulate_seconds']:.2f} s = "
            f"{e['kernel_trades_per_second']:,.0f} trades/s)\n"
            f"  bars+grid built in {r['prepare_seconds']:.1f} s, parquet {r['parquet_mb']:,.0f} MB, "
            f"exits {r['exit_reasons']}, ambiguous {r['ambiguous_bars']}",
            flush=True,
        )


def load_average() -> str:
    """The 1-minute load average: other work on the machine slows the figures down."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
