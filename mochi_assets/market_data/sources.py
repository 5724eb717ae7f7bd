"""Where a ticker's bars come from: the user's import, the synthetic generator, or a provider.

Order of precedence: bars imported with `mochi import-bars` for that ticker; then `SYN:` tickers
from the seeded generator; then a market data provider (Polygon, configured by POLYGON_API_KEY).
`check_source` answers before anything is written, so an unknown ticker fails up front.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

from mochi_assets.market_data.bars import resample_bars, validate_bars
from mochi_assets.market_data.synthetic import is_synthetic, synthetic_minute_bars, synthetic_profile
from mochi_assets.request import BacktestRequest
from mochi_assets.store import imported_bars_key, stored_import
from mochi_resources.errors import ProviderError
from mochi_resources.lake import Lake


@dataclass(frozen=True)
class RawBars:
    minute: pl.DataFrame
    hour: pl.DataFrame
    day: pl.DataFrame
    source: str  # "synthetic" | "import" | provider name
    tick_size: float
    timezone: str  # the instrument's own zone
    asset_class: str

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


def check_source(lake: Lake, request: BacktestRequest) -> str:
    """Name of the source that will serve this ticker, or a ProviderError saying what to do."""
    if stored_import(lake, request.ticker_key) is not None:
        return "import"
    if is_synthetic(request.ticker):
        return "synthetic"
    if os.environ.get("POLYGON_API_KEY"):
        raise ProviderError(
            f"ticker {request.ticker}: POLYGON_API_KEY is set, but this build of Mochi has no Polygon "
            "client yet; import the bars with `mochi import-bars` or use a SYN: ticker"
        )
    raise ProviderError(
        f"ticker {request.ticker}: no bars available. It is not synthetic (SYN:<NAME>), no bars were "
        f"imported for it (`mochi import-bars {request.ticker} FILE --tick-size X --timezone TZ`), and "
        "POLYGON_API_KEY is not set for a market data provider"
    )


def _local_range(df: pl.DataFrame, start: dt.date, end: dt.date, timezone: str) -> pl.DataFrame:
    """Bars whose local date (request timezone) lies in [start, end]."""
    tz = ZoneInfo(timezone)
    lo = dt.datetime.combine(start, dt.time(), tz).astimezone(dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    return df.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))


def load_raw_bars(lake: Lake, request: BacktestRequest) -> RawBars:
    """Minute, hour and day bars for the request's range, from the ticker's source."""
    source = check_source(lake, request)
    if source == "import":
        info = stored_import(lake, request.ticker_key)
        bars = lake.read_table(imported_bars_key(lake, request.ticker_key))
        minute = _local_range(bars, request.start, request.end, request.timezone)
        tick, tz, asset_class = float(info["tick_size"]), info["timezone"], "imported"
    else:
        profile = synthetic_profile(request.ticker)
        # generate a day either side so that the request's local dates are fully covered
        minute = synthetic_minute_bars(
            request.ticker, request.start - dt.timedelta(days=1), request.end + dt.timedelta(days=1)
        )
        minute = _local_range(minute, request.start, request.end, request.timezone)
        tick, tz, asset_class = profile.tick_size, profile.timezone, profile.asset_class
    if minute.is_empty():
        raise ProviderError(
            f"ticker {request.ticker}: the {source} bars have no data between {request.start} and "
            f"{request.end} ({request.timezone})"
        )
    minute = validate_bars(minute, source=f"{source} bars of {request.ticker}")
    return RawBars(
        minute=minute,
        hour=resample_bars(minute, "1h", tz),
        day=resample_bars(minute, "1d", tz),
        source=source,
        tick_size=request.tick_size or tick,
        timezone=tz,
        asset_class=asset_class,
    )
