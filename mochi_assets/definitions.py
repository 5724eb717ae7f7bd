"""The Mochi code location: assets, checks, jobs and resources, assembled (nothing else here)."""

import dagster as dg

from mochi_assets.aggregation import assets as aggregation
from mochi_assets.automation.schedules import build_schedules
from mochi_assets.automation.sensors import build_sensors
from mochi_assets.execution import executor
from mochi_assets.filings import assets as filings
from mochi_assets.live import assets as live
from mochi_assets.market_data import assets as market_data
from mochi_assets.reporting import assets as reporting
from mochi_assets.scenarios import assets as scenarios
from mochi_assets.simulation import assets as simulation
from mochi_assets.validation import assets as validation
from mochi_resources.edgar import EdgarResource
from mochi_resources.io_manager import LakeIOManager, LakeResource
from mochi_resources.sql_resource import SqlEngineResource

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
all_assets = [*ticker_assets, *scenario_assets, *leaderboard_assets]
# After the backtest: live trading (brokers' exports, forward tracking) and SEC filings.
live_assets = [live.live_trades, live.portfolio_tracking]
filings_assets = [filings.sec_filings, filings.filing_day_lens]

# The three phases of a backtest: per ticker, then per ticker x scenario, then across scenarios.
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


def build_resources() -> dict:
    """Resources of the embedded default; settings resolve from the environment when a run starts."""
    lake = LakeResource()
    return {"lake": lake, "io_manager": LakeIOManager(lake=lake), "sql_engine": SqlEngineResource(),
            "edgar": EdgarResource()}


defs = dg.Definitions(
    assets=[*all_assets, *live_assets, *filings_assets],
    jobs=[ticker_job, scenario_job, leaderboard_job, live_trades_job, tracking_job, filings_job],
    sensors=[*build_sensors(ticker_job, scenario_job, leaderboard_job, scenario_assets), live.portfolio_tracking_sensor],
    schedules=build_schedules(ticker_job),
    resources=build_resources(),
    executor=executor(),
)
