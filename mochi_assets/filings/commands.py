"""`mochi filings TICKER`: fetch a company's SEC filings (the sec_filings asset) and print them."""

from __future__ import annotations

import datetime as dt
import sys

import click

from mochi_resources.errors import MochiError

FILING_COLUMNS = ["form", "filing_date", "report_date", "accession_number", "primary_document_url"]


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"mochi: error: {message}", err=True)
    sys.exit(code)


@click.command("filings", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("ticker")
@click.option("--form", default=None, help="Only this form (e.g. 10-K, 10-Q, 8-K; amendments /A included).")
@click.option("--since", default=None, help="Only filings filed on or after this date, YYYY-MM-DD.")
@click.option("--top", default=20, show_default=True, help="How many filings to print (newest first).")
@click.option("--no-fetch", is_flag=True, help="Print what the lake holds instead of asking EDGAR again.")
def filings(ticker, form, since, top, no_fetch):
    """Fetch TICKER's SEC EDGAR filings (materializing sec_filings and the filing-day lens) and print them.

    \b
    Needs MOCHI_SEC_USER_AGENT (a name and contact e-mail, as EDGAR requires). US equities only.
    Example: mochi filings AAPL --form 10-K --since 2020-01-01
    """
    from mochi_assets.cli import _table
    from mochi_assets.filings.sec import equity_refusal, select_filings, ticker_identity
    from mochi_assets.partitions import TICKER_DIMENSION, sanitize_ticker
    from mochi_resources.edgar import EdgarSettings
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    try:
        since_date = None
        if since is not None:
            try:
                since_date = dt.date.fromisoformat(since)
            except ValueError:
                _fail(f"--since: {since!r} is not a date (YYYY-MM-DD)")
        if top < 1:
            _fail(f"--top: {top} must be at least 1")
        key = sanitize_ticker(ticker)
        settings = MochiSettings.from_env()
        lake = Lake(settings)
        symbol, asset_class, synthetic = ticker_identity(lake, key)
        refusal = equity_refusal(symbol, asset_class, synthetic)
        if refusal:
            _fail(refusal)
        table_key = lake.key("filings", "sec_filings", key)
        if not no_fetch:
            EdgarSettings.resolve().require_user_agent()  # one clear error before starting a run
            from mochi_assets.runner import run_job_partition

            run_job_partition("filings_job", key, TICKER_DIMENSION, {"mochi/command": "filings"})
        elif not lake.exists(table_key):
            _fail(f"no filings of {ticker} in {lake.location}: run `mochi filings {ticker}` without --no-fetch")
        table = lake.read_table(table_key)
    except MochiError as exc:
        _fail(str(exc), code=1 if exc.__class__.__name__ == "RunFailed" else 2)
    shown = select_filings(table, form, since_date)
    company = table["company"][0] if table.height else symbol
    click.echo(f"{company} ({symbol}, CIK {table['cik'][0] if table.height else '-'}): {shown.height} filing(s)"
               + (f" of form {form}" if form else "") + (f" since {since_date}" if since_date else "")
               + f", newest first; stored in {lake.uri(table_key)}")
    click.echo(_table(shown.head(top), FILING_COLUMNS))
