"""A ticker's SEC filings as a table, and which tickers have any (US equities only).

EDGAR lists companies: stocks (and OTC stocks) have filings; forex, metals, crypto, indices and
synthetic tickers do not, and are skipped with a note rather than an error in the asset (the
`mochi filings` command refuses them, naming the asset class).
"""

from __future__ import annotations

import re

import polars as pl

from mochi_assets.market_data.meta import asset_class_of
from mochi_resources.edgar import FILING_COLUMNS, EdgarClient
from mochi_resources.errors import MochiError
from mochi_resources.lake import Lake

FILINGS_SCHEMA = {
    "ticker": pl.Utf8, "cik": pl.Int64, "company": pl.Utf8, "form": pl.Utf8, "filing_date": pl.Date,
    "report_date": pl.Date, "accession_number": pl.Utf8, "primary_document": pl.Utf8,
    "primary_document_url": pl.Utf8, "description": pl.Utf8,
}
LENS_FORMS = ("8-K", "10-Q", "10-K")


class NotAnEquity(MochiError):
    """The ticker is not a company's stock, so EDGAR has no filings for it."""


def symbol_of_key(ticker_key: str) -> str:
    """Provider symbol of a partition key (`C_XAUUSD` -> `C:XAUUSD`, `AAPL` -> `AAPL`)."""
    return re.sub(r"^(C|X|I|SYN)_", r"\1:", ticker_key)


def ticker_identity(lake: Lake, ticker_key: str) -> tuple[str, str, bool]:
    """(symbol, asset class, synthetic) of a ticker: from its ticker meta when the lake has it."""
    key = lake.key("ticker-meta", "ticker_meta", ticker_key)
    if lake.exists(key):
        row = lake.read_table(key).row(0, named=True)
        return str(row["ticker"]), str(row["asset_class"]), bool(row.get("synthetic", False))
    symbol = symbol_of_key(ticker_key)
    synthetic = symbol.upper().startswith("SYN:")
    return symbol, ("synthetic" if synthetic else asset_class_of(symbol)), synthetic


def equity_refusal(symbol: str, asset_class: str, synthetic: bool) -> str | None:
    """Why a ticker has no SEC filings (None for an equity)."""
    if synthetic:
        return f"{symbol} is a synthetic ticker: it has no SEC filings"
    if asset_class != "stocks":
        return f"{symbol} is not an equity (asset class {asset_class}): SEC EDGAR lists filings of companies only"
    return None


def empty_filings() -> pl.DataFrame:
    return pl.DataFrame(schema=FILINGS_SCHEMA)


def fetch_filings(client: EdgarClient, symbol: str) -> pl.DataFrame:
    """Every filing EDGAR lists for the company trading as `symbol`, newest first."""
    found = client.cik_of(symbol)
    if found is None:
        raise MochiError(f"ticker {symbol}: EDGAR's company tickers file has no such ticker "
                         "(not a US-listed company, or delisted)")
    cik, title = found
    company, rows = client.filings(cik)
    frame = pl.DataFrame(rows, schema={c: pl.Utf8 for c in FILING_COLUMNS}) if rows else pl.DataFrame(
        schema={c: pl.Utf8 for c in FILING_COLUMNS})
    frame = frame.with_columns(
        pl.lit(symbol).alias("ticker"),
        pl.lit(cik, dtype=pl.Int64).alias("cik"),
        pl.lit(company.get("name") or title).alias("company"),
        pl.col("filing_date").str.to_date("%Y-%m-%d", strict=False),
        pl.col("report_date").str.to_date("%Y-%m-%d", strict=False),
    )
    return (frame.select(list(FILINGS_SCHEMA)).cast(FILINGS_SCHEMA)
            .unique("accession_number", keep="first", maintain_order=True)
            .sort(["filing_date", "accession_number"], descending=True))


def select_filings(filings: pl.DataFrame, form: str | None = None, since=None) -> pl.DataFrame:
    """Filings of one form (exact, case-insensitive; `10-K` also matches `10-K/A`) filed on or after `since`."""
    out = filings
    if form:
        f = form.upper()
        out = out.filter((pl.col("form").str.to_uppercase() == f) | (pl.col("form").str.to_uppercase() == f + "/A"))
    if since is not None:
        out = out.filter(pl.col("filing_date") >= since)
    return out
