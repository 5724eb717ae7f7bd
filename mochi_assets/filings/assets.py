"""The filings stage: a ticker's SEC EDGAR filings, and its best traders' trades on filing days."""

import dagster as dg
import polars as pl

from mochi_assets.automation.retries import NETWORK_RETRY
from mochi_assets.execution import step_tags
from mochi_assets.filings.sec import LENS_FORMS, empty_filings, equity_refusal, fetch_filings, ticker_identity
from mochi_assets.metadata import code_version, preview
from mochi_assets.partitions import by_ticker, ticker_partitions_def, ticker_scenario_partitions_def
from mochi_assets.reporting.lens import by_filing_day
from mochi_resources.edgar import EdgarConfigError, EdgarResource
from mochi_resources.io_manager import LakeResource, lake_metadata

FILINGS_CODE_VERSION = code_version("filings", libraries=("polars",))
LATEST_SHOWN = 10


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="filings",
    op_tags=step_tags("small"),
    kinds={"polars", "parquet"},
    metadata=lake_metadata("filings"),
    code_version=FILINGS_CODE_VERSION,
    retry_policy=NETWORK_RETRY,
)
def sec_filings(context: dg.AssetExecutionContext, lake: LakeResource, edgar: EdgarResource) -> pl.DataFrame:
    """The company's SEC EDGAR filings (form, dates, accession number, primary document URL); equities only."""
    ticker_key = context.partition_key
    symbol, asset_class, synthetic = ticker_identity(lake.get_lake(), ticker_key)
    refusal = equity_refusal(symbol, asset_class, synthetic)
    if refusal:
        context.log.info(f"skipped: {refusal}")
        context.add_output_metadata({"note": f"skipped: {refusal}", "filings": 0})
        return empty_filings()
    try:
        client = edgar.get_client()
    except EdgarConfigError as exc:  # no retry can fix a missing User-Agent
        raise dg.Failure(str(exc), allow_retries=False) from None
    filings = fetch_filings(client, symbol)
    context.log.info(f"{symbol}: {filings.height} filings from EDGAR in {client.requests_made} request(s)")
    latest = filings.head(LATEST_SHOWN).select("form", "filing_date", "report_date", "accession_number",
                                                "primary_document_url")
    counts = filings.filter(pl.col("form").is_in(LENS_FORMS)).group_by("form").len()
    context.add_output_metadata({
        "company": filings["company"][0] if filings.height else symbol,
        "cik": int(filings["cik"][0]) if filings.height else -1,
        "filings": filings.height,
        "latest_filing_date": str(filings["filing_date"].max()) if filings.height else "-",
        **{f"count_{r['form']}": int(r["len"]) for r in counts.iter_rows(named=True)},
        "latest": preview(latest, LATEST_SHOWN),
        "edgar_requests": client.requests_made,
    })
    return filings


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="filings",
    op_tags=step_tags("small"),
    kinds={"polars", "parquet"},
    metadata=lake_metadata("extracts", tables=["lens_filing_days"]),
    ins={"trade_extracts": dg.AssetIn(partition_mapping=by_ticker)},
    code_version=FILINGS_CODE_VERSION,
)
def filing_day_lens(context: dg.AssetExecutionContext, trade_extracts: dict, sec_filings: pl.LazyFrame) -> dict:
    """Trade lens of filing days: the best traders' trades on 8-K, 10-Q and 10-K days beside the others."""
    filings = sec_filings.collect()
    parts = []
    for key, frame in sorted(trade_extracts.items()):
        scenario = ticker_scenario_partitions_def.get_partition_key_from_str(key).keys_by_dimension["scenario"]
        table = by_filing_day(frame.collect(), filings)
        parts.append(table.select(pl.lit(scenario).alias("scenario"), pl.all()))
    lens = pl.concat(parts) if parts else pl.DataFrame(schema={
        "scenario": pl.Utf8, "trader_id": pl.Int64, "filing_day": pl.Utf8, "trades": pl.Int64,
        "net_pnl": pl.Float64, "avg_r": pl.Float64, "win_rate": pl.Float64})
    note = ("no filings (not an equity, or none listed)" if filings.is_empty()
            else "no trade extracts yet (run a backtest)" if not parts else f"{len(parts)} scenario(s)")
    context.add_output_metadata({"note": note, "rows": lens.height, "preview": preview(lens, 20)})
    return {"lens_filing_days": lens}
