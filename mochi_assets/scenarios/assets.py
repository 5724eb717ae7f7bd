"""Ticker meta and scenario grids per ticker; registers the scenario partitions they define."""


import dagster as dg
import polars as pl

from mochi_assets.market_data.localtime import local_naive_expr
from mochi_assets.market_data.sources import check_source, session_calendar, ticker_info
from mochi_assets.execution import step_tags
from mochi_assets.automation.retries import LAKE_RETRY
from mochi_assets.metadata import code_version, preview, provenance
from mochi_assets.partitions import SCENARIO_DIMENSION, check_scenario_name, ticker_partitions_def
from mochi_assets.scenarios.grids import EXCURSION_QUANTILES, scenario_grids
from mochi_assets.conditions import follows_upstream
from mochi_assets.failures import fails_at_once
from mochi_assets.request import BacktestRequest
from mochi_assets.request_asset import request_in
from mochi_resources.io_manager import LakeResource, lake_metadata

META_SCHEMA = {
    "ticker": pl.Utf8,
    "tick_size": pl.Float64,
    "timezone": pl.Utf8,
    "asset_class": pl.Utf8,
    "ticker_key": pl.Utf8,
    "source": pl.Utf8,
    "synthetic": pl.Boolean,
    "request_timezone": pl.Utf8,
    "session_start": pl.Utf8,
    "session_end": pl.Utf8,
    "start": pl.Date,
    "end": pl.Date,
    "first_session": pl.Date,
    "last_session": pl.Date,
    "trading_session": pl.Utf8,
    "name": pl.Utf8,
    "meta_source": pl.Utf8,
}


def ticker_meta_row(lake, request, enhanced: pl.DataFrame) -> pl.DataFrame:
    """Tick size, zone, asset class, session (provider reference data or documented fallbacks,
    see market_data/meta.py) and the local trading hours seen in the data."""
    source = check_source(lake, request)
    info = ticker_info(lake, request)
    tick, tz, asset_class = info.tick_size, info.timezone, info.asset_class
    # min and max of the local time of day as minutes, formatted once (not one string per bar)
    minute_of_day = enhanced.select(
        ((local_naive_expr(request.timezone).to_physical() // 60_000_000) % (24 * 60)).alias("m")
    )["m"]
    first_minute, last_minute = minute_of_day.min(), minute_of_day.max()
    local = {"hm": [None if m is None else f"{m // 60:02d}:{m % 60:02d}" for m in (first_minute, last_minute)]}
    traded = enhanced.filter(pl.col("atr").is_not_null())
    return pl.DataFrame(
        [
            {
                "ticker": request.ticker,
                "ticker_key": request.ticker_key,
                "tick_size": request.tick_size or tick,
                "timezone": tz,
                "asset_class": asset_class,
                "source": source,
                "synthetic": source == "synthetic",
                "request_timezone": request.timezone,
                "session_start": local["hm"][0],
                "session_end": local["hm"][1],
                "start": request.start,
                "end": request.end,
                # the traded range: sessions with a defined ATR (later than start if the source began late)
                "first_session": traded["session_date"].min(),
                "last_session": traded["session_date"].max(),
                "trading_session": info.trading_session,
                "name": info.name,
                "meta_source": info.meta_source,
            }
        ],
        schema=META_SCHEMA,
    )


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="scenarios",
    op_tags=step_tags("bars"),
    kinds={"polars", "parquet"},
    metadata=lake_metadata("ticker-meta", tables=["ticker_meta", "scenario_grids"]),
    code_version=code_version("scenarios", "market_data"),
    retry_policy=LAKE_RETRY,
    automation_condition=follows_upstream(),
    ins={"request": request_in()},
)
@fails_at_once
def scenarios(context: dg.AssetExecutionContext, lake: LakeResource, enhanced_bars: pl.LazyFrame,
              request: BacktestRequest) -> dict:
    """Ticker meta (tick size, session) and the scenario grids; registers scenario partitions."""
    the_lake = lake.get_lake()
    enhanced = enhanced_bars.select("ts", "open", "high", "low", "session_date", "atr").collect()
    meta = ticker_meta_row(the_lake, request, enhanced)
    grids = scenario_grids(request, enhanced, meta["tick_size"].item(), session_calendar(the_lake, request))
    names = [check_scenario_name(n) for n in grids["scenario"].to_list()]
    new = [n for n in names if not context.instance.has_dynamic_partition(SCENARIO_DIMENSION, n)]
    if new:
        context.instance.add_dynamic_partitions(SCENARIO_DIMENSION, new)
    context.log.info(f"{request.ticker}: scenarios {', '.join(names)} ({grids['traders'].sum()} traders)")
    for row in grids.iter_rows(named=True):
        if "stop_atr" in row["derived_axes"] or "limit_atr" in row["derived_axes"]:
            context.log.info(
                f"{row['scenario']}: stop_atr {row['stop_atr']}, limit_atr {row['limit_atr']} (ATR multiples from the "
                f"price moves within {'/'.join(map(str, row['duration_min']))} minutes of entry, quantiles "
                f"{'/'.join(f'{q:.0%}' for q in EXCURSION_QUANTILES)})"
            )
    context.add_output_metadata(
        {
            **provenance(request, synthetic=bool(meta["synthetic"].item())),
            "scenarios": ", ".join(names),
            "trader_count": int(grids["traders"].sum()),
            "tick_size": float(meta["tick_size"].item()),
            "grids": preview(grids.drop("derived_axes"), 20),
            "ticker_meta": preview(meta),
        }
    )
    return {"ticker_meta": meta, "scenario_grids": grids}
