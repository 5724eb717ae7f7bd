"""Benchmark of the walk-forward and the robustness figures of one scenario.

    python benchmarks/bench_walk_forward.py [--traders 2000] [--years 10] [--fill 0.96] [--top 10]

The trades of one scenario are built as ``bench_aggregation.py`` builds them (``--traders``
traders over ``--years`` years of weekday sessions, each trading on a share ``--fill`` of them:
2,000 x 10 years is about 5 million trades) and written to a Parquet file. A fresh process then
does what the ``walk_forward`` and ``robustness`` assets do, timed stage by stage: read the panel
columns of the trades, build the daily panel (sessions x traders), run the walk-forward with the
request's defaults (2-year / 6-month rolling folds, selection by the ranking's own order, 10,000
random pick sequences) and the robustness figures of the top ``--top`` traders (plateau, Monte
Carlo with 1,000 paths, SPA / Reality Check with 1,000 bootstrap replications over all traders).
The graph is timed apart. Printed: seconds (wall and CPU) per stage, the total, and the peak RSS
of that process (everything it held, the trades included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SCENARIO = "bench"  # the scenario name bench_aggregation gives its traders

from mochi_assets.aggregation import stats  # noqa: E402
from mochi_assets.reporting.graphs import GraphContext  # noqa: E402
from mochi_assets.reporting.rankings import rank_traders  # noqa: E402
from mochi_assets.request import WalkForwardSettings  # noqa: E402
from mochi_assets.validation.graph import walk_forward_graph  # noqa: E402
from mochi_assets.validation.panel import build_panel, panel_trades  # noqa: E402
from mochi_assets.validation.robustness import robustness_table  # noqa: E402
from mochi_assets.validation.walk_forward import WalkForwardParams, walk_forward  # noqa: E402


def session_frame(dates: list[dt.date]) -> pl.DataFrame:
    """Sessions starting at 17:00 New York (22:00 UTC) the evening before, as for 24x5 tickers."""
    starts = [dt.datetime.combine(d - dt.timedelta(days=1), dt.time(22, 0), tzinfo=dt.timezone.utc) for d in dates]
    return pl.DataFrame({"session_date": dates, "start_ts": starts}).with_columns(
        pl.col("start_ts").cast(pl.Datetime("us", "UTC"))
    )


def full_ranking(traders: pl.DataFrame, panel) -> pl.DataFrame:
    """The full-sample ranking (what the aggregates and rankings assets provide in the pipeline)."""
    tests = stats.sharpe_tests(panel.r.T)
    summary = pl.DataFrame(
        {"trader_id": panel.trader_ids, "trades": panel.count_cum[-1], "sharpe": tests.sharpe * np.sqrt(252),
         "dsr": tests.dsr}
    ).with_columns(pl.col("sharpe", "dsr").fill_nan(None))
    years = panel.dates.astype("datetime64[Y]").astype(np.int64) + 1970
    starts = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    net = np.add.reduceat(panel.ticks, starts, axis=0)
    by_year = pl.DataFrame(
        {"trader_id": np.tile(panel.trader_ids, len(starts)), "year": np.repeat(years[starts], panel.traders),
         "net_pnl": net.ravel()}
    )
    return rank_traders(traders, summary, by_year, scenario=SCENARIO, pbo=None)


def peak_rss_mb() -> float:
    """This process's peak resident set size. VmHWM belongs to the process's own memory map; getrusage's
    ru_maxrss would carry over the peak of the parent that built the trades (Linux keeps it across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(folder: Path, top: int) -> dict:
    settings = WalkForwardSettings()
    stages: dict[str, tuple[float, float]] = {}

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def timed(stage: str, run):
        wall, cpu0 = time.perf_counter(), cpu()
        result = run()
        stages[stage] = (time.perf_counter() - wall, cpu() - cpu0)
        return result

    traders = pl.read_parquet(folder / "traders.parquet")
    dates = pl.read_parquet(folder / "sessions.parquet")
    trades = timed("read trades (panel columns)", lambda: panel_trades(pl.scan_parquet(folder / "trades.parquet")))
    panel = timed("daily panel", lambda: build_panel(trades, traders["trader_id"].to_numpy(), dates))
    params = WalkForwardParams(
        is_sessions=settings.is_sessions, oos_sessions=settings.oos_sessions, mode=settings.mode,
        selection=settings.selection, min_trades=settings.min_trades, random_paths=settings.random_paths,
        seed=settings.seed,
    )
    result = timed("walk-forward", lambda: walk_forward(panel, traders, params, scenario=SCENARIO))
    wall_ranking = time.perf_counter()
    ranked = full_ranking(traders, panel)
    ranking_seconds = time.perf_counter() - wall_ranking
    table = timed(
        f"robustness (top {top})",
        lambda: robustness_table(
            traders.drop("scenario"), ranked, panel.r, panel.trader_ids, top=top, mc_paths=settings.mc_paths,
            block_sessions=settings.block_sessions, spa_reps=settings.spa_reps, seed=settings.seed, pbo=None,
        ),
    )
    measured_rss = peak_rss_mb()
    d = panel.dates
    ctx = GraphContext(ticker="SYN:BENCH", scenario=SCENARIO, start=d[0].item(), end=d[-1].item(), synthetic=True)
    graph_wall = time.perf_counter()
    png = walk_forward_graph(result["equity"], result["folds"], result["summary"], ctx)
    summary = result["summary"].row(0, named=True)
    first = table.row(0, named=True)
    return {
        "traders": panel.traders,
        "sessions": panel.sessions,
        "trades": trades.height,
        "folds": summary["folds"],
        "stages": stages,
        "total_seconds": sum(w for w, _ in stages.values()),
        "total_cpu_seconds": sum(c for _, c in stages.values()),
        "peak_rss_mb": measured_rss,
        "ranking_seconds": ranking_seconds,
        "graph_seconds": time.perf_counter() - graph_wall,
        "png_kb": round(len(png) / 1024),
        "beats_random_share": summary["beats_random_share"],
        "spa_pvalue": first["spa_pvalue"],
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traders", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--fill", type=float, default=0.96)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(Path(args.child), args.top)))
        return
    from bench_aggregation import sessions, synthetic_trades, trader_grid  # the parent only builds the data

    with tempfile.TemporaryDirectory(prefix="mochi-bench-wf-") as tmp:
        folder = Path(tmp)
        traders = trader_grid(args.traders)
        dates = sessions(args.years)
        trades = synthetic_trades(traders, dates, args.fill)
        traders.write_parquet(folder / "traders.parquet")
        session_frame(dates).write_parquet(folder / "sessions.parquet")
        trades.write_parquet(folder / "trades.parquet")
        del trades
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(folder), "--top", str(args.top)],
            check=True, capture_output=True, text=True,
        )
    r = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"traders {r['traders']:,}  sessions {r['sessions']:,}  trades {r['trades']:,}  folds {r['folds']}")
    print(f"  {'stage':<30} {'wall':>9} {'cpu':>9}")
    for stage, (wall, cpu_s) in r["stages"].items():
        print(f"  {stage:<30} {wall:7.2f} s {cpu_s:7.2f} s")
    print(
        f"total {r['total_seconds']:.2f} s (cpu {r['total_cpu_seconds']:.2f} s)  peak RSS {r['peak_rss_mb']:,.0f} MB  "
        f"(1-min load average at the end {r['load_average']:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        f"not counted: full-sample ranking {r['ranking_seconds']:.2f} s (the rankings' inputs in the pipeline), "
        f"walk-forward graph {r['graph_seconds']:.2f} s ({r['png_kb']} KB); "
        f"beats_random_share {r['beats_random_share']}, spa_pvalue {r['spa_pvalue']}"
    )


if __name__ == "__main__":
    main()
