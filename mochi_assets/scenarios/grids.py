"""Scenario families and their trader grids.

A scenario family is a direction plus one list per trader parameter (an axis); its traders are
every combination of the axes, numbered in a fixed order, so the same request and data always
give the same trader ids.

When the request names no families, four are derived: `breakout-long` and `breakout-short`
(stop entries, offsets >= 0) and `pullback-long` and `pullback-short` (limit entries, negative
offsets). Axes a family leaves out are derived from the data:

- offsets: fractions of the median daily ATR expressed in ticks — breakouts 0, 5%, 10% and 25%
  of it, pullbacks the negative 5%, 10% and 25% (repeats after rounding to whole ticks dropped);
- stop_atr: 0.5, 1.0, 1.5, 2.0; limit_atr: 0.5, 1.0, 2.0, 3.0;
- entry_times, duration_min and timeout_min: the request's values.
"""

from __future__ import annotations

import itertools

import polars as pl

from mochi_assets.request import (
    BREAKOUT_FRACTIONS,
    DEFAULT_FAMILIES,
    DEFAULT_LIMIT_ATR,
    DEFAULT_STOP_ATR,
    PULLBACK_FRACTIONS,
    BacktestRequest,
    ScenarioSpec,
)
from mochi_resources.errors import MochiError

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


def scenario_grids(request: BacktestRequest, enhanced: pl.DataFrame, tick_size: float) -> pl.DataFrame:
    """One row per scenario family with its axes (see the module docstring for the derivation)."""
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
        axes = {
            "entry_times": spec.entry_times or list(request.entry_times),
            "offset_ticks": offsets,
            "stop_atr": spec.stop_atr or DEFAULT_STOP_ATR,
            "limit_atr": spec.limit_atr or DEFAULT_LIMIT_ATR,
            "duration_min": spec.duration_min or request.duration_axis,
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
