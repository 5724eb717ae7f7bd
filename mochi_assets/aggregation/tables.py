"""Aggregation of one ticker x scenario: trades in, statistics tables out.

SQL (the files in ``sql/``, run by a :class:`~mochi_resources.sql_engine.SqlEngine`) does the set
work over the trades: sums, counts, window drawdowns, per-year and per-level groupings, quantiles.
NumPy/SciPy (:mod:`mochi_assets.aggregation.stats`) does what SQL cannot: the Deflated Sharpe
Ratio and the Probability of Backtest Overfitting from the dense traders x session-dates matrix of
daily ``r`` sums (2,000 traders x 2,500 dates is 40 MB; no Python loop ever runs over trades).

Undefined statistics (a ratio without a denominator, a Sharpe without spread) are nulls, not NaN.

What needs each trader's trades one by one in order but not SQL comes from the traders' outcome
table (:mod:`mochi_assets.aggregation.outcomes`), which the simulation computes while the trades
are in memory: ``max_drawdown`` (handed to the SQL engine as a column of its ``traders`` input)
and the fingerprint of each trader's trade set.

Identical traders: two traders whose trades come out the same (same session dates, entry and exit
times and prices, pnl) are one outcome counted twice, typically because a stop or limit of the
grid is never reached within the holding window. ``duplicate_of`` is the lowest trader_id with the
same trade count and fingerprint (``outcome_hash``) (null for that lowest one and for unique
traders); traders without trades are one outcome.
"""

from __future__ import annotations

import math
import re
from datetime import date
from importlib import resources

import numpy as np
import polars as pl
import pyarrow as pa

from mochi_assets.aggregation import stats
from mochi_assets.aggregation.outcomes import check_outcomes, trader_outcomes
from mochi_assets.validation.panel import check_one_per_cell
from mochi_resources.errors import MochiError
from mochi_resources.sql_engine import LakePartition, ParquetFile, SqlEngine, SqlSession

TRADE_COLUMNS = ("trader_id", "session_date", "entry_ts", "pnl", "pnl_ticks", "r", "mae", "mfe")
TRADER_COLUMNS = ("trader_id", "stop_atr", "limit_atr")
# What the daily matrix reads of each trade: the daily series is a trader's r per session date.
DAILY_COLUMNS = ("trader_id", "session_date", "r")
# The SQL engine's traders input: TRADER_COLUMNS and each trader's max_drawdown (outcomes).
SQL_TRADER_COLUMNS = (*TRADER_COLUMNS, "max_drawdown")

# The trades table in the lake (bucket "trades", written by the simulation), as an engine that
# reads the lake itself (Trino) declares it: every column of the trades contract, Trino types.
TRADES_LAKE_COLUMNS = (
    ("trader_id", "BIGINT"),
    ("session_date", "DATE"),
    ("entry_ts", "TIMESTAMP(3)"),
    ("entry_price", "DOUBLE"),
    ("exit_ts", "TIMESTAMP(3)"),
    ("exit_price", "DOUBLE"),
    ("exit_reason", "VARCHAR"),
    ("pnl", "DOUBLE"),
    ("pnl_ticks", "DOUBLE"),
    ("r", "DOUBLE"),
    ("mae", "DOUBLE"),
    ("mfe", "DOUBLE"),
    ("bars_held", "BIGINT"),
)

# Materialized in this order; each statement may read the inputs and every earlier result.
SCRIPT = (
    "trader_year_sums",
    "trader_trade_stats",
    "mae_profile",
    "trader_daily_stats",
    "trader_summary",
    "trader_by_year",
    "stops_by_level",
    "limits_by_level",
)

# The results read back; the other statements are intermediate steps.
FETCHED = (
    "trader_summary",
    "trader_by_year",
    "stops_by_level",
    "limits_by_level",
    "mae_profile",
)

_SQL_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def load_sql(name: str) -> str:
    """Text of ``mochi_assets/aggregation/sql/<name>.sql`` (read as a package resource)."""
    if not _SQL_NAME.match(name):
        raise MochiError(f"SQL file name {name!r}: use lower-case letters, digits and underscores")
    path = resources.files("mochi_assets.aggregation").joinpath("sql", f"{name}.sql")
    if not path.is_file():
        raise MochiError(f"SQL file {name}.sql: not found in mochi_assets/aggregation/sql")
    return path.read_text(encoding="utf-8")


def lake_trades(ticker: str, scenario: str) -> LakePartition:
    """The trades of one ticker x scenario where the simulation stored them, for engines that read
    the lake themselves (``engine.lake_inputs``): ``{prefix}trades/trades/ticker=T/scenario=S/``."""
    return LakePartition(
        bucket="trades",
        table="trades",
        ticker=ticker,
        scenario=scenario,
        columns=TRADES_LAKE_COLUMNS,
        select=TRADE_COLUMNS,
    )


def _columns(table: pl.DataFrame | pa.Table) -> list[str]:
    return list(table.columns) if isinstance(table, pl.DataFrame) else list(table.column_names)


def _select(table: pl.DataFrame | pa.Table, columns: tuple[str, ...], what: str) -> pa.Table:
    """The needed columns as Arrow (zero-copy where possible); names the missing ones."""
    if not isinstance(table, (pl.DataFrame, pa.Table)):
        raise MochiError(f"{what}: expected a polars DataFrame or pyarrow Table, got {type(table).__name__}")
    missing = [c for c in columns if c not in _columns(table)]
    if missing:
        raise MochiError(f"{what}: missing column(s) {', '.join(missing)}")
    if isinstance(table, pl.DataFrame):
        return table.select(columns).to_arrow()
    return table.select(list(columns))


def _sessions_frame(session_dates: list[date] | pl.Series) -> pl.DataFrame:
    series = pl.Series("session_date", session_dates)
    if series.dtype == pl.Null or isinstance(series.dtype, pl.Datetime):
        series = series.cast(pl.Date)
    if series.dtype != pl.Date:
        raise MochiError(f"session_dates: expected dates, got {series.dtype}")
    if series.null_count():
        raise MochiError("session_dates: contains nulls")
    return pl.DataFrame({"session_date": series}).unique().sort("session_date")


def _check_inputs(session: SqlSession) -> None:
    checks = session.query(load_sql("trade_checks")).row(0, named=True)
    if checks["unknown_trader_trades"]:
        raise MochiError(
            f"trades: {checks['unknown_trader_trades']} trade(s) belong to traders not in the trader "
            f"table (e.g. trader_id {checks['unknown_trader_example']})"
        )
    if checks["off_calendar_trades"]:
        raise MochiError(
            f"trades: {checks['off_calendar_trades']} trade(s) have a session_date outside the session "
            f"calendar (e.g. {checks['off_calendar_example']})"
        )


def _nullable(values: np.ndarray, name: str) -> pl.Series:
    """Float series with NaN (undefined statistic) turned into null."""
    return pl.Series(name, np.asarray(values, dtype=np.float64)).fill_nan(None)


def _positions(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each of ``values`` in the sorted unique integer array ``keys`` (all present).

    A lookup table over the keys' range when it is compact (trader ids, day numbers): one gather
    per value instead of a binary search (millions of values: the binary search's cache misses
    were the matrix's main cost); ``searchsorted`` for sparse keys.
    """
    keys = np.asarray(keys, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    if keys.size == 0:
        return np.zeros(values.shape, dtype=np.int64)
    low, span = int(keys[0]), int(keys[-1]) - int(keys[0]) + 1
    if span > 4 * keys.size + 65_536:
        return np.searchsorted(keys, values)
    table = np.empty(span, dtype=np.int64)
    table[keys - low] = np.arange(keys.size, dtype=np.int64)
    return table[values - low]


def daily_matrix(
    daily: pl.DataFrame, trader_ids: np.ndarray, session_dates: pl.Series
) -> np.ndarray:
    """Dense traders x dates matrix of daily r sums, zero where a trader did not trade.

    ``daily`` has trader_id, session_date, r (one row per pair: a second row for a pair, i.e. a
    second trade of a trader on a session date, is an error); ``trader_ids`` and
    ``session_dates`` are sorted and unique and contain every id and date of ``daily``.
    """
    matrix = np.zeros((len(trader_ids), len(session_dates)), dtype=np.float64)
    if daily.height:
        rows = _positions(trader_ids, daily["trader_id"].to_numpy())
        days = session_dates.to_physical().to_numpy()
        cols = _positions(days, daily["session_date"].to_physical().to_numpy())
        rows *= matrix.shape[1]
        rows += cols
        check_one_per_cell(np.bincount(rows, minlength=matrix.size), trader_ids, session_dates, traders_major=True)
        matrix.ravel()[rows] = daily["r"].cast(pl.Float64).to_numpy()  # flat indices: a faster scatter
    return matrix


def _daily_rows(trades, daily) -> pl.DataFrame:
    """The DAILY_COLUMNS of the trades (``aggregate_scenario``'s ``daily``, or its trades)."""
    if daily is None:
        daily = pl.scan_parquet(trades.path) if isinstance(trades, ParquetFile) else trades
    if isinstance(daily, pa.Table):
        daily = pl.from_arrow(daily)
    if not isinstance(daily, (pl.DataFrame, pl.LazyFrame)):
        raise MochiError(f"daily: expected a polars or Arrow table, got {type(daily).__name__}")
    missing = [c for c in DAILY_COLUMNS if c not in daily.collect_schema().names()]
    if missing:
        raise MochiError(f"daily: missing column(s) {', '.join(missing)}")
    return daily.lazy().select(DAILY_COLUMNS).collect()


def _check_outcome_counts(summary: pl.DataFrame, outcomes: pl.DataFrame) -> None:
    """The outcome table must describe these trades: each trader's trade count as the SQL counted
    it (an outcome table of another simulation would give wrong drawdowns and duplicates)."""
    counts = summary.select("trader_id", "trades").join(
        outcomes.select("trader_id", pl.col("trades").alias("outcome_trades")), on="trader_id", how="left"
    ).filter(pl.col("trades") != pl.col("outcome_trades").fill_null(0))
    if counts.height:
        row = counts.row(0, named=True)
        raise MochiError(
            f"trader outcomes: {counts.height} trader(s) with another trade count than the trades have "
            f"(e.g. trader_id {row['trader_id']}: {row['outcome_trades'] or 0} in the outcome table, "
            f"{row['trades']} trades): the outcome table belongs to other trades"
        )


def duplicate_traders(trader_ids: np.ndarray | pl.Series, outcomes: pl.DataFrame) -> pl.DataFrame:
    """trader_id and duplicate_of (lowest trader_id with identical trades; null if none lower).

    ``outcomes`` is the traders' outcome table (trader_id, trades, outcome_hash; see
    ``outcomes``); traders absent from it share one outcome with the traders without trades.
    """
    ids = pl.DataFrame({"trader_id": pl.Series(trader_ids, dtype=pl.Int64)})
    keys = ["trades", "outcome_hash"]
    table = ids.join(outcomes.select("trader_id", *keys), on="trader_id", how="left").with_columns(pl.col(keys).fill_null(0))
    table = table.with_columns(pl.col("trader_id").min().over(keys).alias("first"))
    return table.select(
        "trader_id",
        pl.when(pl.col("first") != pl.col("trader_id")).then(pl.col("first")).alias("duplicate_of"),
    ).sort("trader_id")


def aggregate_scenario(
    engine: SqlEngine,
    *,
    trades: pl.DataFrame | pa.Table | LakePartition | ParquetFile,
    traders: pl.DataFrame,
    session_dates: list[date] | pl.Series,
    n_blocks: int = 16,
    outcomes: pl.DataFrame | None = None,
    daily: pl.DataFrame | pl.LazyFrame | pa.Table | None = None,
) -> dict[str, pl.DataFrame]:
    """Statistics tables of one scenario from its traders and trades.

    ``session_dates``: every session date after ATR warm-up (the calendar of the daily series).
    ``trades``: in memory; or (for an engine with ``lake_inputs``, e.g. Trino) ``lake_trades(...)``;
    or, for DuckDB, a ``ParquetFile`` of the trades (DuckDB reads it itself: nothing of it is held
    in this process). ``outcomes``: the traders' outcome table (trader_id, trades, outcome_hash,
    max_drawdown: the simulation's, or ``outcomes.trader_outcomes(trade rows)``), by default
    computed from ``trades`` when it is in memory (required otherwise). ``daily``: the trades'
    ``DAILY_COLUMNS`` for the daily matrix of the DSR and PBO (the trades themselves are the
    daily series' non-zero part: one trade per trader and session date), by default read from
    ``trades`` in memory or, with polars, from the ``ParquetFile`` (required with lake trades: the
    engine's client protocol is no way to move a row per trade). Returns, by name:

    * ``trader_summary``: one row per trader of ``traders`` (sorted by trader_id), see
      ``sql/trader_summary.sql``; plus ``dsr`` (Deflated Sharpe Ratio against all traders of the
      scenario as trials), ``dsr_eff`` (the same against the effective number of independent
      trials), ``psr`` (Probabilistic Sharpe Ratio against 0), null where undefined, and
      ``duplicate_of`` (see the module docstring).
    * ``trader_by_year``: trader_id, year, trades, net_pnl, win_rate, avg_r for each year in which
      the trader traded (years without trades do not appear).
    * ``stops_by_level`` / ``limits_by_level``: one row per stop_atr / limit_atr level.
    * ``mae_profile``: MAE in R of winners and losers, per stop level and overall.
    * ``scenario_stats``: one row: traders, traders_with_trades, trades, sessions, pbo,
      n_blocks_used, dsr_trials (every trader), expected_max_sharpe (annualized SR0: the best
      Sharpe luck alone would give), dsr_trials_eff and expected_max_sharpe_eff (the same for the
      effective number of independent trials), distinct_outcomes (traders with different trades;
      traders without trades are one outcome), best_trader_id / best_sharpe / best_dsr (the trader
      with the highest Sharpe, lowest id on ties, the in-sample pick whose DSR says whether it is
      likely real).
    """
    if n_blocks < 2:
        raise MochiError(f"n_blocks: must be at least 2, got {n_blocks}")
    if isinstance(trades, LakePartition):
        missing = [c for c in TRADE_COLUMNS if c not in trades.selected]
        if missing:
            raise MochiError(f"trades: missing column(s) {', '.join(missing)}")
        if outcomes is None:
            raise MochiError("outcomes: give the traders' outcome table with lake trades")
        if daily is None:
            raise MochiError("daily: give the trades' trader_id, session_date and r with lake trades")
        trades_tbl = trades
    elif isinstance(trades, ParquetFile):
        if outcomes is None:
            raise MochiError("outcomes: give the traders' outcome table with a trades file")
        trades_tbl = ParquetFile(trades.path, TRADE_COLUMNS, trades.label)
    else:
        trades_tbl = _select(trades, TRADE_COLUMNS, "trades")
        if outcomes is None:
            outcomes = trader_outcomes(trades)
    if not isinstance(traders, pl.DataFrame):
        raise MochiError(f"traders: expected a polars DataFrame, got {type(traders).__name__}")
    trader_ids_series = pl.from_arrow(_select(traders, TRADER_COLUMNS, "traders").column("trader_id"))
    if trader_ids_series.null_count():
        raise MochiError("traders: trader_id has nulls")
    if trader_ids_series.n_unique() != len(trader_ids_series):
        duplicated = trader_ids_series.filter(trader_ids_series.is_duplicated()).min()
        raise MochiError(f"traders: trader_id {duplicated} appears more than once")
    outcomes = check_outcomes(outcomes, trader_ids_series)
    traders_tbl = _select(
        traders.select(TRADER_COLUMNS)
        .join(outcomes.select("trader_id", "max_drawdown"), on="trader_id", how="left", maintain_order="left")
        .with_columns(pl.col("max_drawdown").fill_null(0.0)),
        SQL_TRADER_COLUMNS,
        "traders",
    )
    sessions = _sessions_frame(session_dates)
    tables = {"trades": trades_tbl, "traders": traders_tbl, "sessions": sessions}

    with engine.session(tables) as session:
        _check_inputs(session)
        results = session.run_script([(name, load_sql(name)) for name in SCRIPT], fetch=FETCHED)

    summary = results["trader_summary"].sort("trader_id")
    _check_outcome_counts(summary, outcomes)
    trader_ids = summary["trader_id"].to_numpy()
    matrix = daily_matrix(_daily_rows(trades, daily), trader_ids, sessions["session_date"])

    tests = stats.sharpe_tests(matrix)
    pbo, blocks_used = stats.probability_of_backtest_overfitting(matrix, n_blocks=n_blocks)
    del matrix

    duplicates = duplicate_traders(trader_ids, outcomes)
    summary = summary.with_columns(
        pl.col("sharpe").fill_nan(None),
        _nullable(tests.dsr, "dsr"),
        _nullable(tests.dsr_eff, "dsr_eff"),
        _nullable(tests.psr, "psr"),
        duplicates["duplicate_of"],
    )

    def annualized(sr0: float) -> float | None:
        return None if math.isnan(sr0) else sr0 * math.sqrt(stats.PERIODS_PER_YEAR)

    ranked = summary.filter(pl.col("sharpe").is_not_null()).sort(
        ["sharpe", "trader_id"], descending=[True, False]
    )
    best = ranked.row(0, named=True) if ranked.height else None
    scenario_stats = pl.DataFrame(
        {
            "traders": [summary.height],
            "traders_with_trades": [int((summary["trades"] > 0).sum())],
            "trades": [int(summary["trades"].sum())],
            "sessions": [sessions.height],
            "pbo": [None if math.isnan(pbo) else pbo],
            "n_blocks_used": [blocks_used],
            "dsr_trials": [tests.n_trials],
            "expected_max_sharpe": [annualized(tests.sr0)],
            "dsr_trials_eff": [None if math.isnan(tests.n_trials_eff) else tests.n_trials_eff],
            "expected_max_sharpe_eff": [annualized(tests.sr0_eff)],
            "distinct_outcomes": [int(duplicates["duplicate_of"].is_null().sum())],
            "best_trader_id": [best["trader_id"] if best else None],
            "best_sharpe": [best["sharpe"] if best else None],
            "best_dsr": [best["dsr"] if best else None],
        },
        schema={
            "traders": pl.Int64,
            "traders_with_trades": pl.Int64,
            "trades": pl.Int64,
            "sessions": pl.Int64,
            "pbo": pl.Float64,
            "n_blocks_used": pl.Int64,
            "dsr_trials": pl.Int64,
            "expected_max_sharpe": pl.Float64,
            "dsr_trials_eff": pl.Float64,
            "expected_max_sharpe_eff": pl.Float64,
            "distinct_outcomes": pl.Int64,
            "best_trader_id": pl.Int64,
            "best_sharpe": pl.Float64,
            "best_dsr": pl.Float64,
        },
    )
    return {
        "trader_summary": summary,
        "trader_by_year": results["trader_by_year"].sort(["trader_id", "year"]),
        "stops_by_level": results["stops_by_level"].sort("stop_atr"),
        "limits_by_level": results["limits_by_level"].sort("limit_atr"),
        "mae_profile": results["mae_profile"].sort(
            ["stop_atr", "outcome"], descending=[False, True], nulls_last=True
        ),
        "scenario_stats": scenario_stats,
    }
