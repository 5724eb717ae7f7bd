"""Where the time of the bars steps goes: `raw_bars` and `enhanced_bars` for one request, by part.

    python benchmarks/bench_bars.py                       # 10 years of SYN:GOLD, parts, 3 repeats
    python benchmarks/bench_bars.py --years 2 --repeat 5
    python benchmarks/bench_bars.py --mode steps          # dg.materialize of the two assets, step times

`--mode parts` (default) calls what the two assets call, in their order, and prints per part the
wall seconds and the CPU seconds of this process (time.process_time, all threads: polars runs
several) as the median over the repeats, with the minimum in brackets. `--mode steps` materializes
`backtest_request`, `raw_bars` and `enhanced_bars` in a temporary MOCHI_HOME with a Dagster test
instance and prints each step's wall seconds from the event log (checks, hashing, metadata and
the lake writes included) and its CPU seconds (all threads of the process between the step's start
and end events, sampled every 20 ms), and the same for the whole materialize call. Nothing here is a
test: it only prints. Other work on the machine shows in wall time more than in CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _request(years: int, ticker: str):
    from mochi_assets.request import parse_request

    return parse_request({"ticker": ticker, "start": f"{2024 - years + 1}-01-01", "end": "2024-12-31"})


class Clock:
    """Collects (wall, cpu) per named part over several repeats."""

    def __init__(self) -> None:
        self.times: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def part(self, name: str, fn, *args, **kwargs):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.times[name].append((time.perf_counter() - w0, time.process_time() - c0))
        return out

    def report(self) -> None:
        print(f"{'part':44s} {'wall s':>16s} {'cpu s':>16s}")
        for name, values in self.times.items():
            walls, cpus = [v[0] for v in values], [v[1] for v in values]
            print(f"{name:44s} {statistics.median(walls):7.3f} ({min(walls):6.3f}) "
                  f"{statistics.median(cpus):7.3f} ({min(cpus):6.3f})")


def _load_parts(clock: Clock, lake, request, calendar) -> None:
    """The parts of `load_raw_bars` for a synthetic ticker, one by one."""
    import datetime as dt

    from mochi_assets.market_data import bars as md_bars
    from mochi_assets.market_data import sources, synthetic

    first = sources.warmup_start(request, calendar)
    clock.part("raw:   check_source", sources.check_source, lake, request)
    generated = clock.part("raw:   synthetic generation", synthetic.synthetic_minute_bars, request.ticker,
                           max(synthetic.EPOCH, first - dt.timedelta(days=1)), request.end + dt.timedelta(days=1))
    minute, dates = clock.part("raw:   keep the loaded sessions", sources._in_sessions, generated, calendar,
                               first, request.end)
    clock.part("raw:   session dates >= start", lambda: (dates >= request.start).any())
    minute = clock.part("raw:   validate_bars", md_bars.validate_bars, minute, "bench")
    clock.part("raw:   resample 1h", md_bars.resample_bars, minute, "1h", calendar.timezone)
    clock.part("raw:   resample 1d", md_bars.resample_bars, minute, "1d", calendar.timezone)


def run_parts(years: int, ticker: str, repeat: int) -> None:
    import polars as pl

    from mochi_assets.market_data import assets as md_assets
    from mochi_assets.market_data import checks, indicators, sessions, sources
    from mochi_assets.metadata import frames_version
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    home = tempfile.mkdtemp(prefix="mochi-bench-bars-")
    os.environ["MOCHI_HOME"] = home
    lake = Lake(MochiSettings.from_env())
    request = _request(years, ticker)
    clock = Clock()
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        # ---- raw_bars
        calendar = sources.session_calendar(lake, request)
        _load_parts(clock, lake, request, calendar)
        bars = clock.part("raw: load_raw_bars (all)", sources.load_raw_bars, lake, request)
        clock.part("raw: frames_version", frames_version, bars.minute, bars.hour, bars.day)
        key = lambda table: lake.folder_key("raw", table, request.ticker_key, None)  # noqa: E731
        clock.part("raw: lake write (3 tables)", lake.replace_folders, {
            key("bars_minute"): {"data.parquet": bars.minute}, key("bars_hour"): {"data.parquet": bars.hour},
            key("bars_day"): {"data.parquet": bars.day}})
        all_bars = pl.concat([bars.minute, bars.hour, bars.day])
        clock.part("raw check: ohlc", checks.ohlc_violations, all_bars)
        clock.part("raw check: timestamps", lambda: [checks.timestamp_violations(b)
                                                     for b in (bars.minute, bars.hour, bars.day)])
        clock.part("raw check: resolutions", lambda: (checks.resolution_mismatches(bars.minute, bars.hour, "hour"),
                                                      checks.resolution_mismatches(bars.minute, bars.day, "day")))
        clock.part("raw check: sessions covered", checks.missing_sessions, bars.minute, request.start, request.end,
                   calendar, present=bars.session_dates)
        clock.part("raw check: jumps", checks.suspicious_jumps, bars.minute)
        clock.times["= raw_bars total"].append((time.perf_counter() - w0, time.process_time() - c0))
        # ---- enhanced_bars
        w0, c0 = time.perf_counter(), time.process_time()
        minute = clock.part("enh: read minute bars", lambda: lake.scan_table(
            lake.key("raw", "bars_minute", request.ticker_key)).collect())
        settings = {"short": request.atr.short, "long": request.atr.long, "alpha": request.atr.alpha}
        dates = clock.part("enh: session dates", sessions.session_dates, minute["ts"], calendar)
        clock.part("enh: daily bars (not in the step)", indicators.daily_bars, minute, session=calendar)
        enhanced = clock.part("enh: enhance_bars (daily, ATR, join)", indicators.enhance_bars, minute,
                              session=calendar, start=request.start, end=request.end, session_dates=dates,
                              **settings)
        loaded = clock.part("enh: loaded session dates", lambda: dates.drop_nulls().unique())
        first = sessions.first_tradable_session(loaded, sources.warmup_sessions(request), request.start)
        untradable = enhanced.filter(pl.col("session_date") < first)["session_date"].n_unique()
        clock.part("enh: lake write", lake.replace_folders, {
            lake.folder_key("prepared", "enhanced_bars", request.ticker_key, None): {"data.parquet": enhanced}})
        clock.part("enh check: atr defined", checks.atr_violations, enhanced, warmup_sessions=untradable)
        clock.part("enh check: timestamps", checks.timestamp_violations, enhanced)
        clock.part("enh check: atr no lookahead", checks.atr_lookahead_violations, enhanced, session=calendar,
                   source=minute, source_session_dates=dates, **settings)
        clock.times["= enhanced_bars total"].append((time.perf_counter() - w0, time.process_time() - c0))
    print(f"{ticker}, {years} years: {bars.minute.height:,} minute bars, {enhanced.height:,} enhanced rows; "
          f"median (min) of {repeat}")
    clock.report()
    del md_assets


def run_steps(years: int, ticker: str, repeat: int) -> None:
    import dagster as dg
    from bench_pipeline import TreeRss  # this folder: the pipeline benchmark's sampler of /proc

    from mochi_assets.definitions import all_assets, build_resources
    from tests.automation.requests import materialize_request

    request = _request(years, ticker)
    rows = defaultdict(list)
    for _ in range(repeat):
        home = tempfile.mkdtemp(prefix="mochi-bench-bars-")
        os.environ["MOCHI_HOME"] = home
        with dg.instance_for_test() as instance:
            resources = build_resources()
            materialize_request(instance, request, resources)
            w0, c0 = time.perf_counter(), time.process_time()
            # this process alone (the steps run in it): /proc read every 20 ms, its tree walked once
            with TreeRss(os.getpid(), interval=0.02, rescan=3600.0) as cpu:
                result = dg.materialize(all_assets, selection=["raw_bars", "enhanced_bars"],
                                        partition_key=request.ticker_key, instance=instance, resources=resources)
            rows["materialize (both steps)"].append((time.perf_counter() - w0, time.process_time() - c0))
            assert result.success
            starts = {}
            for record in instance.get_records_for_run(result.run_id).records:
                event = record.event_log_entry.dagster_event
                if event is None:
                    continue
                stamp = record.event_log_entry.timestamp
                if event.event_type == dg.DagsterEventType.STEP_START:
                    starts[event.step_key] = stamp
                elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                    rows[f"step {event.step_key}"].append(
                        (stamp - starts[event.step_key], cpu.cpu_between(starts[event.step_key], stamp)))
    print(f"{ticker}, {years} years, dg.materialize; median (min) of {repeat}; a step's CPU is this process's "
          "between its start and end (sampled every 20 ms)")
    clock = Clock()
    clock.times = rows
    clock.report()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--ticker", default="SYN:GOLD")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=("parts", "steps"), default="parts")
    args = parser.parse_args()
    (run_parts if args.mode == "parts" else run_steps)(args.years, args.ticker, args.repeat)


if __name__ == "__main__":
    main()
