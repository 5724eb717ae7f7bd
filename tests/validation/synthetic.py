"""Synthetic scenarios for the validation tests: a grid of traders, a calendar and random trades."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import polars as pl

STOPS = [0.5, 1.0, 1.5, 2.0]
LIMITS = [1.0, 2.0, 3.0]
OFFSETS = [0, 5, 10]


def grid(n_stops: int = 4, n_limits: int = 3, n_offsets: int = 3, scenario: str = "breakout-long") -> pl.DataFrame:
    """A trader table: offset x stop x limit, ids from 0 in that order."""
    rows = [
        {"trader_id": i, "scenario": scenario, "direction": "long", "entry_time": "09:30", "offset_ticks": o,
         "stop_atr": s, "limit_atr": lim, "duration_min": 240, "timeout_min": 30, "cost_ticks": 2.0}
        for i, (o, s, lim) in enumerate(
            itertools.product(OFFSETS[:n_offsets], STOPS[:n_stops], LIMITS[:n_limits])
        )
    ]
    return pl.DataFrame(rows)


def calendar(n_sessions: int, start: dt.date = dt.date(2015, 1, 5)) -> pl.DataFrame:
    """Weekday session dates, each starting at 22:00 UTC the evening before."""
    dates = []
    day = start
    while len(dates) < n_sessions:
        if day.weekday() < 5:
            dates.append(day)
        day += dt.timedelta(days=1)
    starts = [dt.datetime.combine(d - dt.timedelta(days=1), dt.time(22, 0), tzinfo=dt.timezone.utc) for d in dates]
    return pl.DataFrame({"session_date": dates, "start_ts": starts}).with_columns(
        pl.col("start_ts").cast(pl.Datetime("us", "UTC"))
    )


def random_trades(
    traders: pl.DataFrame,
    sessions: pl.DataFrame,
    *,
    seed: int,
    trade_prob: float = 0.4,
    edge: dict[int, float] | None = None,
    late_share: float = 0.05,
) -> pl.DataFrame:
    """At most one trade per trader and session; r ~ N(edge, 1); a ``late_share`` of trades stays open
    into a later session (exit 1 to 3 sessions after the entry session's start)."""
    rng = np.random.default_rng(seed)
    n_sessions, ids = sessions.height, traders["trader_id"].to_numpy()
    trade = rng.random((n_sessions, len(ids))) < trade_prob
    sess, col = np.nonzero(trade)
    mu = np.zeros(len(ids))
    for trader_id, value in (edge or {}).items():
        mu[np.searchsorted(ids, trader_id)] = value
    r = rng.normal(mu[col], 1.0)
    starts = sessions["start_ts"].to_numpy()
    hold_min = rng.integers(600, 1200, size=len(sess))  # inside the session (sessions last 24 h here)
    late = rng.random(len(sess)) < late_share
    hold_min[late] = rng.integers(1, 4, size=int(late.sum())) * 1440 + 30
    entry = starts[sess] + np.timedelta64(600, "m")
    exit_ = starts[sess] + hold_min.astype("timedelta64[m]")
    return pl.DataFrame(
        {
            "trader_id": ids[col],
            "session_date": sessions["session_date"].to_numpy()[sess],
            "entry_ts": entry,
            "exit_ts": exit_,
            "r": r,
            "pnl_ticks": r * 20.0,
            "pnl": r * 0.2,
        }
    ).with_columns(
        pl.col("session_date").cast(pl.Date),
        pl.col("entry_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.col("exit_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    )
