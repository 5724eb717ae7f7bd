"""The bars table: validation against the contract and resampling of minute bars.

A bars table has `ts` (Datetime us UTC, the bar's OPEN time) and `open high low
close volume` (Float64). Every provider (synthetic, file import, Polygon) hands
its bars to `validate_bars` so that the rest of the pipeline can trust them.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl
from numba import njit

from mochi_resources.errors import BarsError, RequestError
from mochi_assets.market_data.localtime import MICROS_PER_DAY, MICROS_PER_HOUR, local_naive_expr, utc_offsets
from mochi_assets.market_data.scans import bars_clean, ts_increasing

BAR_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
TS_DTYPE = pl.Datetime("us", "UTC")

BARS_SCHEMA = {
    "ts": TS_DTYPE,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}


def empty_bars() -> pl.DataFrame:
    """An empty bars table with the contract dtypes."""
    return pl.DataFrame(schema=BARS_SCHEMA)


def check_timezone(timezone: str, field: str = "timezone") -> str:
    """Return `timezone` if it is an IANA zone name, else raise RequestError naming `field`."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise RequestError(
            f"{field}: unknown time zone {timezone!r} (use an IANA name such as 'America/New_York')"
        ) from None
    return timezone


def local_date_expr(timezone: str, column: str = "ts") -> pl.Expr:
    """Expression: the calendar date of the UTC `column` in `timezone`."""
    return local_naive_expr(timezone, column).dt.date()


def _ohlcv_aggs() -> list[pl.Expr]:
    return [
        pl.col("ts").first(),
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
    ]


@njit(cache=True, nogil=True)
def _ohlcv_runs_nb(ts, shift, period, open_, high, low, close, volume):
    """The bars of sorted minutes grouped by period number (ts + shift) // period (`shift` one value
    per minute, or one for all), when those numbers never decrease and every value is finite: (ok,
    first row of each group, open, high, low, close, volume); volume is the sum of the group's
    volumes added in time order. ok False otherwise."""
    n = ts.shape[0]
    starts = np.empty(n, dtype=np.int64)
    o, h, lo, c, v = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    groups = 0
    key = 0
    for i in range(n):
        if not (np.isfinite(open_[i]) and np.isfinite(high[i]) and np.isfinite(low[i]) and np.isfinite(close[i])
                and np.isfinite(volume[i])) or (i > 0 and ts[i] <= ts[i - 1]):
            return False, starts[:0], o[:0], h[:0], lo[:0], c[:0], v[:0]
        k = (ts[i] + (shift[i] if shift.shape[0] == n else shift[0])) // period
        if groups == 0 or k != key:
            if groups and k < key:
                return False, starts[:0], o[:0], h[:0], lo[:0], c[:0], v[:0]
            key = k
            starts[groups] = i
            o[groups], h[groups], lo[groups], v[groups] = open_[i], high[i], low[i], volume[i]
            groups += 1
        else:
            g = groups - 1
            h[g] = max(h[g], high[i])
            lo[g] = min(lo[g], low[i])
            v[g] += volume[i]
        c[groups - 1] = close[i]
    return True, starts[:groups], o[:groups], h[:groups], lo[:groups], c[:groups], v[:groups]


def resample_bars(minute: pl.DataFrame, every: str, timezone: str) -> pl.DataFrame:
    """Aggregate bars into hour ("1h") or day ("1d") bars; returns a bars table sorted by ts.

    open = first, high = max, low = min, close = last, volume = sum (added in time order), over
    the input bars of each period; only periods that contain bars appear.
    "1h": periods are UTC hours, `ts` is the hour boundary (the bar open time).
    "1d": periods are LOCAL calendar dates in `timezone`; `ts` is the ts of the
    first input bar of that date (a local midnight need not be a trading time,
    e.g. an FX week opens Sunday 17:00 New York).
    Sorted bars with finite values (what `validate_bars` returns) take one compiled pass; others
    a polars group-by.
    """
    check_timezone(timezone)
    if every not in ("1h", "1d"):
        raise RequestError(f"every: unsupported bar size {every!r} (use '1h' or '1d')")
    if minute.is_empty():
        return empty_bars()
    data = minute.select(BAR_COLUMNS).sort("ts")
    fast = _resample_sorted(data, every, timezone)
    if fast is not None:
        return fast
    if every == "1h":
        out = (
            data.group_by(pl.col("ts").dt.truncate("1h").alias("period"), maintain_order=True)
            .agg(_ohlcv_aggs())
            .with_columns(pl.col("period").alias("ts"))
        )
    else:
        out = data.group_by(local_date_expr(timezone).alias("period"), maintain_order=True).agg(_ohlcv_aggs())
    return out.select(BAR_COLUMNS).sort("ts")


def _resample_sorted(data: pl.DataFrame, every: str, timezone: str) -> pl.DataFrame | None:
    """`resample_bars` of bars sorted by a UTC ts, in one compiled pass; None when the bars have a
    null or non-finite value, a repeated ts, or local dates that go back (then the group-by)."""
    ts = data.get_column("ts")
    if ts.dtype != TS_DTYPE or any(data.get_column(c).null_count() for c in BAR_COLUMNS):
        return None
    micros = ts.to_physical().to_numpy()
    if every == "1h":  # UTC hours: no shift
        shift, period = np.zeros(1, dtype=np.int64), MICROS_PER_HOUR
    else:
        shift, period = utc_offsets(micros, timezone), MICROS_PER_DAY
    ok, starts, *values = _ohlcv_runs_nb(micros, shift, period, *(data.get_column(c).to_numpy() for c in BAR_COLUMNS[1:]))
    if not ok:
        return None
    opened = micros[starts]
    if every == "1h":
        opened = opened // MICROS_PER_HOUR * MICROS_PER_HOUR
    return pl.DataFrame(
        {"ts": pl.Series("ts", opened).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").set_sorted(),
         **dict(zip(BAR_COLUMNS[1:], values))},
        schema=BARS_SCHEMA,
    )


def _row_number(mask: pl.Series) -> int:
    """1-based position (in the caller's order) of the first True in mask."""
    return int(mask.arg_true()[0]) + 1


def _normalize_ts(ts: pl.Series, source: str) -> pl.Series:
    dtype = ts.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            ts = ts.dt.replace_time_zone("UTC")
        return ts.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if dtype == pl.Date:
        return ts.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    raise BarsError(f"{source}: column ts has type {dtype}, expected a UTC timestamp")


def _to_float(col: pl.Series, source: str) -> pl.Series:
    """Cast a column to Float64, reporting the first value that is not a number."""
    if col.dtype == pl.Float64:
        return col
    if col.dtype == pl.String:
        stripped = col.str.strip_chars()
        out = stripped.cast(pl.Float64, strict=False)
        bad = out.is_null() & stripped.is_not_null() & (stripped != "")
        if bad.any():
            row = _row_number(bad)
            raise BarsError(f"{source}: row {row}: {col.name} {stripped[row - 1]!r} is not a number")
        return out
    if col.dtype.is_numeric() or col.dtype == pl.Null:
        return col.cast(pl.Float64)
    raise BarsError(f"{source}: column {col.name} has type {col.dtype}, expected numbers")


def _valid_and_increasing(out: pl.DataFrame) -> bool:
    """True when `out` (normalized bars) breaks none of the rules of `validate_bars` and its ts is
    strictly increasing: one compiled pass over the columns (`scans`). NaN counts as a violation
    (the rules below report it as not a finite number)."""
    return ts_increasing(out.get_column("ts")) and bars_clean(out)


def validate_bars(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """Check a bars table against the contract; return it normalized and sorted by ts.

    Output: exactly BAR_COLUMNS, ts Datetime("us", "UTC"), prices and volume
    Float64. Raises BarsError naming `source` and the first offending row
    (1-based, in the input order) for: empty table, missing columns, null or
    NaN values, non-positive prices, high below low, open or close outside
    [low, high], negative volume, duplicate timestamps.
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise BarsError(f"{source}: missing column(s) {', '.join(missing)} (bars need {', '.join(BAR_COLUMNS)})")
    if df.height == 0:
        raise BarsError(f"{source}: no bars (the table is empty)")
    cols = {"ts": _normalize_ts(df.get_column("ts"), source)}
    for name in BAR_COLUMNS[1:]:
        cols[name] = _to_float(df.get_column(name), source)
    out = pl.DataFrame(cols).select(BAR_COLUMNS)
    if _valid_and_increasing(out):
        # the usual case, settled in one pass; the sort flag spares later sorts the work
        return out.with_columns(pl.col("ts").set_sorted())

    for name in BAR_COLUMNS:
        col = out.get_column(name)
        bad = col.is_null()
        if name != "ts":
            bad = bad | col.is_nan() | col.is_infinite()
        if bad.any():
            row = _row_number(bad)
            raise BarsError(f"{source}: row {row}: {name} is missing or not a finite number")
    for name in PRICE_COLUMNS:
        bad = out.get_column(name) <= 0
        if bad.any():
            row = _row_number(bad)
            raise BarsError(f"{source}: row {row}: {name} {out[name][row - 1]} is not a positive price")
    high, low = out.get_column("high"), out.get_column("low")
    bad = high < low
    if bad.any():
        row = _row_number(bad)
        raise BarsError(f"{source}: row {row}: high {high[row - 1]} is below low {low[row - 1]}")
    for name in ("open", "close"):
        col = out.get_column(name)
        bad = (col < low) | (col > high)
        if bad.any():
            row = _row_number(bad)
            raise BarsError(
                f"{source}: row {row}: {name} {col[row - 1]} is outside the bar's range "
                f"[low {low[row - 1]}, high {high[row - 1]}]"
            )
    bad = out.get_column("volume") < 0
    if bad.any():
        row = _row_number(bad)
        raise BarsError(f"{source}: row {row}: volume {out['volume'][row - 1]} is negative")
    ts = out.get_column("ts")
    physical = ts.to_physical()
    # strictly increasing (the usual case) has no duplicates; otherwise find the first repeat
    bad = None if (physical.diff().drop_nulls() > 0).all() else ~ts.is_first_distinct()
    if bad is not None and bad.any():
        row = _row_number(bad)
        first = _row_number(ts == ts[row - 1])
        raise BarsError(f"{source}: row {row}: duplicate timestamp {ts[row - 1]} (also at row {first})")
    return out.sort("ts")
