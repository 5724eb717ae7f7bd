"""Daily bars, Wilder ATR and enhanced bars: reference implementations, warm-up and no look-ahead."""

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.market_data.bars import BARS_SCHEMA
from mochi_assets.market_data.indicators import daily_bars, enhance_bars, wilder_atr
from mochi_assets.market_data.synthetic import synthetic_minute_bars
from mochi_resources.errors import RequestError

NY = "America/New_York"
UTC = timezone.utc


def atr_by_loop(high, low, close, period):
    """Wilder ATR written plainly: list of true ranges, running average after an SMA seed."""
    out = []
    true_ranges = []
    previous_close = None
    value = None
    for h, lo, c in zip(high, low, close):
        if previous_close is None:
            tr = h - lo
        else:
            tr = max(h - lo, abs(h - previous_close), abs(lo - previous_close))
        true_ranges.append(tr)
        if len(true_ranges) < period:
            out.append(float("nan"))
        elif len(true_ranges) == period:
            value = sum(true_ranges) / period
            out.append(value)
        else:
            value = value + (tr - value) / period
            out.append(value)
        previous_close = c
    return np.array(out)


# Ten daily bars (high, low, close): true ranges 2, 3, 4 (gap up: |h - prev close|), 2, ...
KNOWN = np.array(
    [
        [11.0, 9.0, 10.0],
        [12.0, 10.0, 11.0],
        [15.0, 13.0, 14.0],
        [14.0, 12.0, 13.0],
        [13.0, 12.0, 12.5],
        [12.0, 10.0, 11.0],
        [13.0, 11.0, 12.0],
        [14.0, 12.5, 13.5],
        [13.5, 12.0, 12.0],
        [12.5, 11.0, 11.5],
    ]
)


def test_wilder_atr_known_values():
    high, low, close = KNOWN.T
    atr = wilder_atr(high, low, close, 3)
    tr = np.array([2.0, 2.0, 4.0, 2.0, 1.0, 2.5, 2.0, 2.0, 1.5, 1.5])
    assert np.isnan(atr[:2]).all()
    assert atr[2] == pytest.approx(tr[:3].mean())
    assert atr[3] == pytest.approx((atr[2] * 2 + tr[3]) / 3)
    assert np.allclose(atr[2:], atr_by_loop(high, low, close, 3)[2:])


def test_wilder_atr_equals_pandas_ewm_seeded_with_sma():
    high, low, close = KNOWN.T
    period = 4
    prev = np.concatenate(([np.nan], close[:-1]))
    tr = pd.concat(
        [pd.Series(high - low), pd.Series(np.abs(high - prev)), pd.Series(np.abs(low - prev))], axis=1
    ).max(axis=1)
    seeded = pd.Series(np.concatenate(([tr[:period].mean()], tr[period:].to_numpy())))
    expected = seeded.ewm(alpha=1 / period, adjust=False).mean().to_numpy()
    assert np.allclose(wilder_atr(high, low, close, period)[period - 1 :], expected)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.floats(1, 1000), st.floats(0, 50), st.floats(0, 1)
        ),
        min_size=0,
        max_size=60,
    ),
    period=st.integers(1, 20),
)
def test_wilder_atr_matches_loop(data, period):
    low = np.array([row[0] for row in data])
    high = low + np.array([row[1] for row in data])
    close = low + (high - low) * np.array([row[2] for row in data])
    got = wilder_atr(high, low, close, period)
    expected = atr_by_loop(high, low, close, period)
    assert got.shape == (len(data),)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-9)


def test_wilder_atr_bad_period():
    for period in (0, -3, 2.5, True):
        with pytest.raises(RequestError, match="period"):
            wilder_atr(KNOWN[:, 0], KNOWN[:, 1], KNOWN[:, 2], period)


def test_session_date_is_the_local_date():
    minutes = pl.DataFrame(
        {
            # 23:30 UTC is 18:30 in New York the same day; 03:00 UTC is 22:00 the day before.
            "ts": [datetime(2024, 1, 2, 23, 30, tzinfo=UTC), datetime(2024, 1, 3, 3, 0, tzinfo=UTC), datetime(2024, 1, 3, 6, 0, tzinfo=UTC)],
            "open": [1.0, 2.0, 3.0],
            "high": [1.5, 2.5, 3.5],
            "low": [0.5, 1.5, 2.5],
            "close": [1.2, 2.2, 3.2],
            "volume": [1.0, 2.0, 3.0],
        },
        schema=BARS_SCHEMA,
    )
    daily = daily_bars(minutes, NY)
    assert daily["session_date"].to_list() == [date(2024, 1, 2), date(2024, 1, 3)]
    assert daily.row(0) == (date(2024, 1, 2), 1.0, 2.5, 0.5, 2.2, 3.0)
    enhanced = enhance_bars(minutes, timezone=NY, short=1, long=1, alpha=0.5)
    assert enhanced["session_date"].to_list() == [date(2024, 1, 2), date(2024, 1, 2), date(2024, 1, 3)]
    # Day 2's ATR(1) is day 1's true range (2.0), available from day 2 on.
    assert enhanced["atr"].to_list() == [None, None, 2.0]


@pytest.fixture(scope="module")
def minutes() -> pl.DataFrame:
    return synthetic_minute_bars("SYN:GOLD", date(2024, 1, 1), date(2024, 3, 31))


def test_enhance_warmup_blend_and_values(minutes):
    short, long, alpha = 3, 10, 0.3
    enhanced = enhance_bars(minutes, timezone=NY, short=short, long=long, alpha=alpha)
    assert enhanced.height == minutes.height and enhanced["ts"].is_sorted()
    assert enhanced.select(minutes.columns).equals(minutes)
    assert enhanced.schema["session_date"] == pl.Date
    daily = daily_bars(minutes, NY)
    per_day = enhanced.group_by("session_date", maintain_order=True).agg(pl.col("atr_short", "atr_long", "atr").first())
    assert per_day["session_date"].equals(daily["session_date"])
    # Warm-up is null, never NaN: ATR(long) needs `long` days, and then shifts by one.
    assert per_day["atr_long"].head(long).null_count() == long and per_day["atr_long"][long] is not None
    assert per_day["atr_short"].head(short).null_count() == short and per_day["atr_short"][short] is not None
    assert per_day["atr"].head(long).null_count() == long
    assert not enhanced.select(pl.col("atr_short", "atr_long", "atr").is_nan().any()).row(0)[0]
    h, lo, c = (daily[col].to_numpy() for col in ("high", "low", "close"))
    expected_long = np.concatenate(([np.nan], wilder_atr(h, lo, c, long)[:-1]))
    got_long = per_day["atr_long"].fill_null(np.nan).to_numpy()
    assert np.allclose(got_long, expected_long, equal_nan=True)
    defined = per_day.drop_nulls()
    assert np.allclose(defined["atr"], alpha * defined["atr_short"] + (1 - alpha) * defined["atr_long"])


def test_enhance_has_no_look_ahead(minutes):
    kwargs = dict(timezone=NY, short=3, long=5, alpha=0.5)
    base = enhance_bars(minutes, **kwargs)
    day = date(2024, 2, 14)
    local_date = pl.col("ts").dt.convert_time_zone(NY).dt.date()
    shocked = minutes.with_columns(
        pl.when(local_date == day).then(pl.col("high") * 1.05).otherwise(pl.col("high")).alias("high")
    )
    changed = enhance_bars(shocked, **kwargs)
    upto = pl.col("session_date") <= day
    assert changed.filter(upto).select("atr_short", "atr_long", "atr").equals(base.filter(upto).select("atr_short", "atr_long", "atr"))
    after = pl.col("session_date") == date(2024, 2, 15)
    assert changed.filter(after)["atr"][0] > base.filter(after)["atr"][0]
    # Appending later bars changes nothing earlier either.
    head = enhance_bars(minutes.filter(local_date <= day), **kwargs)
    assert head.equals(base.filter(upto))


def test_enhance_bad_settings(minutes):
    with pytest.raises(RequestError, match="atr.alpha"):
        enhance_bars(minutes, timezone=NY, short=3, long=5, alpha=1.5)
    with pytest.raises(RequestError, match="atr.long"):
        enhance_bars(minutes, timezone=NY, short=3, long=0, alpha=0.5)
    with pytest.raises(RequestError, match="timezone"):
        enhance_bars(minutes, timezone="Mars/Olympus", short=3, long=5, alpha=0.5)
