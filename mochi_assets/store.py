"""What Mochi keeps in the lake besides asset outputs: requests and imported bars.

- `params/requests/ticker=T/request.json`: the ticker's latest request (every default filled in),
  written by the request IO manager beside every `request-<hash>.json` (request_asset.py) and read
  by `mochi refresh`; assets never read it (they receive their request through the graph).
- `raw/imported_bars/ticker=T/data.parquet` and `params/imports/ticker=T/import.json`: a user's
  bars and their tick size, timezone and session calendar (`mochi import-bars`); they take
  precedence over any provider for that ticker.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mochi_assets.request import BacktestRequest, parse_request
from mochi_resources.errors import MochiError
from mochi_resources.lake import Lake


def request_key(lake: Lake, ticker_key: str) -> str:
    return lake.key("params", "requests", ticker_key, None, "request.json")


def save_request(lake: Lake, request: BacktestRequest) -> str:
    key = request_key(lake, request.ticker_key)
    lake.put_bytes(key, request.canonical_json().encode())
    return key


def stored_request(lake: Lake, ticker_key: str) -> BacktestRequest:
    key = request_key(lake, ticker_key)
    if not lake.exists(key):
        raise MochiError(
            f"no backtest request for ticker partition {ticker_key} ({lake.uri(key)} is missing): "
            "run `mochi backtest` or `mochi submit` for it first"
        )
    return parse_request(lake.get_json(key), source=lake.uri(key))


def import_info_key(lake: Lake, ticker_key: str) -> str:
    return lake.key("params", "imports", ticker_key, None, "import.json")


def imported_bars_key(lake: Lake, ticker_key: str) -> str:
    return lake.key("raw", "imported_bars", ticker_key)


def save_import(lake: Lake, ticker: str, ticker_key: str, bars: pl.DataFrame, *, tick_size: float,
                timezone: str, source_file: str, session: str = "calendar-day") -> dict:
    """Store a user's bars (bars first, then the info that makes them visible: all or nothing).

    `session` is the calendar spec (market_data/sessions.py), explicit hours in `timezone`."""
    info = {
        "ticker": ticker,
        "tick_size": tick_size,
        "timezone": timezone,
        "session": session,
        "source_file": source_file,
        "rows": bars.height,
        "first_ts": str(bars["ts"].min()),
        "last_ts": str(bars["ts"].max()),
        "imported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    lake.put_table(imported_bars_key(lake, ticker_key), bars)
    lake.put_json(import_info_key(lake, ticker_key), info)
    return info


def stored_import(lake: Lake, ticker_key: str) -> dict | None:
    key = import_info_key(lake, ticker_key)
    if not lake.exists(key):
        return None
    return lake.get_json(key)
