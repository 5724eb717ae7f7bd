"""Small, seeded product tables (traders, trades, summary, by-year) shared by the reporting tests."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

UTC = dt.timezone.utc


def make_traders(stops: list[float], limits: list[float], scenario: str = "breakout-long") -> pl.DataFrame:
    """One trader per (stop_atr, limit_atr) cell, ids 1.., the other parameters fixed."""
    rows = [(s, lim) for s in stops for lim in limits]
    n = len(rows)
    return pl.DataFrame(
        {
            "trader_id": list(range(1, n + 1)),
            "scenario": [scenario] * n,
            "direction": ["long"] * n,
            "entry_time": ["09:30"] * n,
            "offset_ticks": [0] * n,
            "stop_atr": [s for s, _ in rows],
            "limit_atr": [lim for _, lim in rows],
            "duration_min": [240] * n,
            "timeout_min": [30] * n,
            "cost_ticks": [2.0] * n,
        },
        schema_overrides={"trader_id": pl.Int64, "offset_ticks": pl.Int64, "duration_min": pl.Int64, "timeout_min": pl.Int64},
    )


def random_trades(traders: pl.DataFrame, days: int = 300, seed: int = 7) -> pl.DataFrame:
    """Seeded trades with consistent pnl, r, mae, mfe: risk = stop_atr * ATR of the session date."""
    rng = np.random.default_rng(seed)
    start = dt.date(2021, 1, 4)
    dates = [start + dt.timedelta(days=i) for i in range(days * 7 // 5) if (start + dt.timedelta(days=i)).weekday() < 5][:days]
    atr = 10.0 + rng.random(len(dates)) * 5.0
    rows = []
    for trader in traders.iter_rows(named=True):
        for i, day in enumerate(dates):
            if rng.random() < 0.3:
                continue
            risk = trader["stop_atr"] * atr[i]
            r = float(np.clip(rng.normal(0.05, 0.8), -1.2, trader["limit_atr"] / trader["stop_atr"]))
            pnl = r * risk
            mae = float(abs(min(r, 0.0)) * risk + rng.random() * 0.3 * risk)
            mfe = float(max(r, 0.0) * risk + rng.random() * 0.3 * risk)
            entry = dt.datetime.combine(day, dt.time(14, 30), tzinfo=UTC) + dt.timedelta(minutes=int(rng.integers(0, 30)))
            hold = int(rng.integers(1, 300))
            rows.append(
                {
                    "trader_id": trader["trader_id"],
                    "session_date": day,
                    "entry_ts": entry,
                    "entry_price": 1800.0,
                    "exit_ts": entry + dt.timedelta(minutes=hold),
                    "exit_price": 1800.0 + pnl,
                    "exit_reason": "stop" if r <= -1 else ("limit" if pnl > 0 and rng.random() < 0.5 else "time"),
                    "pnl": pnl,
                    "pnl_ticks": pnl / 0.1,
                    "r": r,
                    "mae": mae,
                    "mfe": mfe,
                    "bars_held": hold,
                }
            )
    return trades_frame(rows)


TRADES_SCHEMA = {
    "trader_id": pl.Int64,
    "session_date": pl.Date,
    "entry_ts": pl.Datetime("us", "UTC"),
    "entry_price": pl.Float64,
    "exit_ts": pl.Datetime("us", "UTC"),
    "exit_price": pl.Float64,
    "exit_reason": pl.Utf8,
    "pnl": pl.Float64,
    "pnl_ticks": pl.Float64,
    "r": pl.Float64,
    "mae": pl.Float64,
    "mfe": pl.Float64,
    "bars_held": pl.Int64,
}


def trades_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows (dicts with the trades columns) as a trades table with the contract dtypes."""
    return pl.DataFrame(rows, schema=TRADES_SCHEMA)


def trade(
    trader_id: int,
    entry: dt.datetime,
    hold_min: int,
    pnl: float,
    r: float,
    mae: float = 0.0,
    mfe: float = 0.0,
    session_date: dt.date | None = None,
) -> dict:
    """One hand-made trade row (entry is a UTC datetime)."""
    entry = entry.replace(tzinfo=UTC)
    return {
        "trader_id": trader_id,
        "session_date": session_date or entry.date(),
        "entry_ts": entry,
        "entry_price": 100.0,
        "exit_ts": entry + dt.timedelta(minutes=hold_min),
        "exit_price": 100.0 + pnl,
        "exit_reason": "time",
        "pnl": pnl,
        "pnl_ticks": pnl * 10,
        "r": r,
        "mae": mae,
        "mfe": mfe,
        "bars_held": hold_min,
    }


def summarize(trades: pl.DataFrame) -> pl.DataFrame:
    """A minimal trader summary (trader_id, trades, wins, win_rate, net_pnl, avg_r)."""
    return (
        trades.group_by("trader_id")
        .agg(
            trades=pl.len().cast(pl.Int64),
            wins=(pl.col("pnl") > 0).sum().cast(pl.Int64),
            win_rate=(pl.col("pnl") > 0).mean(),
            net_pnl=pl.col("pnl").sum(),
            avg_r=pl.col("r").mean(),
        )
        .sort("trader_id")
    )


def by_year(trades: pl.DataFrame) -> pl.DataFrame:
    """The trader-by-year table (trader_id, year, trades, net_pnl, win_rate)."""
    return (
        trades.group_by("trader_id", pl.col("session_date").dt.year().cast(pl.Int64).alias("year"))
        .agg(trades=pl.len().cast(pl.Int64), net_pnl=pl.col("pnl").sum(), win_rate=(pl.col("pnl") > 0).mean())
        .sort("trader_id", "year")
    )


@pytest.fixture(scope="session")
def grid_traders() -> pl.DataFrame:
    """Nine traders on a 3 x 3 stop x limit grid."""
    return make_traders([0.5, 1.0, 1.5], [1.0, 2.0, 3.0])


@pytest.fixture(scope="session")
def random_grid_trades(grid_traders: pl.DataFrame) -> pl.DataFrame:
    """About 1,000 seeded trades of the grid traders over two calendar years."""
    return random_trades(grid_traders, days=150)


@pytest.fixture(scope="session")
def tables() -> SimpleNamespace:
    """The table builders above, for tests (conftest modules are not imported by name)."""
    return SimpleNamespace(
        make_traders=make_traders,
        random_trades=random_trades,
        trades_frame=trades_frame,
        trade=trade,
        summarize=summarize,
        by_year=by_year,
    )
