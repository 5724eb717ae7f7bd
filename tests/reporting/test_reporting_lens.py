"""Trade lens on hand-made trades: local clock, hold buckets, streaks, summary, empty input."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.reporting.extracts import extract_trades
from mochi_assets.reporting.lens import trade_lens
from mochi_resources.errors import RequestError

NY = "America/New_York"
D = dt.datetime


@pytest.fixture
def hand_trades(tables) -> pl.DataFrame:
    t = tables.trade
    return tables.trades_frame(
        [
            # Trader 1, rows not in entry order; comments give the New York clock.
            t(1, D(2024, 7, 1, 13, 30), 10, 5.0, 0.5, mae=1.0, mfe=6.0),  # Mon 09:30 EDT, 0-15
            t(1, D(2024, 7, 2, 13, 30), 15, 3.0, 0.3, mae=2.0, mfe=4.0),  # Tue 09:30, 15-60 (edge)
            t(1, D(2024, 1, 8, 13, 30), 59, -2.0, -0.2, mae=3.0, mfe=1.0),  # Mon 08:30 EST, 15-60
            t(1, D(2024, 1, 9, 13, 30), 60, -4.0, -0.4, mae=5.0, mfe=0.0),  # Tue 08:30, 60-240
            t(1, D(2024, 7, 5, 2, 0), 300, -10.0, -1.0, mae=10.0, mfe=0.5),  # Thu 22:00 local, 240+
            t(1, D(2024, 7, 8, 13, 30), 240, 1.0, 0.1, mae=0.0, mfe=2.0),  # Mon 09:30, 240+ (edge)
            # Trader 2: one loss.
            t(2, D(2024, 3, 13, 14, 0), 30, -1.0, -0.1, mae=1.5, mfe=0.2),  # Wed 10:00 EDT
        ]
    )


def test_lens_reads_weekday_and_hour_on_the_local_clock(hand_trades):
    lens = trade_lens(hand_trades, timezone=NY)
    by_hour = lens["by_hour"].filter(pl.col("trader_id") == 1)
    assert by_hour.select("hour", "trades").rows() == [(8, 2), (9, 3), (22, 1)]
    nine = by_hour.filter(pl.col("hour") == 9).row(0, named=True)
    assert nine["net_pnl"] == pytest.approx(9.0)
    assert nine["avg_r"] == pytest.approx(0.3)
    assert nine["win_rate"] == pytest.approx(1.0)

    by_day = lens["by_weekday"].filter(pl.col("trader_id") == 1)
    assert by_day.select("weekday", "weekday_num", "trades").rows() == [("Mon", 1, 3), ("Tue", 2, 2), ("Thu", 4, 1)]
    monday = by_day.row(0, named=True)
    assert monday["net_pnl"] == pytest.approx(4.0)
    assert monday["win_rate"] == pytest.approx(2 / 3)
    assert lens["by_hour"].filter(pl.col("trader_id") == 2)["hour"].to_list() == [10]


def test_lens_same_utc_time_is_another_hour_in_another_zone(hand_trades):
    tokyo = trade_lens(hand_trades, timezone="Asia/Tokyo")["by_hour"].filter(pl.col("trader_id") == 1)
    # 13:30 UTC is 22:30 in Tokyo all year; 02:00 UTC is 11:00.
    assert tokyo.select("hour", "trades").rows() == [(11, 1), (22, 5)]


def test_lens_hold_buckets_have_inclusive_lower_edges(hand_trades):
    by_hold = trade_lens(hand_trades, timezone=NY)["by_hold"].filter(pl.col("trader_id") == 1)
    assert by_hold.select("hold_bucket", "hold_min_from", "trades").rows() == [
        ("0-15", 0, 1),
        ("15-60", 15, 2),
        ("60-240", 60, 1),
        ("240+", 240, 2),
    ]
    assert by_hold.filter(pl.col("hold_bucket") == "240+")["net_pnl"].item() == pytest.approx(-9.0)


def test_lens_streaks(hand_trades):
    streaks = trade_lens(hand_trades, timezone=NY)["streaks"]
    # Trader 1 in entry order (Jan before Jul): L L W W L W.
    assert streaks.rows() == [(1, 2, 2, 1), (2, 0, 1, -1)]
    assert streaks.columns == ["trader_id", "longest_win_streak", "longest_loss_streak", "current_streak"]


def test_lens_summary_and_scatter(hand_trades):
    lens = trade_lens(hand_trades, timezone=NY)
    one = lens["summary"].filter(pl.col("trader_id") == 1).row(0, named=True)
    assert one["trades"] == 6
    assert one["wins"] == 3
    assert one["win_rate"] == pytest.approx(0.5)
    assert one["avg_hold_min"] == pytest.approx((10 + 15 + 59 + 60 + 300 + 240) / 6)
    assert one["avg_mae"] == pytest.approx(21.0 / 6)
    assert one["avg_mfe"] == pytest.approx(13.5 / 6)
    assert one["best_weekday"] == "Mon"  # Mon +4, Tue -1, Thu -10
    assert one["best_hour"] == 9
    scatter = lens["mae_mfe"]
    assert scatter.height == hand_trades.height
    assert scatter.filter(pl.col("win")).height == 3
    assert set(scatter.columns) >= {"trader_id", "mae", "mfe", "r", "win"}


def test_lens_of_no_trades_has_every_table_empty_with_columns(hand_trades):
    full = trade_lens(hand_trades, timezone=NY)
    empty = trade_lens(hand_trades.clear(), timezone=NY)
    assert set(empty) == {"by_weekday", "by_hour", "by_hold", "mae_mfe", "streaks", "summary"}
    for name, table in empty.items():
        assert table.is_empty(), name
        assert table.schema == full[name].schema, name


def test_lens_rejects_unknown_timezone(hand_trades):
    with pytest.raises(RequestError, match="timezone"):
        trade_lens(hand_trades, timezone="Mars/Olympus")


def test_lens_tables_add_up_on_random_trades(grid_traders, random_grid_trades):
    extract = extract_trades(random_grid_trades, grid_traders, [2, 6])
    lens = trade_lens(extract, timezone=NY)
    for name in ("by_weekday", "by_hour", "by_hold"):
        totals = lens[name].group_by("trader_id").agg(pl.col("trades").sum(), pl.col("net_pnl").sum()).sort("trader_id")
        assert totals["trades"].to_list() == lens["summary"]["trades"].to_list(), name
        assert totals["net_pnl"].to_list() == pytest.approx(lens["summary"]["net_pnl"].to_list()), name


def _naive_streaks(wins: list[bool]) -> tuple[int, int, int]:
    longest = {True: 0, False: 0}
    run = 0
    for i, w in enumerate(wins):
        run = run + 1 if i and wins[i - 1] == w else 1
        longest[w] = max(longest[w], run)
    current = 0 if not wins else (run if wins[-1] else -run)
    return longest[True], longest[False], current


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=25))
def test_lens_streaks_match_a_plain_loop(wins):
    start = dt.datetime(2024, 2, 5, 14, 30)
    rows = [
        {
            "trader_id": 1,
            "entry_ts": start + dt.timedelta(days=i),
            "exit_ts": start + dt.timedelta(days=i, minutes=30),
            "pnl": 1.0 if w else -1.0,
            "r": 0.1 if w else -0.1,
            "mae": 0.0,
            "mfe": 0.0,
        }
        for i, w in enumerate(wins)
    ]
    frame = pl.DataFrame(rows).with_columns(pl.col("entry_ts", "exit_ts").dt.replace_time_zone("UTC"))
    # Shuffled input: streaks follow entry time, not row order.
    streaks = trade_lens(frame.reverse(), timezone=NY)["streaks"]
    assert streaks.row(0)[1:] == _naive_streaks(wins)
