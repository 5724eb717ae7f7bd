"""DuckDB aggregates against an independent pandas recomputation on random trades.

Random traders include ones that never trade, and the calendar includes a year without any
trade, so the left joins and empty groups are exercised.
"""

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mochi_assets.aggregation.tables import aggregate_scenario
from mochi_resources.sql_engine import DuckDBEngine

ENGINE = DuckDBEngine(threads=2, memory_limit="1GB")


def random_scenario(seed: int):
    rng = np.random.default_rng(seed)
    sessions = [date(2020, 1, 1) + timedelta(days=i) for i in range(3 * 366)]
    sessions = [d for d in sessions if d.weekday() < 5]  # 2020-2022, trades only in 2020 and 2022
    n = 12
    traders = pl.DataFrame({
        "trader_id": np.arange(n, dtype=np.int64) + 100,
        "scenario": ["s"] * n, "direction": ["long"] * n, "entry_time": ["09:30"] * n,
        "offset_ticks": np.zeros(n, dtype=np.int64),
        "stop_atr": rng.choice([0.5, 1.0, 2.0], n), "limit_atr": rng.choice([1.0, 3.0], n),
        "duration_min": [60] * n, "timeout_min": [15] * n, "cost_ticks": [1.0] * n,
    })
    trading = [d for d in sessions if d.year != 2021]
    rows = []
    for tid in traders["trader_id"].to_list()[:-3]:  # three traders never trade
        for i in sorted(rng.choice(len(trading), size=int(rng.integers(3, 80)), replace=False)):
            day = trading[int(i)]
            entry = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=14, minutes=30)
            pnl = float(rng.normal(0.02, 1.0))
            rows.append({
                "trader_id": tid, "session_date": day, "entry_ts": entry.to_pydatetime(),
                "entry_price": 100.0, "exit_ts": (entry + pd.Timedelta(minutes=30)).to_pydatetime(),
                "exit_price": 100.0 + pnl, "exit_reason": "time", "pnl": pnl, "pnl_ticks": pnl / 0.01,
                "r": pnl / 1.5, "mae": abs(float(rng.normal(0, 0.5))), "mfe": abs(float(rng.normal(0, 0.5))),
                "bars_held": 30,
            })
    trades = pl.DataFrame(rows).with_columns(
        pl.col("entry_ts").dt.replace_time_zone("UTC"), pl.col("exit_ts").dt.replace_time_zone("UTC")
    )
    return traders, trades, sessions


def pandas_summary(traders: pl.DataFrame, trades: pl.DataFrame, sessions: list[date]) -> pd.DataFrame:
    t = trades.to_pandas().sort_values(["trader_id", "entry_ts"])
    t["session_date"] = pd.to_datetime(t["session_date"])
    calendar = pd.to_datetime(pd.Series(sessions))
    out = []
    for tid in traders["trader_id"].to_list():
        mine = t[t["trader_id"] == tid]
        pnl = mine["pnl"]
        equity = pnl.cumsum()
        peak = equity.cummax().clip(lower=0.0)
        daily = mine.groupby("session_date")["r"].sum().reindex(calendar, fill_value=0.0)
        std = daily.std(ddof=1)
        losses = -pnl[pnl <= 0].sum()
        out.append({
            "trader_id": tid,
            "trades": len(mine),
            "wins": int((pnl > 0).sum()),
            "win_rate": (pnl > 0).mean() if len(mine) else np.nan,
            "net_pnl": pnl.sum(),
            "avg_r": mine["r"].mean() if len(mine) else np.nan,
            "profit_factor": pnl[pnl > 0].sum() / losses if losses > 0 else np.nan,
            "max_drawdown": (peak - equity).max() if len(mine) else 0.0,
            "sharpe": daily.mean() / std * math.sqrt(252) if len(mine) and std > 0 else np.nan,
        })
    return pd.DataFrame(out)


def pandas_by_year(trades: pl.DataFrame) -> pd.DataFrame:
    t = trades.to_pandas()
    t["year"] = pd.to_datetime(t["session_date"]).dt.year
    g = t.groupby(["trader_id", "year"])["pnl"]
    return pd.DataFrame({
        "trades": g.size(), "net_pnl": g.sum(), "win_rate": g.apply(lambda s: (s > 0).mean()),
    }).reset_index().sort_values(["trader_id", "year"]).reset_index(drop=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summary_and_by_year_equal_pandas(seed):
    traders, trades, sessions = random_scenario(seed)
    got = aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions)
    summary = got["trader_summary"].to_pandas().sort_values("trader_id").reset_index(drop=True)
    expected = pandas_summary(traders, trades, sessions)
    cols = ["trades", "wins", "win_rate", "net_pnl", "avg_r", "profit_factor", "max_drawdown", "sharpe"]
    pd.testing.assert_frame_equal(
        summary[["trader_id", *cols]].astype(float), expected[["trader_id", *cols]].astype(float),
        check_exact=False, rtol=1e-9, atol=1e-12,
    )
    assert (summary["trades"] == 0).sum() == 3  # traders without trades are kept

    by_year = got["trader_by_year"].to_pandas().sort_values(["trader_id", "year"]).reset_index(drop=True)
    expected_years = pandas_by_year(trades)
    pd.testing.assert_frame_equal(
        by_year[["trader_id", "year", "trades", "net_pnl", "win_rate"]].astype(float),
        expected_years[["trader_id", "year", "trades", "net_pnl", "win_rate"]].astype(float),
        check_exact=False, rtol=1e-9,
    )
    assert 2021 not in set(by_year["year"])  # the year without trades has no rows
