"""Data-quality rules behind the market data asset checks.

Each function returns the offending rows (the input columns plus `row`, the
0-based position in the input, and `problem`, a readable reason); an empty
result means the check passes. They work on any size of table and never raise
on bad data: reporting bad data is their job.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from mochi_assets.market_data.bars import BAR_COLUMNS, PRICE_COLUMNS
from mochi_assets.market_data.sessions import SessionCalendar, session_date_expr

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
    column = bars.get_column("ts")
    # in a sorted column a repeat follows its first occurrence: no hashing needed
    repeated = (ts == ts.shift(1)) if column.null_count() == 0 and column.is_sorted() else ~ts.is_first_distinct()
    reasons = [
        _reason(ts.is_null(), "null ts"),
        _reason(repeated & ts.is_not_null(), "duplicate ts"),
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


def resolution_mismatches(minute: pl.DataFrame, coarse: pl.DataFrame, resolution: str) -> pl.DataFrame:
    """Hour or day bars that disagree with the minute bars inside them, and minutes no bar holds.

    Each minute belongs to the latest coarse bar opening at or before it, within the bar's length
    (an hour; 25 hours for days, for local days with a clock change). A coarse bar disagrees when
    its minutes trade above its high or below its low (tolerance 1e-9 relative) or when it has
    no minute at all. Columns: ts, resolution, high, low, minute_high, minute_low, minute_bars,
    problem.
    """
    length = {"hour": "1h", "day": "25h"}[resolution]
    schema = {"ts": pl.Datetime("us", "UTC"), "resolution": pl.Utf8, "high": pl.Float64, "low": pl.Float64,
              "minute_high": pl.Float64, "minute_low": pl.Float64, "minute_bars": pl.Int64, "problem": pl.Utf8}
    if minute.is_empty() and coarse.is_empty():
        return pl.DataFrame(schema=schema)
    bars = coarse.select("ts", "high", "low").sort("ts").with_columns(pl.col("ts").alias("bar_ts"))
    joined = (
        minute.select("ts", pl.col("high").alias("m_high"), pl.col("low").alias("m_low"))
        .sort("ts")
        .join_asof(bars.select("ts", "bar_ts"), on="ts", strategy="backward")
        .with_columns(
            pl.when(pl.col("ts") < pl.col("bar_ts").dt.offset_by(length)).then(pl.col("bar_ts")).alias("bar_ts")
        )
    )
    per_bar = joined.filter(pl.col("bar_ts").is_not_null()).group_by("bar_ts").agg(
        pl.col("m_high").max().alias("minute_high"),
        pl.col("m_low").min().alias("minute_low"),
        pl.len().cast(pl.Int64).alias("minute_bars"),
    )
    tol = 1e-9 * pl.col("high").abs()
    checked = (
        bars.join(per_bar, on="bar_ts", how="left")
        .with_columns(pl.col("minute_bars").fill_null(0))
        .with_columns(
            pl.concat_str(
                [
                    _reason(pl.col("minute_bars") == 0, f"no minute bar inside this {resolution} bar"),
                    _reason(pl.col("minute_high") > pl.col("high") + tol, "minutes trade above its high"),
                    _reason(pl.col("minute_low") < pl.col("low") - tol, "minutes trade below its low"),
                ],
                separator="; ",
                ignore_nulls=True,
            ).alias("problem")
        )
        .filter(pl.col("problem") != "")
        .select(pl.col("ts"), pl.lit(resolution).alias("resolution"), "high", "low", "minute_high", "minute_low",
                "minute_bars", "problem")
    )
    orphans = joined.filter(pl.col("bar_ts").is_null()).select(
        "ts", pl.lit(resolution).alias("resolution"), pl.lit(None, pl.Float64).alias("high"),
        pl.lit(None, pl.Float64).alias("low"), pl.col("m_high").alias("minute_high"),
        pl.col("m_low").alias("minute_low"), pl.lit(1, pl.Int64).alias("minute_bars"),
        pl.lit(f"minute bar outside every {resolution} bar").alias("problem"),
    )
    return pl.concat([checked.cast(schema), orphans.cast(schema)]).sort("ts")


def missing_sessions(minute: pl.DataFrame, start: dt.date, end: dt.date, calendar: SessionCalendar) -> pl.DataFrame:
    """Expected session dates start..end of `calendar` that have no bar.

    Expected: every date whose weekday is one of the calendar's session days. Market holidays show
    up here too ("no bars, no session"), which is why the asset check is a warning. Columns:
    session_date, weekday, problem.
    """
    present = set(minute.select(session_date_expr(calendar).drop_nulls().unique()).to_series().to_list())
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    expected = [d for d in days if d.weekday() in calendar.days]
    missing = [d for d in expected if d not in present]
    return pl.DataFrame(
        {
            "session_date": missing,
            "weekday": [d.strftime("%A") for d in missing],
            "problem": ["no bar in this session"] * len(missing),
        },
        schema={"session_date": pl.Date, "weekday": pl.Utf8, "problem": pl.Utf8},
    )


def suspicious_jumps(bars: pl.DataFrame, factor: float = 3.0) -> pl.DataFrame:
    """Bars whose move is larger than `factor` times the median daily range of the table.

    The move of a bar is the largest of its gap from the previous close, its close-to-close
    change and its own high-low range, all in log terms; the daily range is log(high/low) of UTC
    days. Such bars are usually data errors (a shifted decimal, a bad print) but can be real
    (a flash crash): the asset check is a warning. Columns: the bar columns, row, move, typical_day, problem.
    """
    if bars.height < 2:
        return _offending(bars, [pl.lit(None, pl.Utf8)]).with_columns(
            pl.lit(None, pl.Float64).alias("move"), pl.lit(None, pl.Float64).alias("typical_day"))
    data = bars.sort("ts")
    daily = data.group_by(pl.col("ts").dt.date()).agg((pl.col("high").max() / pl.col("low").min()).log().alias("r"))
    typical = float(daily["r"].median() or 0.0)
    prev = pl.col("close").shift(1)
    move = pl.max_horizontal(
        (pl.col("open") / prev).log().abs(),
        (pl.col("close") / prev).log().abs(),
        (pl.col("high") / pl.col("low")).log(),
    )
    data = data.with_columns(move.alias("move"), pl.lit(typical).alias("typical_day"))
    if typical <= 0:
        return _offending(data, [pl.lit(None, pl.Utf8)])
    reason = pl.format(
        "move of {}% in one bar, over {}x the median daily range {}%",
        (pl.col("move") * 100).round(3), pl.lit(factor), round(typical * 100, 3),
    )
    return _offending(data, [pl.when(pl.col("move") > factor * typical).then(reason)])


def atr_lookahead_violations(enhanced: pl.DataFrame, *, short: int, long: int, alpha: float,
                             timezone: str | None = None, session: SessionCalendar | None = None,
                             source: pl.DataFrame | None = None, samples: int = 12) -> pl.DataFrame:
    """Sessions whose ATR differs from one recomputed from the bars strictly before the session.

    For up to `samples` sessions with a defined atr (spread evenly, the last one included), the
    blended ATR is recomputed from the source bars (`source`: the raw bars, warm-up included;
    default the enhanced bars themselves) strictly before the session's first bar, under the same
    calendar (`session`, default calendar days of `timezone`); any difference (relative 1e-9)
    means the stored ATR saw data of its own session or later. Vectorized: the source's daily
    bars are built once, and because session dates never decrease as time goes on (checked
    here), the bars before a session's first bar are exactly the daily bars before it, so each
    sample is a Wilder ATR over a prefix of them. Columns: session_date, atr, atr_recomputed, problem.
    """
    from mochi_assets.market_data.indicators import _calendar, wilder_atr

    schema = {"session_date": pl.Date, "atr": pl.Float64, "atr_recomputed": pl.Float64, "problem": pl.Utf8}
    sessions = (
        enhanced.filter(pl.col("atr").is_not_null())
        .group_by("session_date")
        .agg(pl.col("atr").first(), pl.col("ts").min().alias("first_ts"))
        .sort("session_date")
    )
    if sessions.is_empty():
        return pl.DataFrame(schema=schema)
    step = max(1, sessions.height // samples)
    picked = sessions[::step].vstack(sessions.tail(1)).unique("session_date").sort("session_date")
    calendar = _calendar(timezone, session)
    bars = (
        (enhanced if source is None else source).select(BAR_COLUMNS).sort("ts")
        .with_columns(session_date_expr(calendar).alias("session_date"))
        .filter(pl.col("session_date").is_not_null())
    )
    if not bars["session_date"].is_sorted():
        problem = "session dates of the source bars go backwards in time: the ATR cannot be recomputed"
        return picked.select("session_date", "atr", pl.lit(None, pl.Float64).alias("atr_recomputed"),
                             pl.lit(problem).alias("problem"))
    daily = (
        bars.group_by("session_date", maintain_order=True)
        .agg(pl.col("high").max(), pl.col("low").min(), pl.col("close").last(), pl.col("ts").min().alias("first_ts"))
    )
    high, low, close = (daily[c].to_numpy() for c in ("high", "low", "close"))
    first_ts = daily["first_ts"]
    rows = []
    for session_date, atr, session_first in picked.iter_rows():
        before = int(first_ts.search_sorted(session_first, side="left"))  # daily bars wholly before it
        value = None
        if before > 0:
            short_atr = wilder_atr(high[:before], low[:before], close[:before], short)[-1]
            long_atr = wilder_atr(high[:before], low[:before], close[:before], long)[-1]
            blended = alpha * short_atr + (1.0 - alpha) * long_atr
            value = None if np.isnan(blended) else float(blended)
        if value is None or abs(value - atr) > 1e-9 * max(abs(atr), 1e-12):
            rows.append({"session_date": session_date, "atr": atr, "atr_recomputed": value,
                         "problem": "atr differs from the one recomputed from earlier bars only"})
    return pl.DataFrame(rows, schema=schema)
