"""The daily refresh: re-fetch the raw bars of every tracked ticker; declarative automation does the rest.

A tracked ticker is a registered ticker partition with a materialized `backtest_request`. Only
`raw_bars` runs here; its data version is a hash of the bars, so a refresh that brings no new
bar changes no data version and the automation sensor requests nothing downstream (no
re-simulation). New bars change the version and the graph below follows.
"""

from __future__ import annotations

import dagster as dg

from mochi_assets.automation.sensors import tracked_tickers
from mochi_assets.market_data.assets import REFRESH_TAG

REFRESH_CRON = "30 6 * * *"  # daily, after the US session's data of the previous day is final
RAW_BARS = dg.AssetKey("raw_bars")


def refresh_requests(instance: dg.DagsterInstance, day: str) -> list[dg.RunRequest]:
    """One raw-bars run per tracked ticker, keyed by ticker and day (a tick retried runs once)."""
    return [
        dg.RunRequest(
            job_name="ticker_job",
            partition_key=ticker_key,
            asset_selection=[RAW_BARS],
            run_key=f"{ticker_key}:refresh:{day}",
            tags={REFRESH_TAG: day},
        )
        for ticker_key in tracked_tickers(instance)
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
    def daily_refresh_schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        requests = refresh_requests(context.instance, day)
        return requests or dg.SkipReason("no tracked tickers (submit a request first)")

    return [daily_refresh_schedule]
