"""Scenario families and their trader grids.

A scenario family is a direction plus one list per trader parameter (an axis); its traders are
every combination of the axes, numbered in a fixed order, so the same request and data always
give the same trader ids.

When the request names no families, four are derived: `breakout-long` and `breakout-short`
(stop entries, offsets >= 0) and `pullback-long` and `pullback-short` (limit entries, negative
offsets). Axes a family leaves out are derived from the data:

- offsets: fractions of the median daily ATR expressed in ticks — breakouts 0, 5%, 10% and 25%
  of it, pullbacks the negative 5%, 10% and 25% (repeats after rounding to whole ticks dropped);
- stop_atr and limit_atr: scaled to the holding window, from the data. For every session with an
  ATR, every entry time and every duration of the family, the window runs from the bar the
  simulation enters that session on (the session's first bar at or after the entry time on the
  session calendar's clock, found by the simulation's own ``entry_bars``: on the evening before
  for a session that opens then and a time after its open, as in a 24x5 calendar; on UTC days
  for crypto whatever the request's timezone; its open P is the reference price) for
  ``duration_min`` minutes; its upward excursion
  is (highest high - P) / ATR and its downward excursion (P - lowest low) / ATR, in the session's
  ATR. A long's stops are the 20%, 40%, 60% and 80% quantiles (``EXCURSION_QUANTILES``) of the
  downward (adverse) excursion and its limits the same quantiles of the upward (favourable) one; a
  short's the other way round. Levels are rounded to two significant digits, repeats and
  non-positive levels dropped. A stop at the q quantile is reached in about 1 - q of the windows, so
  between two neighbouring levels about 20% of the sessions end differently: every level changes
  some trades, which a fixed 0.5..3 daily-ATR ladder did not (with 240-minute holds the upper
  daily-ATR levels are almost never reached, so their traders duplicated each other). With no
  window in the data (no bar at or after an entry time in any session with an ATR) the axes cannot
  be derived: the error says to give them.
- entry_times, duration_min and timeout_min: the request's values.

The excursions are computed with NumPy over all windows at once (``np.maximum.reduceat`` over
window bounds found by ``searchsorted``; windows that overlap, when a hold is longer than the gap
between sessions, are split into interleaved disjoint sets).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl

from mochi_assets.market_data.sessions import SessionCalendar
from mochi_assets.request import (
    BREAKOUT_FRACTIONS,
    DEFAULT_FAMILIES,
    EXCURSION_QUANTILES,
    PULLBACK_FRACTIONS,
    BacktestRequest,
    ScenarioSpec,
)
from mochi_assets.simulation.api import entry_bars
from mochi_assets.simulation.nb import session_bounds_nb
from mochi_resources.errors import MochiError

EXCURSION_SCHEMA = {
    "session_date": pl.Date,
    "entry_time": pl.Utf8,
    "duration_min": pl.Int64,
    "up_atr": pl.Float64,
    "down_atr": pl.Float64,
}

GRID_SCHEMA = {
    "scenario": pl.Utf8,
    "direction": pl.Utf8,
    "entry_times": pl.List(pl.Utf8),
    "offset_ticks": pl.List(pl.Int64),
    "stop_atr": pl.List(pl.Float64),
    "limit_atr": pl.List(pl.Float64),
    "duration_min": pl.List(pl.Int64),
    "timeout_min": pl.List(pl.Int64),
    "cost_ticks": pl.Float64,
    "traders": pl.Int64,
    "derived_axes": pl.Utf8,
}

TRADER_SCHEMA = {  # the traders contract (mochi_assets.contracts.TRADER_COLUMNS) with its types
    "trader_id": pl.Int64,
    "scenario": pl.Utf8,
    "direction": pl.Utf8,
    "entry_time": pl.Utf8,
    "offset_ticks": pl.Int64,
    "stop_atr": pl.Float64,
    "limit_atr": pl.Float64,
    "duration_min": pl.Int64,
    "timeout_min": pl.Int64,
    "cost_ticks": pl.Float64,
}


def median_atr_ticks(enhanced: pl.DataFrame, tick_size: float) -> float:
    """Median daily ATR after warm-up, in ticks; error when no session has an ATR yet."""
    daily = enhanced.filter(pl.col("atr").is_not_null()).group_by("session_date").agg(pl.col("atr").first())
    if daily.is_empty():
        raise MochiError(
            "scenarios: no session has a defined ATR yet: the date range is shorter than the ATR warm-up "
            "(atr.long + 1 sessions); ask for a longer range or a shorter atr.long"
        )
    return float(daily["atr"].median()) / tick_size


def _offsets(fractions: list[float], atr_ticks: float, sign: int) -> list[int]:
    values = sorted({sign * int(round(f * atr_ticks)) for f in fractions}, key=abs)
    if sign < 0:
        values = [v for v in values if v != 0] or [-1]
    return values


def _check_price_scale(name: str, offsets: list[int], tick_size: float, enhanced: pl.DataFrame) -> None:
    """An entry offset must stay within the ticker's price scale (the highest price in the data):
    an order further away than the price itself is a typo, never a strategy."""
    if "high" not in enhanced.columns or enhanced.is_empty():
        return
    top = float(enhanced["high"].max())
    if tick_size >= top:
        raise MochiError(f"tick_size: {tick_size:g} is beyond the price scale of the data (highest price {top:g})")
    far = max(offsets, key=abs)
    if abs(far) * tick_size >= top:
        raise MochiError(
            f"scenarios.{name}.offset_ticks: an offset of {far} ticks ({abs(far) * tick_size:g} in price, tick "
            f"size {tick_size:g}) is beyond the price scale of the data (highest price {top:g})"
        )


def _window_extremes(high: np.ndarray, low: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Highest high and lowest low of each window [starts[i], ends[i]) (sorted starts, ends > starts)."""
    n, m = high.shape[0], starts.shape[0]
    highest, lowest = np.empty(m), np.empty(m)
    if m == 0:
        return highest, lowest
    # Window i overlaps the windows that start before it ends; taking every k-th window, with k
    # the deepest overlap, gives sets of disjoint windows that reduceat handles in one pass each.
    k = int(max(1, (np.searchsorted(starts, ends, side="left") - np.arange(m)).max()))
    for phase in range(k):
        s, e = starts[phase::k], ends[phase::k]
        bounds = np.empty(2 * s.shape[0], dtype=np.int64)
        bounds[0::2], bounds[1::2] = s, e
        if bounds[-1] == n:  # the last segment runs to the end anyway
            bounds = bounds[:-1]
        highest[phase::k] = np.maximum.reduceat(high, bounds)[0::2]
        lowest[phase::k] = np.minimum.reduceat(low, bounds)[0::2]
    return highest, lowest


def holding_excursions(
    enhanced: pl.DataFrame, calendar: SessionCalendar, entry_times: list[str], durations: list[int]
) -> pl.DataFrame:
    """Per session with an ATR, entry time and duration: the price excursions in ATR units.

    ``enhanced``: bars (ts, open, high, low, session_date, atr) in time order; ``calendar``: the
    session calendar the simulation trades them on. Returns session_date, entry_time,
    duration_min, up_atr (highest high - P) / ATR and down_atr (P - lowest low) / ATR over the bars
    from the reference bar (the bar the simulation enters on: the session's first bar at or after
    the entry time on the calendar's clock, see simulation/api.py ``entry_bars``; its open P) to
    ``duration_min`` minutes after it. Sessions without such a bar have no row.
    """
    bars = enhanced.select(
        pl.col("ts").dt.replace_time_zone("UTC") if enhanced["ts"].dtype.time_zone is None else pl.col("ts"),
        pl.col("open").cast(pl.Float64),
        pl.col("high").cast(pl.Float64),
        pl.col("low").cast(pl.Float64),
        pl.col("session_date").cast(pl.Date),
        pl.col("atr").cast(pl.Float64),
    )
    ts = np.ascontiguousarray(bars["ts"].dt.cast_time_unit("us").to_physical().to_numpy(), dtype=np.int64)
    high, low, open_ = bars["high"].to_numpy(), bars["low"].to_numpy(), bars["open"].to_numpy()
    day = bars["session_date"].cast(pl.Int32).to_numpy()
    starts, ends = session_bounds_nb(day)
    atr = bars["atr"].to_numpy()[starts] if starts.shape[0] else np.empty(0)
    valid = np.isfinite(atr) & (atr > 0)
    starts, ends, atr = starts[valid], ends[valid], atr[valid]
    session_dates = bars["session_date"].gather(starts)
    references = entry_bars(ts, day, starts, ends, list(entry_times), calendar)
    frames = []
    for i, entry in enumerate(entry_times):
        inside = references[i] >= 0
        ref = references[i][inside]
        dates = session_dates.filter(pl.Series(inside))
        for duration in durations:
            ends_ = np.searchsorted(ts, ts[ref] + duration * 60_000_000, side="left")
            highest, lowest = _window_extremes(high, low, ref, ends_)
            frames.append(
                pl.DataFrame(
                    {
                        "session_date": dates,
                        "entry_time": entry,
                        "duration_min": duration,
                        "up_atr": (highest - open_[ref]) / atr[inside],
                        "down_atr": (open_[ref] - lowest) / atr[inside],
                    },
                    schema=EXCURSION_SCHEMA,
                )
            )
    return pl.concat(frames) if frames else pl.DataFrame(schema=EXCURSION_SCHEMA)


def excursion_levels(excursions: pl.Series) -> list[float]:
    """``EXCURSION_QUANTILES`` of an excursion sample, two significant digits, positive, distinct."""
    values = excursions.drop_nulls().to_numpy()
    levels = []
    for q in np.quantile(values, EXCURSION_QUANTILES) if values.size else []:
        if q > 0:
            level = round(float(q), 1 - math.floor(math.log10(q)))
            if level not in levels:
                levels.append(level)
    return levels


def scenario_grids(
    request: BacktestRequest, enhanced: pl.DataFrame, tick_size: float, calendar: SessionCalendar
) -> pl.DataFrame:
    """One row per scenario family with its axes (see the module docstring for the derivation).

    ``enhanced``: the enhanced bars (ts, open, high, low, session_date, atr) in time order;
    ``calendar``: the session calendar they are traded on (entry times are on its clock).
    """
    atr_ticks = median_atr_ticks(enhanced, tick_size)
    families = request.scenarios or {
        name: ScenarioSpec(direction=direction) for name, direction in DEFAULT_FAMILIES.items()
    }
    rows = []
    for name, spec in families.items():
        derived = []
        if spec.offset_ticks is not None:
            offsets = list(spec.offset_ticks)
        else:
            derived.append("offset_ticks")
            pullback = name.startswith("pullback")
            offsets = _offsets(PULLBACK_FRACTIONS if pullback else BREAKOUT_FRACTIONS, atr_ticks, -1 if pullback else 1)
        entry_times = spec.entry_times or list(request.entry_times)
        durations = spec.duration_min or request.duration_axis
        stops, limits = spec.stop_atr, spec.limit_atr
        if stops is None or limits is None:
            moves = holding_excursions(enhanced, calendar, list(entry_times), list(durations))
            adverse, favourable = ("down_atr", "up_atr") if spec.direction == "long" else ("up_atr", "down_atr")
            stops = stops or excursion_levels(moves[adverse])
            limits = limits or excursion_levels(moves[favourable])
            if not stops or not limits:
                raise MochiError(
                    f"scenarios: {name}: cannot derive stop_atr/limit_atr from the data: no session with an "
                    f"ATR has a price move after entry time(s) {', '.join(entry_times)} within "
                    f"{'/'.join(str(d) for d in durations)} minutes; give stop_atr and limit_atr in the request"
                )
        axes = {
            "entry_times": entry_times,
            "offset_ticks": offsets,
            "stop_atr": stops,
            "limit_atr": limits,
            "duration_min": durations,
            "timeout_min": spec.timeout_min or request.timeout_axis,
        }
        _check_price_scale(name, offsets, tick_size, enhanced)
        derived += [a for a in ("stop_atr", "limit_atr") if getattr(spec, a) is None]
        n = 1
        for values in axes.values():
            n *= len(values)
        rows.append(
            {
                "scenario": name,
                "direction": spec.direction,
                **{k: list(v) for k, v in axes.items()},
                "cost_ticks": float(request.cost_ticks),
                "traders": n,
                "derived_axes": ",".join(derived),
            }
        )
    return pl.DataFrame(rows, schema=GRID_SCHEMA)


def expand_traders(grid: pl.DataFrame, scenario: str) -> pl.DataFrame:
    """The traders table of one scenario family: every combination of its axes, ids from 0."""
    row = grid.filter(pl.col("scenario") == scenario)
    if row.is_empty():
        known = ", ".join(grid["scenario"].to_list())
        raise MochiError(f"scenario {scenario!r} is not in this ticker's grids (known: {known})")
    g = row.row(0, named=True)
    combos = itertools.product(
        g["entry_times"], g["offset_ticks"], g["stop_atr"], g["limit_atr"], g["duration_min"], g["timeout_min"]
    )
    records = [
        {
            "trader_id": i,
            "scenario": scenario,
            "direction": g["direction"],
            "entry_time": et,
            "offset_ticks": off,
            "stop_atr": stop,
            "limit_atr": limit,
            "duration_min": dur,
            "timeout_min": tmo,
            "cost_ticks": g["cost_ticks"],
        }
        for i, (et, off, stop, limit, dur, tmo) in enumerate(combos)
    ]
    return pl.DataFrame(records, schema=TRADER_SCHEMA)
