"""Where a ticker's bars come from: the user's import, the synthetic generator, or Polygon.

Order of precedence: bars imported with `mochi import-bars` for that ticker; then `SYN:` tickers
from the seeded generator; then the Polygon (Massive) aggregates API when POLYGON_API_KEY is set
(see `provider.py` for chunks, the page cache and incremental fetches). `check_source` answers
before anything is written and makes no network call, so an unknown ticker fails up front.

Hour and day bars: from the provider for Polygon; aggregated from the minutes for imports and
synthetic tickers (hours in UTC, days per local date of the instrument's timezone).

Sessions and warm-up: every ticker trades on a session calendar (`sessions.py`): the request's
`session` key, else the one stored with an import (`--session`), else the default of its asset
class. Bars are loaded from `warmup_start` on, early enough that the ATR is defined on the first
session of the range; where the source has no earlier bars, the first tradable session is later
and said so, and a range without any tradable session is refused by `check_source`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from mochi_assets.market_data.bars import resample_bars, validate_bars
from mochi_assets.market_data.meta import TickerInfo, asset_class_of, polygon_info
from mochi_assets.market_data.provider import (
    fetch_polygon_bars,
    reference_data,
    refresh_ticker,
)
from mochi_assets.market_data.sessions import (
    SessionCalendar,
    default_session,
    first_tradable_session,
    parse_session,
    session_date_expr,
    session_dates,
)
from mochi_assets.market_data.synthetic import EPOCH, is_synthetic, synthetic_minute_bars, synthetic_profile
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
    # the distinct session dates of the minute bars under the request's calendar, sorted
    session_dates: pl.Series | None = None

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def timezone(self) -> str:
        return self.info.timezone

    @property
    def asset_class(self) -> str:
        return self.info.asset_class


def _source_of(lake: Lake, request: BacktestRequest, polygon: bool | None = None) -> str:
    """`polygon`: whether a Polygon key is configured (default: POLYGON_API_KEY is set)."""
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


def warmup_sessions(request: BacktestRequest) -> int:
    """Sessions before the first tradable one: the ATR of session D needs `atr.long` earlier sessions."""
    return max(request.atr.short, request.atr.long)


def session_calendar(lake: Lake, request: BacktestRequest) -> SessionCalendar:
    """The request's session calendar: its `session` key, else the import's, else the asset class's.

    Explicit hours take the request's timezone (the import's for an import's own `--session`).
    """
    if request.session is not None:
        return parse_session(request.session, request.timezone, field="session")
    info = stored_import(lake, request.ticker_key)
    if info is not None:
        return parse_session(info.get("session") or "calendar-day", info["timezone"], field="import session")
    if is_synthetic(request.ticker):
        return default_session("synthetic", request.timezone)
    return default_session(asset_class_of(request.ticker), request.timezone)


def warmup_start(request: BacktestRequest, calendar: SessionCalendar) -> dt.date:
    """First session date loaded: early enough for the ATR to be defined on `start`."""
    return calendar.warmup_start(request.start, warmup_sessions(request) + 1)


def _no_tradable_session(request: BacktestRequest, what: str) -> ProviderError:
    return ProviderError(f"ticker {request.ticker}: no tradable session between {request.start} and "
                         f"{request.end}: {what}")


def _check_imported_range(lake: Lake, request: BacktestRequest) -> None:
    """Refuse a range in which the imported bars leave no session with a defined ATR."""
    calendar = session_calendar(lake, request)
    dates = (
        lake.scan_table(imported_bars_key(lake, request.ticker_key))
        .select(session_date_expr(calendar).alias("session_date"))
        .drop_nulls()
        .unique()
        .collect()
        .get_column("session_date")
        .sort()
    )
    need = warmup_sessions(request)
    first = first_tradable_session(dates, need, request.start)
    if first is not None and first <= request.end:
        return
    in_range = dates.filter(dates.is_between(request.start, request.end))
    if in_range.is_empty():
        held = f"they hold sessions {dates.min()} to {dates.max()}" if dates.len() else "they hold no session"
        raise _no_tradable_session(request, f"the imported bars have no session in that range ({held}, "
                                            f"{calendar.describe()})")
    if first is None:
        raise _no_tradable_session(
            request, f"the imported bars hold {dates.len()} sessions ({dates.min()} to {dates.max()}) and the ATR "
                     f"needs {need} sessions before a session can trade: too few sessions")
    raise _no_tradable_session(
        request, f"the imported bars start with session {dates.min()} and the ATR needs {need} sessions before a "
                 f"session can trade; the first session that would work is {first}: choose an end on or after it")


def check_source(lake: Lake, request: BacktestRequest, *, polygon: bool | None = None) -> str:
    """Name of the source that will serve this ticker, or a ProviderError saying what to do
    (`polygon`: whether a Polygon key is configured; default: POLYGON_API_KEY is set).

    Also refuses, before anything runs, a range in which no session can trade: imported bars that
    end before the ATR warm-up is over, or synthetic data that begins too late. Polygon is not
    asked (no network call here); its first tradable session is reported by the enhanced bars.
    """
    source = _source_of(lake, request, polygon)
    calendar = session_calendar(lake, request)
    if source == "import":
        _check_imported_range(lake, request)
    elif source == "synthetic" and warmup_start(request, calendar) < EPOCH:
        # the generator has bars on every weekday from EPOCH on
        need = warmup_sessions(request)
        # (from EPOCH on, far enough for the warm-up even when the whole range lies before EPOCH)
        horizon = max((request.end - EPOCH).days, 0) + 2 * need + 14
        dates = [d for d in (EPOCH + dt.timedelta(days=i) for i in range(horizon)) if d.weekday() in calendar.days]
        first = first_tradable_session(dates, need, request.start)
        if first is None or first > request.end:
            raise _no_tradable_session(request, f"synthetic data begins on {EPOCH} and the ATR needs {need} "
                                                f"sessions before a session can trade; the first session that "
                                                f"would work is {first}: choose an end on or after it")
    return source


def ticker_info(lake: Lake, request: BacktestRequest) -> TickerInfo:
    """Tick size, timezone, asset class and session of the request's ticker (no network call:
    Polygon reference data is read from the cache that `load_raw_bars` filled)."""
    source = _source_of(lake, request)
    calendar = session_calendar(lake, request)
    if source == "import":
        info = stored_import(lake, request.ticker_key)
        return TickerInfo(
            tick_size=float(info["tick_size"]), timezone=calendar.timezone, asset_class="imported",
            trading_session=calendar.describe(), name=None, meta_source="import",
        )
    if source == "synthetic":
        profile = synthetic_profile(request.ticker)
        return TickerInfo(
            tick_size=profile.tick_size, timezone=calendar.timezone, asset_class=profile.asset_class,
            trading_session=calendar.describe(), name=profile.name, meta_source="synthetic",
        )
    info = polygon_info(request.ticker, reference_data(lake, None, request.ticker, request.ticker_key))
    return TickerInfo(tick_size=info.tick_size, timezone=calendar.timezone, asset_class=info.asset_class,
                      trading_session=calendar.describe(), name=info.name, meta_source=info.meta_source)


def _in_sessions(df: pl.DataFrame, calendar: SessionCalendar, first: dt.date, last: dt.date
                 ) -> tuple[pl.DataFrame, pl.Series]:
    """Bars of the session dates first..last (bars outside every session stay in, within that span),
    and the session date of each of them (null outside every session): computed once, here."""
    lo, hi = calendar.local_window(first, last)
    session = session_dates(df.get_column("ts"), calendar)
    keep = df.select(
        (pl.col("ts") >= lo) & (pl.col("ts") < hi)
        & (session.is_null() | ((session >= first) & (session <= last)))
    ).to_series()
    return df.filter(keep), session.filter(keep)


def load_raw_bars(lake: Lake, request: BacktestRequest, *, client: PolygonClient | None = None,
                  now: dt.datetime | None = None, log: Callable[[str], None] | None = None) -> RawBars:
    """Minute, hour and day bars of the request's sessions AND of the warm-up sessions before them.

    Bars span the session dates `warmup_start(...)` to `end` of the request's calendar.
    Polygon: `client` defaults to one configured from the environment; `now` (default the clock)
    decides which bars are complete. Raises ProviderError when the source has no minute bars in
    the range, BarsError when its bars break the bars contract.
    """
    source = check_source(lake, request, polygon=True if client is not None else None)
    calendar = session_calendar(lake, request)
    first = warmup_start(request, calendar)
    fetch: dict = {}
    if source == POLYGON:
        client = client or PolygonClient.from_env(log=log)
        got = fetch_polygon_bars(lake, request, client, now=now, log=log, bounds=calendar.local_window(first, request.end))
        info = ticker_info(lake, request)
        (minute, sessions), hour, day = _in_sessions(got.minute, calendar, first, request.end), got.hour, got.day
        fetch = {"pages_fetched": got.stats.pages_fetched, "pages_cached": got.stats.pages_cached,
                 "chunks": got.stats.chunks, "requests_sent": client.requests_sent,
                 "rate_limit_wait_s": round(client.waited_s, 1)}
    else:
        if source == "import":
            bars = lake.read_table(imported_bars_key(lake, request.ticker_key))
        else:
            # a day either side so that the calendar's sessions are fully covered
            bars = synthetic_minute_bars(
                request.ticker, max(EPOCH, first - dt.timedelta(days=1)), request.end + dt.timedelta(days=1)
            )
        minute, sessions = _in_sessions(bars, calendar, first, request.end)
        info = ticker_info(lake, request)
        hour = day = None
    if not (sessions >= request.start).any():
        raise ProviderError(
            f"ticker {request.ticker}: the {source} bars have no data in the sessions {request.start} to "
            f"{request.end} ({calendar.describe()})"
        )
    minute = validate_bars(minute, source=f"{source} bars of {request.ticker}")
    if hour is None or day is None:
        hour = resample_bars(minute, "1h", info.timezone)
        day = resample_bars(minute, "1d", info.timezone)
    return RawBars(
        minute=minute, hour=hour, day=day, source=source, info=info,
        tick_size=request.tick_size or info.tick_size, fetch=fetch,
        session_dates=sessions.drop_nulls().unique().sort(),
    )


def traded_sessions(lake: Lake, request: BacktestRequest
                    ) -> tuple[SessionCalendar, dt.date | None, dt.date | None, int, dt.date | None]:
    """(calendar, first and last tradable session, their count, first session with bars) of the
    request's enhanced bars in the lake (after a backtest)."""
    calendar = session_calendar(lake, request)
    key = lake.key("prepared", "enhanced_bars", request.ticker_key)
    if not lake.exists(key):
        return calendar, None, None, 0, None
    enhanced = lake.scan_table(key)
    every = enhanced.select(pl.col("session_date").min()).collect().item()
    ready = (
        enhanced.filter(pl.col("atr").is_not_null())
        .select(pl.col("session_date").min().alias("first"), pl.col("session_date").max().alias("last"),
                pl.col("session_date").n_unique().alias("count"))
        .collect()
        .row(0, named=True)
    )
    return calendar, ready["first"], ready["last"], int(ready["count"]), every


def refresh_request(lake: Lake, request: BacktestRequest, *, now: dt.datetime | None = None,
                    log: Callable[[str], None] | None = None) -> BacktestRequest:
    """Extend a tracked ticker's request to its latest complete session, and store it.

    Only provider tickers grow: they fetch what is new (the page cache serves the rest). Synthetic
    and imported bars are fixed sources (a synthetic series is a reproducible sample, imports grow
    by importing a newer file), so their request comes back unchanged and nothing downstream re-runs.
    """
    if _source_of(lake, request) != "polygon":
        return request
    return refresh_ticker(lake, request.ticker_key, now=now or dt.datetime.now(dt.UTC), log=log)
