"""The Mochi code location: assets, checks, jobs and resources, assembled (nothing else here)."""

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from mochi_assets.aggregation import assets as aggregation
from mochi_assets.automation.schedules import build_schedules
from mochi_assets.automation.sensors import build_sensors
from mochi_assets.execution import mochi_executor
from mochi_assets.filings import assets as filings
from mochi_assets.live import assets as live
from mochi_assets.market_data import assets as market_data
from mochi_assets.memory import freeze_long_lived
from mochi_assets.reporting import assets as reporting
from mochi_assets.request_asset import REQUEST_IO_MANAGER, RequestIOManager, backtest_request
from mochi_assets.scenarios import assets as scenarios
from mochi_assets.simulation import assets as simulation
from mochi_assets.validation import assets as validation
from mochi_resources.edgar import EdgarResource
from mochi_resources.io_manager import LakeIOManager, LakeResource
from mochi_resources.polygon import PolygonResource
from mochi_resources.sql_resource import SqlEngineResource

request_assets = [backtest_request]
ticker_assets = [market_data.raw_bars, market_data.enhanced_bars, scenarios.scenarios]
scenario_assets = [
    simulation.trades,
    aggregation.aggregates,
    validation.walk_forward,
    validation.robustness,
    reporting.rankings,
    reporting.years_graph,
    reporting.stops_graph,
    reporting.best_traders_graph,
    reporting.trade_extracts,
    reporting.trade_lens,
]
leaderboard_assets = [reporting.leaderboard]
all_assets = [*request_assets, *ticker_assets, *scenario_assets, *leaderboard_assets]
# After the backtest: live trading (brokers' exports, forward tracking) and SEC filings.
live_assets = [live.live_trades, live.portfolio_tracking]
filings_assets = [filings.sec_filings, filings.filing_day_lens]

# Launching a backtest is materializing its request (UI launchpad, CLI, request sensor); the three
# phases after it (per ticker, per ticker x scenario, across scenarios) follow by declarative
# automation, or are run in order by `mochi backtest`.
request_job = dg.define_asset_job(
    "request_job", selection=request_assets,
    description="Validates and stores a ticker's backtest request (run config: the request's fields).",
)
ticker_job = dg.define_asset_job(
    "ticker_job", selection=ticker_assets,
    description="Raw bars, enhanced bars and scenario grids of one ticker.",
)
# Run monitoring fails a scenario run that exceeds this (the simulation of one grid, in seconds).
SCENARIO_MAX_RUNTIME_S = 6 * 3600
scenario_job = dg.define_asset_job(
    "scenario_job", selection=scenario_assets,
    description="Simulation, aggregation, walk-forward and robustness, rankings, graphs and trade lens of one ticker x scenario.",
    tags={"dagster/max_runtime": SCENARIO_MAX_RUNTIME_S},
)
leaderboard_job = dg.define_asset_job(
    "leaderboard_job", selection=leaderboard_assets,
    description="The ticker's leaderboard across its scenarios.",
)

live_trades_job = dg.define_asset_job(
    "live_trades_job", selection=[live.live_trades],
    description="Export one broker's active live-trade configurations for its execution bot.",
)
tracking_job = dg.define_asset_job(
    "tracking_job", selection=[live.portfolio_tracking],
    description="Forward tracking of the ticker's promoted traders on the bars after their promotion.",
)
filings_job = dg.define_asset_job(
    "filings_job", selection=filings_assets,
    description="The ticker's SEC EDGAR filings and the trade lens of filing days.",
)


def _env(name: str) -> dg.EnvVar | None:
    """`dg.EnvVar(name)` when the variable is set as the code location loads (its value is resolved
    by Dagster when a run starts and shown by name only in the UI), else None: the resource then
    reads the variable when a run starts, and an unset optional endpoint stays off."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources() -> dict:
    """Resources; endpoints and secrets as `dg.EnvVar`, every other setting resolved when a run starts."""
    lake = LakeResource(s3_endpoint=_env("MOCHI_S3_ENDPOINT"))
    return {
        "lake": lake,
        "polygon": PolygonResource(api_key=_env("POLYGON_API_KEY"), base_url=_env("MOCHI_POLYGON_BASE_URL")),
        "io_manager": LakeIOManager(lake=lake),
        REQUEST_IO_MANAGER: RequestIOManager(lake=lake),
        "sql_engine": SqlEngineResource(duckdb=DuckDBResource(database=":memory:"), trino_url=_env("MOCHI_TRINO_URL")),
        "edgar": EdgarResource(),
    }


defs = dg.Definitions(
    assets=[*all_assets, *live_assets, *filings_assets],
    jobs=[request_job, ticker_job, scenario_job, leaderboard_job, live_trades_job, tracking_job, filings_job],
    sensors=[*build_sensors(request_job, all_assets), live.portfolio_tracking_sensor],
    schedules=build_schedules(ticker_job),
    resources=build_resources(),
    executor=mochi_executor,
)

# the imports above are the process's long-lived objects: out of the garbage collector's scans
freeze_long_lived()
