"""Scenario grids: derived families and axes, explicit grids, trader numbering."""

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.market_data.indicators import enhance_bars
from mochi_assets.market_data.sessions import parse_session
from mochi_assets.market_data.synthetic import synthetic_minute_bars
from mochi_assets.request import parse_request
from mochi_assets.scenarios.grids import (
    EXCURSION_QUANTILES,
    _window_extremes,
    expand_traders,
    holding_excursions,
    scenario_grids,
)
from mochi_assets.simulation.api import simulate
from mochi_resources.errors import MochiError

TZ = "America/New_York"
TICK = 0.01
CAL = parse_session("calendar-day", TZ)
FOREX = parse_session("forex", TZ)


@pytest.fixture(scope="module")
def gold() -> pl.DataFrame:
    """Seven weeks of synthetic SYN:GOLD minute bars with short ATRs (warm after a week)."""
    bars = synthetic_minute_bars("SYN:GOLD", dt.date(2024, 3, 1), dt.date(2024, 4, 19))
    return enhance_bars(bars, timezone=TZ, short=3, long=5, alpha=0.5)


def _request(**extra):
    return parse_request({"ticker": "SYN:GOLD", "start": "2024-03-01", "end": "2024-04-19", **extra})


def _reference_excursions(bars: pl.DataFrame, entry: str, duration: int) -> list[tuple[dt.date, float, float]]:
    """Slow loops: per session with an ATR, first bar at or after the entry time, then the bars
    within ``duration`` minutes of it; (session_date, up, down) in ATR units."""
    hours, minutes = map(int, entry.split(":"))
    rows = bars.sort("ts").to_dicts()
    out = []
    for session in sorted({r["session_date"] for r in rows if r["atr"] is not None}):
        mine = [r for r in rows if r["session_date"] == session]
        start = dt.datetime.combine(session, dt.time(hours, minutes), tzinfo=ZoneInfo(TZ))
        refs = [i for i, r in enumerate(mine) if r["ts"] >= start]
        if not refs:
            continue
        ref = mine[refs[0]]
        end = ref["ts"] + dt.timedelta(minutes=duration)
        window = [r for r in rows if ref["ts"] <= r["ts"] < end]
        top, bottom = max(r["high"] for r in window), min(r["low"] for r in window)
        out.append((session, (top - ref["open"]) / ref["atr"], (ref["open"] - bottom) / ref["atr"]))
    return out


def test_excursions_match_slow_loops(gold):
    # 2 days of the data keeps the loops quick; 1,500 minutes makes windows overlap the next session
    sample = gold.filter(pl.col("session_date").is_between(dt.date(2024, 3, 12), dt.date(2024, 3, 15)))
    for entry, duration in (("09:30", 240), ("20:00", 1500)):
        got = holding_excursions(sample, CAL, [entry], [duration])
        want = _reference_excursions(sample, entry, duration)
        assert got["session_date"].to_list() == [w[0] for w in want]
        np.testing.assert_allclose(got["up_atr"].to_numpy(), [w[1] for w in want], rtol=1e-12)
        np.testing.assert_allclose(got["down_atr"].to_numpy(), [w[2] for w in want], rtol=1e-12)


def test_default_families_are_derived_from_the_data(gold):
    grids = scenario_grids(_request(), gold, tick_size=TICK, calendar=CAL)
    rows = {r["scenario"]: r for r in grids.iter_rows(named=True)}
    assert list(rows) == ["breakout-long", "breakout-short", "pullback-long", "pullback-short"]
    median_ticks = gold.filter(pl.col("atr").is_not_null()).group_by("session_date").agg(pl.col("atr").first())[
        "atr"
    ].median() / TICK
    assert rows["breakout-long"]["offset_ticks"] == sorted({round(f * median_ticks) for f in (0, 0.05, 0.1, 0.25)})
    assert rows["breakout-short"]["direction"] == "short"
    moves = holding_excursions(gold, CAL, ["09:30"], [240])
    for name, adverse, favourable in (("breakout-long", "down_atr", "up_atr"), ("breakout-short", "up_atr", "down_atr")):
        stops, limits = rows[name]["stop_atr"], rows[name]["limit_atr"]
        assert len(stops) == len(EXCURSION_QUANTILES) and stops == sorted(stops)
        for levels, column in ((stops, adverse), (limits, favourable)):
            quantiles = np.quantile(moves[column].to_numpy(), EXCURSION_QUANTILES)
            # two significant digits of each quantile
            np.testing.assert_allclose(levels, quantiles, rtol=0.05)
    assert rows["breakout-long"]["derived_axes"] == "offset_ticks,stop_atr,limit_atr"
    n = rows["breakout-long"]
    assert n["traders"] == len(n["offset_ticks"]) * len(n["stop_atr"]) * len(n["limit_atr"])
    # a 240-minute hold on GOLD moves well under a daily ATR: the levels say so
    assert max(rows["breakout-long"]["stop_atr"]) < 2.0


def test_every_derived_level_changes_some_trades(gold):
    """Simulated on the synthetic data: traders differing only by neighbouring stop (or limit)
    levels of a derived axis never trade identically."""
    req = _request(scenarios={"b": {"direction": "long", "offset_ticks": [0]}, "s": {"direction": "short", "offset_ticks": [0]}})
    grids = scenario_grids(req, gold, tick_size=TICK, calendar=CAL)
    for scenario in ("b", "s"):
        traders = expand_traders(grids, scenario)
        trades = simulate(gold, traders, tick_size=TICK, timezone=TZ)
        identity = ["session_date", "entry_ts", "exit_ts", "exit_price", "exit_reason"]
        outcome = {
            (row["stop_atr"], row["limit_atr"]): trades.filter(pl.col("trader_id") == row["trader_id"]).select(identity)
            for row in traders.iter_rows(named=True)
        }
        stops = sorted({s for s, _ in outcome})
        limits = sorted({lim for _, lim in outcome})
        assert len(stops) == len(limits) == len(EXCURSION_QUANTILES)
        for lo, hi in zip(stops, stops[1:]):
            assert any(not outcome[(lo, lim)].equals(outcome[(hi, lim)]) for lim in limits), (scenario, lo, hi)
        for lo, hi in zip(limits, limits[1:]):
            assert any(not outcome[(s, lo)].equals(outcome[(s, hi)]) for s in stops), (scenario, lo, hi)


def test_explicit_axes_win_and_missing_ones_are_derived(gold):
    req = _request(
        entry_times=["09:30", "10:00"],
        duration_min=[60, 120],
        scenarios={"mine": {"direction": "short", "stop_atr": [1.0], "timeout_min": [5, 10, 15]}},
    )
    row = scenario_grids(req, gold, tick_size=TICK, calendar=CAL).row(0, named=True)
    assert row["stop_atr"] == [1.0] and len(row["limit_atr"]) == 4
    assert row["timeout_min"] == [5, 10, 15] and row["duration_min"] == [60, 120]
    assert row["traders"] == 2 * len(row["offset_ticks"]) * 1 * 4 * 2 * 3
    assert row["derived_axes"] == "offset_ticks,limit_atr"
    # the limits come from both entry times and both durations
    moves = holding_excursions(gold, CAL, ["09:30", "10:00"], [60, 120])
    np.testing.assert_allclose(row["limit_atr"], np.quantile(moves["down_atr"].to_numpy(), EXCURSION_QUANTILES), rtol=0.05)
    traders = expand_traders(scenario_grids(req, gold, tick_size=TICK, calendar=CAL), "mine")
    assert traders.height == row["traders"]
    assert traders["trader_id"].to_list() == list(range(traders.height))
    assert traders.unique(subset=[c for c in traders.columns if c != "trader_id"]).height == traders.height
    # numbering is stable: same request and data give the same ids
    assert traders.equals(expand_traders(scenario_grids(req, gold, tick_size=TICK, calendar=CAL), "mine"))


def test_levels_are_rounded_positive_and_distinct():
    from mochi_assets.scenarios.grids import excursion_levels

    assert excursion_levels(pl.Series([0.1234] * 10)) == [0.12]
    assert excursion_levels(pl.Series(np.linspace(0.0, 2.0, 101))) == [0.4, 0.8, 1.2, 1.6]
    assert excursion_levels(pl.Series([0.0] * 5 + [1.0] * 5)) == [1.0]
    assert excursion_levels(pl.Series([], dtype=pl.Float64)) == []
    assert all(math.isfinite(v) for v in excursion_levels(pl.Series([0.003, 0.0041, 0.07])))


def test_no_window_after_the_entry_time_is_a_clear_error(gold):
    # 23:59 + 1 minute: GOLD trades then, so use an equity-like cut of the bars: none after 16:00
    day_only = gold.filter(pl.col("ts").dt.convert_time_zone(TZ).dt.hour() < 16)
    with pytest.raises(MochiError, match=r"breakout-long: cannot derive stop_atr/limit_atr.*23:30"):
        scenario_grids(_request(entry_times=["23:30"]), day_only, tick_size=TICK, calendar=CAL)
    explicit = _request(entry_times=["23:30"], scenarios={"x": {"direction": "long", "stop_atr": [1.0], "limit_atr": [2.0]}})
    assert scenario_grids(explicit, day_only, tick_size=TICK, calendar=CAL)["traders"].to_list() == [4]


def test_no_atr_yet_is_a_clear_error(gold):
    with pytest.raises(MochiError, match="shorter than the ATR warm-up"):
        scenario_grids(_request(), gold.with_columns(pl.lit(None, dtype=pl.Float64).alias("atr")), tick_size=TICK, calendar=CAL)


def test_unknown_scenario_is_named(gold):
    with pytest.raises(MochiError, match="'nope' is not in this ticker's grids"):
        expand_traders(scenario_grids(_request(), gold, tick_size=TICK, calendar=CAL), "nope")


def test_entry_times_follow_a_session_that_opens_the_evening_before():
    """Hourly bars of a 24x5-style calendar: session D runs from 17:00 on D-1 to 17:00 on D
    (New York). An 18:00 entry is on the evening before, a 09:30 entry on the session's date."""
    rows = []
    for d in (dt.date(2024, 3, 5), dt.date(2024, 3, 6)):
        start = dt.datetime.combine(d - dt.timedelta(days=1), dt.time(17), tzinfo=ZoneInfo(TZ))
        for h in range(24):
            ts = (start + dt.timedelta(hours=h)).astimezone(dt.timezone.utc)
            price = 100.0 + h + (d.day - 5) * 50
            rows.append({"ts": ts, "open": price, "high": price + 0.5, "low": price - 0.25, "session_date": d, "atr": 2.0})
    bars = pl.DataFrame(rows).with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    evening = holding_excursions(bars, FOREX, ["18:00"], [60])
    assert evening["session_date"].to_list() == [dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
    # the window is the single 18:00 bar: up 0.5 / 2, down 0.25 / 2
    assert evening["up_atr"].to_list() == [0.25, 0.25] and evening["down_atr"].to_list() == [0.125, 0.125]
    morning = holding_excursions(bars, FOREX, ["09:30"], [120])
    # first bar at or after 09:30 is 10:00 on the session's date; two hourly bars in 120 minutes
    assert morning["up_atr"].to_list() == [(1.0 + 0.5) / 2] * 2 and morning["down_atr"].to_list() == [0.125] * 2
    # 17:00 on the date is the next session's open, so the entry is at 17:00 the evening before
    assert holding_excursions(bars, FOREX, ["17:00"], [60]).height == 2


@settings(max_examples=40, deadline=None)
@given(
    prices=st.lists(st.floats(-50, 50), min_size=1, max_size=60),
    windows=st.lists(st.tuples(st.integers(0, 59), st.integers(1, 40)), min_size=1, max_size=20),
)
def test_window_extremes_match_slices(prices, windows):
    """Any sorted windows, overlapping or not, against max/min of plain slices."""
    high = np.array(prices) + 1.0
    low = np.array(prices) - 1.0
    n = high.shape[0]
    spans = sorted({(s % n, min(n, s % n + length)) for s, length in windows})
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    highest, lowest = _window_extremes(high, low, starts, ends)
    assert highest.tolist() == [high[s:e].max() for s, e in spans]
    assert lowest.tolist() == [low[s:e].min() for s, e in spans]


def _random_walk_bars(first: dt.datetime, count: int, step_min: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 + np.cumsum(rng.normal(0.0, 0.2, count))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.1, (2, count)))
    return pl.DataFrame(
        {
            "ts": [first + dt.timedelta(minutes=step_min * i) for i in range(count)],
            "open": open_,
            "high": np.maximum(open_, close) + wick[0],
            "low": np.minimum(open_, close) - wick[1],
            "close": close,
            "volume": np.ones(count),
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))


def _assert_windows_start_at_simulated_entries(bars: pl.DataFrame, calendar, entry_times: list[str], duration: int):
    """A long stop at offset 0 fills on the reference bar at its open, so the simulation's entry_ts
    and entry_price are the window start and P; the excursions must be measured from them."""
    moves = holding_excursions(bars, calendar, entry_times, [duration])
    traders = pl.DataFrame(
        {
            "trader_id": list(range(len(entry_times))),
            "direction": "long",
            "entry_time": entry_times,
            "offset_ticks": 0,
            "stop_atr": 1e6,
            "limit_atr": 1e6,
            "duration_min": duration,
            "timeout_min": duration,
            "cost_ticks": 0.0,
        }
    )
    trades = simulate(bars, traders, tick_size=TICK, session=calendar)
    rows = bars.sort("ts")
    for i, entry in enumerate(entry_times):
        mine = trades.filter(pl.col("trader_id") == i).sort("session_date")
        got = moves.filter(pl.col("entry_time") == entry).sort("session_date")
        assert mine.height > 3 and got["session_date"].to_list() == mine["session_date"].to_list()
        for trade, move in zip(mine.iter_rows(named=True), got.iter_rows(named=True)):
            window = rows.filter(
                pl.col("ts").is_between(trade["entry_ts"], trade["entry_ts"] + dt.timedelta(minutes=duration), closed="left")
            )
            atr = window["atr"][0]
            assert window["open"][0] == trade["entry_price"]
            assert move["up_atr"] == pytest.approx((window["high"].max() - trade["entry_price"]) / atr, rel=1e-12)
            assert move["down_atr"] == pytest.approx((trade["entry_price"] - window["low"].min()) / atr, rel=1e-12)
    return trades


def test_crypto_windows_start_at_the_simulations_entry_bars_on_utc_days():
    """Crypto trades on UTC days whatever the request's timezone: a 09:30 entry is 09:30 UTC (the
    old grid code placed it at 09:30 New York, 4-5 hours off the bars the simulation enters on)."""
    crypto = parse_session("crypto", TZ)
    minute = _random_walk_bars(dt.datetime(2024, 3, 1), 12 * 24 * 12, 5, seed=3)
    bars = enhance_bars(minute, session=crypto, short=2, long=3, alpha=0.5)
    trades = _assert_windows_start_at_simulated_entries(bars, crypto, ["09:30", "22:00"], 90)
    hours = trades.select(pl.col("entry_ts").dt.convert_time_zone("UTC").dt.strftime("%H:%M"))["entry_ts"]
    assert set(hours.to_list()) == {"09:30", "22:00"}


def test_forex_windows_start_at_the_simulations_entry_bars():
    """A 24x5 calendar rolling at 17:00 New York: 18:00 is entered on the evening before the session
    date, 09:30 on the date itself, in both the grids and the simulation."""
    minute = synthetic_minute_bars("SYN:EURUSD", dt.date(2024, 3, 4), dt.date(2024, 3, 22))
    bars = enhance_bars(minute, session=FOREX, short=2, long=3, alpha=0.5)
    trades = _assert_windows_start_at_simulated_entries(bars, FOREX, ["09:30", "18:00"], 120)
    evening = trades.filter(pl.col("trader_id") == 1)
    local = evening["entry_ts"].dt.convert_time_zone(TZ)
    assert (local.dt.date() == evening["session_date"] - dt.timedelta(days=1)).all()
