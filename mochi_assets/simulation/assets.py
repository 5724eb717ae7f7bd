"""The trades asset: every trader of one scenario over every bar of one ticker (the heavy step)."""


import dagster as dg
import polars as pl

from mochi_assets.execution import SIMULATION_POOL, step_tags
from mochi_assets.automation.retries import SIMULATION_RETRY
from mochi_assets.market_data.sources import session_calendar
from mochi_assets.metadata import code_version, preview, provenance
from mochi_assets.partitions import by_ticker, split_partition_key, ticker_scenario_partitions_def
from mochi_assets.scenarios.grids import expand_traders
from mochi_assets.simulation.api import simulate_to_parquet
from mochi_assets.conditions import follows_upstream
from mochi_assets.failures import fails_at_once
from mochi_assets.request import BacktestRequest
from mochi_assets.request_asset import request_in
from mochi_resources.io_manager import LakeResource, lake_metadata


@dg.asset(
    partitions_def=ticker_scenario_partitions_def,
    group_name="simulation",
    op_tags=step_tags("simulation", pool=SIMULATION_POOL),
    kinds={"numba", "parquet"},
    metadata=lake_metadata("trades", tables=["traders", "trades", "trader_outcomes"]),
    ins={
        "enhanced_bars": dg.AssetIn(partition_mapping=by_ticker),
        "scenarios": dg.AssetIn(partition_mapping=by_ticker),
        "request": request_in(ticker_scenario_partitions_def),
    },
    pool=SIMULATION_POOL,
    code_version=code_version("simulation", "scenarios", "market_data", "aggregation/outcomes.py",
                              libraries=("numba", "numpy", "polars")),
    retry_policy=SIMULATION_RETRY,
    automation_condition=follows_upstream(ticker_scenario_partitions_def),
)
@fails_at_once
def trades(context: dg.AssetExecutionContext, lake: LakeResource, enhanced_bars: pl.LazyFrame, scenarios: dict,
           request: BacktestRequest) -> dict:
    """The trader table, every simulated trade of one scenario (numba kernel, chunked) and each
    trader's outcome (trades, fingerprint of the trade set, maximum drawdown; aggregation/outcomes.py)."""
    _, scenario = split_partition_key(context)
    the_lake = lake.get_lake()
    meta = scenarios["ticker_meta"].collect()
    traders = expand_traders(scenarios["scenario_grids"].collect(), scenario)
    bars = enhanced_bars.collect()
    total = traders.height
    step = max(1, total // 10)
    last_logged = [0]

    def progress(done: int, of: int) -> None:
        if done - last_logged[0] >= step or done == of:
            last_logged[0] = done
            context.log.info(f"simulated {done}/{of} traders")

    staged = the_lake.staging_path()
    try:
        report = simulate_to_parquet(
            bars,
            traders,
            staged,
            tick_size=float(meta["tick_size"].item()),
            session=session_calendar(the_lake, request),
            progress=progress,
        )
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    context.add_output_metadata(
        {
            **provenance(request, synthetic=bool(meta["synthetic"].item())),
            "trader_count": report.traders,
            **report.as_metadata(),
            "traders_preview": preview(traders),
            "trades_preview": preview(pl.scan_parquet(staged)),
        }
    )
    return {"traders": traders, "trades": staged, "trader_outcomes": report.outcomes}
