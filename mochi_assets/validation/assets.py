"""Walk-forward and robustness per ticker x scenario, from the simulated trades (nothing re-simulated).

Both read the request's ``walk_forward`` settings; ``rankings`` reads their results (the robustness
table in its metadata, the out-of-sample verdict on its rows), so they run before it.
"""

import io
import time

import dagster as dg
import polars as pl

from mochi_assets.automation.retries import LAKE_RETRY
from mochi_assets.execution import step_tags
from mochi_assets.metadata import code_version, png_markdown, preview, provenance
from mochi_assets.partitions import by_ticker, split_partition_key, ticker_scenario_partitions_def
from mochi_assets.reporting import rankings as ranking
from mochi_assets.reporting.context import GraphContext
from mochi_assets.request import BacktestRequest
from mochi_assets.conditions import follows_upstream
from mochi_assets.failures import fails_at_once
from mochi_assets.request_asset import request_in
from mochi_assets.validation.panel import DAILY_R_COLUMNS, build_panel, daily_r, panel_trade_batches, session_starts
from mochi_assets.validation.robustness import robustness_table
from mochi_assets.validation.walk_forward import WalkForwardParams, walk_forward as run_walk_forward
from mochi_resources.io_manager import lake_metadata, local_parquet

WALK_FORWARD_TABLES = ["walk_forward_folds", "walk_forward_summary"]
WALK_FORWARD_FILES = ["walk_forward.png", "walk_forward.csv"]
VALIDATION_CODE_VERSION = code_version(
    "validation", "reporting", libraries=("numpy", "plotnine", "polars", "scipy")
)
_COMMON = dict(
    partitions_def=ticker_scenario_partitions_def,
    group_name="validation",
    op_tags=step_tags("aggregation"),
    code_version=VALIDATION_CODE_VERSION,
    retry_policy=LAKE_RETRY,
    automation_condition=follows_upstream(ticker_scenario_partitions_def),
)
_INS = {
    "enhanced_bars": dg.AssetIn(partition_mapping=by_ticker),
    "scenarios": dg.AssetIn(partition_mapping=by_ticker),
    "request": request_in(ticker_scenario_partitions_def),
}


def _panel(context, trades: dict, enhanced_bars: pl.LazyFrame):
    started = time.perf_counter()
    traders = trades["traders"].collect()
    panel = build_panel(
        # a part of the trades' file at a time on a local lake, the whole table otherwise
        panel_trade_batches(trades["trades"], local_parquet(trades, "trades")),
        traders["trader_id"].to_numpy(),
        session_starts(enhanced_bars),
    )
    context.log.info(
        f"daily panel: {panel.sessions} sessions x {panel.traders} traders in {time.perf_counter() - started:.1f} s"
    )
    return traders, panel


def _daily_r(context, trades: dict, enhanced_bars: pl.LazyFrame):
    """The traders and the panel's daily r matrix alone (``daily_r``), for the robustness figures."""
    started = time.perf_counter()
    traders = trades["traders"].collect()
    ids, r = daily_r(
        trades["trades"].select(DAILY_R_COLUMNS).collect(),
        traders["trader_id"].to_numpy(),
        session_starts(enhanced_bars),
    )
    context.log.info(f"daily r: {r.shape[0]} sessions x {r.shape[1]} traders in {time.perf_counter() - started:.1f} s")
    return traders, ids, r


def _synthetic(scenarios: dict) -> bool:
    return bool(scenarios["ticker_meta"].collect()["synthetic"].item())


@dg.asset(
    **_COMMON,
    kinds={"numpy", "plotnine", "parquet"},
    metadata=lake_metadata("rankings", tables=WALK_FORWARD_TABLES, files=WALK_FORWARD_FILES),
    ins=_INS,
)
@fails_at_once
def walk_forward(context: dg.AssetExecutionContext, trades: dict, enhanced_bars: pl.LazyFrame, scenarios: dict,
                 request: BacktestRequest) -> dict:
    """Rolling in-sample selection and its stitched out-of-sample result, against random picks."""
    _, scenario = split_partition_key(context)
    settings = request.walk_forward
    params = WalkForwardParams(
        is_sessions=settings.is_sessions, oos_sessions=settings.oos_sessions, mode=settings.mode,
        selection=settings.selection, min_trades=settings.min_trades, random_paths=settings.random_paths,
        seed=settings.seed,
    )
    traders, panel = _panel(context, trades, enhanced_bars)
    result = run_walk_forward(panel, traders, params, scenario=scenario, log=context.log.info)
    summary = result["summary"]
    synthetic = _synthetic(scenarios)
    ctx = GraphContext(ticker=request.ticker, scenario=scenario, start=request.start, end=request.end, synthetic=synthetic)
    from mochi_assets.validation.graph import walk_forward_graph  # plotnine: imported where it draws

    png = walk_forward_graph(result["equity"], result["folds"], summary, ctx)
    row = summary.row(0, named=True)
    context.add_output_metadata(
        {
            **provenance(request, synthetic=synthetic),
            "graph": png_markdown(png, f"walk-forward: {request.ticker} / {scenario}"),
            "folds": row["folds"],
            "is_sessions": row["is_sessions"],
            "oos_sessions": row["oos_sessions"],
            "windows": row["windows"],
            "oos_sharpe": row["oos_sharpe"] if row["oos_sharpe"] is not None else float("nan"),
            "beats_random_share": row["beats_random_share"] if row["beats_random_share"] is not None else float("nan"),
            "verdict": dg.MetadataValue.text(row["note"]),
            "summary": preview(summary),
            "folds_table": preview(result["folds"].select(
                "fold", "oos_start", "oos_end", "trader_id", "is_sharpe", "oos_sharpe", "oos_net_r", "oos_percentile"
            ), n=40),
        }
    )
    buffer = io.BytesIO()
    result["equity"].write_csv(buffer)
    return {
        "walk_forward_folds": result["folds"],
        "walk_forward_summary": summary,
        "walk_forward.png": png,
        "walk_forward.csv": buffer.getvalue(),
    }


def full_ranking(traders: pl.DataFrame, aggregates: dict, scenario: str) -> pl.DataFrame:
    """The scenario's ranking as the ``rankings`` asset computes it (to find the top traders)."""
    stats = aggregates["scenario_stats"].collect().row(0, named=True)
    return ranking.rank_traders(
        traders,
        aggregates["trader_summary"].collect(),
        aggregates["trader_by_year"].collect(),
        scenario=scenario,
        pbo=stats["pbo"],
    )


@dg.asset(
    **_COMMON,
    kinds={"numpy", "parquet"},
    metadata=lake_metadata("rankings"),
    ins=_INS,
)
@fails_at_once
def robustness(
    context: dg.AssetExecutionContext, trades: dict, aggregates: dict,
    enhanced_bars: pl.LazyFrame, scenarios: dict, request: BacktestRequest,
) -> pl.DataFrame:
    """Plateau, Monte Carlo and data-snooping (SPA / Reality Check) figures of the top traders."""
    _, scenario = split_partition_key(context)
    settings = request.walk_forward
    traders, trader_ids, r = _daily_r(context, trades, enhanced_bars)
    ranked = full_ranking(traders, aggregates, scenario)
    started = time.perf_counter()
    table = robustness_table(
        traders.drop([c for c in ("scenario",) if c in traders.columns]),
        ranked,
        r,
        trader_ids,
        top=settings.top,
        mc_paths=settings.mc_paths,
        block_sessions=settings.block_sessions,
        spa_reps=settings.spa_reps,
        seed=settings.seed,
        pbo=ranked["pbo"][0] if ranked.height else None,
    )
    context.log.info(f"robustness of the top {table.height} traders in {time.perf_counter() - started:.1f} s")
    first = table.row(0, named=True) if table.height else {}
    context.add_output_metadata(
        {
            **provenance(request, synthetic=_synthetic(scenarios)),
            "spa_pvalue": _number(first.get("spa_pvalue")),
            "reality_check_pvalue": _number(first.get("reality_check_pvalue")),
            "pbo": _number(first.get("pbo")),
            "robustness": robustness_markdown(table),
        }
    )
    return table


def _number(value) -> float:
    return float(value) if value is not None else float("nan")


ROBUSTNESS_COLUMNS = [
    "rank", "trader_id", "sharpe", "dsr", "neighbours", "neighbour_sharpe_mean", "plateau_score",
    "mc_max_drawdown_p50", "mc_max_drawdown_p95", "mc_final_r_p5", "mc_final_r_p50", "mc_loss_share",
    "spa_pvalue", "reality_check_pvalue", "pbo",
]


def robustness_markdown(table: pl.DataFrame) -> dg.MetadataValue:
    """The robustness table as Markdown (robustness and rankings metadata)."""
    return preview(table.select([c for c in ROBUSTNESS_COLUMNS if c in table.columns]), n=max(table.height, 1))


def validation_columns(walk_forward_summary: pl.DataFrame, robustness_rows: pl.DataFrame) -> list[pl.Expr]:
    """Scenario-level validation figures as constant columns for the rankings rows."""
    row = walk_forward_summary.row(0, named=True) if walk_forward_summary.height else {}
    first = robustness_rows.row(0, named=True) if robustness_rows.height else {}
    return [
        pl.lit(row.get("beats_random_share"), dtype=pl.Float64).alias("oos_beats_random_share"),
        pl.lit(row.get("oos_beats_random"), dtype=pl.Boolean).alias("oos_beats_random"),
        pl.lit(row.get("folds"), dtype=pl.Int64).alias("wf_folds"),
        pl.lit(first.get("spa_pvalue"), dtype=pl.Float64).alias("spa_pvalue"),
        pl.lit(first.get("reality_check_pvalue"), dtype=pl.Float64).alias("reality_check_pvalue"),
    ]

