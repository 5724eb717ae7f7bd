"""One compiled pass over a bars table (or the enhanced bars' ATR) that says it is certainly clean,
so that the polars rules of `validate_bars` and of the asset checks (which build every offending row
and its reason) run only on a table that may break them.

Each scan answers True ("certainly clean") or False ("look with the rules"): never True where a
rule would report something. Where a rule is made of comparisons the scan does the same
comparisons (exact); where it takes logarithms (`suspicious_jumps`) the scan keeps a relative
margin of 1e-9 on the safe side, so a last-bit difference between two logarithms cannot hide a bar.
A table with nulls, NaN, or timestamps that are not strictly increasing is never certainly clean
here: the rules handle it. On 10 years of minute bars (3.8 M rows), each check with its scan against
its rules alone: ohlc 0.03 s against 0.06 s, resolutions 0.03 against 0.14, jumps 0.08 against 0.20,
the ATR rules 0.04 against 0.10, validate_bars 0.04 against 0.08 (README, "Ninth round").
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from mochi_assets.market_data.localtime import MICROS_PER_DAY

_LOG_MARGIN = 1e-9


@njit(cache=True, nogil=True)
def _values_nb(open_, high, low, close, volume):
    """Every value finite, prices > 0, low <= open, close <= high, volume >= 0."""
    for i in range(open_.shape[0]):
        o, h, lo, c, v = open_[i], high[i], low[i], close[i], volume[i]
        if not (np.isfinite(o) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(c) and np.isfinite(v)
                and o > 0 and h > 0 and lo > 0 and c > 0 and h >= lo and lo <= o <= h and lo <= c <= h
                and v >= 0):
            return False
    return True


@njit(cache=True, nogil=True)
def _increasing_nb(ts):
    for i in range(1, ts.shape[0]):
        if ts[i] <= ts[i - 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def _jumps_nb(ts, open_, high, low, close):
    """(plain, each UTC day's highest high, its lowest low, largest move) of `checks.suspicious_jumps`:
    plain when every price is finite and positive and ts (µs) strictly increasing; a bar's move is
    the largest of |log(open / previous close)|, |log(close / previous close)| and log(high / low)."""
    n = ts.shape[0]
    days_high = np.empty(n)
    days_low = np.empty(n)
    days = 0
    current = 0
    largest = 0.0
    for i in range(n):
        o, h, lo, c = open_[i], high[i], low[i], close[i]
        if not (np.isfinite(o) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(c)
                and o > 0 and h > 0 and lo > 0 and c > 0):
            return False, days_high[:0], days_low[:0], 0.0
        if i > 0 and ts[i] <= ts[i - 1]:
            return False, days_high[:0], days_low[:0], 0.0
        day = ts[i] // MICROS_PER_DAY
        if i == 0 or day != current:
            current = day
            days_high[days] = h
            days_low[days] = lo
            days += 1
        else:
            days_high[days - 1] = max(days_high[days - 1], h)
            days_low[days - 1] = min(days_low[days - 1], lo)
        move = np.log(h / lo)
        if i > 0:
            prev = close[i - 1]
            move = max(move, abs(np.log(o / prev)), abs(np.log(c / prev)))
        largest = max(largest, move)
    return True, days_high[:days], days_low[:days], largest


@njit(cache=True, nogil=True)
def _resolution_nb(minute_ts, minute_high, minute_low, bar_ts, bar_high, bar_low, length):
    """True when every minute lies in the latest coarse bar opening at or before it, within
    `length` µs, every coarse bar holds a minute, and no minute trades above its bar's high or
    below its low; both tables finite and strictly increasing in ts."""
    n_bars = bar_ts.shape[0]
    for k in range(n_bars):
        if not (np.isfinite(bar_high[k]) and np.isfinite(bar_low[k])) or (k > 0 and bar_ts[k] <= bar_ts[k - 1]):
            return False
    held = np.zeros(n_bars, dtype=np.bool_)
    bar = -1
    for i in range(minute_ts.shape[0]):
        t = minute_ts[i]
        if not (np.isfinite(minute_high[i]) and np.isfinite(minute_low[i])) or (i > 0 and t <= minute_ts[i - 1]):
            return False
        while bar + 1 < n_bars and bar_ts[bar + 1] <= t:
            bar += 1
        if bar < 0 or t >= bar_ts[bar] + length:
            return False  # a minute outside every coarse bar
        # within the rules' tolerance is not certainly clean: the rules decide
        if minute_high[i] > bar_high[bar] or minute_low[i] < bar_low[bar]:
            return False
        held[bar] = True
    for k in range(n_bars):
        if not held[k]:
            return False
    return True


def _micros(ts: pl.Series) -> np.ndarray | None:
    """A UTC (or naive) Datetime column as int64 microseconds; None for nulls or another type."""
    if not isinstance(ts.dtype, pl.Datetime) or ts.dtype.time_zone not in (None, "UTC") or ts.null_count():
        return None
    return ts.dt.cast_time_unit("us").to_physical().to_numpy()


def _floats(df: pl.DataFrame, *names: str) -> list[np.ndarray]:
    # nulls come out as NaN, which no scan accepts
    return [df.get_column(name).cast(pl.Float64).to_numpy() for name in names]


def _pieces(df: pl.DataFrame) -> list[pl.DataFrame]:
    """`df` cut where its ts column's chunks end (a concatenation of tables: each piece's columns
    then reach NumPy without a copy)."""
    pieces, offset = [], 0
    for length in df.get_column("ts").chunk_lengths():
        pieces.append(df.slice(offset, length))
        offset += length
    return pieces or [df]


def bars_clean(df: pl.DataFrame) -> bool:
    """True when the values of a table with the bar columns are certainly as `checks.ohlc_violations`
    and `validate_bars` want them: no null, NaN or infinity, prices > 0, low <= open, close <= high,
    volume >= 0 (ts is not looked at)."""
    return all(bool(_values_nb(*_floats(piece, "open", "high", "low", "close", "volume")))
               for piece in _pieces(df) if piece.height)


def ts_increasing(ts: pl.Series) -> bool:
    """True when a UTC (or naive) Datetime column has no null and strictly increases."""
    micros = _micros(ts)
    return micros is not None and bool(_increasing_nb(micros))


def jumps_below(df: pl.DataFrame, factor: float) -> float | None:
    """The median daily range of `checks.suspicious_jumps` when no bar of `df` can move more than
    `factor` times it (with the margin in the module docstring), else None (the rules decide)."""
    micros = _micros(df.get_column("ts"))
    if micros is None or df.height < 2:
        return None
    plain, days_high, days_low, largest = _jumps_nb(micros, *_floats(df, "open", "high", "low", "close"))
    if not plain:
        return None
    # the median daily range outside the kernel: numba's median compiles for seconds on a fresh install
    typical = float(np.median(np.log(days_high / days_low)))
    limit = factor * typical
    if typical <= 0 or not largest < limit - abs(limit) * _LOG_MARGIN:
        return None
    return typical


def resolution_clean(minute: pl.DataFrame, coarse: pl.DataFrame, length_us: int) -> bool:
    """True when `checks.resolution_mismatches` certainly finds nothing (see `_resolution_nb`)."""
    minute_ts, bar_ts = _micros(minute.get_column("ts")), _micros(coarse.get_column("ts"))
    if minute_ts is None or bar_ts is None:
        return False
    return bool(_resolution_nb(minute_ts, *_floats(minute, "high", "low"), bar_ts, *_floats(coarse, "high", "low"),
                               length_us))


@njit(cache=True, nogil=True)
def _atr_nb(days, defined, atr, warmup):
    """True when `checks.atr_violations` certainly finds nothing: session days never decrease; in
    each session every row has the same atr (or every row none); from session `warmup` on (-1: the
    first session with an atr) every atr is finite and positive; before it, when given, none is
    defined."""
    n = days.shape[0]
    sessions = 0
    first_defined = -1
    for i in range(n):
        if i == 0 or days[i] != days[i - 1]:
            if i > 0 and days[i] < days[i - 1]:
                return False
            sessions += 1
            if defined[i] and first_defined < 0:
                first_defined = sessions - 1
        elif defined[i] != defined[i - 1] or (defined[i] and atr[i] != atr[i - 1]):
            return False  # the atr varies within the session (or is NaN: never equal to itself)
    start = first_defined if warmup < 0 else warmup
    if start < 0:
        start = sessions
    session = -1
    for i in range(n):
        if i == 0 or days[i] != days[i - 1]:
            session += 1
        if session >= start:
            if not defined[i] or not (np.isfinite(atr[i]) and atr[i] > 0):
                return False
        elif warmup >= 0 and defined[i]:
            return False
    return True


def atr_clean(enhanced: pl.DataFrame, warmup_sessions: int | None) -> bool:
    """True when `checks.atr_violations(enhanced, warmup_sessions=...)` certainly finds nothing."""
    days, atr = enhanced.get_column("session_date"), enhanced.get_column("atr")
    if days.null_count() or days.dtype != pl.Date or (warmup_sessions is not None and warmup_sessions < 0):
        return False
    return bool(_atr_nb(days.to_physical().to_numpy(), atr.is_not_null().to_numpy(),
                        atr.cast(pl.Float64).fill_null(0.0).to_numpy(), -1 if warmup_sessions is None else warmup_sessions))
