"""Benchmark of the PNG graphs of one ticker x scenario: CPU and wall seconds per graph.

    python benchmarks/bench_graphs.py [--case small|large|both] [--repeat 3] [--baseline CHECKOUT]
                                      [--save-csv DIR] [--check-csv DIR] [--png-dir DIR]

Builds, as ``bench_aggregation.py`` does, the trades of one scenario (``small``: 500 traders x
1 year, about 120,000 trades, close to one scenario of the README backtest; ``large``: 2,000
traders x 10 years, about 5 million trades), the tables the graph assets read (trader summary
with net_pnl_ticks, trader by year, the top 5 traders by net P&L, the trade lens of the top 10,
the walk-forward with the request's default settings) and then renders every graph ``--repeat``
times: years, stops, best traders, trade lens, walk-forward. Printed per graph: CPU seconds of
the process (time.process_time, all threads) and wall seconds per render, the least of the
repeats (other work on the machine only adds), and the PNG size. Building the inputs is not
counted. On a busy machine CPU time still grows with the load (shared caches and cores), so
``--baseline CHECKOUT`` loads the graph modules of another checkout (``git worktree add
/tmp/base main``) and renders each graph with both, interleaved, in this process: the ratio of
their CPU times is what to compare.

Each graph must render to the same bytes on every repeat (checked). The tables behind the
graphs (what the assets store as CSV: the years / stops / best traders tables, the lens tables,
the walk-forward equity) are hashed; ``--save-csv DIR`` writes them, ``--check-csv DIR``
compares them byte for byte with a saved run (a change of the drawing must not change the numbers).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import sys
import time
from pathlib import Path
from types import ModuleType

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_aggregation import sessions, synthetic_trades, trader_grid  # noqa: E402
from bench_walk_forward import session_frame  # noqa: E402

from mochi_assets.reporting import graphs  # noqa: E402
from mochi_assets.reporting.extracts import extract_trades  # noqa: E402
from mochi_assets.reporting.lens import trade_lens  # noqa: E402
from mochi_assets.request import WalkForwardSettings  # noqa: E402
from mochi_assets.validation import graph as wf_graph  # noqa: E402
from mochi_assets.validation.panel import build_panel, panel_trades  # noqa: E402
from mochi_assets.validation.walk_forward import WalkForwardParams, walk_forward  # noqa: E402

CASES = {"small": (500, 1), "large": (2000, 10)}
FILL = 0.96
TIMEZONE = "America/New_York"
VERDICT = (
    "No trader in this backtest beats what luck explains: the best deflated Sharpe ratio is 0.41 "
    "after 500 trials, and the walk-forward's out-of-sample picks beat 48% of random picks."
)


def _csv(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    return buffer.getvalue()


def build_inputs(n_traders: int, years: int) -> dict:
    traders = trader_grid(n_traders)
    dates = sessions(years)
    trades = synthetic_trades(traders, dates, FILL)
    summary = (
        trades.group_by("trader_id")
        .agg(
            trades=pl.len().cast(pl.Int64),
            win_rate=(pl.col("pnl") > 0).mean(),
            net_pnl=pl.col("pnl").sum(),
            net_pnl_ticks=pl.col("pnl_ticks").sum(),
        )
        .sort("trader_id")
    )
    by_year = (
        trades.group_by("trader_id", pl.col("session_date").dt.year().cast(pl.Int64).alias("year"))
        .agg(trades=pl.len().cast(pl.Int64), net_pnl=pl.col("pnl").sum(), win_rate=(pl.col("pnl") > 0).mean())
        .sort("trader_id", "year")
    )
    ranked = summary.sort(["net_pnl", "trader_id"], descending=[True, False])["trader_id"].to_list()
    top5, top10 = ranked[:5], ranked[:10]
    lens = trade_lens(extract_trades(trades.filter(pl.col("trader_id").is_in(top10)), traders, top10), timezone=TIMEZONE)
    settings = WalkForwardSettings()
    panel = build_panel(panel_trades(trades.lazy()), traders["trader_id"].to_numpy(), session_frame(dates))
    params = WalkForwardParams(
        is_sessions=settings.is_sessions, oos_sessions=settings.oos_sessions, mode=settings.mode,
        selection=settings.selection, min_trades=settings.min_trades, random_paths=settings.random_paths, seed=settings.seed,
    )
    wf = walk_forward(panel, traders, params, scenario="bench")
    ctx = graphs.GraphContext(
        ticker="SYN:BENCH", scenario="bench", start=dates[0], end=dates[-1], synthetic=True, timezone=TIMEZONE
    )
    return {
        "traders": traders, "trades": trades, "summary": summary, "by_year": by_year, "top5": top5,
        "ineligible": [top5[-1]], "top_trades": trades.filter(pl.col("trader_id").is_in(top5)), "lens": lens,
        "wf": wf, "ctx": ctx,
    }


def load_baseline(root: Path) -> tuple[ModuleType, ModuleType]:
    """The graph modules of another checkout (e.g. ``git worktree add /tmp/base main``), to time
    side by side with this one in the same process."""
    modules = []
    for name, relative in (("baseline_graphs", "mochi_assets/reporting/graphs.py"),
                           ("baseline_wf_graph", "mochi_assets/validation/graph.py")):
        spec = importlib.util.spec_from_file_location(name, root / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1]


def graph_runs(x: dict, graphs: ModuleType = graphs, wf_graph: ModuleType = wf_graph) -> dict:
    """Graph name -> a function rendering it, returning (png, {csv name: table})."""
    ctx = x["ctx"]

    def years():
        png, table = graphs.years_graph(x["by_year"], x["top5"], ctx, ineligible=x["ineligible"])
        return png, {"years": table}

    def stops():
        png, table = graphs.stops_graph(x["traders"], x["summary"], x["trades"], ctx)
        return png, {"stops": table}

    def best():
        png, table = graphs.best_traders_graph(x["top_trades"], x["top5"], ctx, verdict=VERDICT, ineligible=x["ineligible"])
        return png, {"best_traders": table}

    def lens():
        return graphs.lens_graph(x["lens"], ctx), {f"lens_{k}": v for k, v in x["lens"].items()}

    def wf():
        r = x["wf"]
        return wf_graph.walk_forward_graph(r["equity"], r["folds"], r["summary"], ctx), {"walk_forward_equity": r["equity"]}

    return {"years": years, "stops": stops, "best_traders": best, "lens": lens, "walk_forward": wf}


def _timed(run) -> tuple[float, float, bytes, dict]:
    c0, w0 = time.process_time(), time.perf_counter()
    png, tables = run()
    return time.process_time() - c0, time.perf_counter() - w0, png, tables


def run_case(case: str, repeat: int, save: Path | None, check: Path | None, png_dir: Path | None,
             baseline: tuple[ModuleType, ModuleType] | None) -> list[str]:
    n_traders, years = CASES[case]
    t0 = time.perf_counter()
    x = build_inputs(n_traders, years)
    print(
        f"{case}: {n_traders:,} traders x {years} year(s), {x['trades'].height:,} trades, "
        f"{x['lens']['mae_mfe'].height:,} lens points, {x['wf']['equity'].height:,} walk-forward sessions "
        f"(inputs built in {time.perf_counter() - t0:.1f} s, not counted)"
    )
    header = f"  {'graph':<14} {'cpu/render':>11} {'wall/render':>12} {'png':>8}"
    print(header + (f" {'baseline cpu':>13} {'wall':>8} {'png':>8} {'cpu ratio':>10}" if baseline else ""))
    problems: list[str] = []
    totals = [0.0, 0.0, 0.0, 0.0]
    base_runs = graph_runs(x, *baseline) if baseline else {}
    for name, run in graph_runs(x).items():
        cpu_s, wall_s, pngs, base_cpu, base_wall, base_pngs = [], [], [], [], [], []
        for _ in range(repeat):  # interleaved, so that load from other work hits both alike
            cpu_1, wall_1, png, tables = _timed(run)
            cpu_s.append(cpu_1), wall_s.append(wall_1), pngs.append(png)
            if baseline:
                cpu_1, wall_1, png, base_tables = _timed(base_runs[name])
                base_cpu.append(cpu_1), base_wall.append(wall_1), base_pngs.append(png)
                for table_name, table in base_tables.items():
                    if _csv(table) != _csv(tables[table_name]):
                        problems.append(f"{case}/{table_name}: CSV differs from the baseline's")
        if len(set(pngs)) != 1:
            problems.append(f"{case}/{name}: the PNG bytes differ between renders")
        line = f"  {name:<14} {min(cpu_s):9.3f} s {min(wall_s):10.3f} s {len(pngs[0]) / 1024:6.0f} KB"
        totals[0] += min(cpu_s)
        totals[1] += min(wall_s)
        if baseline:
            totals[2] += min(base_cpu)
            totals[3] += min(base_wall)
            line += (f" {min(base_cpu):11.3f} s {min(base_wall):6.3f} s {len(base_pngs[0]) / 1024:6.0f} KB "
                     f"{min(base_cpu) / min(cpu_s):9.2f}x")
        print(line)
        if png_dir:
            png_dir.mkdir(parents=True, exist_ok=True)
            (png_dir / f"{case}_{name}.png").write_bytes(pngs[0])
            if baseline:
                (png_dir / f"{case}_{name}_baseline.png").write_bytes(base_pngs[0])
        for table_name, table in tables.items():
            data = _csv(table)
            file = f"{case}_{table_name}.csv"
            if save:
                save.mkdir(parents=True, exist_ok=True)
                (save / file).write_bytes(data)
            if check:
                expected = (check / file).read_bytes() if (check / file).exists() else None
                if expected != data:
                    problems.append(f"{case}/{table_name}: CSV differs from {check / file}")
            print(f"      {table_name:<24} {table.height:>9,} rows  sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    line = f"  {'total':<14} {totals[0]:9.3f} s {totals[1]:10.3f} s"
    if baseline:
        line += f" {'':8} {totals[2]:11.3f} s {totals[3]:6.3f} s {'':8} {totals[2] / totals[0]:9.2f}x"
    print(line)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--save-csv", type=Path, help="write the tables behind the graphs as CSV here")
    parser.add_argument("--check-csv", type=Path, help="compare the tables with the CSVs saved here")
    parser.add_argument("--png-dir", type=Path, help="write one PNG per graph here")
    parser.add_argument("--baseline", type=Path,
                        help="root of another checkout whose graph modules are timed alongside, interleaved")
    args = parser.parse_args()
    baseline = load_baseline(args.baseline) if args.baseline else None
    problems: list[str] = []
    for case in CASES if args.case == "both" else [args.case]:
        problems += run_case(case, args.repeat, args.save_csv, args.check_csv, args.png_dir, baseline)
    if args.check_csv and not problems:
        print(f"tables identical to {args.check_csv}")
    for problem in problems:
        print("PROBLEM:", problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
