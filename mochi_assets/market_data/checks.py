"""Data-quality rules behind the market data asset checks.

Each function returns the offending rows (the input columns plus `row`, the
0-based position in the input, and `problem`, a readable reason); an empty
result means the check passes. They work on any size of table and never raise
on bad data: reporting bad data is their job.
"""

from __future__ import annotations

import polars as pl

from mochi_assets.market_data.bars import PRICE_COLUMNS

_ROW = "row"
_PROBLEM = "problem"


def _offending(df: pl.DataFrame, reasons: list[pl.Expr]) -> pl.DataFrame:
    """Rows where at least one reason applies, with the reasons joined in `problem`."""
    problem = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return (
        df.with_row_index(_ROW)
        .with_columns(
            pl.col(_ROW).cast(pl.Int64),
            pl.when(pl.any_horizontal([r.is_not_null() for r in reasons])).then(problem).alias(_PROBLEM),
        )
        .filter(pl.col(_PROBLEM).is_not_null())
    )


def _reason(condition: pl.Expr, text: str) -> pl.Expr:
    return pl.when(condition.fill_null(False)).then(pl.lit(text))


def ohlc_violations(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars with null or NaN values, non-positive prices, low above high, open or
    close outside [low, high], or negative volume."""
    values = PRICE_COLUMNS + ["volume"]
    missing = pl.any_horizontal([pl.col(c).is_null() | pl.col(c).is_nan() for c in values] + [pl.col("ts").is_null()])
    reasons = [
        _reason(missing, "null or NaN value"),
        _reason(pl.any_horizontal([pl.col(c) <= 0 for c in PRICE_COLUMNS]), "non-positive price"),
        _reason(pl.col("low") > pl.col("high"), "low above high"),
        _reason((pl.col("open") < pl.col("low")) | (pl.col("open") > pl.col("high")), "open outside [low, high]"),
        _reason((pl.col("close") < pl.col("low")) | (pl.col("close") > pl.col("high")), "close outside [low, high]"),
        _reason(pl.col("volume") < 0, "negative volume"),
    ]
    return _offending(bars, reasons)


def timestamp_violations(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars whose ts is null, repeats an earlier row's ts, or is not strictly
    greater than the previous row's ts (in the table's order)."""
    ts = pl.col("ts")
    reasons = [
        _reason(ts.is_null(), "null ts"),
        _reason(~ts.is_first_distinct() & ts.is_not_null(), "duplicate ts"),
        _reason(ts <= ts.shift(1), "ts not after the previous row's"),
    ]
    return _offending(bars, reasons)


def atr_violations(enhanced: pl.DataFrame, *, warmup_sessions: int | None = None) -> pl.DataFrame:
    """Enhanced bars of sessions whose ATR is wrong.

    After warm-up, atr must be non-null, finite and positive; within one
    session_date it must be constant. Warm-up is the first `warmup_sessions`
    session dates when given (max(short, long) for a request; then an ATR
    defined during warm-up is reported too, a sign of misaligned indicators),
    otherwise the sessions before the first one with a defined atr.
    """
    sessions = (
        enhanced.group_by("session_date")
        .agg(
            pl.col("atr").n_unique().alias("_distinct"),
            pl.col("atr").is_not_null().any().alias("_defined"),
        )
        .sort("session_date")
        .with_row_index("_index")
    )
    if warmup_sessions is None:
        defined = sessions.filter(pl.col("_defined"))
        warmup = int(defined.get_column("_index")[0]) if defined.height else sessions.height
    else:
        warmup = int(warmup_sessions)
    sessions = sessions.with_columns((pl.col("_index") >= warmup).alias("_after_warmup"))
    atr = pl.col("atr")
    after = pl.col("_after_warmup")
    reasons = [
        _reason(after & atr.is_null(), "atr null after warm-up"),
        _reason(after & (atr.is_nan() | atr.is_infinite() | (atr <= 0)), "atr not a positive number"),
        _reason(pl.col("_distinct") > 1, "atr varies within the session"),
    ]
    if warmup_sessions is not None:
        reasons.append(_reason(~after & atr.is_not_null(), "atr defined during warm-up"))
    joined = enhanced.join(
        sessions.select("session_date", "_distinct", "_after_warmup"),
        on="session_date",
        how="left",
        maintain_order="left",
    )
    return _offending(joined, reasons).drop("_distinct", "_after_warmup")
