"""Scenario grids: derived families and axes, explicit grids, trader numbering."""

import datetime as dt

import polars as pl
import pytest

from mochi_assets.request import parse_request
from mochi_assets.scenarios.grids import DEFAULT_LIMIT_ATR, DEFAULT_STOP_ATR, expand_traders, scenario_grids
from mochi_resources.errors import MochiError


def enhanced(atr: float | None, days: int = 10) -> pl.DataFrame:
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    return pl.DataFrame({"session_date": dates, "atr": [atr] * days}, schema={"session_date": pl.Date, "atr": pl.Float64})


def test_default_families_are_derived_from_the_median_atr():
    req = parse_request({"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-03-01"})
    grids = scenario_grids(req, enhanced(2.0), tick_size=0.01)  # median ATR = 200 ticks
    rows = {r["scenario"]: r for r in grids.iter_rows(named=True)}
    assert list(rows) == ["breakout-long", "breakout-short", "pullback-long", "pullback-short"]
    assert rows["breakout-long"]["offset_ticks"] == [0, 10, 20, 50]
    assert rows["pullback-short"]["offset_ticks"] == [-10, -20, -50]
    assert rows["breakout-short"]["direction"] == "short"
    assert rows["breakout-long"]["stop_atr"] == DEFAULT_STOP_ATR and rows["breakout-long"]["limit_atr"] == DEFAULT_LIMIT_ATR
    assert rows["breakout-long"]["traders"] == 1 * 4 * 4 * 4 * 1 * 1


def test_explicit_axes_win_and_missing_ones_are_derived():
    req = parse_request({
        "ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-03-01", "entry_times": ["09:30", "10:00"],
        "duration_min": [60, 120],
        "scenarios": {"mine": {"direction": "short", "stop_atr": [1.0], "timeout_min": [5, 10, 15]}},
    })
    row = scenario_grids(req, enhanced(1.0), tick_size=0.01).row(0, named=True)
    assert row["offset_ticks"] == [0, 5, 10, 25] and row["stop_atr"] == [1.0]
    assert row["timeout_min"] == [5, 10, 15] and row["duration_min"] == [60, 120]
    assert row["traders"] == 2 * 4 * 1 * 4 * 2 * 3
    assert row["derived_axes"] == "offset_ticks,limit_atr"
    traders = expand_traders(scenario_grids(req, enhanced(1.0), tick_size=0.01), "mine")
    assert traders.height == row["traders"]
    assert traders["trader_id"].to_list() == list(range(traders.height))
    assert traders.unique(subset=[c for c in traders.columns if c != "trader_id"]).height == traders.height
    # numbering is stable: same request and data give the same ids
    assert traders.equals(expand_traders(scenario_grids(req, enhanced(1.0), tick_size=0.01), "mine"))


def test_no_atr_yet_is_a_clear_error():
    req = parse_request({"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-01-20"})
    with pytest.raises(MochiError, match="shorter than the ATR warm-up"):
        scenario_grids(req, enhanced(None), tick_size=0.01)


def test_unknown_scenario_is_named():
    req = parse_request({"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-03-01"})
    with pytest.raises(MochiError, match="'nope' is not in this ticker's grids"):
        expand_traders(scenario_grids(req, enhanced(1.0), tick_size=0.01), "nope")
