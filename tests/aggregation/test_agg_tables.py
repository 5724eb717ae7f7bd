"""aggregate_scenario on DuckDB against a recomputation in plain polars/NumPy loops."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.aggregation import stats
from mochi_assets.aggregation.outcomes import trader_outcomes
from mochi_assets.aggregation.tables import SCRIPT, aggregate_scenario, load_sql
from mochi_resources.errors import MochiError
from mochi_resources.sql_engine import DuckDBEngine, ParquetFile

ENGINE = DuckDBEngine(threads=2, memory_limit="1GB")


def _calendar() -> list[date]:
    """Weekdays of 2019-2022: trades are only generated in 2019-2021, so 2022 has none."""
    days = [date(2019, 1, 1) + timedelta(days=i) for i in range(4 * 365 + 1)]
    return [d for d in days if d.weekday() < 5]


def _scenario(seed: int) -> tuple[pl.DataFrame, pl.DataFrame, list[date]]:
    rng = np.random.default_rng(seed)
    sessions = _calendar()
    n = 14
    traders = pl.DataFrame(
        {
            "trader_id": (np.arange(n, dtype=np.int64) * 7 + 3),
            "scenario": ["breakout-long"] * n,
            "direction": ["long"] * n,
            "entry_time": ["09:30"] * n,
            "offset_ticks": rng.integers(-5, 6, n),
            "stop_atr": rng.choice([0.5, 1.0, 1.5], n),
            "limit_atr": rng.choice([1.0, 2.0, 3.0], n),
            "duration_min": [240] * n,
            "timeout_min": [30] * n,
            "cost_ticks": [2.0] * n,
        }
    )
    rows = []
    trading_days = [d for d in sessions if d.year <= 2021]
    ids = traders["trader_id"].to_list()
    for k, trader_id in enumerate(ids[:-2]):  # the last two traders never trade
        days = trading_days
        if k == 0:
            days = [d for d in trading_days if d.year != 2020]  # a year without trades
        count = int(rng.integers(5, 120))
        chosen = sorted(rng.choice(len(days), size=count, replace=False))
        stop = traders["stop_atr"][k]
        for i in chosen:
            day = days[int(i)]
            atr = float(rng.uniform(5, 15))
            pnl = float(rng.normal(0.05 * (k % 3), 1.0)) * atr
            if k == 1:
                pnl = abs(pnl) + 0.1  # a trader without a losing trade: profit_factor is null
            risk = stop * atr
            rows.append(
                {
                    "trader_id": trader_id,
                    "session_date": day,
                    "entry_ts": None,
                    "pnl": pnl,
                    "pnl_ticks": pnl * 100,
                    "r": pnl / risk,
                    "mae": abs(float(rng.normal(0, 0.5))) * risk,
                    "mfe": abs(float(rng.normal(0, 0.5))) * risk,
                    "exit_reason": "time",
                }
            )
    trades = pl.DataFrame(rows).with_columns(
        entry_ts=(pl.col("session_date").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=14, minutes=30)),
        bars_held=pl.lit(3, dtype=pl.Int64),
        entry_price=pl.lit(100.0),
        exit_price=100.0 + pl.col("pnl"),
    ).with_columns(exit_ts=pl.col("entry_ts") + pl.duration(minutes=3))
    # Storage order is not trade order: the aggregation must sort by itself.
    trades = trades.sample(fraction=1.0, shuffle=True, seed=seed)
    return traders, trades, sessions


def _reference(traders: pl.DataFrame, trades: pl.DataFrame, sessions: list[date]) -> dict:
    index = {d: i for i, d in enumerate(sessions)}
    ids = sorted(traders["trader_id"].to_list())
    matrix = np.zeros((len(ids), len(sessions)))
    by_trader = defaultdict(list)
    for row in trades.sort("entry_ts").iter_rows(named=True):
        by_trader[row["trader_id"]].append(row)
        matrix[ids.index(row["trader_id"]), index[row["session_date"]]] += row["r"]
    summary = []
    for i, trader_id in enumerate(ids):
        rows = by_trader[trader_id]
        pnl = [r["pnl"] for r in rows]
        wins = sum(1 for p in pnl if p > 0)
        loss = -sum(p for p in pnl if p < 0)
        sd = float(np.std(matrix[i], ddof=1))
        summary.append(
            {
                "trader_id": trader_id,
                "trades": len(rows),
                "wins": wins,
                "win_rate": wins / len(rows) if rows else None,
                "net_pnl": sum(pnl),
                "avg_r": float(np.mean([r["r"] for r in rows])) if rows else None,
                "profit_factor": sum(p for p in pnl if p > 0) / loss if loss > 0 else None,
                "max_drawdown": stats.max_drawdown(np.array(pnl)),
                "sharpe": float(np.mean(matrix[i])) / sd * math.sqrt(252) if sd > 0 else None,
                "expectancy": float(np.mean(pnl)) if rows else None,
            }
        )
    return {"summary": pl.DataFrame(summary), "matrix": matrix}


def _assert_frames_close(actual: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert actual.height == expected.height
    for column in expected.columns:
        a, e = actual[column].to_list(), expected[column].to_list()
        for x, y in zip(a, e):
            if y is None:
                assert x is None, (column, a, e)
            else:
                assert x == pytest.approx(y, rel=1e-9, abs=1e-9), (column, a, e)


@pytest.fixture(scope="module", params=[0, 1])
def case(request):
    traders, trades, sessions = _scenario(request.param)
    out = aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions, n_blocks=8)
    return traders, trades, sessions, out


def test_summary_matches_reference(case):
    traders, trades, sessions, out = case
    ref = _reference(traders, trades, sessions)
    summary = out["trader_summary"]
    assert summary["trader_id"].to_list() == sorted(traders["trader_id"].to_list())
    _assert_frames_close(summary.select(ref["summary"].columns), ref["summary"])
    # traders without trades are present with zeros and nulls
    idle = summary.filter(pl.col("trades") == 0)
    assert idle.height == 2
    assert idle["net_pnl"].to_list() == [0.0, 0.0] and idle["sharpe"].null_count() == 2
    assert idle["dsr"].null_count() == 2 and idle["psr"].null_count() == 2
    # one trader never lost: no profit factor
    assert summary["profit_factor"].null_count() == 3


def test_dsr_psr_pbo_come_from_the_daily_matrix(case):
    traders, trades, sessions, out = case
    matrix = _reference(traders, trades, sessions)["matrix"]
    dsr = stats.deflated_sharpe_ratios(matrix)
    psr = stats.probabilistic_sharpe_ratios(matrix)
    got = out["trader_summary"]
    np.testing.assert_allclose(got["dsr"].fill_null(np.nan).to_numpy(), dsr, rtol=1e-9)
    np.testing.assert_allclose(got["psr"].fill_null(np.nan).to_numpy(), psr, rtol=1e-9)
    pbo, used = stats.probability_of_backtest_overfitting(matrix, n_blocks=8)
    row = out["scenario_stats"].row(0, named=True)
    assert row["pbo"] == pytest.approx(pbo) and row["n_blocks_used"] == used == 8
    assert row["traders"] == traders.height and row["traders_with_trades"] == traders.height - 2
    assert row["trades"] == trades.height and row["sessions"] == len(sessions)
    assert row["dsr_trials"] == traders.height  # idle traders count in N
    assert row["dsr_trials_eff"] == pytest.approx(stats.effective_trials(matrix), rel=1e-6)
    dsr_eff = got["dsr_eff"].fill_null(np.nan).to_numpy()
    np.testing.assert_allclose(dsr_eff, stats.sharpe_tests(matrix).dsr_eff, rtol=1e-9)
    best = got.sort(["sharpe", "trader_id"], descending=[True, False], nulls_last=True).row(0, named=True)
    assert row["best_trader_id"] == best["trader_id"]
    assert row["best_sharpe"] == pytest.approx(best["sharpe"]) and row["best_dsr"] == pytest.approx(best["dsr"])


def test_by_year_matches_reference(case):
    _, trades, _, out = case
    expected = (
        trades.group_by("trader_id", pl.col("session_date").dt.year().cast(pl.Int64).alias("year"))
        .agg(
            pl.len().cast(pl.Int64).alias("trades"),
            pl.col("pnl").sum().alias("net_pnl"),
            (pl.col("pnl") > 0).mean().alias("win_rate"),
        )
        .sort("trader_id", "year")
    )
    got = out["trader_by_year"]
    assert got.select("trader_id", "year", "trades").equals(expected.select("trader_id", "year", "trades"))
    _assert_frames_close(got.select("net_pnl", "win_rate"), expected.select("net_pnl", "win_rate"))
    # years without trades do not appear: 2022 for everyone, 2020 for the first trader
    assert 2022 not in got["year"].to_list()
    first = got.filter(pl.col("trader_id") == 3)["year"].to_list()
    assert first == [2019, 2021]


@pytest.mark.parametrize("level", ["stop_atr", "limit_atr"])
def test_levels_match_reference(case, level):
    traders, trades, _, out = case
    got = out["stops_by_level" if level == "stop_atr" else "limits_by_level"]
    joined = trades.join(traders.select("trader_id", level), on="trader_id")
    pooled = joined.group_by(level).agg(
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("pnl").sum().alias("net_pnl"),
        pl.col("r").mean().alias("avg_r"),
        (pl.col("pnl") > 0).mean().alias("win_rate"),
        pl.col("trader_id").n_unique().cast(pl.Int64).alias("traders_with_trades"),
    )
    counts = traders.group_by(level).agg(pl.len().cast(pl.Int64).alias("traders"))
    expected = counts.join(pooled, on=level, how="left").sort(level).with_columns(
        pl.col("trades").fill_null(0), pl.col("net_pnl").fill_null(0.0), pl.col("traders_with_trades").fill_null(0)
    )
    assert got[level].to_list() == expected[level].to_list()
    assert got["traders"].to_list() == expected["traders"].to_list()
    assert got["traders_with_trades"].to_list() == expected["traders_with_trades"].to_list()
    assert got["trades"].to_list() == expected["trades"].to_list()
    _assert_frames_close(got.select("net_pnl", "avg_r", "win_rate"), expected.select("net_pnl", "avg_r", "win_rate"))
    sharpes = out["trader_summary"].join(traders.select("trader_id", level), on="trader_id")
    mean_sharpe = sharpes.group_by(level).agg(pl.col("sharpe").mean()).sort(level)
    _assert_frames_close(got.select(pl.col("mean_sharpe").alias("sharpe")), mean_sharpe.select("sharpe"))


def test_mae_profile_matches_numpy_quantiles(case):
    traders, trades, _, out = case
    joined = trades.join(traders.select("trader_id", "stop_atr"), on="trader_id").with_columns(
        mae_r=pl.col("mae") * pl.col("r") / pl.col("pnl"),
        outcome=pl.when(pl.col("pnl") > 0).then(pl.lit("win")).otherwise(pl.lit("loss")),
    )
    profile = out["mae_profile"]
    for row in profile.iter_rows(named=True):
        subset = joined.filter(pl.col("outcome") == row["outcome"])
        if row["stop_atr"] is not None:
            subset = subset.filter(pl.col("stop_atr") == row["stop_atr"])
        values = subset["mae_r"].to_numpy()
        assert row["trades"] == len(values)
        for q, column in [(0.1, "mae_r_p10"), (0.5, "mae_r_p50"), (0.9, "mae_r_p90")]:
            assert row[column] == pytest.approx(float(np.quantile(values, q)), rel=1e-9)
        assert row["mae_r_mean"] == pytest.approx(float(values.mean()), rel=1e-9)
    overall = profile.filter(pl.col("stop_atr").is_null())
    assert sorted(overall["outcome"].to_list()) == ["loss", "win"]
    assert overall["trades"].sum() == trades.height


def test_arrow_input_gives_identical_tables(case):
    traders, trades, sessions, _ = case
    # One thread: with two, DuckDB may add a group's floats in another order from run to run
    # (results then differ in the last bit), and this test asks for bit-identical tables.
    engine = DuckDBEngine(threads=1)
    out = aggregate_scenario(engine, trades=trades, traders=traders, session_dates=sessions, n_blocks=8)
    again = aggregate_scenario(
        engine, trades=trades.to_arrow(), traders=traders, session_dates=pl.Series(sessions), n_blocks=8
    )
    for name, frame in out.items():
        assert again[name].equals(frame), name


def test_a_trades_file_read_by_duckdb_gives_identical_tables(case, tmp_path):
    """The aggregates asset hands DuckDB the lake's trades file (ParquetFile) instead of the
    trades in memory: every table is the same, to the bit, at two threads."""
    traders, trades, sessions, _ = case
    engine = DuckDBEngine(threads=2)
    path = tmp_path / "trades.parquet"
    trades.write_parquet(path, row_group_size=1_000)  # several row groups, read in parallel
    out = aggregate_scenario(engine, trades=trades, traders=traders, session_dates=sessions, n_blocks=8)
    from_file = aggregate_scenario(
        engine, trades=ParquetFile(str(path), tuple(trades.columns)), traders=traders, session_dates=sessions,
        n_blocks=8, outcomes=trader_outcomes(pl.scan_parquet(path)),
    )
    for name, frame in out.items():
        assert from_file[name].equals(frame), name
    with pytest.raises(MochiError, match="outcomes: give the traders' outcome table with a trades file"):
        aggregate_scenario(engine, trades=ParquetFile(str(path), ()), traders=traders, session_dates=sessions)


def test_no_trades_at_all():
    traders, trades, sessions = _scenario(0)
    out = aggregate_scenario(ENGINE, trades=trades.clear(), traders=traders, session_dates=sessions)
    summary = out["trader_summary"]
    assert summary.height == traders.height and summary["trades"].sum() == 0
    assert summary["sharpe"].null_count() == traders.height
    assert out["trader_by_year"].is_empty() and out["mae_profile"].is_empty()
    row = out["scenario_stats"].row(0, named=True)
    assert row["pbo"] is None and row["best_trader_id"] is None and row["trades"] == 0


def test_bad_inputs_raise_clear_errors():
    traders, trades, sessions = _scenario(1)
    with pytest.raises(MochiError, match="trades: missing column\\(s\\) mae"):
        aggregate_scenario(ENGINE, trades=trades.drop("mae"), traders=traders, session_dates=sessions)
    with pytest.raises(MochiError, match="not in the trader table"):
        aggregate_scenario(ENGINE, trades=trades, traders=traders.head(3), session_dates=sessions)
    with pytest.raises(MochiError, match="outside the session calendar"):
        aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions[:100])
    with pytest.raises(MochiError, match="trader_id 3 appears more than once"):
        aggregate_scenario(
            ENGINE, trades=trades, traders=pl.concat([traders, traders.head(1)]), session_dates=sessions
        )
    with pytest.raises(MochiError, match="session_dates: expected dates, got String"):
        aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=["2021-01-04"])
    with pytest.raises(MochiError, match="n_blocks"):
        aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions, n_blocks=1)
    # a trader holds at most one trade per session date (docs/strategy.md): a second one is an
    # error naming the trader and the date, never a day whose second trade is dropped
    first = trades.sort("trader_id", "entry_ts").row(0, named=True)
    second = pl.DataFrame([{**first, "entry_ts": first["entry_ts"] + timedelta(minutes=1)}], schema=trades.schema)
    with pytest.raises(MochiError, match=f"trader_id {first['trader_id']} has 2 trades on session "
                                         f"{first['session_date']} \\(the strategy allows one per session date\\)"):
        aggregate_scenario(ENGINE, trades=pl.concat([trades, second]), traders=traders, session_dates=sessions)


def test_every_script_statement_has_its_sql_file():
    for name in (*SCRIPT, "trade_checks"):
        assert load_sql(name).strip()
    with pytest.raises(MochiError, match="not found"):
        load_sql("no_such_statement")
    with pytest.raises(MochiError, match="lower-case"):
        load_sql("../tables")


def test_constant_series_has_no_sharpe_in_sql_or_numpy():
    sessions = [date(2021, 3, 1) + timedelta(days=i) for i in range(10)]
    traders = pl.DataFrame({"trader_id": [1, 2], "stop_atr": [1.0, 1.0], "limit_atr": [2.0, 2.0]})
    pnl = [0.1] * 10 + [0.3, -0.1]
    trades = pl.DataFrame(
        {
            "trader_id": [1] * 10 + [2, 2],
            "session_date": sessions + sessions[:2],
            "pnl": pnl,
        }
    ).with_columns(
        entry_ts=pl.col("session_date").cast(pl.Datetime("us", "UTC")),
        exit_ts=pl.col("session_date").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=1),
        entry_price=pl.lit(100.0),
        exit_price=100.0 + pl.col("pnl"),
        pnl_ticks=pl.col("pnl") * 10,
        r=pl.col("pnl"),
        mae=pl.lit(0.0),
        mfe=pl.col("pnl").abs(),
    )
    out = aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions)
    summary = out["trader_summary"]
    # trader 1 earns 0.1 R every session: zero spread, so no Sharpe, DSR or PSR
    assert summary["sharpe"].to_list()[0] is None and summary["dsr"].to_list()[0] is None
    assert summary["sharpe"].to_list()[1] is not None
    assert out["scenario_stats"]["dsr_trials"].to_list() == [2]  # every trader is a trial
    assert out["scenario_stats"]["pbo"].to_list() == [None]  # one trial: nothing to overfit


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(st.sampled_from([-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.5]),
                      st.floats(-50.0, 50.0, allow_nan=False, allow_subnormal=False)),
            min_size=1, max_size=100,
        ),
        min_size=1,
        max_size=4,
    ),
    st.randoms(use_true_random=False),
)
def test_outcome_drawdown_equals_running_peak(pnl_by_trader, rnd):
    """outcomes.trader_outcomes: each trader's drawdown is that of the plain running peak over its
    trades in entry order (stats.max_drawdown), whatever order the rows come in."""
    trades = _pnl_trades(pnl_by_trader)
    shuffled = trades.sample(fraction=1.0, shuffle=True, seed=rnd.randrange(2**32))
    got = trader_outcomes(shuffled)
    assert got["trader_id"].to_list() == list(range(1, len(pnl_by_trader) + 1))
    assert got["trades"].to_list() == [len(pnls) for pnls in pnl_by_trader]
    want = [stats.max_drawdown(np.array(pnls)) for pnls in pnl_by_trader]
    assert got["max_drawdown"].to_list() == want  # the same additions in the same order
    assert got.equals(trader_outcomes(trades))


def _pnl_trades(pnl_by_trader: list[list[float]]) -> pl.DataFrame:
    """Trades of traders 1, 2, ... with these pnl in entry order (every OUTCOME_COLUMNS column)."""
    rows = [
        (trader_id, i, pnl) for trader_id, pnls in enumerate(pnl_by_trader, start=1) for i, pnl in enumerate(pnls)
    ]
    trades = pl.DataFrame(rows, schema={"trader_id": pl.Int64, "minute": pl.Int64, "pnl": pl.Float64}, orient="row")
    return trades.with_columns(
        entry_ts=pl.datetime(2021, 3, 1, time_zone="UTC") + pl.duration(minutes=pl.col("minute") * 30),
    ).with_columns(
        session_date=pl.col("entry_ts").dt.date(),
        exit_ts=pl.col("entry_ts") + pl.duration(minutes=10),
        entry_price=pl.lit(100.0),
        exit_price=100.0 + pl.col("pnl"),
    )


def _copied_trades(rng: np.random.Generator, sessions: list[date]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Traders 1..6: 2 trades exactly like 1 (with another stop, so another r), 5 like 3,
    4 like 1 but one exit price a tick apart, 6 never trades."""
    traders = pl.DataFrame(
        {"trader_id": [1, 2, 3, 4, 5, 6], "stop_atr": [1.0, 2.0, 1.0, 1.0, 0.5, 1.0], "limit_atr": [2.0] * 6}
    )
    base = pl.DataFrame(
        {"session_date": sessions, "pnl": rng.normal(0.0, 1.0, len(sessions))}
    ).with_columns(
        entry_ts=pl.col("session_date").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=14),
        entry_price=pl.lit(100.0),
        exit_price=100.0 + pl.col("pnl"),
        pnl_ticks=pl.col("pnl") * 100,
        mae=pl.lit(0.1),
        mfe=pl.lit(0.2),
    ).with_columns(exit_ts=pl.col("entry_ts") + pl.duration(minutes=30))
    other = base.with_columns(pl.col("pnl") * -0.5, pl.col("exit_ts") + pl.duration(minutes=5))
    nudged = base.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.col("exit_price") + 0.01).otherwise(pl.col("exit_price"))
    )
    parts = [
        base.with_columns(trader_id=pl.lit(1), r=pl.col("pnl")),
        base.with_columns(trader_id=pl.lit(2), r=pl.col("pnl") / 2),
        other.with_columns(trader_id=pl.lit(3), r=pl.col("pnl")),
        nudged.with_columns(trader_id=pl.lit(4), r=pl.col("pnl")),
        other.with_columns(trader_id=pl.lit(5), r=pl.col("pnl") * 2),
    ]
    trades = pl.concat(parts).with_columns(pl.col("trader_id").cast(pl.Int64))
    return traders, trades.sample(fraction=1.0, shuffle=True, seed=3)


def test_identical_traders_are_reported_as_duplicates():
    rng = np.random.default_rng(9)
    sessions = [date(2021, 3, 1) + timedelta(days=i) for i in range(40)]
    traders, trades = _copied_trades(rng, sessions)
    out = aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions)
    summary = out["trader_summary"].sort("trader_id")
    assert summary["duplicate_of"].to_list() == [None, 1, None, None, 3, None]
    assert out["scenario_stats"]["distinct_outcomes"].to_list() == [4]
    # identical trades, different stop: r scales but Sharpe and DSR are the same
    first, copy = summary.row(0, named=True), summary.row(1, named=True)
    assert copy["sharpe"] == pytest.approx(first["sharpe"]) and copy["dsr"] == pytest.approx(first["dsr"])
    assert copy["net_r"] == pytest.approx(first["net_r"] / 2) and copy["net_pnl"] == pytest.approx(first["net_pnl"])
    # two idle traders are one outcome: the second is a duplicate of the first
    extra = pl.concat([traders, pl.DataFrame({"trader_id": [7], "stop_atr": [1.0], "limit_atr": [1.0]})])
    again = aggregate_scenario(ENGINE, trades=trades, traders=extra, session_dates=sessions)
    assert again["trader_summary"].sort("trader_id")["duplicate_of"].to_list() == [None, 1, None, None, 3, None, 6]
    assert again["scenario_stats"]["distinct_outcomes"].to_list() == [4]


def test_duplicate_detection_needs_the_trade_identity_columns():
    rng = np.random.default_rng(9)
    sessions = [date(2021, 3, 1) + timedelta(days=i) for i in range(10)]
    traders, trades = _copied_trades(rng, sessions)
    with pytest.raises(MochiError, match="exit_price.*outcomes"):
        aggregate_scenario(ENGINE, trades=trades.drop("exit_price"), traders=traders, session_dates=sessions)


def test_an_outcome_table_of_other_trades_is_refused():
    rng = np.random.default_rng(9)
    sessions = [date(2021, 3, 1) + timedelta(days=i) for i in range(10)]
    traders, trades = _copied_trades(rng, sessions)
    stale = trader_outcomes(trades.filter(pl.col("trader_id") != 3))  # trader 3's trades missing
    with pytest.raises(MochiError, match=r"trader outcomes: 1 trader\(s\) with another trade count.*trader_id 3: 0 in"):
        aggregate_scenario(ENGINE, trades=trades, traders=traders, session_dates=sessions, outcomes=stale)
    mine = trades.filter(pl.col("trader_id") != 5)
    with pytest.raises(MochiError, match=r"trader outcomes: 1 row\(s\) belong to traders not in the trader table"):
        aggregate_scenario(ENGINE, trades=mine, traders=traders.filter(pl.col("trader_id") != 5),
                           session_dates=sessions, outcomes=trader_outcomes(trades))
