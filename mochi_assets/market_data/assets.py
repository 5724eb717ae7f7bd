"""Raw and enhanced bars per ticker, with their quality checks."""

import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl

from mochi_assets.market_data.checks import (
    atr_lookahead_violations,
    atr_violations,
    missing_sessions,
    ohlc_violations,
    resolution_mismatches,
    suspicious_jumps,
    timestamp_violations,
)
from mochi_assets.market_data.indicators import enhance_bars
from mochi_assets.market_data.sessions import first_tradable_session, session_dates
from mochi_assets.market_data.sources import (
    POLYGON,
    check_source,
    load_raw_bars,
    refresh_request,
    session_calendar,
    warmup_sessions,
)
from mochi_assets.execution import PROVIDER_POOL, step_tags
from mochi_assets.automation.retries import LAKE_RETRY, NETWORK_RETRY
from mochi_assets.metadata import code_version, frames_version, preview, provenance, ts_range
from mochi_assets.partitions import ticker_partitions_def
from mochi_assets.conditions import follows_upstream
from mochi_assets.failures import fails_at_once
from mochi_assets.request import BacktestRequest
from mochi_assets.request_asset import request_in
from mochi_resources.io_manager import LakeResource, lake_metadata
from mochi_resources.polygon import PolygonResource

RAW_TABLES = ["bars_minute", "bars_hour", "bars_day"]
REFRESH_TAG = "mochi/refresh"


def _check(name: str, offending: pl.DataFrame, asset: str, description: str,
           warn: bool = False) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=offending.is_empty(),
        severity=dg.AssetCheckSeverity.WARN if warn else dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={"offending_rows": offending.height, "rows": preview(offending, 20)},
    )


def _checks_meanwhile(output: dg.Output, checks: Callable[[], list[dg.AssetCheckResult]]) -> Iterator:
    """Yield the output, then the asset checks' results, the checks computed in a thread while
    the IO manager writes the output (both are polars work that releases the GIL; the checks of
    10 years of minute bars take about 0.4 s, the write about 0.5 s). An error of the checks is
    raised here, after the write."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mochi-checks") as pool:
        results = pool.submit(checks)
        yield output
        yield from results.result()


def _source_tags(source: str) -> dict:
    return {"source": source, "synthetic": str(source == "synthetic").lower()}


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="market_data",
    op_tags=step_tags("bars"),
    kinds={"polars", "parquet"},
    metadata=lake_metadata("raw", tables=RAW_TABLES),
    code_version=code_version("market_data", libraries=("numpy", "polars")),
    retry_policy=NETWORK_RETRY,
    automation_condition=follows_upstream(),
    pool=PROVIDER_POOL,
    ins={"request": request_in()},
    check_specs=[
        dg.AssetCheckSpec("ohlc_consistent", asset="raw_bars", description="low <= open, close <= high; prices positive"),
        dg.AssetCheckSpec("timestamps_increasing", asset="raw_bars", description="no duplicate or non-increasing ts"),
        dg.AssetCheckSpec("resolutions_agree", asset="raw_bars",
                          description="hour and day bars contain the range of the minutes inside them (warning)"),
        dg.AssetCheckSpec("sessions_covered", asset="raw_bars",
                          description="every expected session of the requested range has bars; holidays show here (warning)"),
        dg.AssetCheckSpec("no_suspicious_jumps", asset="raw_bars",
                          description="no minute moves over 3x the median daily range (warning)"),
    ],
)
@fails_at_once
def raw_bars(context: dg.AssetExecutionContext, lake: LakeResource, polygon: PolygonResource, request: BacktestRequest):
    """Minute, hour and day OHLCV bars of the requested range, from the ticker's data source."""
    the_lake = lake.get_lake()
    if context.run.tags.get(REFRESH_TAG):
        # a refresh (the daily schedule, `mochi refresh`) extends the range to the latest complete session
        request = refresh_request(the_lake, request, log=context.log.info)
    client = None
    if check_source(the_lake, request, polygon=polygon.configured()) == POLYGON:
        client = polygon.get_client(log=context.log.info)
    bars = load_raw_bars(the_lake, request, client=client, log=context.log.info)
    calendar = session_calendar(the_lake, request)
    context.log.info(
        f"{request.ticker}: {bars.minute.height} minute bars from {bars.source}"
        + (" (synthetic data)" if bars.synthetic else "")
    )
    with warnings.catch_warnings():
        # data_version: stable in practice; the warning would reach every CLI user
        warnings.simplefilter("ignore", dg.BetaWarning)
        output = dg.Output(
            {"bars_minute": bars.minute, "bars_hour": bars.hour, "bars_day": bars.day},
            # the bars' content is their version: a refresh that brings nothing new re-runs nothing
            data_version=dg.DataVersion(frames_version(bars.minute, bars.hour, bars.day)),
            metadata={
                **provenance(request, synthetic=bars.synthetic),
                "source": bars.source,
                "tick_size": bars.tick_size,
                "asset_class": bars.asset_class,
                "meta_source": bars.info.meta_source,
                **{f"fetch_{k}": v for k, v in bars.fetch.items()},
                "minute_rows": bars.minute.height,
                "hour_rows": bars.hour.height,
                "day_rows": bars.day.height,
                "session_calendar": calendar.describe(),
                **ts_range(bars.minute),
                "preview": preview(bars.minute),
            },
            tags=_source_tags(bars.source),
        )

    def checks() -> list[dg.AssetCheckResult]:
        all_bars = pl.concat([bars.minute, bars.hour, bars.day])
        return [
            _check("ohlc_consistent", ohlc_violations(all_bars), "raw_bars",
                   "OHLC consistency of minute, hour and day bars"),
            _check(
                "timestamps_increasing",
                pl.concat([timestamp_violations(b) for b in (bars.minute, bars.hour, bars.day)]),
                "raw_bars",
                "strictly increasing bar timestamps in each resolution",
            ),
            _check(
                "resolutions_agree",
                pl.concat([resolution_mismatches(bars.minute, bars.hour, "hour"),
                           resolution_mismatches(bars.minute, bars.day, "day")]),
                "raw_bars",
                "hour and day bars against the minutes inside them",
                warn=True,
            ),
            _check(
                "sessions_covered",
                missing_sessions(bars.minute, request.start, request.end, calendar, present=bars.session_dates),
                "raw_bars",
                f"sessions of {request.start} to {request.end} ({calendar.describe()}) without any bar",
                warn=True,
            ),
            _check("no_suspicious_jumps", suspicious_jumps(bars.minute), "raw_bars",
                   "minute bars moving over 3x the median daily range", warn=True),
        ]

    yield from _checks_meanwhile(output, checks)


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="market_data",
    op_tags=step_tags("bars"),
    kinds={"polars", "parquet"},
    metadata=lake_metadata("prepared"),
    code_version=code_version("market_data", libraries=("numpy", "polars")),
    retry_policy=LAKE_RETRY,
    automation_condition=follows_upstream(),
    ins={"raw_bars": dg.AssetIn(), "request": request_in()},
    check_specs=[
        dg.AssetCheckSpec("atr_defined_after_warmup", asset="enhanced_bars",
                          description="after warm-up every session has one positive ATR"),
        dg.AssetCheckSpec("timestamps_increasing", asset="enhanced_bars", description="no duplicate or non-increasing ts"),
        dg.AssetCheckSpec("atr_no_lookahead", asset="enhanced_bars",
                          description="a session's ATR equals the one recomputed from earlier bars only"),
    ],
)
@fails_at_once
def enhanced_bars(context: dg.AssetExecutionContext, lake: LakeResource, raw_bars: dict, request: BacktestRequest):
    """Minute bars of the requested sessions joined with the daily ATRs known before each session."""
    the_lake = lake.get_lake()
    calendar = session_calendar(the_lake, request)
    minute = raw_bars["bars_minute"].collect()
    settings = {"short": request.atr.short, "long": request.atr.long, "alpha": request.atr.alpha}
    # the raw bars reach back before `start` (warm-up); only the requested sessions are kept
    dates = session_dates(minute.get_column("ts"), calendar)  # once, for the indicators and the checks
    enhanced = enhance_bars(minute, session=calendar, start=request.start, end=request.end, session_dates=dates,
                            **settings)
    loaded = dates.drop_nulls().unique()
    warmup = warmup_sessions(request)
    first = first_tradable_session(loaded, warmup, request.start)
    sessions = enhanced.select(pl.col("session_date").n_unique()).item()
    ready = enhanced.filter(pl.col("atr").is_not_null()).select(pl.col("session_date").n_unique()).item()
    last = enhanced["session_date"].max()
    warmup_loaded = int((loaded < request.start).sum())
    context.log.info(
        f"{request.ticker}: {sessions} sessions from {request.start} to {request.end} ({calendar.describe()}), "
        f"{ready} with a defined ATR; {warmup_loaded} warm-up sessions loaded before {request.start}"
    )
    if first is None or first > request.start:
        context.log.warning(
            f"{request.ticker}: the source has too few sessions before {request.start} to warm the ATR up "
            f"({warmup} needed, {warmup_loaded} loaded): the first tradable session is {first}"
        )
    output = dg.Output(
        enhanced,
        metadata={
            **provenance(request, synthetic=check_source(the_lake, request) == "synthetic"),
            "rows": enhanced.height,
            "sessions": sessions,
            "sessions_with_atr": ready,
            "session_calendar": calendar.describe(),
            "warmup_sessions_loaded": warmup_loaded,
            "first_tradable_session": str(first) if first is not None else "none",
            "traded_range": f"{first} to {last}" if first is not None else "none",
            "atr": f"short {request.atr.short}, long {request.atr.long}, alpha {request.atr.alpha}",
            **ts_range(enhanced),
            "preview": preview(enhanced.filter(pl.col("atr").is_not_null())),
        },
    )

    def checks() -> list[dg.AssetCheckResult]:
        # sessions of the range before the first tradable one (all of them when none is tradable)
        untradable = (sessions if first is None
                      else enhanced.filter(pl.col("session_date") < first)["session_date"].n_unique())
        return [
            _check("atr_defined_after_warmup", atr_violations(enhanced, warmup_sessions=untradable),
                   "enhanced_bars", "ATR defined from the first tradable session on"),
            _check("timestamps_increasing", timestamp_violations(enhanced), "enhanced_bars", "strictly increasing ts"),
            _check(
                "atr_no_lookahead",
                atr_lookahead_violations(enhanced, session=calendar, source=minute, source_session_dates=dates,
                                         **settings),
                "enhanced_bars",
                "ATR of sampled sessions recomputed from the bars before each session",
            ),
        ]

    yield from _checks_meanwhile(output, checks)
