"""Warm-up before `start`: backtests trade from the first session of their range; sources that
start later say so; a range with no tradable session is refused before anything runs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from mochi_assets.market_data.sessions import parse_session, session_date_expr
from mochi_assets.market_data.sources import check_source, session_calendar
from mochi_assets.market_data.synthetic import synthetic_minute_bars
from mochi_assets.request import parse_request
from mochi_assets.store import save_import, stored_import
from mochi_resources.errors import ProviderError
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings
from tests.instances import mochi_instance_for_test

NY = "America/New_York"
TWO_MONTHS = {
    "ticker": "SYN:EURUSD",
    "start": "2024-03-01",
    "end": "2024-04-30",
    "duration_min": 60,
    "scenarios": {"breakout-long": {"direction": "long", "offset_ticks": [0], "stop_atr": [1.0], "limit_atr": [1.0, 2.0]}},
}


def materialize(lake: Lake, request, with_scenarios: bool):
    from mochi_assets.definitions import all_assets, build_resources, scenario_assets, ticker_assets
    from mochi_assets.partitions import SCENARIO_DIMENSION, ticker_scenario_key
    from tests.automation.requests import materialize_request

    events = []
    with mochi_instance_for_test() as instance:
        resources = build_resources()
        materialize_request(instance, request, resources)
        runs = [dg.materialize(all_assets, selection=ticker_assets, partition_key=request.ticker_key,
                               instance=instance, resources=resources)]
        if with_scenarios:
            for name in instance.get_dynamic_partitions(SCENARIO_DIMENSION):
                runs.append(dg.materialize(all_assets, selection=scenario_assets, instance=instance, resources=resources,
                                           partition_key=ticker_scenario_key(request.ticker_key, name)))
        for run in runs:
            assert run.success
            events += [e.event_specific_data.materialization for e in run.get_asset_materialization_events()]
    return {e.asset_key.to_user_string(): e.metadata for e in events}


def test_two_month_backtest_trades_from_its_first_session(mochi_home):
    lake = Lake(MochiSettings.from_env())
    request = parse_request(TWO_MONTHS)  # default ATR periods 14 and 50: 50 sessions of warm-up
    meta = materialize(lake, request, with_scenarios=True)
    enhanced = lake.read_table(lake.key("prepared", "enhanced_bars", request.ticker_key))
    raw = lake.read_table(lake.key("raw", "bars_minute", request.ticker_key))
    weekdays = [d for d in (request.start + dt.timedelta(days=i) for i in range(61)) if d.weekday() < 5]
    assert sorted(enhanced["session_date"].unique()) == weekdays  # the requested sessions, Monday to Friday
    assert enhanced["atr"].null_count() == 0  # the ATR is defined from the first one on
    assert raw.select(session_date_expr(parse_session("forex", NY)).min()).item() < request.start - dt.timedelta(days=70)
    assert meta["enhanced_bars"]["first_tradable_session"].value == "2024-03-01"
    assert meta["enhanced_bars"]["warmup_sessions_loaded"].value >= 51

    trades = lake.read_table(lake.key("trades", "trades", request.ticker_key, "breakout-long"))
    assert trades["session_date"].min() == request.start
    assert set(trades["session_date"].dt.weekday()) <= {1, 2, 3, 4, 5}
    entry_local = trades["entry_ts"].dt.convert_time_zone(NY)
    assert set(entry_local.dt.weekday()) <= {1, 2, 3, 4, 5}
    assert (entry_local.dt.date() == trades["session_date"]).all()  # 09:30 is on the session's own date
    assert meta["trades"]["sessions"].value == len(weekdays)
    assert meta["trades"]["sessions_without_entry_bar"].value == 0
    stats = lake.read_table(lake.key("aggregates", "scenario_stats", request.ticker_key, "breakout-long"))
    assert stats["sessions"].item() == len(weekdays)  # the daily series spans exactly the requested range


@pytest.fixture
def late_import(mochi_home):
    """Imported forex bars that begin on Monday 2024-03-04, after the requests' start."""
    lake = Lake(MochiSettings.from_env())
    bars = synthetic_minute_bars("SYN:USERDATA", dt.date(2024, 3, 4), dt.date(2024, 4, 19))
    save_import(lake, "ACME", "ACME", bars, tick_size=0.01, timezone=NY, source_file="acme.csv", session="forex")
    return lake


def test_an_import_starting_after_start_reports_its_first_tradable_session(late_import, capsys):
    from mochi_assets.cli import _print_sessions

    request = parse_request({"ticker": "ACME", "start": "2024-03-01", "end": "2024-04-19", "atr": {"short": 3, "long": 5},
                             "scenarios": TWO_MONTHS["scenarios"]})
    assert check_source(late_import, request) == "import"
    meta = materialize(late_import, request, with_scenarios=False)
    # sessions 4, 5, 6, 7 and 8 March warm the ATR up: the first tradable one is Monday 11 March
    assert meta["enhanced_bars"]["first_tradable_session"].value == "2024-03-11"
    assert meta["enhanced_bars"]["traded_range"].value == "2024-03-11 to 2024-04-19"
    # the ticker meta carries the traded range, which the graphs' subtitles state
    ticker_meta = late_import.read_table(late_import.key("ticker-meta", "ticker_meta", "ACME")).row(0, named=True)
    assert (ticker_meta["first_session"], ticker_meta["last_session"]) == (dt.date(2024, 3, 11), dt.date(2024, 4, 19))
    assert ticker_meta["trading_session"].startswith("forex: ")
    _print_sessions(request)
    out = capsys.readouterr().out
    assert "Traded sessions: 2024-03-11 to 2024-04-19 (30 sessions)" in out
    assert "the first tradable session is 2024-03-11" in out


def test_a_range_without_tradable_session_is_refused_naming_the_first_that_works(late_import):
    request = parse_request({"ticker": "ACME", "start": "2024-03-01", "end": "2024-03-08", "atr": {"short": 3, "long": 5}})
    with pytest.raises(ProviderError, match="the first session that would work is 2024-03-11"):
        check_source(late_import, request)
    too_short = parse_request({"ticker": "ACME", "start": "2024-03-01", "end": "2024-04-19"})  # long 50
    with pytest.raises(ProviderError, match="too few sessions"):
        check_source(late_import, too_short)
    before = parse_request({"ticker": "ACME", "start": "2024-01-01", "end": "2024-02-29"})
    with pytest.raises(ProviderError, match="no session in that range \\(they hold sessions 2024-03-04 to 2024-04-19"):
        check_source(late_import, before)


@pytest.mark.parametrize("start, end", [("1960-01-01", "1960-02-01"), ("1970-01-05", "1970-02-01")])
def test_a_synthetic_range_before_the_warm_up_names_the_first_session_that_works(mochi_home, start, end):
    # 50 weekday sessions from EPOCH (Monday 1970-01-05) warm the ATR up; a range that ends before
    # EPOCH once printed "the first session that would work is None"
    lake = Lake(MochiSettings.from_env())
    request = parse_request({"ticker": "SYN:GOLD", "start": start, "end": end})
    with pytest.raises(ProviderError, match="the first session that would work is 1970-03-16: choose an end on or "
                                            "after it"):
        check_source(lake, request)


def test_mochi_backtest_refuses_before_any_run_and_writes_nothing(tmp_path, late_import, mochi_home):
    before = sorted(p for p in mochi_home.rglob("*"))
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    env["MOCHI_HOME"] = str(mochi_home)
    proc = subprocess.run([sys.executable, "-m", "mochi_assets.cli", "backtest", "ACME", "--start", "2024-03-01",
                           "--end", "2024-03-29", "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mochi: error: ticker ACME: no tradable session between 2024-03-01")
    assert "too few sessions" in lines[0]
    assert sorted(p for p in mochi_home.rglob("*")) == before


def run_mochi(args: list[str], home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    env["MOCHI_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "mochi_assets.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_import_bars_stores_the_session_and_refuses_a_bad_one(tmp_path, mochi_home):
    bars = synthetic_minute_bars("SYN:USERDATA", dt.date(2024, 3, 4), dt.date(2024, 3, 8))
    path = tmp_path / "acme.csv"
    bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    common = ["import-bars", "ACME", str(path), "--tick-size", "0.01", "--timezone", NY]
    bad = run_mochi([*common, "--session", "08:00-16:30/funday"], mochi_home)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "mochi: error: --session: session days 'funday' are not 'daily', 'weekdays', a range such as 'mon-fri' "
        "or a list such as 'mon,wed,fri'"]
    assert not mochi_home.exists() or not any(mochi_home.rglob("*.parquet"))
    good = run_mochi([*common, "--session", "18:00-17:00/mon-fri"], mochi_home)
    assert good.returncode == 0, good.stderr
    assert ("Sessions: 18:00 (previous evening) to 17:00 America/New_York, sessions mon-fri, day rolls at 18:00"
            in good.stdout)
    lake = Lake(MochiSettings.from_env())
    assert stored_import(lake, "ACME")["session"] == "18:00-17:00/mon-fri"
    request = parse_request({"ticker": "ACME", "start": "2024-03-04", "end": "2024-03-08", "atr": {"short": 1, "long": 1}})
    assert session_calendar(lake, request).open_min == 18 * 60 - 24 * 60
    # a request's `session` key overrides the import's calendar
    override = parse_request({**request.model_dump(mode="json"), "session": "crypto"})
    assert session_calendar(lake, override).describe().startswith("crypto: ")
