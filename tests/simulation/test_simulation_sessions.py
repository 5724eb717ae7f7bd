"""Hand-written session cases, each run through the kernel AND the slow reference.

Bars get their session dates two independent ways: sessions.py (what the pipeline uses) for the
kernel, the reference's hand-written calendars for the reference, and the two must agree.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from sim_reference import make_bars, make_traders, reference_trades

from mochi_assets.market_data.sessions import assign_sessions, parse_session
from mochi_assets.simulation.api import simulate, simulate_to_parquet

TICK = 0.25
NY = ZoneInfo("America/New_York")


def ny(day: int, hour: int, minute: int = 0, month: int = 1) -> dt.datetime:
    """A New York wall-clock time in January 2024 as a UTC datetime (7 = Sunday, 8 = Monday)."""
    return dt.datetime(2024, month, day, hour, minute, tzinfo=NY).astimezone(dt.UTC)


def bars_at(times: list[dt.datetime], calendar: str, timezone: str = "UTC") -> pl.DataFrame:
    """Flat bars (price 100, range 99.5-100.5) at `times`; session dates from the reference calendar,
    checked against sessions.py's assignment; ATR 1 everywhere."""
    n = len(times)
    bars = make_bars(times, [100.0] * n, [100.5] * n, [99.5] * n, [100.0] * n, timezone, session=calendar)
    raw = bars.select("ts", "open", "high", "low", "close", "volume")
    mine = assign_sessions(raw, parse_session(calendar, timezone))
    assert mine.select("ts", "session_date").equals(bars.select("ts", "session_date"))
    return bars


def both(bars: pl.DataFrame, calendar: str, timezone: str = "UTC", **trader) -> list[dict]:
    """Trades of one trader from the kernel, after checking that the reference gives the same."""
    traders = make_traders([{"duration_min": 30, "timeout_min": 10, **trader}])
    got = simulate(bars, traders, tick_size=TICK, session=parse_session(calendar, timezone)).to_dicts()
    expected, _ = reference_trades(bars, traders, TICK, timezone, calendar)
    assert got == expected
    return got


def test_sunday_evening_belongs_to_monday_and_a_0930_entry_never_fills_at_the_reopen(tmp_path):
    # Sunday reopen at 17:00 New York, then Monday 09:30 and Tuesday's session
    times = [ny(7, 17, 0), ny(7, 17, 1), ny(7, 18, 0), ny(8, 3, 0), ny(8, 9, 30), ny(8, 9, 31),
             ny(8, 16, 59), ny(8, 17, 0), ny(9, 9, 30), ny(9, 9, 31)]
    bars = bars_at(times, "forex")
    dates = dict(zip(bars["ts"], bars["session_date"]))
    assert dates[ny(7, 17, 0)] == dt.date(2024, 1, 8) == dates[ny(8, 16, 59)]  # Sunday evening is Monday's
    assert dates[ny(8, 17, 0)] == dt.date(2024, 1, 9)  # the day rolls at 17:00
    assert set(bars["session_date"].dt.weekday()) <= {1, 2, 3, 4, 5}  # Monday to Friday only
    trades = both(bars, "forex", entry_time="09:30")
    assert [(t["session_date"], t["entry_ts"]) for t in trades] == [
        (dt.date(2024, 1, 8), ny(8, 9, 30)), (dt.date(2024, 1, 9), ny(9, 9, 30))]
    # an evening entry time is on the evening before the session date (18:00 Sunday for Monday)
    evening = both(bars, "forex", entry_time="18:00", duration_min=1)
    assert [(t["session_date"], t["entry_ts"]) for t in evening] == [
        (dt.date(2024, 1, 8), ny(7, 18, 0)), (dt.date(2024, 1, 9), ny(9, 9, 30))]


def test_forex_session_without_a_bar_after_the_entry_time_is_skipped_and_counted(tmp_path):
    # Monday's session has bars only from the Sunday reopen to 05:00: no 09:30 bar, no trade, and
    # its order never rolls into Tuesday's session (whose first bar is Monday 17:00)
    times = [ny(7, 17, 0), ny(7, 20, 0), ny(8, 5, 0), ny(8, 17, 0), ny(8, 20, 0), ny(9, 9, 45), ny(9, 10, 0)]
    bars = bars_at(times, "forex")
    trades = both(bars, "forex", entry_time="09:30")
    assert [(t["session_date"], t["entry_ts"]) for t in trades] == [(dt.date(2024, 1, 9), ny(9, 9, 45))]
    traders = make_traders([{"entry_time": "09:30"}, {"entry_time": "09:30", "direction": "short"},
                            {"entry_time": "04:00"}])
    report = simulate_to_parquet(bars, traders, tmp_path / "t.parquet", tick_size=TICK,
                                 session=parse_session("forex", "UTC"))
    # per entry time, not per trader: Monday lacks a 09:30 bar; every session has one after 04:00
    assert report.no_entry_bar == {"04:00": 0, "09:30": 1}
    assert report.as_metadata()["sessions_without_entry_bar"] == 1


def test_equity_session_with_no_bar_after_the_entry_time_has_no_trade():
    # Tuesday closes early (last bar 12:59); pre-market bars are outside the session
    times = [ny(2, 8, 0), ny(2, 9, 30), ny(2, 12, 59), ny(3, 7, 0), ny(3, 9, 30), ny(3, 15, 0), ny(3, 15, 1),
             ny(3, 16, 0)]
    bars = bars_at(times, "us-equity")
    assert ny(2, 8, 0) not in bars["ts"].to_list() and ny(3, 16, 0) not in bars["ts"].to_list()
    trades = both(bars, "us-equity", entry_time="15:00")
    assert [(t["session_date"], t["entry_ts"]) for t in trades] == [(dt.date(2024, 1, 3), ny(3, 15, 0))]
    # an entry time before the open takes the session's first bar
    early = both(bars, "us-equity", entry_time="08:00", duration_min=1)
    assert [t["entry_ts"] for t in early] == [ny(2, 9, 30), ny(3, 9, 30)]


def test_crypto_trades_every_day_including_weekends():
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # a Monday
    times = [start + dt.timedelta(hours=h) for h in range(7 * 24)]
    bars = bars_at(times, "crypto")
    trades = both(bars, "crypto", entry_time="12:00", duration_min=60)
    assert [t["session_date"].weekday() for t in trades] == [0, 1, 2, 3, 4, 5, 6]
    assert all(t["entry_ts"].hour == 12 for t in trades)


@pytest.mark.parametrize("calendar", ["forex", "us-equity", "crypto", "calendar-day"])
def test_reference_and_sessions_py_agree_across_daylight_saving(calendar):
    # every 7 minutes for a week around New York's spring-forward night
    start = dt.datetime(2024, 3, 8, tzinfo=dt.UTC)
    times = [start + dt.timedelta(minutes=7 * i) for i in range(7 * 24 * 60 // 7)]
    bars = bars_at(times, calendar, "America/New_York")
    assert bars.height > 0
