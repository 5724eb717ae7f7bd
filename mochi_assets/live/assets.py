"""The live stage's assets: the per-broker export for execution bots, and per-ticker forward tracking."""

import dagster as dg
import polars as pl

from mochi_assets.automation.retries import LAKE_RETRY
from mochi_assets.execution import step_tags
from mochi_assets.live.configs import list_configs
from mochi_assets.live.export import build_export, export_key
from mochi_assets.live.forward import track_all
from mochi_assets.metadata import code_version, preview
from mochi_assets.partitions import broker_partitions_def, ticker_partitions_def
from mochi_resources.io_manager import LakeResource, lake_metadata

LIVE_CODE_VERSION = code_version("live", "simulation", libraries=("numba", "numpy", "polars"))
TRACKING_TABLES = ["forward_trades", "forward_equity", "forward_summary"]


@dg.asset(
    partitions_def=broker_partitions_def,
    group_name="live",
    op_tags=step_tags("small"),
    kinds={"json"},
    code_version=LIVE_CODE_VERSION,
    retry_policy=LAKE_RETRY,
    check_specs=[dg.AssetCheckSpec(
        "configurations_exist_in_lake", asset="live_trades",
        description="Every active configuration's ticker, scenario and trader (same parameters) still exist "
                    "in the lake; the others are left out of the export.",
    )],
)
def live_trades(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """The broker's active live-trade configurations as one JSON document an execution bot polls."""
    broker = context.partition_key
    the_lake = lake.get_lake()
    doc, stale = build_export(the_lake, broker)
    key = export_key(the_lake, broker)
    the_lake.put_json(key, doc)
    context.log.info(f"exported {len(doc['configurations'])} configuration(s) of {broker} to {the_lake.uri(key)}")
    ids = [c["id"] for c in doc["configurations"]]
    return dg.MaterializeResult(
        metadata={
            "export": dg.MetadataValue.path(the_lake.uri(key)),
            "configurations": len(ids),
            "ids": dg.MetadataValue.md("\n".join(f"- `{i}`" for i in ids) or "_(none active)_"),
            "refused": len(stale),
        },
        check_results=[dg.AssetCheckResult(
            check_name="configurations_exist_in_lake",
            passed=not stale,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"refused": dg.MetadataValue.md(
                "\n".join(f"- `{cid}`: {why}" for cid, why in stale.items()) or "_(none)_")},
            description=("refused (left out of the export): " + "; ".join(f"{c}: {w}" for c, w in stale.items()))
            if stale else "every active configuration matches the lake",
        )],
    )


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="live",
    op_tags=step_tags("small"),
    kinds={"numba", "polars", "parquet"},
    metadata=lake_metadata("portfolio-tracking", tables=TRACKING_TABLES),
    code_version=LIVE_CODE_VERSION,
    retry_policy=LAKE_RETRY,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[dg.AssetCheckSpec(
        "forward_within_expectation", asset="portfolio_tracking",
        description="Each promoted trader's forward cumulative R and drawdown lie inside its backtest band.",
    )],
)
def portfolio_tracking(context: dg.AssetExecutionContext, lake: LakeResource, enhanced_bars: pl.LazyFrame):
    """Forward trades and equity of every promoted trader of the ticker against its backtest band."""
    ticker_key = context.partition_key
    configs = [c for c in list_configs(lake.get_lake()) if c["ticker_key"] == ticker_key]
    context.log.info(f"{ticker_key}: tracking {len(configs)} live configuration(s)")
    tables = track_all(configs, enhanced_bars.collect() if configs else pl.DataFrame())
    summary = tables["forward_summary"]
    outside = summary.filter(~pl.col("within_expectation"))
    yield dg.Output(
        tables,
        metadata={
            "configurations": summary.height,
            "forward_trades": tables["forward_trades"].height,
            "outside_expectation": outside.height,
            "summary": preview(summary.select(
                "config_id", "status", "forward_sessions", "forward_trades", "forward_r", "expected_r",
                "band_low_r", "band_high_r", "forward_max_drawdown_r", "drawdown_limit_r", "drawdown_band",
                "within_expectation")),
        },
    )
    yield dg.AssetCheckResult(
        check_name="forward_within_expectation",
        passed=outside.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"outside": dg.MetadataValue.md(
            "\n".join(f"- `{r['config_id']}`: {r['outside_reason']}" for r in outside.iter_rows(named=True))
            or "_(none)_")},
    )


# Runs portfolio_tracking when a ticker's enhanced bars change (the daily refresh, a longer backtest);
# on by default, unlike Dagster's default automation sensor, which must be switched on in the UI.
portfolio_tracking_sensor = dg.AutomationConditionSensorDefinition(
    "portfolio_tracking_sensor", target=[portfolio_tracking], default_status=dg.DefaultSensorStatus.RUNNING,
    description="Forward tracking after new bars of a ticker with promoted traders.",
)
