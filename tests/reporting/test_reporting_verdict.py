"""The verdict sentence: real statistics on noise, on a planted strong trader, and edge cases."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from mochi_assets.aggregation.tables import aggregate_scenario
from mochi_assets.reporting.rankings import leaderboard, rank_traders, significant_traders, verdict
from mochi_resources.sql_engine import DuckDBEngine

ENGINE = DuckDBEngine(threads=2, memory_limit="1GB")


def _backtest(edge: dict[int, float], n_traders: int = 30, n_days: int = 400, seed: int = 1, scenario: str = "s1"):
    """Rankings of a scenario whose traders trade N(0, 1) r on 60% of the days, plus ``edge[id]``
    mean r per trade for the planted traders; aggregated and ranked by the real code."""
    rng = np.random.default_rng(seed)
    sessions = [date(2021, 1, 4) + timedelta(days=i) for i in range(n_days)]
    traders = pl.DataFrame(
        {
            "trader_id": np.arange(n_traders, dtype=np.int64),
            "scenario": [scenario] * n_traders,
            "direction": ["long"] * n_traders,
            "entry_time": ["09:30"] * n_traders,
            "offset_ticks": np.arange(n_traders, dtype=np.int64),
            "stop_atr": [1.0] * n_traders,
            "limit_atr": [2.0] * n_traders,
            "duration_min": [240] * n_traders,
            "timeout_min": [30] * n_traders,
            "cost_ticks": [2.0] * n_traders,
        }
    )
    frames = []
    for tid in range(n_traders):
        days = np.flatnonzero(rng.random(n_days) < 0.6)
        r = rng.normal(edge.get(tid, 0.0), 1.0, days.size)
        frames.append(
            pl.DataFrame({"trader_id": tid, "session_date": [sessions[d] for d in days], "r": r})
        )
    trades = pl.concat(frames).with_columns(
        pl.col("trader_id").cast(pl.Int64),
        entry_ts=pl.col("session_date").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=14),
        pnl=pl.col("r") * 5.0,
    ).with_columns(
        exit_ts=pl.col("entry_ts") + pl.duration(hours=2),
        entry_price=pl.lit(2000.0),
        exit_price=2000.0 + pl.col("pnl"),
        pnl_ticks=pl.col("pnl") * 100,
        mae=pl.lit(1.0),
        mfe=pl.lit(1.0),
    )
    out = aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions)
    pbo = out["scenario_stats"]["pbo"][0]
    return rank_traders(traders, out["trader_summary"], out["trader_by_year"], scenario=scenario, pbo=pbo)


def test_noise_only_backtest_beats_nothing():
    ranked = _backtest({})
    sentence = verdict(ranked)
    assert sentence.lower().startswith("no trader in this backtest beats what luck explains")
    best = ranked.filter(pl.col("eligible")).sort("dsr", descending=True, nulls_last=True).row(0, named=True)
    assert f"{best['dsr']:.3f}" in sentence and f"trader {best['trader_id']}" in sentence
    assert f"PBO is {best['pbo']:.2f}" in sentence
    assert significant_traders(ranked).is_empty()


def test_planted_strong_trader_is_named():
    ranked = _backtest({17: 0.35})
    sentence = verdict(ranked)
    top = ranked.row(0, named=True)
    assert top["trader_id"] == 17 and top["dsr"] >= 0.95 and top["pbo"] < 0.5
    assert sentence.startswith("Trader 17 (s1) beats what luck explains")
    assert f"{top['trades']} trades" in sentence
    # across scenarios: the leaderboard says the same as every ranking together
    noise = _backtest({}, seed=2, scenario="s2")
    board = leaderboard({"s1": ranked, "s2": noise})
    assert verdict(board) == verdict(pl.concat([ranked, noise], how="diagonal_relaxed")) == sentence


def test_each_condition_is_required():
    base = {"trader_id": [1, 2], "scenario": ["a", "a"], "trades": [100, 100]}
    def table(eligible, dsr, pbo):
        return pl.DataFrame({**base, "eligible": eligible, "dsr": dsr, "pbo": pbo})

    assert verdict(table([True, True], [0.97, 0.5], [0.2, 0.2])).startswith("Trader 1 (a) beats")
    high_pbo = verdict(table([True, True], [0.97, 0.5], [0.6, 0.6]))
    assert high_pbo.startswith("No trader") and "0.970 (trader 1, a)" in high_pbo and "PBO is 0.60" in high_pbo
    undefined_pbo = verdict(table([True, True], [0.97, 0.5], [None, None]))
    assert undefined_pbo.startswith("No trader") and "PBO is undefined" in undefined_pbo
    # the best DSR of an ineligible trader does not count; the best eligible one is reported
    few = verdict(table([False, True], [0.99, 0.6], [0.1, 0.1]))
    assert few.startswith("No trader") and "0.600 (trader 2, a)" in few
    none_eligible = verdict(table([False, False], [0.99, 0.6], [0.1, 0.1]), min_trades=30)
    assert "no trader is eligible (at least 30 trades)" in none_eligible and "0.990 (trader 1, a)" in none_eligible
    assert "no trader has a defined DSR" in verdict(table([True, True], [None, None], [0.1, 0.1]))


def test_verdict_needs_the_facts():
    with pytest.raises(Exception, match="missing column"):
        verdict(pl.DataFrame({"trader_id": [1], "dsr": [0.99]}))


def test_cli_tables_mark_ineligible_traders_and_print_the_verdict():
    from mochi_assets.cli import _ranked_table

    board = pl.DataFrame(
        {
            "rank": [1, 2],
            "scenario": ["a", "b"],
            "trader_id": [4, 9],
            "trades": [120, 3],
            "eligible": [True, False],
            "net_pnl": [0.0042, -0.0011],
            "net_pnl_ticks": [42.0, -11.0],
            "net_r": [3.5, -0.4],
            "dsr": [0.62, 0.99],
            "pbo": [0.3, 0.3],
            "duplicate_of": [None, None],
        },
        schema_overrides={"duplicate_of": pl.Int64},
    )
    text = _ranked_table(board, 10)
    header, _, first, second = text.splitlines()[:4]
    assert "duplicate_of" not in header  # never filled here: not shown
    assert first.split()[4] == "yes" and second.split()[4] == "NO"
    assert "0.00420" in first and "-0.00110" in second  # P&L to its magnitude, never 0.000
    assert "eligible NO: fewer than 30 trades" in text
    assert text.splitlines()[-1] == f"Verdict: {verdict(board)}"
    assert "best DSR is 0.620 (trader 4, a)" in text
