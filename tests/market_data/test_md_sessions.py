"""Session calendars: parsing, assignment, and daily bars and ATR built from sessions."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.market_data.indicators import daily_bars, enhance_bars
from mochi_assets.market_data.sessions import (
    assign_sessions,
    first_tradable_session,
    parse_session,
    session_date_expr,
    session_dates,
)
from mochi_resources.errors import RequestError

NY = ZoneInfo("America/New_York")


def forex_like_sample(weeks: int = 4, seed: int = 3) -> pl.DataFrame:
    """5-minute bars from Sunday 17:00 to Friday 17:00 New York for `weeks` weeks (Sunday reopen,
    weekend gap, a daylight-saving change in the middle), random-walk prices."""
    rng = np.random.default_rng(seed)
    ts: list[dt.datetime] = []
    sunday = dt.date(2024, 2, 25)  # New York springs forward on 2024-03-10
    for w in range(weeks):
        open_ = dt.datetime.combine(sunday + dt.timedelta(weeks=w), dt.time(17, 0), NY)
        close = dt.datetime.combine(sunday + dt.timedelta(weeks=w, days=5), dt.time(17, 0), NY)
        t = open_.astimezone(dt.UTC)
        while t < close.astimezone(dt.UTC):
            if rng.random() > 0.05:  # some missing bars
                ts.append(t)
            t += dt.timedelta(minutes=5)
    n = len(ts)
    opens = 100 + np.cumsum(rng.normal(0, 0.05, n))
    closes = opens + rng.normal(0, 0.03, n)
    highs = np.maximum(opens, closes) + rng.exponential(0.02, n)
    lows = np.minimum(opens, closes) - rng.exponential(0.02, n)
    return pl.DataFrame(
        {"ts": ts, "open": opens, "high": highs, "low": lows, "close": closes, "volume": np.ones(n)},
        schema={"ts": pl.Datetime("us", "UTC"), "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
                "close": pl.Float64, "volume": pl.Float64},
    )


def independent_forex_daily(bars: pl.DataFrame) -> list[tuple]:
    """Daily bars by hand: a bar at or after 17:00 New York belongs to the next day's session."""
    sessions: dict[dt.date, list[tuple]] = {}
    for row in bars.iter_rows(named=True):
        local = row["ts"].astimezone(NY)
        day = local.date() + dt.timedelta(days=1) if local.time() >= dt.time(17, 0) else local.date()
        sessions.setdefault(day, []).append(row)
    out = []
    for day in sorted(sessions):
        rows = sessions[day]
        out.append((day, rows[0]["open"], max(r["high"] for r in rows), min(r["low"] for r in rows),
                    rows[-1]["close"], sum(r["volume"] for r in rows)))
    return out


def wilder_by_hand(daily: list[tuple], period: int) -> list[float | None]:
    """Wilder ATR by its textbook recursion, one value per daily bar (None before period-1)."""
    out: list[float | None] = []
    atr = None
    trs = []
    for i, (_, _, high, low, close, _) in enumerate(daily):
        tr = high - low if i == 0 else max(high - low, abs(high - daily[i - 1][4]), abs(low - daily[i - 1][4]))
        trs.append(tr)
        if i == period - 1:
            atr = sum(trs) / period
        elif i >= period:
            atr = (atr * (period - 1) + tr) / period
        out.append(atr)
    return out


def test_daily_bars_and_atr_follow_forex_sessions():
    bars = forex_like_sample()
    forex = parse_session("forex", "UTC")
    expected = independent_forex_daily(bars)
    daily = daily_bars(bars, session=forex)
    assert daily.rows() == expected  # first, max, min, last and a sum of ones are exact
    # five sessions a week, Monday to Friday: the Sunday reopen is part of Monday's daily bar
    assert daily.height == 4 * 5
    assert set(daily["session_date"].dt.weekday()) == {1, 2, 3, 4, 5}
    sunday = bars.filter(pl.col("ts").dt.convert_time_zone("America/New_York").dt.weekday() == 7)
    assert sunday.height > 0 and daily.row(0)[1] == sunday["open"][0]

    short, long, alpha = 3, 5, 0.25
    enhanced = enhance_bars(bars, session=forex, short=short, long=long, alpha=alpha)
    per_session = enhanced.group_by("session_date", maintain_order=True).agg(pl.col("atr").first(),
                                                                              pl.col("atr").n_unique().alias("k"))
    assert (per_session["k"] == 1).all()
    atr_s, atr_l = wilder_by_hand(expected, short), wilder_by_hand(expected, long)
    by_hand = [None] + [None if a is None or b is None else alpha * a + (1 - alpha) * b
                        for a, b in zip(atr_s[:-1], atr_l[:-1])]  # the value of D comes from D-1
    got = per_session["atr"].to_list()
    assert [g is None for g in got] == [h is None for h in by_hand]
    assert [g for g in got if g is not None] == pytest.approx([h for h in by_hand if h is not None], rel=1e-12)
    assert sum(h is None for h in by_hand) == long  # warm-up: `long` sessions


def test_enhance_bars_keeps_the_requested_sessions_with_the_atr_of_the_warm_up():
    bars = forex_like_sample()
    forex = parse_session("forex", "UTC")
    full = enhance_bars(bars, session=forex, short=3, long=5, alpha=0.5)
    start, end = dt.date(2024, 3, 11), dt.date(2024, 3, 15)
    cut = enhance_bars(bars, session=forex, short=3, long=5, alpha=0.5, start=start, end=end)
    assert cut["session_date"].min() == start and cut["session_date"].max() == end
    assert cut.equals(full.filter(pl.col("session_date").is_between(start, end)))
    assert cut["atr"].null_count() == 0
    # Monday's session (the first) starts with the Sunday-evening reopen
    reopen = dt.datetime(2024, 3, 10, 17, 0, tzinfo=NY).astimezone(dt.UTC)
    assert cut["ts"][0] == bars.filter(pl.col("ts") >= reopen)["ts"][0] < reopen + dt.timedelta(hours=1)


def test_session_assignment_of_every_calendar():
    ts = pl.DataFrame({"ts": [
        dt.datetime(2024, 1, 5, 16, 59, tzinfo=NY), dt.datetime(2024, 1, 5, 17, 0, tzinfo=NY),  # Friday close
        dt.datetime(2024, 1, 6, 12, 0, tzinfo=NY),  # Saturday
        dt.datetime(2024, 1, 7, 16, 59, tzinfo=NY), dt.datetime(2024, 1, 7, 17, 0, tzinfo=NY),  # Sunday reopen
        dt.datetime(2024, 1, 8, 9, 29, tzinfo=NY), dt.datetime(2024, 1, 8, 9, 30, tzinfo=NY),
        dt.datetime(2024, 1, 8, 15, 59, tzinfo=NY), dt.datetime(2024, 1, 8, 16, 0, tzinfo=NY),
        dt.datetime(2024, 1, 8, 23, 30, tzinfo=NY),  # 04:30 UTC on the 9th
    ]}, schema={"ts": pl.Datetime("us", "UTC")})
    d = dt.date

    def dates(spec: str, timezone: str = "America/New_York") -> list:
        return ts.select(session_date_expr(parse_session(spec, timezone))).to_series().to_list()

    assert dates("forex") == [d(2024, 1, 5), None, None, None, d(2024, 1, 8), d(2024, 1, 8), d(2024, 1, 8),
                              d(2024, 1, 8), d(2024, 1, 8), d(2024, 1, 9)]
    assert dates("us-equity") == [None, None, None, None, None, None, d(2024, 1, 8), d(2024, 1, 8), None, None]
    assert dates("crypto") == [d(2024, 1, 5), d(2024, 1, 5), d(2024, 1, 6), d(2024, 1, 7), d(2024, 1, 7),
                               d(2024, 1, 8), d(2024, 1, 8), d(2024, 1, 8), d(2024, 1, 8), d(2024, 1, 9)]
    # explicit hours: a session opening at 18:00 the evening before, Monday to Thursday only
    assert dates("18:00-17:00/mon-thu") == [None, None, None, None, None, d(2024, 1, 8), d(2024, 1, 8),
                                            d(2024, 1, 8), d(2024, 1, 8), d(2024, 1, 9)]
    assert assign_sessions(ts.with_columns(pl.lit(1.0).alias("open")), parse_session("us-equity", "UTC")).height == 2


@pytest.mark.parametrize("spec, words", [
    ("nyse", "neither a calendar name"),
    ("09:30-25:00", "not a time of day"),
    ("09:30-16:00/funday", "session days 'funday'"),
    ("", "expected a calendar name"),
])
def test_bad_session_specs_name_the_field(spec, words):
    with pytest.raises(RequestError, match=words) as info:
        parse_session(spec, "UTC", field="--session")
    assert str(info.value).startswith("--session: ")


def test_described_calendars_and_entry_offsets():
    forex = parse_session("forex", "UTC")
    assert forex.describe() == ("forex: 17:00 (previous evening) to 17:00 America/New_York, sessions mon-fri, "
                                "day rolls at 17:00")
    assert (forex.entry_offset_min("09:30"), forex.entry_offset_min("18:00")) == (570, -360)
    assert parse_session("08:00-16:30", "Europe/London").spec == "08:00-16:30/mon-fri"
    assert parse_session("00:00-24:00/daily", "UTC").describe().startswith("00:00 to 24:00 UTC, sessions daily")


def test_warm_up_start_and_first_tradable_session():
    forex = parse_session("forex", "UTC")
    start = dt.date(2024, 3, 1)
    first = forex.warmup_start(start, 51)
    weekdays = [first + dt.timedelta(days=i) for i in range((start - first).days)]
    assert sum(day.weekday() < 5 for day in weekdays) >= 51 + 5  # the margin covers a few holidays
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    assert first_tradable_session(dates, 5, dt.date(2024, 1, 2)) == dt.date(2024, 1, 6)
    assert first_tradable_session(dates, 5, dt.date(2024, 1, 10)) == dt.date(2024, 1, 10)
    assert first_tradable_session(dates, 25, dt.date(2024, 1, 2)) is None


def _session_dates_vectorized(ts: pl.Series, calendar) -> pl.Series:
    """The NumPy formulation `session_dates` had before its numba pass (the reference)."""
    import numpy as np

    from mochi_assets.market_data.localtime import utc_offsets
    from mochi_assets.market_data.sessions import MICROS_PER_DAY, MICROS_PER_MINUTE

    physical = ts.dt.cast_time_unit("us").to_physical()
    valid = physical.is_not_null().to_numpy()
    utc = physical.fill_null(0).to_numpy()
    local = utc + utc_offsets(utc, calendar.timezone)
    day = local // MICROS_PER_DAY
    clock = local - day * MICROS_PER_DAY
    open_us, close_us = calendar.open_min * MICROS_PER_MINUTE, calendar.close_min * MICROS_PER_MINUTE
    same_day = (clock >= open_us) & (clock < close_us)
    evening = clock - MICROS_PER_DAY
    next_day = ~same_day & (evening >= open_us) & (evening < close_us)
    session = day + next_day
    ok = valid & (same_day | next_day) & np.isin((session + 3) % 7, calendar.days)
    dates = pl.Series(ts.name, session.astype(np.int32), dtype=pl.Int32).cast(pl.Date)
    return pl.select(pl.when(pl.Series(ok)).then(dates)).to_series().alias(ts.name)


@settings(max_examples=60, deadline=None)
@given(
    spec=st.sampled_from(["forex", "us-equity", "crypto", "calendar-day", "18:00-17:00/mon-fri", "09:30-16:00/daily"]),
    zone=st.sampled_from(["America/New_York", "UTC", "Asia/Kolkata", "Australia/Sydney"]),
    stamps=st.lists(st.integers(-2 * 365 * 86_400_000_000, 60 * 365 * 86_400_000_000) | st.none(), max_size=300),
)
def test_session_dates_equal_the_vectorized_rule(spec, zone, stamps):
    """The numba pass gives every bar the session date (or null) the NumPy formulation gave it,
    before 1970 too (floor division of negative microseconds)."""
    calendar = parse_session(spec, zone, field="session")
    ts = pl.Series("ts", stamps, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    got = session_dates(ts, calendar)
    assert got.to_list() == _session_dates_vectorized(ts, calendar).to_list()
    assert got.dtype == pl.Date and got.name == "ts"
