"""Benchmark of aggregation, ranking and graphs for one scenario (DuckDB engine).

    python benchmarks/bench_aggregation.py [--traders 2000] [--years 10] [--fill 0.96] [--repeat 1]

Builds, with NumPy, the trades of one scenario as the simulation would write them (the trades
contract: trader_id, session_date, entry/exit times and prices, exit_reason, pnl, pnl_ticks, r,
mae, mfe, bars_held): ``--traders`` traders over ``--years`` years of weekday sessions, each
trading on a share ``--fill`` of the sessions (2,000 traders x 10 years is about 5 million
trades). Then times ``aggregate_scenario`` on DuckDB, ``rank_traders`` and the three graphs
(years, stops, best traders for the top 5). Runs in a fresh subprocess so that the peak RSS
printed is this workload's own (it includes the trades table held in memory). Each stage shows
wall-clock seconds and the CPU seconds of the process (all threads): on a machine shared with
other work the wall clock grows while the CPU time does not; the load average is printed too.
``--repeat N`` runs N fresh subprocesses and ends with the fastest and the median of each stage.
``--from-file`` does what the ``aggregates`` and ``stops_graph`` steps do on a local lake: the
trades are written to a Parquet file first (zstd, row groups of about 512 traders, as the simulation
writes them; not counted) with the traders' outcome table (trade counts, fingerprints, drawdowns:
the simulation computes it while it writes the trades; not counted either), DuckDB reads that
file itself (``ParquetFile``), polars streams the MAE tables from it, and the trades are not held
in memory (only the best traders' trades are, for their graph). Without ``--from-file`` the
aggregation computes the outcome table from the trades in memory (counted).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mochi_assets.aggregation.outcomes import trader_outcomes  # noqa: E402
from mochi_assets.aggregation.tables import TRADE_COLUMNS, aggregate_scenario  # noqa: E402
from mochi_assets.reporting import graphs  # noqa: E402
from mochi_assets.reporting.rankings import rank_traders, top_trader_ids  # noqa: E402
from mochi_resources.sql_engine import DuckDBEngine, ParquetFile  # noqa: E402

SEED = 20240101
SCENARIO = "bench"
TICK = 0.1
START = dt.date(2015, 1, 1)


def trader_grid(count: int, seed: int = SEED) -> pl.DataFrame:
    """``count`` traders sampled from a product grid of the trader parameters."""
    axes = list(
        itertools.product(
            ["long", "short"],
            [-10, -4, 0, 3, 8],
            [0.25, 0.5, 1.0, 1.5, 2.0],
            [0.5, 1.0, 2.0, 3.0, 5.0],
            [30, 60, 240, 1440],
            [15, 60],
            ["03:00", "08:00", "09:30", "14:00", "20:00"],
        )
    )
    if count > len(axes):
        raise SystemExit(f"--traders at most {len(axes)}")
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(axes), size=count, replace=False))
    names = ["direction", "offset_ticks", "stop_atr", "limit_atr", "duration_min", "timeout_min", "entry_time"]
    return (
        pl.DataFrame([dict(zip(names, axes[i])) for i in picked])
        .with_row_index("trader_id", offset=1)
        .with_columns(pl.col("trader_id").cast(pl.Int64), scenario=pl.lit(SCENARIO), cost_ticks=pl.lit(2.0))
    )


def sessions(years: int) -> list[dt.date]:
    days = (START + dt.timedelta(days=i) for i in range(int(years * 365.25)))
    return [d for d in days if d.weekday() < 5]


def synthetic_trades(traders: pl.DataFrame, dates: list[dt.date], fill: float, seed: int = SEED) -> pl.DataFrame:
    """One trade per trader on a random share ``fill`` of the sessions, with plausible outcomes.

    Each session has one ATR (a slow random walk); a trade's r is drawn from a fat-tailed mix,
    clipped at -1 (the stop) and at the trader's limit, pnl = r * stop_atr * ATR net of costs.
    """
    rng = np.random.default_rng(seed)
    n_traders, n_days = traders.height, len(dates)
    trades_mask = rng.random((n_traders, n_days)) < fill
    rows, cols = np.nonzero(trades_mask)  # row-major: sorted by trader, then date
    n = rows.shape[0]
    atr_day = 10.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n_days)))
    atr = atr_day[cols]
    stop = traders["stop_atr"].to_numpy()[rows]
    limit = traders["limit_atr"].to_numpy()[rows]
    edge = rng.normal(0, 0.03, n_traders)[rows]
    raw = edge + rng.standard_t(4, n) * 0.6
    r_gross = np.clip(raw, -1.0, limit / stop)
    reason = np.where(r_gross <= -1.0, "stop", np.where(r_gross >= limit / stop, "limit", "time"))
    risk = stop * atr
    pnl = r_gross * risk - 2.0 * TICK
    r = pnl / risk
    entry_minutes = (
        traders["entry_time"].str.slice(0, 2).cast(pl.Int64) * 60 + traders["entry_time"].str.slice(3, 2).cast(pl.Int64)
    ).to_numpy()[rows] + rng.integers(0, 15, n)
    day_us = np.array([(d - dt.date(1970, 1, 1)).days for d in dates], dtype=np.int64)[cols] * 86_400_000_000
    entry_us = day_us + (entry_minutes + 300) * 60_000_000  # New York local time as UTC (+5 h)
    held = rng.integers(1, 240, n)
    entry_price = 2000.0 + rng.normal(0, 50, n)
    direction = np.where(traders["direction"].to_numpy()[rows] == "long", 1.0, -1.0)
    return pl.DataFrame(
        {
            "trader_id": traders["trader_id"].to_numpy()[rows],
            "session_date": pl.Series(cols.astype(np.int32) + (START - dt.date(1970, 1, 1)).days).cast(pl.Int32),
            "entry_ts": entry_us,
            "entry_price": entry_price,
            "exit_ts": entry_us + held * 60_000_000,
            "exit_price": entry_price + direction * (pnl + 2.0 * TICK),
            "exit_reason": reason,
            "pnl": pnl,
            "pnl_ticks": pnl / TICK,
            "r": r,
            "mae": np.abs(rng.normal(0, 0.4, n)) * risk,
            "mfe": np.abs(rng.normal(0, 0.5, n)) * risk,
            "bars_held": held,
        }
    ).with_columns(
        # session index -> the real session date
        pl.col("session_date").replace_strict(
            pl.Series(np.arange(n_days, dtype=np.int32) + (START - dt.date(1970, 1, 1)).days).cast(pl.Int32),
            pl.Series(dates, dtype=pl.Date),
            return_dtype=pl.Date,
        ),
        pl.col("entry_ts").cast(pl.Datetime("us", "UTC")),
        pl.col("exit_ts").cast(pl.Datetime("us", "UTC")),
    )


def run_child(n_traders: int, years: int, fill: float, from_file: bool = False) -> dict:
    t0 = time.perf_counter()
    traders = trader_grid(n_traders)
    dates = sessions(years)
    trades = synthetic_trades(traders, dates, fill)
    n_trades = trades.height
    if from_file:
        folder = tempfile.mkdtemp(prefix="mochi-bench-agg-")
        path = os.path.join(folder, "trades.parquet")
        per_group = trades.group_by((pl.col("trader_id") // 512).alias("chunk")).len()["len"].max()
        trades.write_parquet(path, compression="zstd", row_group_size=int(per_group))
        del trades
        gc.collect()
        # the traders' outcomes, which the simulation computes chunk by chunk while it writes the trades
        chunks = pl.scan_parquet(path).select((pl.col("trader_id") // 512).unique()).collect().to_series()
        outcomes = pl.concat([
            trader_outcomes(pl.scan_parquet(path).filter(pl.col("trader_id") // 512 == chunk)) for chunk in chunks.sort()
        ])
    build = time.perf_counter() - t0

    stages: dict[str, tuple[float, float]] = {}

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def timed(stage: str, run):
        wall, cpu0 = time.perf_counter(), cpu()
        result = run()
        stages[stage] = (time.perf_counter() - wall, cpu() - cpu0)
        return result

    engine = DuckDBEngine(threads=2, memory_limit="1GB")
    if from_file:
        trades_in = ParquetFile(path, TRADE_COLUMNS)
        trades = pl.scan_parquet(path)  # the graphs read it lazily, as the steps do
    else:
        trades_in, outcomes = trades, None
    tables = timed(
        "aggregate (DuckDB + DSR/PBO)",
        lambda: aggregate_scenario(engine, trades=trades_in, traders=traders, session_dates=dates, outcomes=outcomes),
    )
    pbo = tables["scenario_stats"]["pbo"].item()

    def rank():
        ranked = rank_traders(traders, tables["trader_summary"], tables["trader_by_year"], scenario=SCENARIO, pbo=pbo)
        return ranked, top_trader_ids(ranked, 5)

    ranked, top = timed("rank_traders", rank)
    ctx = graphs.GraphContext(ticker="SYN:BENCH", scenario=SCENARIO, start=dates[0], end=dates[-1], synthetic=True)
    years_png, _ = timed("years_graph", lambda: graphs.years_graph(tables["trader_by_year"], top, ctx))
    stops_png, _ = timed(
        "stops_graph", lambda: graphs.stops_graph(traders, tables["trader_summary"], trades, ctx)
    )
    best_png, _ = timed("best_traders_graph", lambda: graphs.best_traders_graph(
        trades.filter(pl.col("trader_id").is_in(top)).collect() if from_file else trades, top, ctx))
    if from_file:
        shutil.rmtree(folder, ignore_errors=True)

    return {
        "traders": traders.height,
        "sessions": len(dates),
        "trades": n_trades,
        "build_seconds": build,
        "stages": stages,
        "total_seconds": sum(wall for wall, _ in stages.values()),
        "total_cpu_seconds": sum(cpu_s for _, cpu_s in stages.values()),
        "load_average": os.getloadavg()[0],
        "rows": {name: frame.height for name, frame in tables.items()} | {"rankings": ranked.height},
        "png_kb": round((len(years_png) + len(stops_png) + len(best_png)) / 1024),
        "pbo": pbo,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traders", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--fill", type=float, default=0.96)
    parser.add_argument("--repeat", type=int, default=1, help="fresh runs; the fastest and median end the output")
    parser.add_argument("--from-file", action="store_true",
                        help="DuckDB and polars read the trades from a Parquet file (as on a local lake)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.traders, args.years, args.fill, args.from_file)))
        return
    runs = [run_once(args) for _ in range(max(1, args.repeat))]
    if len(runs) > 1:
        print(f"over {len(runs)} runs: stage, fastest and median wall / cpu")
        for stage in runs[0]["stages"]:
            walls = sorted(r["stages"][stage][0] for r in runs)
            cpus = sorted(r["stages"][stage][1] for r in runs)
            print(f"  {stage:<30} wall {walls[0]:6.2f} s / {walls[len(walls) // 2]:6.2f} s   "
                  f"cpu {cpus[0]:6.2f} s / {cpus[len(cpus) // 2]:6.2f} s")


def run_once(args: argparse.Namespace) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--traders", str(args.traders), "--years", str(args.years),
         "--fill", str(args.fill), *(["--from-file"] if args.from_file else [])],
        check=True,
        capture_output=True,
        text=True,
    )
    r = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"traders {r['traders']:,}  sessions {r['sessions']:,}  trades {r['trades']:,}  "
        f"(built in {r['build_seconds']:.1f} s, not counted)"
    )
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in r["rows"].items()))
    print(f"  {'stage':<30} {'wall':>9} {'cpu':>9}")
    for stage, (wall, cpu_s) in r["stages"].items():
        print(f"  {stage:<30} {wall:7.2f} s {cpu_s:7.2f} s")
    print(
        f"total {r['total_seconds']:.2f} s (cpu {r['total_cpu_seconds']:.2f} s)  peak RSS {r['peak_rss_mb']:,.0f} MB  "
        f"(PNGs {r['png_kb']} KB, pbo {r['pbo']}, 1-min load average at the end {r['load_average']:.1f} "
        f"on {os.cpu_count()} CPUs)"
    )
    return r


if __name__ == "__main__":
    main()
