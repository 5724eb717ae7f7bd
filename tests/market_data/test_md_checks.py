"""Asset-check rules: nothing on clean data, the offending rows on broken data."""

from datetime import date

import polars as pl
import pytest

from mochi_assets.market_data.checks import atr_violations, ohlc_violations, timestamp_violations
from mochi_assets.market_data.indicators import enhance_bars
from mochi_assets.market_data.sessions import parse_session, session_date_expr
from mochi_assets.market_data.synthetic import synthetic_minute_bars

NY = "America/New_York"


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_minute_bars("SYN:EURUSD", date(2024, 1, 1), date(2024, 1, 31))


@pytest.fixture(scope="module")
def enhanced(bars) -> pl.DataFrame:
    return enhance_bars(bars, timezone=NY, short=2, long=4, alpha=0.5)


def set_value(df: pl.DataFrame, column: str, row: int, value) -> pl.DataFrame:
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, dtype=df.schema[column])).otherwise(pl.col(column)).alias(column)
    )


def test_clean_data_passes(bars, enhanced):
    assert ohlc_violations(bars).is_empty()
    assert timestamp_violations(bars).is_empty()
    assert atr_violations(enhanced).is_empty()
    assert atr_violations(enhanced, warmup_sessions=4).is_empty()


def test_ohlc_violations(bars):
    broken = set_value(bars, "low", 10, 99.0)
    broken = set_value(broken, "close", 20, None)
    broken = set_value(broken, "open", 30, -1.0)
    broken = set_value(broken, "volume", 40, -5.0)
    broken = set_value(broken, "high", 50, float("nan"))
    found = ohlc_violations(broken)
    assert found["row"].to_list() == [10, 20, 30, 40, 50]
    problems = dict(zip(found["row"], found["problem"]))
    assert "low above high" in problems[10]
    assert "null or NaN value" in problems[20] and "null or NaN value" in problems[50]
    assert "non-positive price" in problems[30] and "open outside [low, high]" in problems[30]
    assert problems[40] == "negative volume"
    assert found.select(bars.columns).row(0) == broken.row(10)


def test_timestamp_violations(bars):
    swapped = pl.concat([bars.slice(0, 5), bars.slice(6, 1), bars.slice(5, 1), bars.slice(7, 3), bars.slice(2, 1)])
    found = timestamp_violations(swapped)
    assert found["row"].to_list() == [6, 10]
    assert found["problem"].to_list() == ["ts not after the previous row's", "duplicate ts; ts not after the previous row's"]


def test_atr_violations(enhanced):
    sessions = enhanced["session_date"].unique().sort()
    late = sessions[10]
    nulled = enhanced.with_columns(
        pl.when(pl.col("session_date") == late).then(None).otherwise(pl.col("atr")).alias("atr")
    )
    found = atr_violations(nulled)
    assert found.height == enhanced.filter(pl.col("session_date") == late).height
    assert set(found["problem"]) == {"atr null after warm-up"}

    row = int(enhanced.with_row_index().filter(pl.col("session_date") == late)["index"][3])
    varied = set_value(enhanced, "atr", row, 123.0)
    found = atr_violations(varied)
    assert set(found["session_date"]) == {late}
    assert found.filter(pl.col("row") == row)["problem"][0] == "atr varies within the session"

    negative = enhanced.with_columns(
        pl.when(pl.col("session_date") == late).then(-pl.col("atr")).otherwise(pl.col("atr")).alias("atr")
    )
    assert set(atr_violations(negative)["problem"]) == {"atr not a positive number"}

    # All null: with the warm-up length known, every session after it is reported.
    all_null = enhanced.with_columns(pl.lit(None, dtype=pl.Float64).alias("atr"))
    found = atr_violations(all_null, warmup_sessions=4)
    assert set(found["session_date"]) == set(sessions[4:])
    # A value during warm-up means the indicators are misaligned.
    early = enhanced.with_columns(pl.col("atr").fill_null(1.0))
    assert set(atr_violations(early, warmup_sessions=4)["problem"]) == {"atr defined during warm-up"}


def test_resolution_mismatches(bars):
    from mochi_assets.market_data.bars import resample_bars
    from mochi_assets.market_data.checks import resolution_mismatches

    hour = resample_bars(bars, "1h", NY)
    assert resolution_mismatches(bars, hour, "hour").is_empty()
    assert resolution_mismatches(bars, resample_bars(bars, "1d", NY), "day").is_empty()
    shrunk = set_value(hour, "high", 3, float(hour["high"][3]) * 0.999)
    shrunk = shrunk.filter(pl.int_range(pl.len()) != 5)  # an hour bar the provider never sent
    found = resolution_mismatches(bars, shrunk, "hour")
    assert found["problem"].to_list()[0] == "minutes trade above its high"
    assert found["ts"][0] == hour["ts"][3]
    orphans = found.filter(pl.col("problem") == "minute bar outside every hour bar")
    assert orphans.height == bars.filter(pl.col("ts").dt.truncate("1h") == hour["ts"][5]).height


def test_missing_sessions(bars):
    from mochi_assets.market_data.checks import missing_sessions

    forex = parse_session("forex", NY)
    assert missing_sessions(bars, date(2024, 1, 2), date(2024, 1, 31), forex).is_empty()
    # a holiday is "no bars, no session": Monday's session holds Sunday evening's bars too
    holiday = bars.filter(session_date_expr(forex) != date(2024, 1, 15))
    assert holiday.filter(pl.col("ts").dt.convert_time_zone(NY).dt.date() == date(2024, 1, 14)).is_empty()
    found = missing_sessions(holiday, date(2024, 1, 2), date(2024, 1, 31), forex)
    assert found.rows() == [(date(2024, 1, 15), "Monday", "no bar in this session")]
    # crypto trades every day: Saturdays are expected too
    crypto = parse_session("crypto", NY)
    assert date(2024, 1, 6) in missing_sessions(bars, date(2024, 1, 2), date(2024, 1, 8), crypto)["session_date"]


def test_suspicious_jumps(bars):
    from mochi_assets.market_data.checks import suspicious_jumps

    assert suspicious_jumps(bars).is_empty()
    price = float(bars["close"][100]) * 10  # a shifted decimal
    bad = set_value(set_value(set_value(set_value(bars, "high", 101, price), "open", 101, price), "close", 101, price),
                    "low", 101, price)
    found = suspicious_jumps(bad)
    assert found["row"].to_list() == [101, 102]
    assert "over 3.0x the median daily range" in found["problem"][0]


def test_atr_lookahead_violations(bars, enhanced):
    from mochi_assets.market_data.checks import atr_lookahead_violations

    settings = {"timezone": NY, "short": 2, "long": 4, "alpha": 0.5}
    assert atr_lookahead_violations(enhanced, **settings).is_empty()
    # An ATR that peeks: each session gets the value meant for the next one.
    sessions = enhanced.select("session_date", "atr").unique("session_date").sort("session_date")
    peeking = enhanced.drop("atr").join(
        sessions.with_columns(pl.col("atr").shift(-1)), on="session_date", how="left").sort("ts")
    found = atr_lookahead_violations(peeking, **settings)
    assert found.height > 0 and (found["atr"] != found["atr_recomputed"]).all()
