"""Deterministic synthetic minute bars for tickers "SYN:<NAME>", so Mochi runs offline with no keys.

The generator is built so that a bar depends only on the ticker and its own
timestamp, never on the range requested (a longer request later does not change
earlier bars):

- a daily anchor path (log price at each local midnight, calendar days counted
  from EPOCH) is a mean-reverting random walk whose random numbers come in
  fixed-size blocks seeded by (ticker, stream, block), so any prefix is stable;
- volatility regimes are a weekly AR(1) in log-volatility (calm and volatile
  spells lasting weeks), from the same kind of block stream;
- each session date's minutes come from a generator seeded by (ticker, date):
  a Brownian bridge from that day's anchor to the next one, with minute
  variance following an intraday pattern (busier at the London and New York
  opens), rare intraday jumps, short intra-minute excursions for high/low and
  a small share of missing minutes.

Sessions follow FX hours: Sunday 17:00 to Friday 17:00 America/New_York. The
minutes of a session date are those whose local date in that zone is the date
(so Sunday holds 17:00-24:00, Friday 00:00-17:00, Saturday nothing). The move
from Friday's close to Sunday's open is the weekend gap.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from numba import njit

from mochi_assets.kernel_threads import run_ranges
from mochi_assets.market_data.bars import BAR_COLUMNS, empty_bars
from mochi_assets.market_data.localtime import utc_offsets
from mochi_assets.market_data.recursions import first_order_filter
from mochi_resources.errors import ProviderError, RequestError

SYNTHETIC_PREFIX = "SYN:"
EPOCH = date(1970, 1, 5)  # a Monday: day index 0 of the anchor path, day-of-week = index % 7
SESSION_TIMEZONE = "America/New_York"
WEEK_OPEN_MIN = 17 * 60  # Sunday 17:00 local
WEEK_CLOSE_MIN = 17 * 60  # Friday 17:00 local

_BLOCK = 1024
_STREAM_DAILY = 1
_STREAM_REGIME = 2
_STREAM_MINUTES = 3
_STREAM_PARAMS = 4

# Regime log-volatility: weekly AR(1); phi 0.92 keeps a regime for ~3 months on average.
_REGIME_PHI = 0.92
_REGIME_SD = 0.45

# Share of a full day's variance carried by the trading on each weekday (Mon=0 .. Sun=6):
# Friday trades until 17:00, Saturday stands for the weekend gap, Sunday trades from 17:00.
_DAY_VARIANCE_SHARE = np.array([1.0, 1.0, 1.0, 1.0, 17 / 24, 0.25, 7 / 24])

_KNOWN = {
    "GOLD": {"base_price": 1900.0, "tick_size": 0.01, "daily_vol": 0.009, "volume_base": 120.0},
    "XAUUSD": {"base_price": 1900.0, "tick_size": 0.01, "daily_vol": 0.009, "volume_base": 120.0},
    "EURUSD": {"base_price": 1.10, "tick_size": 0.00001, "daily_vol": 0.005, "volume_base": 300.0},
}


@dataclass(frozen=True)
class SyntheticProfile:
    """Parameters of one synthetic ticker (all derived from the ticker name)."""

    ticker: str
    name: str
    tick_size: float
    timezone: str
    asset_class: str
    base_price: float
    daily_vol: float  # typical standard deviation of a day's log return
    mean_reversion: float  # daily pull of the log price towards log(base_price)
    volume_base: float  # typical volume of one minute
    missing_rate: float  # share of trading minutes without a bar
    jump_rate: float  # probability that a session date has one intraday jump
    seed: int


def is_synthetic(ticker: str) -> bool:
    """True for tickers of the synthetic provider ("SYN:<NAME>", prefix case-insensitive)."""
    return (
        isinstance(ticker, str)
        and ticker[: len(SYNTHETIC_PREFIX)].upper() == SYNTHETIC_PREFIX
        and ticker[len(SYNTHETIC_PREFIX) :].strip() != ""
    )


def _stable_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, index])))


def synthetic_profile(ticker: str) -> SyntheticProfile:
    """The profile of a synthetic ticker: known names get realistic figures, others seeded ones."""
    if not is_synthetic(ticker):
        raise ProviderError(f"ticker: {ticker!r} is not a synthetic ticker (expected {SYNTHETIC_PREFIX}<NAME>)")
    name = ticker[len(SYNTHETIC_PREFIX) :].strip().upper()
    canonical = SYNTHETIC_PREFIX + name
    seed = _stable_seed(canonical)
    rng = _rng(seed, _STREAM_PARAMS, 0)
    seeded = rng.random(6)
    known = _KNOWN.get(name)
    if known is None:
        base = float(f"{10 ** (0.5 + 3.0 * seeded[0]):.3g}")
        # About five significant digits of price, like FX pipettes and metals cents.
        tick = 10.0 ** (np.floor(np.log10(base)) - 5)
        known = {
            "base_price": base,
            "tick_size": float(f"{tick:.0e}"),
            "daily_vol": round(0.004 + 0.014 * seeded[1], 4),
            "volume_base": round(50 + 450 * seeded[2]),
        }
    return SyntheticProfile(
        ticker=canonical,
        name=name,
        tick_size=float(known["tick_size"]),
        timezone=SESSION_TIMEZONE,
        asset_class="synthetic",
        base_price=float(known["base_price"]),
        daily_vol=float(known["daily_vol"]),
        mean_reversion=0.008,
        volume_base=float(known["volume_base"]),
        missing_rate=round(0.005 + 0.01 * float(seeded[3]), 4),
        jump_rate=0.04,
        seed=seed,
    )


def _stream_normals(seed: int, stream: int, n: int) -> np.ndarray:
    """The first n standard normals of a block-seeded stream (a prefix never depends on n)."""
    blocks = [_rng(seed, stream, b).standard_normal(_BLOCK) for b in range(n // _BLOCK + 1)]
    return np.concatenate(blocks)[:n]


def _regimes(profile: SyntheticProfile, n_weeks: int) -> np.ndarray:
    """Volatility multiplier per week since EPOCH (mean about 1)."""
    eta = _stream_normals(profile.seed, _STREAM_REGIME, n_weeks)
    innov = _REGIME_SD * np.sqrt(1 - _REGIME_PHI**2)
    log_vol = first_order_filter(innov, -_REGIME_PHI, eta)
    return np.exp(log_vol - _REGIME_SD**2 / 2)


def _anchor_path(profile: SyntheticProfile, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Log price at each local midnight, and the day's volatility, for calendar days 0..n_days-1."""
    day = np.arange(n_days)
    regime = _regimes(profile, n_days // 7 + 1)
    day_vol = profile.daily_vol * regime[day // 7]
    z = _stream_normals(profile.seed, _STREAM_DAILY, n_days)
    # The step into day d is the trading of day d-1 (the weekend gap for Saturday).
    prev = np.maximum(day - 1, 0)
    step = day_vol[prev] * np.sqrt(_DAY_VARIANCE_SHARE[prev % 7]) * z
    step[0] = 0.0
    deviation = first_order_filter(1.0, -(1.0 - profile.mean_reversion), step)
    return np.log(profile.base_price) + deviation, day_vol


def _circular_hours(hours: np.ndarray, center: float) -> np.ndarray:
    return (hours - center + 12.0) % 24.0 - 12.0


def intraday_weight(local_minute: np.ndarray) -> np.ndarray:
    """Relative volatility of a minute by its local (New York) minute of day.

    Quiet after the 17:00 roll, an Asian bump in the evening, the London open
    around 03:00 and the busiest hours at the New York open 08:00-11:00.
    """
    hours = np.asarray(local_minute, dtype=np.float64) / 60.0

    def bump(center: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * (_circular_hours(hours, center) / width) ** 2)

    return 0.35 + 0.25 * bump(21.0, 2.0) + 0.8 * bump(3.5, 1.2) + 1.3 * bump(9.5, 1.5) + 0.3 * bump(14.0, 1.0)


_FULL_DAY_WEIGHTS = intraday_weight(np.arange(1440))
_W2_REF = float(np.sum(_FULL_DAY_WEIGHTS**2))
_W_MEAN = float(np.mean(_FULL_DAY_WEIGHTS))


def _tick_decimals(tick: float) -> int:
    exponent = Decimal(repr(tick)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _segment(day: date, tz: ZoneInfo) -> tuple[int, int] | None:
    """UTC minute range [start, end) of a session date's trading, or None on Saturday."""
    weekday = day.weekday()
    if weekday == 5:
        return None
    start_local = datetime.combine(day, time(17, 0) if weekday == 6 else time(0, 0), tzinfo=tz)
    end_local = (
        datetime.combine(day, time(17, 0), tzinfo=tz)
        if weekday == 4
        else datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz)
    )
    return int(start_local.timestamp()) // 60, int(end_local.timestamp()) // 60


def _as_date(value: date, field: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise RequestError(f"{field}: expected a date, got {value!r}")


@njit(cache=True, nogil=True)
def _on_grid_nb(log_price: float, tick: float, tick_units: float, scale: float) -> float:
    """The price exp(log_price) on the tick grid: max(rint(exp(x) / tick), 1) * tick_units / scale
    (tick = tick_units / scale exactly, scale a power of ten: the double nearest the decimal price)."""
    return max(np.rint(np.exp(log_price) / tick), 1.0) * tick_units / scale


# Session dates per chunk of random draws: the draws of a chunk (five numbers per minute) sit in
# scratch arrays reused from chunk to chunk (about 9 MB) instead of 150 MB for ten years.
_CHUNK_DAYS = 128


@njit(cache=True, nogil=True)
def _local_minute_nb(k, local_start, switch_at, shift):
    """Local minute of day of a session date's k-th minute (see `_day_clocks`)."""
    m = local_start + k
    if k >= switch_at:
        m += shift
    return m % 1440


@njit(cache=True, nogil=True)
def _kept_nb(miss, relative, missing_rate):
    # quiet minutes are more often missing, as on real feeds that only print when something trades
    return miss >= missing_rate * min(max(1.0 / relative, 0.5), 2.0)


@njit(cache=True, nogil=True)
def _kept_counts_nb(d0, d1, first, base, seg_len, local_start, switch_at, shift, weights, w_mean, miss,
                    missing_rate, out_counts):
    """How many minutes of each session date d0 .. d1 - 1 have a bar (`_minutes_nb`'s rule)."""
    for j in range(d0, d1):
        a = first[j] - base
        kept = 0
        for k in range(seg_len[j]):
            relative = weights[_local_minute_nb(k, local_start[j], switch_at[j], shift[j])] / w_mean
            if _kept_nb(miss[a + k], relative, missing_rate):
                kept += 1
        out_counts[j] = kept


@njit(cache=True, nogil=True)
def _minutes_nb(d0, d1, first, base, seg_len, seg_start, local_start, switch_at, shift, out_first, vol_today,
                x_start, x_end, jump_at, jump_size, weights, z, high_z, low_z, volume_z, miss, w2_root, w_mean,
                tick, tick_units, scale, volume_base, daily_vol, missing_rate,
                out_ts, out_open, out_high, out_low, out_close, out_volume):
    """The bars of session dates d0 .. d1 - 1, written from row out_first[j] of the out_ arrays on.

    A date's minutes are k = 0 .. seg_len[j] - 1 (UTC minute seg_start[j] + k; its draws at row
    first[j] - base + k of the chunk's arrays). Per date, from its anchor x_start to the next one
    x_end: minute volatility sigma = the day's volatility x the minute's intraday weight / w2_root;
    steps sigma * z (plus the day's jump at its minute jump_at, a k; jump_size 0 without one); the
    walk (running sum of the steps) pinned into a Brownian bridge in variance time (running sum of
    sigma^2): close = x_start + walk + frac * (x_end - x_start - walk at the day's last minute), frac
    = variance time / the day's total. Running sums restart each date, so a minute depends on its
    own date only. Minutes without a bar (`_kept_nb`) are stepped through but not written."""
    for j in range(d0, d1):
        a = first[j] - base
        n = seg_len[j]
        v = vol_today[j]
        ls, sw, sh = local_start[j], switch_at[j], shift[j]
        walk_total = 0.0
        var_total = 0.0
        for k in range(n):
            sigma = v * weights[_local_minute_nb(k, ls, sw, sh)] / w2_root
            step = sigma * z[a + k]
            if k == jump_at[j]:
                step += jump_size[j]
            walk_total += step
            var_total += sigma * sigma
        xs = x_start[j]
        pull = x_end[j] - xs - walk_total
        walk = 0.0
        var = 0.0
        prev = xs
        row = out_first[j]
        for k in range(n):
            i = a + k
            weight = weights[_local_minute_nb(k, ls, sw, sh)]
            sigma = v * weight / w2_root
            step = sigma * z[i]
            jump = jump_size[j] if k == jump_at[j] else 0.0
            step += jump
            walk += step
            var += sigma * sigma
            close = xs + walk + var / var_total * pull
            open_ = prev + jump
            prev = close
            relative = weight / w_mean
            if not _kept_nb(miss[i], relative, missing_rate):
                continue
            half = 0.5 * sigma
            out_ts[row] = (seg_start[j] + k) * 60_000_000
            out_open[row] = _on_grid_nb(open_, tick, tick_units, scale)
            out_high[row] = _on_grid_nb(max(open_, close) + half * abs(high_z[i]), tick, tick_units, scale)
            out_low[row] = _on_grid_nb(min(open_, close) - half * abs(low_z[i]), tick, tick_units, scale)
            out_close[row] = _on_grid_nb(close, tick, tick_units, scale)
            out_volume[row] = max(
                np.ceil(volume_base * (v / daily_vol) * relative * np.exp(0.4 * volume_z[i] - 0.08)), 1.0
            )
            row += 1


def _day_clocks(seg_start: np.ndarray, seg_len: np.ndarray, timezone: str) -> tuple[np.ndarray, ...]:
    """Per session date, its minutes' local minute of day as (local_start, switch_at, shift): the
    k-th minute (UTC minute seg_start + k) is at local minute (local_start + k, plus shift once k >=
    switch_at) mod 1440, which equals floor(local time / 1 min) mod 1440 of `local_micros`.

    The UTC offset is looked up at each date's first and last minute; a date whose two differ holds
    a transition, and its minutes are looked up one by one (one change of offset per date, as in
    every zone of the tz database; more raises)."""
    minute_us = np.int64(60_000_000)
    first_us = seg_start * minute_us
    last_us = (seg_start + seg_len - 1) * minute_us
    n = seg_start.shape[0]
    offsets = utc_offsets(np.concatenate((first_us, last_us)), timezone) // minute_us  # floor: whole minutes
    off_first, off_last = offsets[:n], offsets[n:]
    local_start = (seg_start + off_first) % 1440
    switch_at = seg_len.copy()  # never, unless the offset changes within the date
    shift = np.zeros(n, dtype=np.int64)
    for j in np.flatnonzero(off_first != off_last):
        day_offsets = utc_offsets((seg_start[j] + np.arange(seg_len[j])) * minute_us, timezone) // minute_us
        changes = np.flatnonzero(np.diff(day_offsets))
        if changes.shape[0] != 1:
            raise RuntimeError(f"{timezone}: {changes.shape[0]} changes of UTC offset within one session date")
        switch_at[j] = changes[0] + 1
        shift[j] = day_offsets[-1] - day_offsets[0]
    return local_start, switch_at, shift


def synthetic_minute_bars(ticker: str, start: date, end: date) -> pl.DataFrame:
    """Minute bars (bars table, ts UTC bar open) of a synthetic ticker for session dates start..end inclusive.

    Session dates are local dates in the profile's time zone. Deterministic:
    the bar at a given ts is the same whatever range is requested. Prices lie
    on the tick grid, low <= open, close <= high, volume > 0.
    """
    profile = synthetic_profile(ticker)
    start, end = _as_date(start, "start"), _as_date(end, "end")
    if end < start:
        raise RequestError(f"end: {end} is before start {start}")
    if start < EPOCH:
        raise ProviderError(f"start: synthetic data begins on {EPOCH}, {start} is earlier")

    tz = ZoneInfo(profile.timezone)
    days, seg_start, seg_len = [], [], []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        segment = _segment(day, tz)
        if segment is not None:
            days.append((day - EPOCH).days)
            seg_start.append(segment[0])
            seg_len.append(segment[1] - segment[0])
    if not days:
        return empty_bars()
    day_idx = np.array(days)
    seg_start_arr = np.array(seg_start, dtype=np.int64)
    seg_len_arr = np.array(seg_len, dtype=np.int64)
    n_days = len(days)

    log_anchor, day_vol = _anchor_path(profile, int(day_idx[-1]) + 2)
    first = np.concatenate(([0], np.cumsum(seg_len_arr)[:-1])).astype(np.int64)
    total = int(seg_len_arr.sum())
    local_start, switch_at, shift = _day_clocks(seg_start_arr, seg_len_arr, profile.timezone)
    vol_today = day_vol[day_idx]
    x_start, x_end = log_anchor[day_idx], log_anchor[day_idx + 1]

    tick = profile.tick_size
    # tick = tick_units / scale exactly (scale a power of ten): dividing the integer
    # ticks*tick_units by scale gives the double nearest the decimal price, e.g. 1.10005.
    scale = 10.0 ** _tick_decimals(tick)
    tick_units = float(round(tick * scale))
    w2_root = float(np.sqrt(_W2_REF))

    # Every minute could have a bar: rows past the last bar are never written (nor touched).
    out_ts = np.empty(total, dtype=np.int64)
    out = {name: np.empty(total) for name in ("open", "high", "low", "close", "volume")}
    chunk_rows = int(max(seg_len_arr[c : c + _CHUNK_DAYS].sum() for c in range(0, n_days, _CHUNK_DAYS)))
    z, high_z, low_z, volume_z, miss = (np.empty(chunk_rows) for _ in range(5))
    jumps = np.empty((n_days, 4))
    counts = np.empty(n_days, dtype=np.int64)
    jump_at = np.empty(n_days, dtype=np.int64)
    jump_size = np.empty(n_days)
    out_first = np.zeros(n_days, dtype=np.int64)  # each date's first output row (set chunk by chunk)
    written = 0
    for c0 in range(0, n_days, _CHUNK_DAYS):
        c1 = min(c0 + _CHUNK_DAYS, n_days)
        base = int(first[c0])
        # Per-(ticker, date) random numbers, drawn straight into place: the only per-day Python work.
        for j in range(c0, c1):
            a, n = int(first[j]) - base, int(seg_len_arr[j])
            rng = _rng(profile.seed, _STREAM_MINUTES, days[j])
            for target in (z, high_z, low_z, volume_z):
                rng.standard_normal(out=target[a : a + n])
            rng.random(out=miss[a : a + n])
            rng.random(out=jumps[j])
        part = jumps[c0:c1]
        size = np.where(part[:, 3] < 0.5, -1.0, 1.0) * (0.3 + 0.9 * part[:, 2]) * vol_today[c0:c1]
        size[part[:, 0] >= profile.jump_rate] = 0.0  # most dates have no jump
        jump_size[c0:c1] = size
        jump_at[c0:c1] = np.minimum((part[:, 1] * seg_len_arr[c0:c1]).astype(np.int64), seg_len_arr[c0:c1] - 1)
        _kept_counts_nb(c0, c1, first, base, seg_len_arr, local_start, switch_at, shift, _FULL_DAY_WEIGHTS,
                        _W_MEAN, miss, profile.missing_rate, counts)
        out_first[c0:c1] = written + np.concatenate(([0], np.cumsum(counts[c0 : c1 - 1])))
        kernel = functools.partial(
            _minutes_nb, first=first, base=base, seg_len=seg_len_arr, seg_start=seg_start_arr,
            local_start=local_start, switch_at=switch_at, shift=shift, out_first=out_first, vol_today=vol_today,
            x_start=x_start, x_end=x_end, jump_at=jump_at, jump_size=jump_size, weights=_FULL_DAY_WEIGHTS, z=z,
            high_z=high_z, low_z=low_z, volume_z=volume_z, miss=miss, w2_root=w2_root, w_mean=_W_MEAN, tick=tick,
            tick_units=tick_units, scale=scale, volume_base=profile.volume_base, daily_vol=profile.daily_vol,
            missing_rate=profile.missing_rate, out_ts=out_ts, out_open=out["open"], out_high=out["high"],
            out_low=out["low"], out_close=out["close"], out_volume=out["volume"],
        )
        run_ranges(c1 - c0, lambda d0, d1: kernel(c0 + d0, c0 + d1), "mochi-synthetic")
        written += int(counts[c0:c1].sum())
    ts = pl.Series("ts", out_ts[:written]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.DataFrame({"ts": ts, **{name: values[:written] for name, values in out.items()}}).select(BAR_COLUMNS)
