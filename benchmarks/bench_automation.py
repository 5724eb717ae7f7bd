"""Benchmark of one tick of the automation condition sensor with many tickers and scenarios.

    python benchmarks/bench_automation.py [--tickers 50] [--scenarios 8]

Registers `--tickers` ticker partitions and `--scenarios` scenario families on a fresh SQLite
instance (the embedded default) and records, without running any step, one materialization of
every asset partition a finished backtest leaves (request, bars, grids naming every scenario,
each ticker x scenario stage, leaderboard) with the current code versions. Then times what
`mochi_automation_sensor` evaluates on each tick (`dg.evaluate_automation_conditions` on the
real definitions, the same evaluation the sensor runs):

- tick 1: the first evaluation (no cursor);
- tick 2: nothing changed (the steady state of a running deployment);
- tick 3: one ticker's request changed (its ticker stages are requested).

Prints seconds per tick, what each requested, the CPU seconds and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mochi_assets.definitions import all_assets, defs  # noqa: E402
from mochi_assets.partitions import SCENARIO_DIMENSION, TICKER_DIMENSION, ticker_scenario_key  # noqa: E402

warnings.filterwarnings("ignore")


def _record(instance, key: dg.AssetKey, partition: str, code: str | None, version: str, metadata=None) -> None:
    tags = {"dagster/data_version": version}
    if code:
        tags["dagster/code_version"] = code
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata or {}, tags=tags)
    )


def populate(instance, tickers: list[str], scenarios: list[str]) -> None:
    instance.add_dynamic_partitions(TICKER_DIMENSION, tickers)
    instance.add_dynamic_partitions(SCENARIO_DIMENSION, scenarios)
    codes = {k: a.code_versions_by_key.get(k) for a in all_assets for k in a.keys}
    ticker_level = ["backtest_request", "raw_bars", "enhanced_bars", "scenarios"]
    scenario_level = ["trades", "aggregates", "rankings", "years_graph", "stops_graph", "best_traders_graph",
                      "trade_extracts", "trade_lens"]
    for ticker in tickers:
        for name in ticker_level:
            meta = {"scenarios": ", ".join(scenarios)} if name == "scenarios" else {}
            if name == "backtest_request":
                meta = {"request_hash": f"h-{ticker}"}
            _record(instance, dg.AssetKey(name), ticker, codes[dg.AssetKey(name)], f"{name}-{ticker}", meta)
        for scenario in scenarios:
            partition = str(ticker_scenario_key(ticker, scenario))
            for name in scenario_level:
                _record(instance, dg.AssetKey(name), partition, codes[dg.AssetKey(name)], f"{name}-{partition}")
        _record(instance, dg.AssetKey("leaderboard"), ticker, codes[dg.AssetKey("leaderboard")], f"lb-{ticker}")


def tick(instance, cursor):
    cpu, wall = time.process_time(), time.perf_counter()
    result = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    requested = {a.key.to_user_string(): result.get_num_requested(a.key) for a in all_assets}
    return result.cursor, wall, cpu, {k: v for k, v in requested.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickers", type=int, default=50)
    parser.add_argument("--scenarios", type=int, default=8)
    args = parser.parse_args()
    tickers = [f"SYN_T{i:03d}" for i in range(args.tickers)]
    scenarios = [f"family-{i}" for i in range(args.scenarios)]
    with dg.instance_for_test() as instance:
        start = time.perf_counter()
        populate(instance, tickers, scenarios)
        print(f"{args.tickers} tickers x {args.scenarios} scenarios registered, "
              f"{args.tickers * (5 + 8 * args.scenarios)} materializations recorded in {time.perf_counter() - start:.1f} s")
        cursor, wall, cpu, requested = tick(instance, None)
        print(f"tick 1 (first evaluation):   {wall:6.2f} s wall, {cpu:6.2f} s cpu, requested {requested or 'nothing'}")
        cursor, wall, cpu, requested = tick(instance, cursor)
        print(f"tick 2 (nothing changed):    {wall:6.2f} s wall, {cpu:6.2f} s cpu, requested {requested or 'nothing'}")
        _record(instance, dg.AssetKey("backtest_request"), tickers[0],
                defs.resolve_assets_def("backtest_request").code_versions_by_key.get(dg.AssetKey("backtest_request")),
                "a-new-request", {"request_hash": "a-new-request"})
        cursor, wall, cpu, requested = tick(instance, cursor)
        print(f"tick 3 (one request changed): {wall:6.2f} s wall, {cpu:6.2f} s cpu, requested {requested or 'nothing'}")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
