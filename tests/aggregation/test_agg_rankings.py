"""Rankings: the documented order, determinism, and the per-ticker leaderboard."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from mochi_assets.aggregation.tables import aggregate_scenario
from mochi_assets.reporting.rankings import MIN_TRADES_DEFAULT, leaderboard, rank_traders, top_trader_ids
from mochi_resources.errors import MochiError
from mochi_resources.sql_engine import DuckDBEngine


def _traders(ids: list[int], scenario: str = "s1") -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "trader_id": ids,
            "scenario": [scenario] * n,
            "direction": ["long"] * n,
            "entry_time": ["09:30"] * n,
            "offset_ticks": list(range(n)),
            "stop_atr": [1.0] * n,
            "limit_atr": [2.0] * n,
            "duration_min": [240] * n,
            "timeout_min": [30] * n,
            "cost_ticks": [2.0] * n,
        },
        schema_overrides={"trader_id": pl.Int64, "offset_ticks": pl.Int64},
    )


def _summary(rows: list[tuple[int, int, float | None, float | None]]) -> pl.DataFrame:
    """(trader_id, trades, sharpe, dsr) rows plus the other summary columns."""
    return pl.DataFrame(
        {
            "trader_id": [r[0] for r in rows],
            "trades": [r[1] for r in rows],
            "wins": [r[1] // 2 for r in rows],
            "win_rate": [0.5 for _ in rows],
            "net_pnl": [1.0 for _ in rows],
            "avg_r": [0.1 for _ in rows],
            "profit_factor": [1.2 for _ in rows],
            "max_drawdown": [3.0 for _ in rows],
            "sharpe": [r[2] for r in rows],
            "dsr": [r[3] for r in rows],
        },
        schema_overrides={"trader_id": pl.Int64, "trades": pl.Int64, "sharpe": pl.Float64, "dsr": pl.Float64},
    )


def _by_year(rows: list[tuple[int, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "trader_id": [r[0] for r in rows],
            "year": [r[1] for r in rows],
            "trades": [10 for _ in rows],
            "net_pnl": [r[2] for r in rows],
            "win_rate": [0.5 for _ in rows],
        },
        schema_overrides={"trader_id": pl.Int64, "year": pl.Int64},
    )


@pytest.fixture
def inputs():
    traders = _traders([1, 2, 3, 4, 5, 6, 7])
    summary = _summary(
        [
            (1, 100, 1.0, 0.90),
            (2, 10, 3.0, 0.99),  # best DSR, but too few trades: not eligible
            (3, 100, 1.5, 0.90),  # same DSR as 1 and 4
            (4, 100, 0.5, 0.90),
            (5, 100, 0.8, None),  # undefined DSR sorts after defined ones
            (6, 100, 0.7, 0.95),
            (7, 0, None, None),
        ]
    )
    by_year = _by_year(
        [
            (1, 2020, 5.0), (1, 2021, 1.0), (1, 2022, -1.0),  # 2/3 positive years
            (3, 2020, 5.0), (3, 2021, -1.0),  # 1/3 (2022 missing counts as not positive)
            (4, 2020, 1.0), (4, 2021, 1.0), (4, 2022, 1.0),  # 3/3
            (6, 2021, 1.0),
        ]
    )
    return traders, summary, by_year


def test_rank_order_follows_the_documented_rule(inputs):
    traders, summary, by_year = inputs
    ranked = rank_traders(traders, summary, by_year, scenario="s1", pbo=0.25)
    # eligible first; among them dsr desc (nulls last); dsr ties by positive_year_share, then sharpe
    assert ranked["trader_id"].to_list() == [6, 4, 1, 3, 5, 2, 7]
    assert ranked["rank"].to_list() == list(range(1, 8))
    assert ranked["eligible"].to_list() == [True, True, True, True, True, False, False]
    shares = dict(zip(ranked["trader_id"].to_list(), ranked["positive_year_share"].to_list()))
    assert shares == pytest.approx({1: 2 / 3, 2: 0.0, 3: 1 / 3, 4: 1.0, 5: 0.0, 6: 1 / 3, 7: 0.0})
    assert ranked["pbo"].to_list() == [0.25] * 7
    assert ranked["scenario"].to_list() == ["s1"] * 7
    assert ranked.columns[:13] == [
        "rank", "trader_id", "scenario", "direction", "entry_time", "offset_ticks", "stop_atr",
        "limit_atr", "duration_min", "timeout_min", "cost_ticks", "trades", "wins",
    ]
    for column in ("sharpe", "max_drawdown", "profit_factor", "dsr", "positive_year_share", "eligible", "pbo"):
        assert column in ranked.columns


def test_sharpe_then_trader_id_break_remaining_ties():
    traders = _traders([9, 4, 6])
    summary = _summary([(9, 50, 1.0, 0.8), (4, 50, 1.0, 0.8), (6, 50, 2.0, 0.8)])
    ranked = rank_traders(traders, summary, _by_year([]), scenario="s1", pbo=None)
    assert ranked["trader_id"].to_list() == [6, 4, 9]
    assert ranked["positive_year_share"].null_count() == 3  # no year traded at all: undefined
    assert ranked["pbo"].null_count() == 3


def test_rankings_are_deterministic_under_input_order(inputs):
    traders, summary, by_year = inputs
    first = rank_traders(traders, summary, by_year, scenario="s1", pbo=0.5)
    for seed in range(3):
        again = rank_traders(
            traders.sample(fraction=1.0, shuffle=True, seed=seed),
            summary.sample(fraction=1.0, shuffle=True, seed=seed + 10),
            by_year.sample(fraction=1.0, shuffle=True, seed=seed + 20),
            scenario="s1",
            pbo=0.5,
        )
        assert again.equals(first)


def test_min_trades_threshold(inputs):
    traders, summary, by_year = inputs
    assert MIN_TRADES_DEFAULT == 30
    ranked = rank_traders(traders, summary, by_year, scenario="s1", pbo=0.1, min_trades=5)
    assert ranked["trader_id"].to_list()[0] == 2  # now eligible, and the highest DSR
    assert ranked.filter(pl.col("trader_id") == 7)["eligible"].to_list() == [False]


def test_other_scenarios_are_ignored_and_mismatch_is_an_error(inputs):
    traders, summary, by_year = inputs
    both = pl.concat([traders, _traders([1, 2], scenario="s2")])
    ranked = rank_traders(both, summary, by_year, scenario="s1", pbo=0.1)
    assert ranked.height == traders.height
    with pytest.raises(MochiError, match="no trader of scenario 'nope'"):
        rank_traders(traders, summary, by_year, scenario="nope", pbo=0.1)
    with pytest.raises(MochiError, match="trader summary: missing column\\(s\\) dsr"):
        rank_traders(traders, summary.drop("dsr"), by_year, scenario="s1", pbo=0.1)


def test_top_trader_ids(inputs):
    traders, summary, by_year = inputs
    ranked = rank_traders(traders, summary, by_year, scenario="s1", pbo=0.1)
    assert top_trader_ids(ranked, 3) == [6, 4, 1]
    assert top_trader_ids(ranked.reverse(), 2) == [6, 4]
    assert top_trader_ids(ranked, 50) == ranked["trader_id"].to_list()


def test_leaderboard_across_scenarios(inputs):
    traders, summary, by_year = inputs
    s1 = rank_traders(traders, summary, by_year, scenario="s1", pbo=0.2)
    s2_summary = _summary([(1, 40, 2.0, 0.97), (2, 40, 1.0, 0.5), (3, 40, 0.5, 0.92)])
    s2 = rank_traders(_traders([1, 2, 3], "s2"), s2_summary, _by_year([(1, 2020, 1.0)]), scenario="s2", pbo=0.6)
    board = leaderboard({"s1": s1, "s2": s2}, top_per_scenario=2)
    assert board.columns[:4] == ["rank", "scenario", "scenario_rank", "trader_id"]
    rows = board.select("rank", "scenario", "scenario_rank", "trader_id", "pbo").rows()
    assert rows == [
        (1, "s2", 1, 1, 0.6),  # dsr 0.97
        (2, "s1", 1, 6, 0.2),  # dsr 0.95
        (3, "s2", 2, 3, 0.6),  # dsr 0.92
        (4, "s1", 2, 4, 0.2),  # dsr 0.90
    ]
    assert leaderboard([s2, s1], top_per_scenario=2).equals(board)
    # a frame without its scenario column takes the dict key
    keyed = leaderboard({"s1": s1.drop("scenario"), "s2": s2.drop("scenario")}, top_per_scenario=2)
    assert keyed.select(board.columns).equals(board)
    assert leaderboard([]).is_empty()


def test_aggregate_then_rank_end_to_end():
    dates = [date(2021, 1, 4), date(2021, 1, 5), date(2021, 1, 6), date(2022, 1, 4), date(2022, 1, 5)]
    traders = _traders([10, 20, 30])
    trades = pl.DataFrame(
        {
            "trader_id": [10, 10, 10, 20, 20],
            "session_date": [dates[0], dates[2], dates[3], dates[1], dates[4]],
            "pnl": [2.0, -1.0, 3.0, -2.0, 1.0],
        },
        schema_overrides={"trader_id": pl.Int64},
    ).with_columns(
        entry_ts=pl.col("session_date").cast(pl.Datetime("us", "UTC")),
        exit_ts=pl.col("session_date").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=1),
        entry_price=pl.lit(100.0),
        exit_price=100.0 + pl.col("pnl"),
        pnl_ticks=pl.col("pnl") * 10,
        r=pl.col("pnl") / 2,
        mae=pl.lit(0.5),
        mfe=pl.lit(1.0),
    )
    out = aggregate_scenario(DuckDBEngine(), trades=trades, traders=traders, session_dates=dates)
    pbo = out["scenario_stats"]["pbo"][0]
    ranked = rank_traders(traders, out["trader_summary"], out["trader_by_year"], scenario="s1", pbo=pbo, min_trades=1)
    assert ranked["trader_id"].to_list() == [10, 20, 30]
    row = ranked.row(0, named=True)
    assert (row["trades"], row["wins"], row["net_pnl"], row["max_drawdown"]) == (3, 2, 4.0, 1.0)
    assert row["positive_year_share"] == 1.0
    assert ranked.filter(pl.col("trader_id") == 20)["positive_year_share"].to_list() == [0.5]


def test_statistics_equal_but_for_rounding_noise_are_ties_broken_by_trader_id():
    # the same trades with different stops: Sharpe and DSR agree to ~1e-16, not exactly
    traders = _traders([0, 100, 600])
    summary = _summary([(0, 50, 1.0, 0.8), (100, 50, 1.0 + 2e-16, 0.8 + 1e-16), (600, 50, 1.0 + 4e-16, 0.8 + 2e-16)])
    ranked = rank_traders(traders, summary, _by_year([]), scenario="s1", pbo=None)
    assert ranked["trader_id"].to_list() == [0, 100, 600]


def test_duplicates_rank_after_their_original_and_show_once(inputs):
    traders, summary, by_year = inputs
    # trader 3 has the same trades as 1 (same statistics), 5 the same as 4
    dup = summary.with_columns(
        duplicate_of=pl.when(pl.col("trader_id") == 3).then(1).when(pl.col("trader_id") == 5).then(4)
    )
    dup = dup.with_columns(
        pl.when(pl.col("trader_id") == 3).then(1.0).otherwise(pl.col("sharpe")).alias("sharpe"),
        pl.when(pl.col("trader_id") == 5).then(0.90).otherwise(pl.col("dsr")).alias("dsr"),
    )
    ranked = rank_traders(traders, dup, by_year, scenario="s1", pbo=0.1)
    order = ranked["trader_id"].to_list()
    assert order.index(3) == order.index(1) + 1 and ranked["duplicate_of"].to_list()[order.index(3)] == 1
    assert top_trader_ids(ranked, 10) == [t for t in order if t not in (3, 5)]
    board = leaderboard({"s1": ranked}, top_per_scenario=4)
    assert board["duplicate_of"].null_count() == board.height
    assert board["trader_id"].to_list() == [6, 4, 1, 2]
