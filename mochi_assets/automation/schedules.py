"""The daily refresh: re-fetch the raw bars of every tracked ticker; the stage sensor does the rest.

A tracked ticker is a registered ticker partition with a current request (store.py). Only
`raw_bars` runs here; its data version is a hash of the bars, so a refresh that brings no new
bar leaves every downstream partition up to date and backtest_stage_sensor requests nothing
(no re-simulation). New bars change the version and the graph below follows.
"""

from __future__ import annotations

import dagster as dg

from mochi_assets.automation.sensors import tracked_tickers
from mochi_assets.market_data.assets import REFRESH_TAG
from mochi_resources.io_manager import LakeResource

REFRESH_CRON = "30 6 * * *"  # daily, after the US session's data of the previous day is final
RAW_BARS = dg.AssetKey("raw_bars")


def refresh_requests(instance: dg.DagsterInstance, lake, day: str) -> list[dg.RunRequest]:
    """One raw-bars run per tracked ticker, keyed by ticker and day (a tick retried runs once)."""
    return [
        dg.RunRequest(
            job_name="ticker_job",
            partition_key=ticker_key,
            asset_selection=[RAW_BARS],
            run_key=f"{ticker_key}:refresh:{day}",
            tags={REFRESH_TAG: day},
        )
        for ticker_key in tracked_tickers(instance, lake)
    ]


def build_schedules(ticker_job) -> list[dg.ScheduleDefinition]:
    """The daily refresh schedule, targeting the ticker job (raw bars only)."""

    @dg.schedule(
        name="daily_refresh_schedule",
        cron_schedule=REFRESH_CRON,
        execution_timezone="UTC",
        job=ticker_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Re-fetches the raw bars of every tracked ticker; unchanged bars re-run nothing downstream.",
    )
    def daily_refresh_schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource):
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        requests = refresh_requests(context.instance, lake.get_lake(), day)
        return requests or dg.SkipReason("no tracked tickers (submit a request first)")

    return [daily_refresh_schedule]
