"""Asset-check rules: nothing on clean data, the offending rows on broken data."""

from datetime import date

import polars as pl
import pytest

from mochi_assets.market_data.checks import atr_violations, ohlc_violations, timestamp_violations
from mochi_assets.market_data.indicators import enhance_bars
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
