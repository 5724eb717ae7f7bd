"""Hand-written cases, one per rule of docs/strategy.md, with exact expected numbers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from sim_reference import make_bars, make_traders

from mochi_assets.simulation import nb
from mochi_assets.simulation.api import TRADE_COLUMNS, simulate, simulate_to_parquet
from mochi_resources.errors import MochiError

TICK = 0.25
T0 = dt.datetime(2024, 1, 2, 14, 0, tzinfo=dt.timezone.utc)


def minute_bars(ohlc: list[tuple[float, float, float, float]], minutes: list[int] | None = None, **kw) -> pl.DataFrame:
    """Bars at T0 + minutes[i] (default: one a minute); ATR 2.0 unless told otherwise."""
    minutes = minutes if minutes is not None else list(range(len(ohlc)))
    ts = [T0 + dt.timedelta(minutes=m) for m in minutes]
    o, h, l, c = (list(col) for col in zip(*ohlc))
    kw.setdefault("default_atr", 2.0)
    return make_bars(ts, o, h, l, c, **kw)


def run(bars: pl.DataFrame, timezone: str = "UTC", **trader) -> list[dict]:
    trader.setdefault("entry_time", "14:00")
    return simulate(bars, make_traders([trader]), tick_size=TICK, timezone=timezone).to_dicts()


def at(minute: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


FLAT = (100.0, 100.0, 100.0, 100.0)


def test_long_stop_entry_fills_at_level_then_limit_exit():
    bars = minute_bars([(100, 100.5, 99.5, 100), (100, 101, 99.5, 100.5), (102, 103, 101.5, 102.5), FLAT])
    (trade,) = run(bars, offset_ticks=2, stop_atr=1.0, limit_atr=1.0, cost_ticks=1.0)
    # Level 100.5 reached on the reference bar; stop 98.5, limit 102.5 reached on bar 2.
    assert trade["entry_ts"] == at(0) and trade["entry_price"] == 100.5
    assert trade["exit_ts"] == at(2) and trade["exit_price"] == 102.5 and trade["exit_reason"] == "limit"
    assert trade["pnl"] == 2.0 - 0.25 and trade["pnl_ticks"] == 7.0 and trade["r"] == 1.75 / 2.0
    assert trade["mae"] == 1.0  # bar 1 low 99.5
    assert trade["mfe"] == 2.0  # exit bar: only its open 102 and the exit 102.5 count
    assert trade["bars_held"] == 2 and trade["session_date"] == dt.date(2024, 1, 2)


def test_long_stop_entry_gap_fills_at_open():
    bars = minute_bars([(100, 100.25, 99.75, 100), (101, 101.5, 100.75, 101), FLAT, FLAT])
    (trade,) = run(bars, offset_ticks=2, duration_min=2)
    assert trade["entry_ts"] == at(1) and trade["entry_price"] == 101.0
    # Neither 99 nor 103 is reached within 2 minutes: time exit at the close of bar 2.
    assert trade["exit_reason"] == "time" and trade["exit_ts"] == at(2) and trade["exit_price"] == 100.0


def test_long_limit_entry_negative_offset_and_gap_below():
    bars = minute_bars([(100, 100.5, 99.75, 100), (99, 99.5, 98.5, 99), FLAT, (98, 98, 90, 95), FLAT])
    (trade,) = run(bars, offset_ticks=-3, stop_atr=1.0, limit_atr=1.5)
    # Buy-limit at 99.25: bar 1 opens at 99, below it, so the fill is at 99.
    assert trade["entry_ts"] == at(1) and trade["entry_price"] == 99.0
    # Stop 97, limit 102: bar 2 reaches neither, bar 3 falls through the stop from an open of 98.
    assert trade["exit_reason"] == "stop" and trade["exit_price"] == 97.0 and trade["exit_ts"] == at(3)
    assert trade["r"] == -1.0 and trade["mae"] == 2.0 and trade["mfe"] == 1.0


def test_short_stop_entry_and_short_limit_entry():
    bars = minute_bars([(100, 100.25, 99.5, 99.5), (99.5, 99.5, 98, 98), (98, 98, 97, 97), FLAT])
    (stop_entry,) = run(bars, direction="short", offset_ticks=1, stop_atr=0.5, limit_atr=1.0)
    assert stop_entry["entry_ts"] == at(0) and stop_entry["entry_price"] == 99.75
    # Short: stop 100.75 and limit 97.75; bar 1 (low 98) reaches neither, bar 2 (low 97) the limit.
    assert stop_entry["exit_reason"] == "limit" and stop_entry["exit_price"] == 97.75
    assert stop_entry["exit_ts"] == at(2) and stop_entry["pnl"] == 2.0 and stop_entry["r"] == 2.0
    bars = minute_bars([(100, 100.25, 99.5, 100), (100.5, 101, 100.5, 101), (101, 101, 100, 100), FLAT])
    (limit_entry,) = run(bars, direction="short", offset_ticks=-2, stop_atr=1.0, limit_atr=0.25)
    # Sell-limit at 100.5: bar 1 opens at 100.5, at the level, so the fill is at the open 100.5.
    assert limit_entry["entry_ts"] == at(1) and limit_entry["entry_price"] == 100.5
    assert limit_entry["exit_reason"] == "limit" and limit_entry["exit_price"] == 100.0


def test_timeout_window_is_half_open():
    bars = minute_bars([FLAT, FLAT, (100, 101, 100, 101), FLAT])
    assert run(bars, offset_ticks=4, timeout_min=2) == []  # bar 2 opens exactly at ref + 2 minutes
    (trade,) = run(bars, offset_ticks=4, timeout_min=3)
    assert trade["entry_ts"] == at(2) and trade["entry_price"] == 101.0


def test_both_levels_in_one_bar_stop_wins_and_counts_as_ambiguous(tmp_path):
    bars = minute_bars([FLAT, (100, 103, 97, 100), FLAT])
    traders = make_traders([{"entry_time": "14:00", "stop_atr": 1.0, "limit_atr": 1.0}])
    (trade,) = simulate(bars, traders, tick_size=TICK, timezone="UTC").to_dicts()
    assert trade["exit_reason"] == "stop" and trade["exit_price"] == 98.0 and trade["exit_ts"] == at(1)
    report = simulate_to_parquet(bars, traders, tmp_path / "t.parquet", tick_size=TICK, timezone="UTC")
    assert report.ambiguous_bars == 1 and report.exit_reasons == {"stop": 1, "limit": 0, "time": 0, "end": 0}
    assert report.sessions == 1 and report.fills_per_session == 1.0


def test_bar_opening_past_the_limit_exits_at_open_even_if_it_then_reaches_the_stop():
    bars = minute_bars([FLAT, (103, 103, 97, 98), FLAT])
    (trade,) = run(bars, stop_atr=1.0, limit_atr=1.0)
    assert trade["exit_reason"] == "limit" and trade["exit_price"] == 103.0
    assert trade["mae"] == 0.0 and trade["mfe"] == 3.0


def test_gap_through_the_stop_exits_at_open_and_loses_more_than_the_risk(tmp_path):
    bars = minute_bars([FLAT, (100.5, 101, 100, 100.5), (95, 104, 94, 100), FLAT])
    (trade,) = run(bars, stop_atr=1.0, limit_atr=1.0, cost_ticks=2.0)
    assert trade["exit_reason"] == "stop" and trade["exit_price"] == 95.0 and trade["exit_ts"] == at(2)
    assert trade["pnl"] == -5.5 and trade["r"] == -2.75
    assert trade["mae"] == 5.0 and trade["mfe"] == 1.0  # exit bar: open 95 only, not its high 104


def test_time_exit_at_last_bar_inside_the_window_may_be_the_fill_bar():
    bars = minute_bars([FLAT, (100, 100.5, 99.5, 100.25), FLAT], minutes=[0, 1, 30])
    (trade,) = run(bars, stop_atr=1.0, limit_atr=1.0, duration_min=30)
    # Bar at minute 30 is outside [0, 30): exit at the close of bar 1, whole range counted.
    assert trade["exit_reason"] == "time" and trade["exit_ts"] == at(1) and trade["exit_price"] == 100.25
    assert trade["mae"] == 0.5 and trade["mfe"] == 0.5 and trade["bars_held"] == 1
    (trade,) = run(bars, stop_atr=1.0, limit_atr=1.0, duration_min=1)
    assert trade["exit_reason"] == "time" and trade["exit_ts"] == at(0) and trade["bars_held"] == 0
    assert trade["mae"] == 0.0 and trade["mfe"] == 0.0 and trade["pnl"] == 0.0


def test_end_of_data_inside_the_window():
    bars = minute_bars([FLAT, (100, 100.5, 99.5, 100.25), (100, 101, 99, 100.5)])
    (trade,) = run(bars, stop_atr=1.0, limit_atr=1.0, duration_min=30, cost_ticks=1.0)
    assert trade["exit_reason"] == "end" and trade["exit_ts"] == at(2) and trade["exit_price"] == 100.5
    assert trade["mae"] == 1.0 and trade["mfe"] == 1.0 and trade["pnl"] == 0.25
    bars = minute_bars([FLAT])
    (trade,) = run(bars, duration_min=30)
    assert trade["exit_reason"] == "end" and trade["bars_held"] == 0 and trade["mae"] == 0.0


def test_one_position_at_a_time_and_warm_up_days():
    day = dt.timedelta(days=1)
    ts = [T0, T0 + dt.timedelta(minutes=1), T0 + day, T0 + day + dt.timedelta(minutes=1), T0 + 2 * day,
          T0 + 2 * day + dt.timedelta(minutes=1), T0 + 3 * day, T0 + 3 * day + dt.timedelta(minutes=1)]
    flat = [100.0] * len(ts)
    atr = {dt.date(2024, 1, 2): None, dt.date(2024, 1, 3): 2.0, dt.date(2024, 1, 4): 2.0, dt.date(2024, 1, 5): 2.0}
    bars = make_bars(ts, flat, flat, flat, flat, "UTC", atr)
    trades = run(bars, duration_min=24 * 60 + 1)
    # Jan 2: warm-up. Jan 3: trade held into Jan 4 14:00 (its reference bar) -> Jan 4 skipped.
    assert [t["session_date"] for t in trades] == [dt.date(2024, 1, 3), dt.date(2024, 1, 5)]
    assert trades[0]["exit_ts"] == T0 + 2 * day and trades[0]["exit_reason"] == "time"
    assert trades[1]["exit_reason"] == "end"


def test_a_live_entry_order_blocks_later_sessions_like_a_position():
    """A buy-stop from Jan 3, still live (long timeout) at Jan 4's reference bar, keeps Jan 4 from
    trading whether or not it fills later: so a prefix of the data never holds a closed Jan 4 trade
    that the full data (where the Jan 3 order fills) would not have."""
    day = dt.timedelta(days=1)
    jan3, jan4 = T0 + day, T0 + 2 * day
    ts = [jan3, jan3 + dt.timedelta(minutes=1)] + [jan4 + dt.timedelta(minutes=m) for m in range(5)]
    #      Jan 3 ref (level 101)   Jan 4 ref open 99 (own level 100), 14:01 reaches 100, 14:03 reaches 101
    o = [100.0, 100.0, 99.0, 99.0, 100.0, 100.0, 101.0]
    h = [100.0, 100.0, 99.0, 100.5, 100.0, 101.5, 101.0]
    low = [100.0, 100.0, 99.0, 99.0, 100.0, 100.0, 101.0]
    c = [100.0, 100.0, 99.0, 100.0, 100.0, 101.0, 101.0]
    bars = make_bars(ts, o, h, low, c, "UTC", {dt.date(2024, 1, 3): 2.0, dt.date(2024, 1, 4): 2.0})
    kw = dict(offset_ticks=4, timeout_min=2 * 24 * 60, duration_min=1)
    (trade,) = run(bars, **kw)
    assert trade["session_date"] == dt.date(2024, 1, 3) and trade["entry_ts"] == jan4 + dt.timedelta(minutes=3)
    assert trade["entry_price"] == 101.0 and trade["exit_reason"] == "time"
    # Cut after Jan 4's would-be trade closed but before the Jan 3 order fills: still no Jan 4 trade.
    assert run(bars.head(5), **kw) == []
    # With a timeout that expires before Jan 4, Jan 4 trades on its own (fills at 100 on 14:01).
    (trade,) = run(bars, **{**kw, "timeout_min": 60})
    assert trade["session_date"] == dt.date(2024, 1, 4) and trade["entry_price"] == 100.0


def test_entry_time_is_local_and_needs_a_bar_at_or_after_it():
    # 14:00 UTC is 09:00 in New York in January.
    bars = minute_bars([FLAT, FLAT, (100, 100, 100, 100.5), FLAT], minutes=[0, 29, 30, 31], timezone="America/New_York")
    (trade,) = run(bars, timezone="America/New_York", entry_time="09:30", duration_min=1)
    assert trade["entry_ts"] == at(30) and trade["exit_price"] == 100.5
    assert run(bars, timezone="America/New_York", entry_time="09:32") == []
    assert run(bars, timezone="UTC", entry_time="09:30")[0]["entry_ts"] == at(0)


def test_empty_result_has_the_trades_schema(tmp_path):
    bars = minute_bars([FLAT, FLAT], default_atr=None)
    traders = make_traders([{}])
    trades = simulate(bars, traders, tick_size=TICK, timezone="UTC")
    assert trades.height == 0 and trades.columns == TRADE_COLUMNS
    report = simulate_to_parquet(bars, traders, tmp_path / "t.parquet", tick_size=TICK, timezone="UTC")
    assert report.trades == 0 and report.sessions == 0 and report.fills_per_session == 0.0
    assert pl.read_parquet(tmp_path / "t.parquet").columns == TRADE_COLUMNS


def test_schema_types():
    bars = minute_bars([FLAT, FLAT])
    trades = simulate(bars, make_traders([{}]), tick_size=TICK, timezone="UTC")
    assert trades.schema["entry_ts"] == pl.Datetime("us", "UTC")
    assert trades.schema["session_date"] == pl.Date
    assert trades.schema["exit_reason"] == pl.String
    assert trades.schema["bars_held"] == pl.Int64


@pytest.mark.parametrize("column", ["atr", "session_date", "high"])
def test_missing_bar_column_is_named(column):
    bars = minute_bars([FLAT]).drop(column)
    with pytest.raises(MochiError, match=column):
        simulate(bars, make_traders([{}]), tick_size=TICK, timezone="UTC")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop("stop_atr"), "stop_atr"),
        (lambda t: t.with_columns(direction=pl.lit("sideways")), "direction"),
        (lambda t: t.with_columns(entry_time=pl.lit("9h30")), "entry_time"),
        (lambda t: t.with_columns(timeout_min=pl.lit(0)), "timeout_min"),
        (lambda t: pl.concat([t, t]), "trader_id"),
    ],
)
def test_bad_traders_are_named(change, message):
    with pytest.raises(MochiError, match=message):
        simulate(minute_bars([FLAT]), change(make_traders([{}])), tick_size=TICK, timezone="UTC")


def test_unsorted_bars_are_rejected():
    bars = minute_bars([FLAT, FLAT], minutes=[1, 0])
    with pytest.raises(MochiError, match="ts"):
        simulate(bars, make_traders([{}]), tick_size=TICK, timezone="UTC")


def test_range_structures_agree_with_numpy():
    rng = np.random.default_rng(3)
    for n in (1, 15, 16, 17, 100, 3000):
        high = rng.normal(size=n)
        low = high - rng.random(n)
        tab_max, tab_min = nb.block_tables_nb(high, low)
        for _ in range(200):
            a = int(rng.integers(0, n))
            b = int(rng.integers(a, n + 1))
            x = float(rng.normal())
            above = np.nonzero(high[a:b] >= x)[0]
            below = np.nonzero(low[a:b] <= x)[0]
            assert nb.first_ge_nb(high, tab_max, a, b, x) == (a + above[0] if above.size else b)
            assert nb.first_le_nb(low, tab_min, a, b, x) == (a + below[0] if below.size else b)
            if b > a:
                assert nb.range_extremes_nb(high, low, tab_max, tab_min, a, b) == (high[a:b].max(), low[a:b].min())
        ts = np.cumsum(rng.choice([60, 60, 60, 120, 7200], size=n)).astype(np.int64)
        min_step = int(np.diff(ts).min()) if n > 1 else 1
        for _ in range(100):
            start = int(rng.integers(0, n))
            target = int(rng.integers(ts[0] - 100, ts[-1] + 10_000))
            expected = max(start, int(np.searchsorted(ts, target, side="left")))
            assert nb.search_ts_nb(ts, start, target, min_step) == expected
