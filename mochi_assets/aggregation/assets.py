"""Aggregates per ticker x scenario: trader statistics, years, stop and limit levels, DSR, PBO."""


import dagster as dg
import polars as pl

from mochi_assets.aggregation.tables import DAILY_COLUMNS, TRADE_COLUMNS, aggregate_scenario, lake_trades
from mochi_assets.execution import step_tags
from mochi_assets.automation.retries import LAKE_RETRY
from mochi_assets.metadata import code_version, preview, provenance
from mochi_assets.partitions import by_ticker, split_partition_key, ticker_scenario_partitions_def
from mochi_assets.conditions import follows_upstream
from mochi_assets.failures import fails_at_once
from mochi_assets.request import BacktestRequest
from mochi_assets.request_asset import request_in
from mochi_resources.io_manager import lake_metadata, local_parquet
from mochi_resources.sql_engine import LakePartition, ParquetFile
from mochi_resources.sql_resource import SqlEngineResource

AGGREGATE_TABLES = [
    "trader_summary",
    "trader_by_year",
    "stops_by_level",
    "limits_by_level",
    "mae_profile",
    "scenario_stats",
]


def session_calendar(enhanced: pl.LazyFrame) -> pl.Series:
    """Session dates after ATR warm-up: the calendar of every trader's daily series."""
    return (
        enhanced.filter(pl.col("atr").is_not_null())
        .select(pl.col("session_date").unique().sort())
        .collect()
        .to_series()
    )


def _trades_input(engine, trades: dict, ticker_key: str, scenario: str) -> pl.DataFrame | LakePartition | ParquetFile:
    """How the SQL engine gets the trades: Trino reads them where they lie in the lake; DuckDB
    reads the committed file itself on a folder lake (the very version the step's input pinned,
    so no copy of the trades is held in this process: 12.5 million trades were about 1 GB); on
    S3 it gets the columns it reads in memory (the Parquet scan skips the others, e.g. the
    exit_reason strings)."""
    if engine.lake_inputs:
        return lake_trades(ticker_key, scenario)
    local = local_parquet(trades, "trades")
    if local is not None:
        return ParquetFile(local, TRADE_COLUMNS, label=f"trades of {ticker_key} x {scenario}")
    return trades["trades"].select(TRADE_COLUMNS).collect()


def _how_read(trades_in) -> str:
    if isinstance(trades_in, LakePartition):
        return "from the lake"
    if isinstance(trades_in, ParquetFile):
        return "from the lake's Parquet file itself"
    return f"in memory ({trades_in.height:,} rows, {trades_in.estimated_size() / 2**20:,.0f} MB)"


@dg.asset(
    partitions_def=ticker_scenario_partitions_def,
    group_name="aggregation",
    op_tags=step_tags("aggregation"),
    kinds={"duckdb", "parquet"},
    metadata=lake_metadata("aggregates", tables=AGGREGATE_TABLES),
    ins={
        "enhanced_bars": dg.AssetIn(partition_mapping=by_ticker),
        "scenarios": dg.AssetIn(partition_mapping=by_ticker),
        "request": request_in(ticker_scenario_partitions_def),
    },
    code_version=code_version("aggregation", libraries=("duckdb", "numpy", "polars", "scipy")),
    retry_policy=LAKE_RETRY,
    automation_condition=follows_upstream(ticker_scenario_partitions_def),
)
@fails_at_once
def aggregates(
    context: dg.AssetExecutionContext,
    sql_engine: SqlEngineResource,
    trades: dict,
    enhanced_bars: pl.LazyFrame,
    scenarios: dict,
    request: BacktestRequest,
) -> dict:
    """Per-trader, per-trader-per-year and per-level statistics, with DSR and the scenario's PBO."""
    ticker_key, scenario = split_partition_key(context)
    engine = sql_engine.get_engine()
    trades_in = _trades_input(engine, trades, ticker_key, scenario)
    tables = aggregate_scenario(
        engine,
        trades=trades_in,
        traders=trades["traders"].collect(),
        session_dates=session_calendar(enhanced_bars),
        # the simulation's per-trader outcomes: drawdowns and identical traders without a pass over the trades
        outcomes=trades["trader_outcomes"].collect(),
        # the DSR's daily series: from the trades in memory or the file (above), else read from the lake here
        daily=trades["trades"].select(DAILY_COLUMNS) if isinstance(trades_in, LakePartition) else None,
    )
    context.log.info(f"aggregates: the SQL engine ({engine.name}) read the trades {_how_read(trades_in)}")
    stats = tables["scenario_stats"].row(0, named=True)
    summary = tables["trader_summary"]
    best = summary.sort("sharpe", descending=True, nulls_last=True).head(1)
    context.add_output_metadata(
        {
            **provenance(request, synthetic=bool(scenarios["ticker_meta"].collect()["synthetic"].item()),
                         engine_sql=engine.name),
            "trader_count": summary.height,
            "trades": int(stats["trades"]),
            "pbo": float(stats["pbo"]) if stats["pbo"] is not None else float("nan"),
            "dsr_trials": int(stats["dsr_trials"]),
            "dsr_trials_eff": float(stats["dsr_trials_eff"]) if stats["dsr_trials_eff"] is not None else float("nan"),
            "distinct_outcomes": int(stats["distinct_outcomes"]),
            "best_trader_by_sharpe": int(best["trader_id"].item()) if best.height else -1,
            "summary_preview": preview(summary.sort("sharpe", descending=True, nulls_last=True)),
            "stops_by_level": preview(tables["stops_by_level"]),
        }
    )
    return {name: tables[name] for name in AGGREGATE_TABLES}
