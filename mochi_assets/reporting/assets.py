"""Rankings, graphs, trade extracts, trade lens per ticker x scenario, and the ticker leaderboard."""


import io

import dagster as dg
import polars as pl

from mochi_assets.execution import step_tags
from mochi_assets.automation.retries import LAKE_RETRY
from mochi_assets.metadata import code_version, png_markdown, preview, provenance
from mochi_assets.partitions import (
    by_ticker,
    split_partition_key,
    ticker_partitions_def,
    ticker_scenario_partitions_def,
)
from mochi_assets.reporting import lens, rankings as ranking
from mochi_assets.reporting.extracts import extract_trades
from mochi_assets.reporting.context import GraphContext
from mochi_assets.conditions import follows_upstream, leaderboard_follows
from mochi_assets.failures import fails_at_once
from mochi_assets.request import BacktestRequest
from mochi_assets.request_asset import request_in
from mochi_assets.validation.assets import robustness_markdown, validation_columns
from mochi_assets.validation.walk_forward import out_of_sample_sentence, with_oos_verdict
from mochi_resources.io_manager import lake_metadata, streaming_scan

GRAPH_TOP_N = 5
EXTRACT_TOP_N = 10
LENS_TABLES = ["lens_by_weekday", "lens_by_hour", "lens_by_hold", "lens_mae_mfe", "lens_streaks", "lens_summary"]
REPORTING_CODE_VERSION = code_version("reporting", libraries=("numpy", "plotnine", "polars", "scipy"))
_TICKER_SCENARIO = dict(
    partitions_def=ticker_scenario_partitions_def, group_name="reporting", op_tags=step_tags("reporting"),
    code_version=REPORTING_CODE_VERSION, retry_policy=LAKE_RETRY,
    automation_condition=follows_upstream(ticker_scenario_partitions_def),
)
_SCENARIOS_IN = {"scenarios": dg.AssetIn(partition_mapping=by_ticker), "request": request_in(ticker_scenario_partitions_def)}



def _graphs():
    """The graphs module, imported by the steps that draw (plotnine and matplotlib take seconds)."""
    from mochi_assets.reporting import graphs

    return graphs

def _graph_context(context: dg.AssetExecutionContext, request: BacktestRequest, scenarios: dict):
    _, scenario = split_partition_key(context)
    meta = scenarios["ticker_meta"].collect()
    synthetic = bool(meta["synthetic"].item())
    # subtitles state the traded sessions (later than start when the source began too late to warm up)
    start = meta["first_session"].item() if "first_session" in meta.columns else None
    end = meta["last_session"].item() if "last_session" in meta.columns else None
    ctx = GraphContext(ticker=request.ticker, scenario=scenario, start=start or request.start,
                       end=end or request.end, synthetic=synthetic)
    return request, ctx


def _csv(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_csv(buf)
    return buf.getvalue()


def _graph_output(context, name: str, png: bytes, data: pl.DataFrame, request, ctx: GraphContext) -> dict:
    context.add_output_metadata(
        {
            **provenance(request, synthetic=ctx.synthetic),
            "graph": png_markdown(png, f"{name}: {ctx.ticker} / {ctx.scenario}"),
            "traded_range": f"{ctx.start} to {ctx.end}",
            "csv_rows": data.height,
            "png_bytes": len(png),
        }
    )
    return {f"{name}.png": png, f"{name}.csv": _csv(data)}


@dg.asset(
    **_TICKER_SCENARIO,
    kinds={"polars", "parquet"},
    metadata=lake_metadata("rankings"),
    ins=_SCENARIOS_IN,
)
@fails_at_once
def rankings(
    context: dg.AssetExecutionContext, aggregates: dict, trades: dict, scenarios: dict,
    walk_forward: dict, robustness: pl.LazyFrame, request: BacktestRequest,
) -> pl.DataFrame:
    """Traders of the scenario in robust order (eligibility, DSR, consistent years), with PBO and
    the scenario's walk-forward and data-snooping results."""
    _, scenario = split_partition_key(context)
    stats = aggregates["scenario_stats"].collect().row(0, named=True)
    ranked = ranking.rank_traders(
        trades["traders"].collect(),
        aggregates["trader_summary"].collect(),
        aggregates["trader_by_year"].collect(),
        scenario=scenario,
        pbo=stats["pbo"],
    )
    robust = robustness.collect()
    ranked = ranked.with_columns(validation_columns(walk_forward["walk_forward_summary"].collect(), robust))
    best = ranked.head(1).row(0, named=True) if ranked.height else {}
    sentence = f"{ranking.verdict(ranked)} {out_of_sample_sentence({scenario: ranked})}".strip()
    context.log.info(f"{request.ticker} / {scenario}: {sentence}")
    context.add_output_metadata(
        {
            **provenance(request, synthetic=bool(scenarios["ticker_meta"].collect()["synthetic"].item())),
            "verdict": sentence,
            "trader_count": ranked.height,
            "eligible_traders": int(ranked["eligible"].sum()),
            "distinct_outcomes": int(stats["distinct_outcomes"]),
            "dsr_trials": int(stats["dsr_trials"]),
            "dsr_trials_eff": float(stats["dsr_trials_eff"]) if stats["dsr_trials_eff"] is not None else float("nan"),
            "best_trader": int(best.get("trader_id", -1)),
            "best_dsr": float(best["dsr"]) if best.get("dsr") is not None else float("nan"),
            "pbo": float(stats["pbo"]) if stats["pbo"] is not None else float("nan"),
            "preview": preview(ranked),
            "robustness": robustness_markdown(robust),
        }
    )
    return ranked


def _graph_asset(name: str, description: str, deps: list[str]):
    return dg.asset(
        name=f"{name}_graph",
        description=description,
        **_TICKER_SCENARIO,
        kinds={"plotnine", "png"},
        metadata=lake_metadata("graphs", files=[f"{name}.png", f"{name}.csv"]),
        ins={**_SCENARIOS_IN, **{d: dg.AssetIn() for d in deps}},
    )


@_graph_asset("years", "Annual net results of the top-ranked traders (PNG and the CSV behind it).", ["aggregates", "rankings"])
@fails_at_once
def years_graph(context: dg.AssetExecutionContext, aggregates: dict, rankings: pl.LazyFrame, scenarios: dict,
                request: BacktestRequest) -> dict:
    request, ctx = _graph_context(context, request, scenarios)
    ranked = rankings.collect()
    top = ranking.top_trader_ids(ranked, GRAPH_TOP_N)
    png, data = _graphs().years_graph(
        aggregates["trader_by_year"].collect(), top, ctx, ineligible=ranking.ineligible_ids(ranked)
    )
    return _graph_output(context, "years", png, data, request, ctx)


@_graph_asset("stops", "Net result over stop x limit (heatmap) and the MAE of winners and losers.", ["aggregates", "trades"])
@fails_at_once
def stops_graph(context: dg.AssetExecutionContext, aggregates: dict, trades: dict, scenarios: dict,
                request: BacktestRequest) -> dict:
    request, ctx = _graph_context(context, request, scenarios)
    png, data = _graphs().stops_graph(
        # the trades stay a lazy scan: the MAE panel reads the few columns it needs, never the table,
        # and on a folder lake polars streams them from the file
        trades["traders"].collect(), aggregates["trader_summary"].collect(), streaming_scan(trades, "trades"), ctx
    )
    return _graph_output(context, "stops", png, data, request, ctx)


@_graph_asset("best_traders", "Equity curves in R of the top-ranked traders, with drawdowns.", ["trades", "rankings"])
@fails_at_once
def best_traders_graph(context: dg.AssetExecutionContext, trades: dict, rankings: pl.LazyFrame, scenarios: dict,
                       request: BacktestRequest) -> dict:
    request, ctx = _graph_context(context, request, scenarios)
    ranked = rankings.collect()
    top = ranking.top_trader_ids(ranked, GRAPH_TOP_N)
    top_trades = trades["trades"].filter(pl.col("trader_id").is_in(top)).collect()
    png, data = _graphs().best_traders_graph(
        top_trades, top, ctx, verdict=ranking.verdict(ranked), ineligible=ranking.ineligible_ids(ranked)
    )
    return _graph_output(context, "best_traders", png, data, request, ctx)


@dg.asset(
    **_TICKER_SCENARIO,
    kinds={"polars", "parquet"},
    metadata=lake_metadata("extracts"),
    ins=_SCENARIOS_IN,
    deps=["best_traders_graph"],  # extracts follow the best traders graph, as in the original pipeline
)
@fails_at_once
def trade_extracts(context: dg.AssetExecutionContext, trades: dict, rankings: pl.LazyFrame, scenarios: dict,
                   request: BacktestRequest) -> pl.DataFrame:
    """Every trade of the top-ranked traders, with their parameters."""
    request, ctx = _graph_context(context, request, scenarios)
    ranked = rankings.collect()
    top = ranking.top_trader_ids(ranked, EXTRACT_TOP_N)
    extract = extract_trades(
        trades["trades"].filter(pl.col("trader_id").is_in(top)).collect(), trades["traders"].collect(), top
    )
    # Which rank each trader holds and whether it had enough trades to be ranked on merit.
    extract = extract.join(ranked.select("trader_id", "rank", "eligible"), on="trader_id", how="left")
    context.add_output_metadata(
        {**provenance(request, synthetic=ctx.synthetic), "traders": len(top), "rows": extract.height, "preview": preview(extract)}
    )
    return extract


@dg.asset(
    **_TICKER_SCENARIO,
    kinds={"polars", "parquet", "plotnine"},
    metadata=lake_metadata("extracts", tables=LENS_TABLES, files=["trade_lens.png"]),
    ins=_SCENARIOS_IN,
)
@fails_at_once
def trade_lens(context: dg.AssetExecutionContext, trade_extracts: pl.LazyFrame, scenarios: dict,
               request: BacktestRequest) -> dict:
    """The top traders' trades by weekday, hour, hold time, MAE/MFE and streaks."""
    request, ctx = _graph_context(context, request, scenarios)
    tables = lens.trade_lens(trade_extracts.collect(), timezone=request.timezone)
    png = _graphs().lens_graph(tables, ctx)
    context.add_output_metadata(
        {
            **provenance(request, synthetic=ctx.synthetic),
            "graph": png_markdown(png, f"trade lens: {ctx.ticker} / {ctx.scenario}"),
            "summary": preview(tables["summary"]),
        }
    )
    return {**{f"lens_{k}": v for k, v in tables.items()}, "trade_lens.png": png}


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="reporting",
    op_tags=step_tags("small"),
    kinds={"polars", "parquet"},
    metadata=lake_metadata("rankings"),
    ins={"rankings": dg.AssetIn(partition_mapping=by_ticker), "request": request_in()},
    code_version=REPORTING_CODE_VERSION,
    retry_policy=LAKE_RETRY,
    automation_condition=leaderboard_follows(),
)
@fails_at_once
def leaderboard(context: dg.AssetExecutionContext, rankings: dict, scenarios: dict, request: BacktestRequest) -> pl.DataFrame:
    """The ticker's best traders across all its scenarios, in the rankings' robust order."""
    names = scenarios["scenario_grids"].collect()["scenario"].to_list()
    by_scenario = {}
    for key, frame in rankings.items():
        scenario = ticker_scenario_partitions_def.get_partition_key_from_str(key).keys_by_dimension["scenario"]
        if scenario in names:
            by_scenario[scenario] = frame.collect()
    missing = sorted(set(names) - set(by_scenario))
    if missing:
        raise dg.Failure(
            f"{request.ticker}: rankings missing for scenario(s) {', '.join(missing)}; materialize them first"
        )
    board = ranking.leaderboard(by_scenario)
    board = with_oos_verdict(board)
    sentence = ranking.verdict(pl.concat(list(by_scenario.values()), how="diagonal_relaxed"))
    sentence = f"{sentence} {out_of_sample_sentence(by_scenario)}".strip()
    context.log.info(f"{request.ticker}: {sentence}")
    synthetic = bool(scenarios["ticker_meta"].collect()["synthetic"].item())
    board = board.with_columns(pl.lit(request.ticker).alias("ticker"), pl.lit(synthetic).alias("synthetic"))
    context.add_output_metadata(
        {
            **provenance(request, synthetic=synthetic),
            "verdict": sentence,
            "scenarios": ", ".join(names),
            "rows": board.height,
            "preview": preview(board),
        }
    )
    return board
