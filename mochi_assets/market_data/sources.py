"""Where a ticker's bars come from: the user's import, the synthetic generator, or Polygon.

Order of precedence: bars imported with `mochi import-bars` for that ticker; then `SYN:` tickers
from the seeded generator; then the Polygon (Massive) aggregates API when POLYGON_API_KEY is set
(see `provider.py` for chunks, the page cache and incremental fetches). `check_source` answers
before anything is written and makes no network call, so an unknown ticker fails up front.

Hour and day bars: from the provider for Polygon; aggregated from the minutes for imports and
synthetic tickers (hours in UTC, days per local date of the instrument's timezone).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from mochi_assets.market_data.bars import resample_bars, validate_bars
from mochi_assets.market_data.meta import TickerInfo, polygon_info
from mochi_assets.market_data.provider import (
    fetch_polygon_bars,
    reference_data,
    refresh_ticker,
    request_bounds,
)
from mochi_assets.market_data.synthetic import is_synthetic, synthetic_minute_bars, synthetic_profile
from mochi_assets.request import BacktestRequest
from mochi_assets.store import imported_bars_key, stored_import
from mochi_resources.errors import ProviderError
from mochi_resources.lake import Lake
from mochi_resources.polygon import PolygonClient, base_url_from_env

POLYGON = "polygon"


@dataclass(frozen=True)
class RawBars:
    minute: pl.DataFrame
    hour: pl.DataFrame
    day: pl.DataFrame
    source: str  # "synthetic" | "import" | "polygon"
    info: TickerInfo
    tick_size: float  # the request's override, else the ticker's
    fetch: dict = field(default_factory=dict)  # provider page counts, for metadata

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def timezone(self) -> str:
        return self.info.timezone

    @property
    def asset_class(self) -> str:
        return self.info.asset_class


def check_source(lake: Lake, request: BacktestRequest, *, polygon: bool | None = None) -> str:
    """Name of the source that will serve this ticker, or a ProviderError saying what to do.
    `polygon`: whether a Polygon key is configured (default: POLYGON_API_KEY is set)."""
    if stored_import(lake, request.ticker_key) is not None:
        return "import"
    if is_synthetic(request.ticker):
        return "synthetic"
    if polygon:
        return POLYGON
    if polygon is None and (os.environ.get("POLYGON_API_KEY") or "").strip():
        base_url_from_env()  # a malformed MOCHI_POLYGON_BASE_URL fails here, before anything is written
        return POLYGON
    raise ProviderError(
        f"ticker {request.ticker}: no bars available. Set POLYGON_API_KEY to your Polygon (Massive) API key "
        f"to download them, import them (`mochi import-bars {request.ticker} FILE --tick-size X --timezone TZ`), "
        "or use a synthetic ticker (SYN:<NAME>)"
    )


def ticker_info(lake: Lake, request: BacktestRequest) -> TickerInfo:
    """Tick size, timezone, asset class and session of the request's ticker (no network call:
    Polygon reference data is read from the cache that `load_raw_bars` filled)."""
    source = check_source(lake, request)
    if source == "import":
        info = stored_import(lake, request.ticker_key)
        return TickerInfo(
            tick_size=float(info["tick_size"]), timezone=info["timezone"], asset_class="imported",
            trading_session="as in the imported bars", name=None, meta_source="import",
        )
    if source == "synthetic":
        profile = synthetic_profile(request.ticker)
        return TickerInfo(
            tick_size=profile.tick_size, timezone=profile.timezone, asset_class=profile.asset_class,
            trading_session="24x5, Sunday 17:00 to Friday 17:00 America/New_York", name=profile.name,
            meta_source="synthetic",
        )
    return polygon_info(request.ticker, reference_data(lake, None, request.ticker, request.ticker_key))


def _local_range(df: pl.DataFrame, request: BacktestRequest) -> pl.DataFrame:
    """Bars whose ts lies in the request's local dates [start, end]."""
    lo, hi = request_bounds(request)
    return df.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))


def load_raw_bars(lake: Lake, request: BacktestRequest, *, client: PolygonClient | None = None,
                  now: dt.datetime | None = None, log: Callable[[str], None] | None = None) -> RawBars:
    """Minute, hour and day bars for the request's range, from the ticker's source.

    Polygon: `client` defaults to one configured from the environment; `now` (default the clock)
    decides which bars are complete. Raises ProviderError when the source has no minute bars in
    the range, BarsError when its bars break the bars contract.
    """
    source = check_source(lake, request, polygon=True if client is not None else None)
    fetch: dict = {}
    if source == POLYGON:
        client = client or PolygonClient.from_env(log=log)
        got = fetch_polygon_bars(lake, request, client, now=now, log=log)
        info = polygon_info(request.ticker, got.reference)
        minute, hour, day = got.minute, got.hour, got.day
        fetch = {"pages_fetched": got.stats.pages_fetched, "pages_cached": got.stats.pages_cached,
                 "chunks": got.stats.chunks, "requests_sent": client.requests_sent,
                 "rate_limit_wait_s": round(client.waited_s, 1)}
    else:
        if source == "import":
            bars = lake.read_table(imported_bars_key(lake, request.ticker_key))
        else:
            # a day either side so that the request's local dates are fully covered
            bars = synthetic_minute_bars(
                request.ticker, request.start - dt.timedelta(days=1), request.end + dt.timedelta(days=1)
            )
        minute = _local_range(bars, request)
        info = ticker_info(lake, request)
        hour = day = None
    if minute.is_empty():
        raise ProviderError(
            f"ticker {request.ticker}: the {source} bars have no data between {request.start} and "
            f"{request.end} ({request.timezone})"
        )
    minute = validate_bars(minute, source=f"{source} bars of {request.ticker}")
    if hour is None or day is None:
        hour = resample_bars(minute, "1h", info.timezone)
        day = resample_bars(minute, "1d", info.timezone)
    return RawBars(
        minute=minute, hour=hour, day=day, source=source, info=info,
        tick_size=request.tick_size or info.tick_size, fetch=fetch,
    )


def refresh_request(lake: Lake, request: BacktestRequest, *, now: dt.datetime | None = None,
                    log: Callable[[str], None] | None = None) -> BacktestRequest:
    """Extend a tracked ticker's request to its latest complete session, and store it.

    Only provider tickers grow: they fetch what is new (the page cache serves the rest). Synthetic
    and imported bars are fixed sources (a synthetic series is a reproducible sample, imports grow
    by importing a newer file), so their request comes back unchanged and nothing downstream re-runs.
    """
    if check_source(lake, request) != "polygon":
        return request
    return refresh_ticker(lake, request.ticker_key, now=now or dt.datetime.now(dt.UTC), log=log)
