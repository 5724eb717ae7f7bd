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
from mochi_assets.market_data.localtime import MICROS_PER_HOUR
from mochi_assets.market_data.scans import atr_clean, bars_clean, jumps_below, resolution_clean, ts_increasing
from mochi_assets.market_data.sessions import SessionCalendar, session_date_expr

_ROW = "row"
# How long after its opening a coarse bar holds minutes (days: 25 hours, for a clock change).
_LENGTH_US = {"hour": MICROS_PER_HOUR, "day": 25 * MICROS_PER_HOUR}
_PROBLEM = "problem"


def _offending(df: pl.DataFrame, reasons: list[pl.Expr]) -> pl.DataFrame:
    """Rows where at least one reason applies, with the reasons joined in `problem`.

    The reasons are evaluated on the whole table (they may look at neighbouring rows), the joined
    text only on the offending rows (usually none: no string is built per row of a clean table).
    """
    return _offending_indexed(df.with_row_index(_ROW).with_columns(pl.col(_ROW).cast(pl.Int64)), reasons)


def _offending_indexed(df: pl.DataFrame, reasons: list[pl.Expr]) -> pl.DataFrame:
    """`_offending` of a table that has its `row` column already (first, Int64)."""
    names = [f"__mochi_reason_{i}" for i in range(len(reasons))]
    return (
        df.with_columns(*[r.alias(n) for r, n in zip(reasons, names)])
        .filter(pl.any_horizontal([pl.col(n).is_not_null() for n in names]))
        .with_columns(pl.concat_str(names, separator="; ", ignore_nulls=True).alias(_PROBLEM))
        .drop(names)
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
    if bars.get_column("ts").null_count() == 0 and bars_clean(bars):
        return _offending(bars.head(0), reasons)  # no row to report: the rules would find none
    return _offending(bars, reasons)


def timestamp_violations(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars whose ts is null, repeats an earlier row's ts, or is not strictly
    greater than the previous row's ts (in the table's order)."""
    ts = pl.col("ts")
    column = bars.get_column("ts")
    clean = ts_increasing(column)  # then no reason applies to any row
    # in a sorted column a repeat follows its first occurrence: no hashing needed
    sorted_ = clean or (column.null_count() == 0 and column.is_sorted())
    repeated = (ts == ts.shift(1)) if sorted_ else ~ts.is_first_distinct()
    reasons = [
        _reason(ts.is_null(), "null ts"),
        _reason(repeated & ts.is_not_null(), "duplicate ts"),
        _reason(ts <= ts.shift(1), "ts not after the previous row's"),
    ]
    return _offending(bars.head(0) if clean else bars, reasons)


def atr_violations(enhanced: pl.DataFrame, *, warmup_sessions: int | None = None) -> pl.DataFrame:
    """Enhanced bars of sessions whose ATR is wrong.

    After warm-up, atr must be non-null, finite and positive; within one
    session_date it must be constant. Warm-up is the first `warmup_sessions`
    session dates when given (max(short, long) for a request; then an ATR
    defined during warm-up is reported too, a sign of misaligned indicators),
    otherwise the sessions before the first one with a defined atr.
    """
    if atr_clean(enhanced, warmup_sessions):  # the rules on no row give the same (empty) table
        enhanced = enhanced.head(0)
    sessions = (
        enhanced.group_by("session_date")
        .agg(
            pl.col("atr").n_unique().alias("_distinct"),
            pl.col("atr").is_not_null().any().alias("_defined"),
            pl.col("atr").is_null().any().alias("_null"),
            (pl.col("atr").is_nan() | pl.col("atr").is_infinite() | (pl.col("atr") <= 0)).fill_null(False).any()
            .alias("_bad"),
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
    # only the rows of sessions where some reason can apply are looked at row by row (none, in a
    # good table): the row numbers are those of `enhanced`
    suspect = (pl.col("_distinct") > 1) | (after & (pl.col("_null") | pl.col("_bad")))
    if warmup_sessions is not None:
        suspect = suspect | (~after & pl.col("_defined"))
    suspects = sessions.filter(suspect & pl.col("session_date").is_not_null()).get_column("session_date")
    rows = (
        enhanced.with_row_index(_ROW)
        .with_columns(pl.col(_ROW).cast(pl.Int64))
        .filter(pl.col("session_date").is_in(suspects.implode()))
    )
    joined = rows.join(
        sessions.select("session_date", "_distinct", "_after_warmup"),
        on="session_date",
        how="left",
        maintain_order="left",
    )
    return _offending_indexed(joined, reasons).drop("_distinct", "_after_warmup")


def resolution_mismatches(minute: pl.DataFrame, coarse: pl.DataFrame, resolution: str) -> pl.DataFrame:
    """Hour or day bars that disagree with the minute bars inside them, and minutes no bar holds.

    Each minute belongs to the latest coarse bar opening at or before it, within the bar's length
    (an hour; 25 hours for days, for local days with a clock change). A coarse bar disagrees when
    its minutes trade above its high or below its low (tolerance 1e-9 relative) or when it has
    no minute at all. Columns: ts, resolution, high, low, minute_high, minute_low, minute_bars,
    problem.
    """
    length = f"{_LENGTH_US[resolution] // MICROS_PER_HOUR}h"
    schema = {"ts": pl.Datetime("us", "UTC"), "resolution": pl.Utf8, "high": pl.Float64, "low": pl.Float64,
              "minute_high": pl.Float64, "minute_low": pl.Float64, "minute_bars": pl.Int64, "problem": pl.Utf8}
    if (minute.is_empty() and coarse.is_empty()) or resolution_clean(minute, coarse, _LENGTH_US[resolution]):
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
    per_bar = _per_bar(joined.filter(pl.col("bar_ts").is_not_null()))
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


def _per_bar(joined: pl.DataFrame) -> pl.DataFrame:
    """Highest high, lowest low and count of the minutes of each `bar_ts` (minutes sorted by ts).

    The minutes of one bar are consecutive (bar_ts never decreases along sorted minutes), so the
    usual case is one pass over runs (numpy reduceat); with nulls or NaN in the prices (polars'
    max and min skip them) or runs that are not sorted, a hash group-by.
    """
    bar = joined.get_column("bar_ts")
    high, low = joined.get_column("m_high"), joined.get_column("m_low")
    plain = (
        joined.height > 0 and bar.is_sorted() and high.null_count() == 0 and low.null_count() == 0
        and not bool(high.is_nan().any()) and not bool(low.is_nan().any())
    )
    if not plain:
        return joined.group_by("bar_ts").agg(
            pl.col("m_high").max().alias("minute_high"),
            pl.col("m_low").min().alias("minute_low"),
            pl.len().cast(pl.Int64).alias("minute_bars"),
        )
    keys = bar.to_physical().to_numpy()
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return pl.DataFrame({
        "bar_ts": bar.gather(starts),
        "minute_high": np.maximum.reduceat(high.to_numpy(), starts),
        "minute_low": np.minimum.reduceat(low.to_numpy(), starts),
        "minute_bars": np.diff(np.append(starts, joined.height)).astype(np.int64),
    })


def missing_sessions(minute: pl.DataFrame, start: dt.date, end: dt.date, calendar: SessionCalendar, *,
                     present: pl.Series | None = None) -> pl.DataFrame:
    """Expected session dates start..end of `calendar` that have no bar.

    Expected: every date whose weekday is one of the calendar's session days. Market holidays show
    up here too ("no bars, no session"), which is why the asset check is a warning. `present`: the
    session dates of `minute` under `calendar` when the caller has them already (`RawBars`), else
    they are computed here. Columns: session_date, weekday, problem.
    """
    if present is None:
        present = minute.select(session_date_expr(calendar).drop_nulls().unique()).to_series()
    present = set(present.drop_nulls().to_list())
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
    quiet = jumps_below(bars, factor)
    if quiet is not None:  # no bar moves that far: the rules on no row give the same (empty) table
        return _flag_jumps(bars.head(0), quiet, factor)
    data = bars.sort("ts")
    daily = data.group_by(pl.col("ts").dt.date()).agg((pl.col("high").max() / pl.col("low").min()).log().alias("r"))
    return _flag_jumps(data, float(daily["r"].median() or 0.0), factor)


def _flag_jumps(data: pl.DataFrame, typical: float, factor: float) -> pl.DataFrame:
    """`suspicious_jumps` of bars sorted by ts whose median daily range is `typical`."""
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
    # the text only for the bars that moved too far (a reason per row of 3.8 M bars is most of the work)
    flagged = (
        data.with_row_index(_ROW)
        .with_columns(pl.col(_ROW).cast(pl.Int64))
        .filter((pl.col("move") > factor * typical).fill_null(False))
    )
    # (rechunked: pl.format on the chunks a filter leaves trips an assertion in polars 2.1)
    return _offending_indexed(flagged.rechunk(), [pl.when(pl.col("move") > factor * typical).then(reason)])


def atr_lookahead_violations(enhanced: pl.DataFrame, *, short: int, long: int, alpha: float,
                             timezone: str | None = None, session: SessionCalendar | None = None,
                             source: pl.DataFrame | None = None, samples: int = 12,
                             source_session_dates: pl.Series | None = None) -> pl.DataFrame:
    """Sessions whose ATR differs from one recomputed from the bars strictly before the session.

    For up to `samples` sessions with a defined atr (spread evenly, the last one included), the
    blended ATR is recomputed from the source bars (`source`: the raw bars, warm-up included;
    default the enhanced bars themselves) strictly before the session's first bar, under the same
    calendar (`session`, default calendar days of `timezone`); any difference (relative 1e-9)
    means the stored ATR saw data of its own session or later. Vectorized: the source's daily
    bars are built once, and because session dates never decrease as time goes on (checked
    here), the bars before a session's first bar are exactly the daily bars before it, so each
    sample is a Wilder ATR over a prefix of them; the Wilder ATR is causal, so that is the value
    of the ATR series of all the daily bars at the prefix's last bar (the same operations in the
    same order: the same bits), computed once. `source_session_dates`: the session date of each
    row of `source` under the calendar (`sessions.session_dates`), when the caller has it already.
    Columns: session_date, atr, atr_recomputed, problem.
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
    bars = (enhanced if source is None else source).select(BAR_COLUMNS)
    if source_session_dates is None:
        bars = bars.sort("ts").with_columns(session_date_expr(calendar).alias("session_date"))
    else:
        if source is None or source_session_dates.len() != source.height:
            raise ValueError("atr_lookahead_violations: source_session_dates must have one value per source bar")
        bars = bars.with_columns(source_session_dates.alias("session_date"))
        if not bars.get_column("ts").is_sorted():
            bars = bars.sort("ts")
    bars = bars.filter(pl.col("session_date").is_not_null())
    if not bars["session_date"].is_sorted():
        problem = "session dates of the source bars go backwards in time: the ATR cannot be recomputed"
        return picked.select("session_date", "atr", pl.lit(None, pl.Float64).alias("atr_recomputed"),
                             pl.lit(problem).alias("problem"))
    daily = (
        bars.group_by("session_date", maintain_order=True)
        .agg(pl.col("high").max(), pl.col("low").min(), pl.col("close").last(), pl.col("ts").min().alias("first_ts"))
    )
    high, low, close = (daily[c].to_numpy() for c in ("high", "low", "close"))
    blended = alpha * wilder_atr(high, low, close, short) + (1.0 - alpha) * wilder_atr(high, low, close, long)
    # daily bars wholly before each sampled session's first bar; the ATR after the last of them
    before = daily["first_ts"].search_sorted(picked["first_ts"], side="left").to_numpy().astype(np.int64)
    value = np.full(before.shape[0], np.nan)
    value[before > 0] = blended[before[before > 0] - 1]
    atr = picked["atr"].to_numpy()
    differs = np.isnan(value) | (np.abs(value - atr) > 1e-9 * np.maximum(np.abs(atr), 1e-12))
    return (
        picked.select("session_date", "atr")
        .with_columns(pl.Series("atr_recomputed", value).fill_nan(None),
                      pl.lit("atr differs from the one recomputed from earlier bars only").alias("problem"))
        .filter(pl.Series(differs))
        .cast(schema)
    )
