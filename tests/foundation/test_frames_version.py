"""`metadata.frames_version`, the raw bars' data version: equal tables give equal versions whatever
their chunks, and any change of a value, a null, a type or a row boundary gives another one."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.metadata import frames_version


def _bars(n: int = 50) -> pl.DataFrame:
    start = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    return pl.DataFrame({
        "ts": [start + dt.timedelta(minutes=i) for i in range(n)],
        "close": [1.0 + i / 1000 for i in range(n)],
        "volume": [float(i % 7) for i in range(n)],
        "session_date": [dt.date(2024, 1, 2)] * n,
        "note": ["a", None, "b", "c", "d"] * (n // 5),
    })


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(1, 49))
def test_chunks_do_not_matter(cut):
    bars = _bars()
    chunked = pl.concat([bars.head(cut), bars.slice(cut)])
    assert chunked.get_column("ts").n_chunks() == 2
    assert frames_version(chunked) == frames_version(bars) == frames_version(bars.clone())


@settings(max_examples=60, deadline=None)
@given(row=st.integers(0, 49), column=st.sampled_from(["ts", "close", "volume", "session_date", "note"]))
def test_any_changed_value_or_null_changes_the_version(row, column):
    bars = _bars()
    at = pl.int_range(pl.len()) == row
    if column == "ts":
        changed = bars.with_columns(pl.when(at).then(pl.col("ts") + pl.duration(microseconds=1)).otherwise(pl.col("ts")))
    elif column == "session_date":
        changed = bars.with_columns(pl.when(at).then(pl.col(column) + pl.duration(days=1)).otherwise(pl.col(column)))
    elif column == "note":
        changed = bars.with_columns(pl.when(at).then(pl.lit("z")).otherwise(pl.col(column)).alias(column))
    else:
        changed = bars.with_columns(pl.when(at).then(pl.col(column) + 0.5).otherwise(pl.col(column)))
    assert frames_version(changed) != frames_version(bars)
    # a null where a zero was: the null mask counts, not only the values
    nulled = bars.with_columns(pl.when(at).then(None).otherwise(pl.col(column)).alias(column))
    if nulled.get_column(column).null_count() != bars.get_column(column).null_count():
        assert frames_version(nulled) != frames_version(bars)


def test_types_tables_and_row_boundaries_count():
    bars = _bars()
    assert frames_version(bars.with_columns(pl.col("close").cast(pl.Float32))) != frames_version(bars)
    assert frames_version(bars.rename({"close": "last"})) != frames_version(bars)
    # the same rows cut into two tables elsewhere
    assert frames_version(bars.head(10), bars.slice(10)) != frames_version(bars.head(11), bars.slice(11))
    assert frames_version(bars.head(0)) != frames_version(bars.head(0).drop("note"))
    # types hashed by polars rather than as buffers: decimals (128-bit), lists, text
    import decimal

    other = pl.DataFrame({"d": pl.Series([decimal.Decimal("1.50"), None], dtype=pl.Decimal(10, 2)),
                          "l": [[1], [2, 3]], "s": ["x", None]})
    assert frames_version(other) == frames_version(other.clone())
    for changed in (other.with_columns(pl.lit("y").alias("s")), other.with_columns(pl.lit([4]).alias("l")),
                    other.with_columns(pl.lit(decimal.Decimal("2.00")).cast(pl.Decimal(10, 2)).alias("d"))):
        assert frames_version(changed) != frames_version(other)
    zeros = pl.DataFrame({"x": [0.0, 0.0]})
    assert frames_version(zeros) != frames_version(pl.DataFrame({"x": [0.0, None]}))
