"""Daily indicators for the strategy: one daily bar per trading session and blended Wilder ATRs.

A daily bar is the bars of one session of the ticker's calendar (sessions.py): for forex the
Sunday-evening bars are part of Monday's daily bar, never a day of their own. The ATR used on
session date D is computed from the daily bars up to D-1 only (the daily series is shifted by one
daily bar), so no bar of D leaks into the stop and limit distances of trades taken on D.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from numba import njit

from mochi_assets.market_data.bars import check_timezone
from mochi_assets.market_data.recursions import first_order_filter
from mochi_assets.market_data.sessions import SessionCalendar, assign_sessions, parse_session
from mochi_resources.errors import RequestError

DAILY_COLUMNS = ["session_date", "open", "high", "low", "close", "volume"]
ENHANCED_EXTRA_COLUMNS = ["session_date", "atr_short", "atr_long", "atr"]


def _calendar(timezone: str | None, session: SessionCalendar | None) -> SessionCalendar:
    """`session`, else calendar days of `timezone` (the sessions of a market open around the clock)."""
    if session is not None:
        return session
    if timezone is None:
        raise RequestError("session: give a session calendar or a timezone")
    check_timezone(timezone)
    return parse_session("calendar-day", timezone)


def daily_bars(minute: pl.DataFrame, timezone: str | None = None, *,
               session: SessionCalendar | None = None) -> pl.DataFrame:
    """Daily bars, one per session of `session` (default: calendar days of `timezone`).

    Columns session_date (Date), open (first), high (max), low (min), close
    (last), volume (sum); one row per session that has bars, sorted by date.
    Bars outside every session are left out.
    """
    calendar = _calendar(timezone, session)
    return (
        assign_sessions(minute, calendar)
        .group_by("session_date", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .sort("session_date")
        .select(DAILY_COLUMNS)
    )


def _check_period(period: int, field: str) -> int:
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 1:
        raise RequestError(f"{field}: ATR period must be a positive integer, got {period!r}")
    return int(period)


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average true range, one value per input bar (float64, NaN before index period-1).

    TR[0] = high-low; TR[t] = max(high-low, |high-close[t-1]|, |low-close[t-1]|);
    ATR[period-1] = mean(TR[0:period]); ATR[t] = (ATR[t-1]*(period-1) + TR[t]) / period.
    """
    period = _check_period(period, "period")
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    close = np.asarray(close, dtype=np.float64)
    n = high.shape[0]
    if low.shape[0] != n or close.shape[0] != n:
        raise ValueError("wilder_atr: high, low and close must have the same length")
    atr = np.full(n, np.nan)
    if n < period:
        return atr
    tr = high - low
    if n > 1:
        prev_close = close[:-1]
        tr[1:] = np.maximum.reduce([tr[1:], np.abs(high[1:] - prev_close), np.abs(low[1:] - prev_close)])
    seed = tr[:period].mean()
    atr[period - 1] = seed
    if n > period:
        # The recursion is a first-order IIR filter: y[t] = (1 - 1/p) y[t-1] + x[t]/p.
        decay = (period - 1) / period
        atr[period:] = first_order_filter(1.0 / period, -decay, tr[period:], zi=decay * seed)
    return atr


def enhance_bars(minute: pl.DataFrame, *, short: int, long: int, alpha: float, timezone: str | None = None,
                 session: SessionCalendar | None = None, start: dt.date | None = None,
                 end: dt.date | None = None, session_dates: pl.Series | None = None) -> pl.DataFrame:
    """Minute bars joined with the daily ATRs of their session (enhanced bars table).

    Columns: the bar columns, session_date (the bar's session under `session`, default calendar
    days of `timezone`; bars outside every session are dropped), atr_short, atr_long (Wilder ATRs
    of the daily bars with periods `short` and `long`), atr = alpha*atr_short + (1-alpha)*atr_long.
    The values on session date D come from daily bars up to the previous session; they are null
    (not NaN) while undefined (warm-up). `start`/`end` keep only the sessions in [start, end]
    AFTER the ATRs are computed, so bars loaded before `start` warm the indicators up without
    being traded. Sorted by ts. `session_dates`: the session date of each row of `minute` under
    that calendar (`sessions.session_dates`), when the caller has it already.
    """
    calendar = _calendar(timezone, session)
    short = _check_period(short, "atr.short")
    long = _check_period(long, "atr.long")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise RequestError(f"atr.alpha: must be a number between 0 and 1, got {alpha!r}")
    alpha = float(alpha)

    bars = assign_sessions(minute, calendar, dates=session_dates)
    daily = (
        bars.group_by("session_date", maintain_order=True)
        .agg(pl.col("high").max(), pl.col("low").min(), pl.col("close").last())
        .sort("session_date")
    )
    high, low, close = (daily.get_column(c).to_numpy() for c in ("high", "low", "close"))
    atr_short = wilder_atr(high, low, close, short)
    atr_long = wilder_atr(high, low, close, long)
    indicators = (
        daily.select("session_date")
        .with_columns(
            pl.Series("atr_short", atr_short).shift(1),
            pl.Series("atr_long", atr_long).shift(1),
        )
        .with_columns(pl.col("atr_short").fill_nan(None), pl.col("atr_long").fill_nan(None))
        .with_columns((alpha * pl.col("atr_short") + (1.0 - alpha) * pl.col("atr_long")).alias("atr"))
    )
    # keep the bars of the sessions start..end, then look each one's session up in the (sorted,
    # distinct) daily dates: the same rows as an inner join, in the bars' ts order, with no hashing
    if start is not None:
        bars = bars.filter(pl.col("session_date") >= start)
    if end is not None:
        bars = bars.filter(pl.col("session_date") <= end)
    names = ENHANCED_EXTRA_COLUMNS[1:]
    ok, spread = _by_session_nb(
        bars.get_column("session_date").to_physical().to_numpy(),
        indicators.get_column("session_date").to_physical().to_numpy(),
        np.column_stack([indicators.get_column(c).to_numpy() for c in names]),  # nulls as NaN
    )
    if ok:  # bars in session order (the usual case): one compiled pass; NaN was null (no ATR is NaN)
        return bars.with_columns(pl.Series(c, spread[j], nan_to_null=True) for j, c in enumerate(names))
    row = indicators.get_column("session_date").search_sorted(bars.get_column("session_date"), side="left")
    return bars.with_columns(indicators.get_column(c).gather(row) for c in names)


@njit(cache=True, nogil=True)
def _by_session_nb(bar_days: np.ndarray, days: np.ndarray, values: np.ndarray) -> tuple[bool, np.ndarray]:
    """Row k of `values` (one row per session day of the sorted, distinct `days`) for each bar of
    session day `bar_days`, column by column: (True, columns x bars) when bar_days never decrease
    and each is one of `days`; (False, anything) otherwise."""
    n, m = bar_days.shape[0], values.shape[1]
    out = np.empty((m, n))
    k = 0
    for i in range(n):
        d = bar_days[i]
        if i > 0 and d < bar_days[i - 1]:
            return False, out
        while k < days.shape[0] and days[k] < d:
            k += 1
        if k == days.shape[0] or days[k] != d:
            return False, out
        for j in range(m):
            out[j, i] = values[k, j]
    return True, out
