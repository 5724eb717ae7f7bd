"""Synthetic minute bars: determinism, range independence, session calendar and realism."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mochi_assets.market_data.bars import resample_bars, validate_bars
from mochi_assets.market_data.checks import ohlc_violations, timestamp_violations
from mochi_assets.market_data.synthetic import (
    is_synthetic,
    synthetic_minute_bars,
    synthetic_profile,
)
from mochi_resources.errors import ProviderError, RequestError

NY = "America/New_York"


@pytest.fixture(scope="module")
def gold_quarter() -> pl.DataFrame:
    return synthetic_minute_bars("SYN:GOLD", date(2024, 1, 1), date(2024, 3, 31))


@pytest.fixture(scope="module")
def eurusd_year() -> pl.DataFrame:
    return synthetic_minute_bars("SYN:EURUSD", date(2023, 1, 1), date(2023, 12, 31))


def with_local(df: pl.DataFrame) -> pl.DataFrame:
    local = pl.col("ts").dt.convert_time_zone(NY)
    return df.with_columns(
        local.dt.date().alias("local_date"),
        local.dt.weekday().alias("weekday"),
        (local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32)).alias("local_minute"),
    )


def test_profiles():
    gold = synthetic_profile("SYN:GOLD")
    assert (gold.tick_size, gold.timezone, gold.asset_class) == (0.01, NY, "synthetic")
    assert 1800 <= gold.base_price <= 2000
    eur = synthetic_profile("SYN:EURUSD")
    assert eur.tick_size == 0.00001 and 1.0 < eur.base_price < 1.2
    other = synthetic_profile("SYN:WIDGET")
    assert other == synthetic_profile("syn:widget")
    assert other.seed != synthetic_profile("SYN:GADGET").seed
    assert other.tick_size > 0 and other.base_price > 0 and other.asset_class == "synthetic"
    assert is_synthetic("SYN:GOLD") and not is_synthetic("C:XAUUSD") and not is_synthetic("SYN:")
    with pytest.raises(ProviderError, match="C:XAUUSD"):
        synthetic_profile("C:XAUUSD")


def test_bad_ranges():
    with pytest.raises(RequestError, match="end"):
        synthetic_minute_bars("SYN:GOLD", date(2024, 2, 1), date(2024, 1, 1))
    with pytest.raises(ProviderError, match="start"):
        synthetic_minute_bars("SYN:GOLD", date(1960, 1, 1), date(1960, 2, 1))
    saturday = synthetic_minute_bars("SYN:GOLD", date(2024, 1, 6), date(2024, 1, 6))
    assert saturday.is_empty() and saturday.columns == ["ts", "open", "high", "low", "close", "volume"]


def test_deterministic(gold_quarter):
    again = synthetic_minute_bars("SYN:GOLD", date(2024, 1, 1), date(2024, 3, 31))
    assert again.equals(gold_quarter)
    other = synthetic_minute_bars("SYN:SILVER", date(2024, 1, 1), date(2024, 1, 10))
    assert not other.equals(gold_quarter.head(other.height))


def test_sub_range_is_the_same_slice(gold_quarter):
    sub = synthetic_minute_bars("SYN:GOLD", date(2024, 2, 5), date(2024, 2, 20))
    expected = with_local(gold_quarter).filter(pl.col("local_date").is_between(date(2024, 2, 5), date(2024, 2, 20)))
    assert sub.height > 0
    assert sub.equals(expected.select(sub.columns))
    # A later, longer request leaves earlier bars unchanged.
    longer = synthetic_minute_bars("SYN:GOLD", date(2024, 3, 25), date(2024, 5, 31))
    overlap = with_local(longer).filter(pl.col("local_date") <= date(2024, 3, 31)).select(sub.columns)
    assert overlap.equals(gold_quarter.filter(pl.col("ts") >= overlap["ts"][0]))


def test_session_calendar(gold_quarter):
    local = with_local(gold_quarter)
    assert local.filter(pl.col("weekday") == 6).is_empty()  # Saturday
    assert local.filter((pl.col("weekday") == 7) & (pl.col("local_minute") < 17 * 60)).is_empty()
    assert local.filter((pl.col("weekday") == 5) & (pl.col("local_minute") >= 17 * 60)).is_empty()
    assert local["local_date"].min() == date(2024, 1, 1) and local["local_date"].max() == date(2024, 3, 31)  # a Sunday evening
    # US clocks change on Sunday 2024-03-10 at 02:00: the week still opens at 17:00 local (21:00 UTC).
    sunday = synthetic_minute_bars("SYN:GOLD", date(2024, 3, 10), date(2024, 3, 10))
    first = sunday["ts"].min()
    assert (first.hour, first.minute) in ((21, 0), (21, 1), (21, 2))


def test_bars_are_valid(gold_quarter):
    assert validate_bars(gold_quarter, "synthetic").equals(gold_quarter)
    assert ohlc_violations(gold_quarter).is_empty()
    assert timestamp_violations(gold_quarter).is_empty()
    assert (gold_quarter["volume"] > 0).all()
    for ticker, tick in (("SYN:GOLD", 0.01), ("SYN:EURUSD", 0.00001)):
        bars = gold_quarter if ticker == "SYN:GOLD" else synthetic_minute_bars(ticker, date(2024, 1, 1), date(2024, 1, 14))
        prices = bars.select("open", "high", "low", "close").to_numpy().ravel()
        ticks = prices / tick
        assert np.abs(ticks - np.rint(ticks)).max() < 1e-6
        assert (prices > 0).all()


def test_some_minutes_missing(eurusd_year):
    local = with_local(eurusd_year)
    days = local["local_date"].unique()
    expected = 0
    for day in days:
        weekday = day.weekday()
        expected += 7 * 60 if weekday == 6 else 17 * 60 if weekday == 4 else 24 * 60
    missing_share = 1 - eurusd_year.height / expected
    assert 0.003 < missing_share < 0.03


def test_gaps(eurusd_year):
    local = with_local(eurusd_year).with_columns(
        (pl.col("open") - pl.col("close").shift(1)).abs().alias("gap"),
        (pl.col("ts") - pl.col("ts").shift(1)).alias("step"),
    )
    typical = float((local["close"] - local["open"]).abs().median())
    weekend = local.filter(pl.col("step") > timedelta(days=1))
    assert weekend.height >= 50
    assert float(weekend["gap"].median()) > 10 * typical
    intraday = local.filter((pl.col("step") == timedelta(minutes=1)) & (pl.col("gap") > 30 * typical))
    assert intraday.height >= 1


def test_intraday_volatility_pattern(eurusd_year):
    local = with_local(eurusd_year).with_columns((pl.col("close") / pl.col("open")).log().abs().alias("move"))
    busy = local.filter(pl.col("local_minute").is_between(8 * 60, 11 * 60, closed="left"))["move"].mean()
    quiet = local.filter(pl.col("local_minute").is_between(20 * 60, 23 * 60, closed="left"))["move"].mean()
    assert busy > 1.5 * quiet


def test_volatility_regimes(eurusd_year):
    weekly = (
        eurusd_year.with_columns((pl.col("close") / pl.col("open")).log().alias("r"))
        .group_by(pl.col("ts").dt.truncate("1w").alias("week"))
        .agg(pl.col("r").std().alias("vol"))
        .sort("week")
    )
    vol = weekly["vol"].to_numpy()
    assert vol.max() / vol.min() > 2
    # Persistence: calm and volatile spells last weeks, so neighbouring weeks are alike.
    assert np.corrcoef(np.log(vol[:-1]), np.log(vol[1:]))[0, 1] > 0.4


def test_resample_consistency(gold_quarter):
    hours = resample_bars(gold_quarter, "1h", NY)
    days = resample_bars(gold_quarter, "1d", NY)
    for h in hours.sample(20, seed=1).iter_rows(named=True):
        inside = gold_quarter.filter(pl.col("ts").is_between(h["ts"], h["ts"] + timedelta(hours=1), closed="left"))
        assert h["open"] == inside["open"][0] and h["close"] == inside["close"][-1]
        assert h["high"] == inside["high"].max() and h["low"] == inside["low"].min()
        assert h["volume"] == pytest.approx(inside["volume"].sum())
    local = with_local(gold_quarter)
    for d in days.sample(10, seed=2).iter_rows(named=True):
        day = d["ts"].astimezone(ZoneInfo(NY)).date()
        inside = local.filter(pl.col("local_date") == day)
        assert d["ts"] == inside["ts"][0]
        assert d["open"] == inside["open"][0] and d["close"] == inside["close"][-1]
        assert d["high"] == inside["high"].max() and d["low"] == inside["low"].min()
    # Hours nest inside New York days, so day bars from hour bars equal day bars from minutes.
    from_hours = resample_bars(hours, "1d", NY)
    assert from_hours.drop("ts", "volume").equals(days.drop("ts", "volume"))
    # A day bar's ts is its first minute's ts; built from hours it is that minute's hour.
    assert from_hours["ts"].equals(days["ts"].dt.truncate("1h"))
    assert np.allclose(from_hours["volume"].to_numpy(), days["volume"].to_numpy())
    assert hours["ts"].dt.minute().max() == 0 and hours["ts"].is_sorted()


def test_the_same_bars_whatever_the_thread_count(gold_quarter, monkeypatch):
    """The minutes are computed by date ranges on NUMBA_NUM_THREADS threads: a date depends on
    itself only (its running sums restart), so any split gives the same bits."""
    import numba

    for threads in (1, 3):
        monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", threads)
        again = synthetic_minute_bars("SYN:GOLD", date(2024, 1, 1), date(2024, 3, 31))
        assert again.equals(gold_quarter), threads


def test_the_same_bars_whatever_the_chunk_of_dates(gold_quarter, monkeypatch):
    """The random draws are made chunk of dates by chunk into reused arrays: any chunk size
    (here dates cut at odd places, with a session date that holds a DST change) gives the same bits."""
    from mochi_assets.market_data import synthetic

    for chunk in (1, 5, 64):
        monkeypatch.setattr(synthetic, "_CHUNK_DAYS", chunk)
        again = synthetic_minute_bars("SYN:GOLD", date(2024, 1, 1), date(2024, 3, 31))
        assert again.equals(gold_quarter), chunk


@given(
    start=st.dates(min_value=date(1970, 1, 5), max_value=date(2099, 12, 1)),
    length=st.integers(min_value=1, max_value=40),
    zone=st.sampled_from([NY, "Europe/London", "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns", "UTC"]),
)
@example(start=date(2024, 3, 8), length=5, zone=NY)  # spring forward on Sunday 2024-03-10
@example(start=date(2024, 11, 1), length=5, zone=NY)  # fall back on Sunday 2024-11-03
@example(start=date(2024, 10, 4), length=4, zone="Australia/Lord_Howe")  # half an hour forward
@settings(max_examples=60, deadline=None)
def test_day_clocks_give_the_local_minute_of_local_micros(start, length, zone):
    """The generator's local minute of day per minute (from each date's first minute and at most one
    change of offset) equals floor(local time / 1 min) mod 1440 of `local_micros`, in zones with
    whole-hour, 45-minute and 30-minute offsets and DST shifts of an hour or half an hour."""
    from mochi_assets.market_data.localtime import local_micros
    from mochi_assets.market_data.synthetic import _day_clocks, _segment

    tz = ZoneInfo(zone)

    def whole_day(day):  # local midnight to local midnight: the synthetic calendar's Sundays start at
        # 17:00, after the 02:00 changes of most zones, so its own segments rarely hold a change
        edges = [datetime.combine(day + timedelta(days=d), time(0), tzinfo=tz).timestamp() // 60 for d in (0, 1)]
        return int(edges[0]), int(edges[1])

    segments = [whole_day(start + timedelta(days=d)) for d in range(length)]
    segments += [s for s in (_segment(start + timedelta(days=d), tz) for d in range(length)) if s is not None]
    seg_start = np.array([s[0] for s in segments], dtype=np.int64)
    seg_len = np.array([s[1] - s[0] for s in segments], dtype=np.int64)
    local_start, switch_at, shift = _day_clocks(seg_start, seg_len, zone)
    for j in range(len(segments)):
        k = np.arange(seg_len[j])
        expected = (local_micros((seg_start[j] + k) * 60_000_000, zone) // 60_000_000) % 1440
        got = (local_start[j] + k + np.where(k >= switch_at[j], shift[j], 0)) % 1440
        np.testing.assert_array_equal(got, expected)
