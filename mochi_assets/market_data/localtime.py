"""Local wall-clock times of UTC instants, at memory speed.

Polars converts a time-zone-aware column to local time with one tz-database lookup per row
(about 0.3 µs each: a second for ten years of minute bars), and the bars stage needs local
times several times over. A zone's UTC offset changes only a few times a year, so here it is
looked up at the first and last instant of each UTC hour that holds data; an hour whose two
offsets differ holds a transition, and its rows are looked up one by one. The result is exact
unless a zone changed its offset twice within one hour, which no zone in the tz database does.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from mochi_resources.errors import RequestError

MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
_NAIVE_US = pl.Datetime("us")


def _lookup(ts: np.ndarray, timezone: str) -> np.ndarray:
    """UTC offset (int64 µs) of `timezone` at each UTC instant of `ts` (µs), one lookup each."""
    utc = pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    try:
        local = utc.dt.convert_time_zone(timezone)
    except Exception as exc:  # polars raises its own error types for unknown zones
        raise RequestError(f"timezone {timezone!r} is not a known IANA time zone") from exc
    return local.dt.replace_time_zone(None).to_physical().to_numpy() - ts


def _hour_probes(hours: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """The UTC offset at the first and at the last microsecond of each UTC hour in `hours`."""
    lo = hours * MICROS_PER_HOUR
    probes = _lookup(np.concatenate((lo, lo + MICROS_PER_HOUR - 1)), timezone)
    return probes[: hours.shape[0]], probes[hours.shape[0]:]


@njit(cache=True, nogil=True)
def _hours_nb(ts: np.ndarray) -> np.ndarray:
    """The distinct UTC hours (floor of ts / MICROS_PER_HOUR) of ts whose hours never decrease, in
    order; an empty array otherwise. (A division only where the hour changes.)"""
    n = ts.shape[0]
    hours = np.empty(n, dtype=np.int64)
    count = 0
    start = end = 0
    for i in range(n):
        t = ts[i]
        if count and start <= t < end:
            continue
        if count and t < start:
            return hours[:0]
        hour = t // MICROS_PER_HOUR
        hours[count] = hour
        count += 1
        start, end = hour * MICROS_PER_HOUR, (hour + 1) * MICROS_PER_HOUR
    return hours[:count].copy()


@njit(cache=True, nogil=True)
def _spread_nb(ts: np.ndarray, hours: np.ndarray, offsets: np.ndarray, add: bool) -> np.ndarray:
    """offsets[k] for each row of ts, k the index of the row's hour in `hours` (`_hours_nb`);
    with `add`, ts plus it (the local time)."""
    out = np.empty(ts.shape[0], dtype=np.int64)
    k = 0
    end = (hours[0] + 1) * MICROS_PER_HOUR
    for i in range(ts.shape[0]):
        while ts[i] >= end:
            k += 1
            end = (hours[k] + 1) * MICROS_PER_HOUR
        out[i] = ts[i] + offsets[k] if add else offsets[k]
    return out


def _offsets(ts: np.ndarray, timezone: str, add: bool) -> np.ndarray:
    ts = np.asarray(ts, dtype=np.int64)
    n = ts.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    hours = _hours_nb(ts)
    if hours.shape[0]:
        # sorted (the usual case): two compiled passes, unless an hour holds a transition
        first, last = _hour_probes(hours, timezone)
        if np.array_equal(first, last):
            return _spread_nb(ts, hours, first, add)
    hours, inverse = np.unique(ts // MICROS_PER_HOUR, return_inverse=True)
    first, last = _hour_probes(hours, timezone)
    offsets = first[inverse]
    changed = first != last
    if changed.any():
        rows = np.flatnonzero(changed[inverse])
        offsets[rows] = _lookup(ts[rows], timezone)
    return ts + offsets if add else offsets


def utc_offsets(ts: np.ndarray, timezone: str) -> np.ndarray:
    """UTC offset (int64 microseconds) of `timezone` at each UTC instant ts (int64 µs, any order)."""
    return _offsets(ts, timezone, add=False)


def local_micros(ts: np.ndarray, timezone: str) -> np.ndarray:
    """Local wall-clock time (int64 µs since the local epoch) in `timezone` of each UTC instant ts
    (int64 µs, any order): ``ts + utc_offsets(ts, timezone)`` in one pass when ts is sorted."""
    return _offsets(ts, timezone, add=True)


# Every UTC offset in the tz database lies within this many hours of zero (the widest are +14:00 and
# -12:00; local mean times before 1900 stay within +-16): a wall time's instants lie this close to it.
_OFFSET_REACH_H = 26


def utc_from_local(local: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """(utc, settled) for wall times `local` (int64 µs since the local epoch) in `timezone`:
    where the zone's offset is the same through the 26 hours either side of the wall time (read as
    a UTC instant), the wall time is exactly one instant, ``utc = local - offset``, and settled is
    True. Near a change of offset (a skipped or repeated hour, within a day of it) settled is False
    and utc is 0: the caller decides those rows (which instant of a repeated hour, or none).

    The offset is looked up at the first and last instant of every UTC hour within 27 hours of a
    wall time, as `utc_offsets` does (exact unless a zone changed its offset twice within one hour)."""
    local = np.asarray(local, dtype=np.int64)
    n = local.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    hours = np.unique(local // MICROS_PER_HOUR)
    reach = _OFFSET_REACH_H + 1
    # the hours within `reach` of a wall time's hour: merged runs of consecutive hours
    start, stop = hours - reach, hours + reach + 1
    new_run = np.concatenate(([True], start[1:] > stop[:-1]))
    run_start = start[new_run]
    run_stop = np.maximum.reduceat(stop, np.flatnonzero(new_run))
    lengths = run_stop - run_start
    probe = np.repeat(run_start - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
    first, last = _hour_probes(probe, timezone)
    # a change within hour k, or between hour k - 1 and hour k when they are consecutive
    change = first != last
    change[1:] |= (probe[1:] == probe[:-1] + 1) & (first[1:] != last[:-1])
    changes_before = np.concatenate(([0], np.cumsum(change)))
    at = np.searchsorted(probe, local // MICROS_PER_HOUR)  # every wall time's hour is a probe
    window = changes_before[at + _OFFSET_REACH_H + 1] - changes_before[at - _OFFSET_REACH_H]
    settled = window == 0
    utc = np.where(settled, local - first[at], 0)
    return utc, settled


def local_naive(ts: pl.Series, timezone: str) -> pl.Series:
    """The local wall-clock time (naive Datetime µs) in `timezone` of a UTC Datetime series.

    Equal to ``ts.dt.convert_time_zone(timezone).dt.replace_time_zone(None)`` (nulls stay null).
    A naive input is read as UTC.
    """
    name = ts.name
    if ts.dtype == pl.Null:
        return pl.Series(name, [None] * ts.len(), dtype=_NAIVE_US)
    physical = ts.dt.cast_time_unit("us").to_physical()
    nulls = physical.is_null()
    values = physical.fill_null(0).to_numpy()
    local = local_micros(values, timezone)
    out = pl.Series(name, local, dtype=pl.Int64).cast(_NAIVE_US)
    if nulls.any():
        out = pl.select(pl.when(nulls).then(None).otherwise(out)).to_series().alias(name)
    return out


def local_naive_expr(timezone: str, column: str = "ts") -> pl.Expr:
    """Expression form of `local_naive` on the UTC column `column`."""
    return pl.col(column).map_batches(
        lambda s: local_naive(s, timezone), return_dtype=_NAIVE_US, is_elementwise=True
    )
