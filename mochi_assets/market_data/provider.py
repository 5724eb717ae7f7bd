"""Raw bars from Polygon (Massive) aggregates: chunked, cached page by page in the lake, incremental.

Fetching. Minute, hour and day bars each come from the provider
(`/v2/aggs/ticker/{T}/range/1/{minute|hour|day}/{from}/{to}`, adjusted, ascending, 50,000 per
page, `next_url` followed to the end); nothing is resampled or filled in, so minutes without
trades stay missing. `from` and `to` are sent as Unix milliseconds (both inclusive), the UTC
bounds of a chunk, so no timezone convention of the service matters.

Chunks. A range is split on a fixed calendar grid in UTC: one month per chunk for minutes (at
most 44,640 bars, one page), one year for hours, ten years for days. The grid does not depend on
the request, so two requests share chunks.

Page cache. Every page is stored as it arrives, with the key scrubbed from its `next_url`, at
`raw/polygon_pages/ticker={T}/{resolution}-{first}-{last}-p{n}.json` (first and last: the chunk's
UTC dates). A rerun after a failure reads the pages it has and fetches from the first missing one
on, through the stored `next_url`.

Completeness and incremental fetches. A chunk that ended before `now - 1 h` is complete and
fetched once. The chunk holding `now` is fetched up to that instant only, under a key with that
instant (`...-{first}-{YYYYMMDDTHHMM}-p{n}.json`), bars that had not finished by then are dropped,
and `{resolution}-{first}-partial.json` records how far it reaches. A later request reuses it when
it reaches far enough, and fetches it again up to the new `now` otherwise. So a later request
fetches only chunks it does not have; `refresh_ticker` extends a ticker's stored request to its
latest complete session, fetching only what is new.

Reference data (`/v3/reference/tickers/{T}`) is cached as `reference.json` beside the pages.
The API key is never stored: pages keep only `results`, counts, `status` and the scrubbed
`next_url`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

from mochi_assets.market_data.bars import BAR_COLUMNS, empty_bars, validate_bars
from mochi_assets.request import BacktestRequest, parse_request
from mochi_assets.store import save_request, stored_request
from mochi_resources.errors import ProviderError
from mochi_resources.lake import Lake
from mochi_resources.polygon import PolygonClient

PAGE_TABLE = "polygon_pages"
RESOLUTIONS = ("minute", "hour", "day")
CHUNK_MONTHS = {"minute": 1, "hour": 12, "day": 120}
BAR_LENGTH = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
# Bars younger than this may still be revised by the service; they are fetched again later.
COMPLETION_GRACE = dt.timedelta(hours=1)
MAX_PAGES_PER_CHUNK = 1000

Log = Callable[[str], None]


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def complete_until(now: dt.datetime) -> dt.datetime:
    """The instant up to which bars are treated as final: now minus the grace, to the minute."""
    return (now.astimezone(dt.UTC) - COMPLETION_GRACE).replace(second=0, microsecond=0)


def request_bounds(request: BacktestRequest) -> tuple[dt.datetime, dt.datetime]:
    """[lo, hi) in UTC of the request's local session dates start..end in its timezone."""
    tz = ZoneInfo(request.timezone)
    lo = dt.datetime.combine(request.start, dt.time(), tz).astimezone(dt.UTC)
    hi = dt.datetime.combine(request.end + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    return lo, hi


def latest_complete_session(timezone: str, now: dt.datetime) -> dt.date:
    """The last local date in `timezone` whose whole day ended before `complete_until(now)`."""
    until = complete_until(now)
    tz = ZoneInfo(timezone)
    day = until.astimezone(tz).date()
    while dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz) > until:
        day -= dt.timedelta(days=1)
    return day


@dataclass(frozen=True)
class Chunk:
    """One piece of the calendar grid: UTC dates first..last of one resolution."""

    resolution: str
    first: dt.date
    last: dt.date

    @property
    def start(self) -> dt.datetime:
        return _utc_midnight(self.first)

    @property
    def end(self) -> dt.datetime:
        """Exclusive end instant."""
        return _utc_midnight(self.last + dt.timedelta(days=1))


def plan_chunks(resolution: str, lo: dt.datetime, hi: dt.datetime) -> list[Chunk]:
    """Grid chunks of `resolution` that intersect [lo, hi) (UTC instants), in order."""
    months = CHUNK_MONTHS[resolution]
    first_day = lo.astimezone(dt.UTC).date()
    last_day = (hi.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date()
    index = (first_day.year * 12 + first_day.month - 1) // months * months
    chunks = []
    while True:
        year, month = divmod(index, 12)
        first = dt.date(year, month + 1, 1)
        if first > last_day:
            break
        ny, nm = divmod(index + months, 12)
        chunks.append(Chunk(resolution, first, dt.date(ny, nm + 1, 1) - dt.timedelta(days=1)))
        index += months
    return chunks


def page_key(lake: Lake, ticker_key: str, chunk: Chunk, to_label: str, page: int) -> str:
    return lake.key("raw", PAGE_TABLE, ticker_key, None, f"{chunk.resolution}-{chunk.first}-{to_label}-p{page}.json")


def partial_key(lake: Lake, ticker_key: str, chunk: Chunk) -> str:
    return lake.key("raw", PAGE_TABLE, ticker_key, None, f"{chunk.resolution}-{chunk.first}-partial.json")


def reference_key(lake: Lake, ticker_key: str) -> str:
    return lake.key("raw", PAGE_TABLE, ticker_key, None, "reference.json")


@dataclass
class FetchStats:
    pages_fetched: int = 0
    pages_cached: int = 0
    chunks: int = 0


def _fetch_pages(lake: Lake, client: PolygonClient, ticker: str, ticker_key: str, chunk: Chunk,
                 to: dt.datetime, to_label: str, stats: FetchStats, log: Log | None) -> list[dict]:
    """Every page of one chunk fetch [chunk.start, to], from the cache where it has them."""
    url: str | None = client.aggregates_path(ticker, chunk.resolution, _ms(chunk.start), _ms(to) - 1)
    what = f"{chunk.resolution} bars of {ticker} {chunk.first} to {to_label}"
    pages = []
    for n in range(MAX_PAGES_PER_CHUNK):
        key = page_key(lake, ticker_key, chunk, to_label, n)
        if lake.exists(key):
            page = lake.get_json(key)
            stats.pages_cached += 1
        else:
            doc = client.get(url, what=f"{what} (page {n + 1})")
            if doc is None:
                raise ProviderError(f"{what}: the Polygon API answered 404 (not found) for page {n + 1}")
            page = {
                "ticker": ticker,
                "resolution": chunk.resolution,
                "from": chunk.start.isoformat(),
                "to": to.isoformat(),
                "status": doc.get("status"),
                "resultsCount": doc.get("resultsCount", len(doc.get("results") or [])),
                "results": doc.get("results") or [],
                "next_url": client.public(doc.get("next_url")),
            }
            # compact JSON: a page holds up to 50,000 bars (the pretty printer is ten times slower)
            lake.put_bytes(key, json.dumps(page, separators=(",", ":")).encode())
            stats.pages_fetched += 1
            if log:
                log(f"{what}: page {n + 1}, {len(page['results'])} bars")
        pages.append(page)
        next_url = page.get("next_url")
        if not next_url:
            return pages
        if next_url == url:
            raise ProviderError(f"{what}: the Polygon API links page {n + 1} to itself")
        url = next_url
    raise ProviderError(f"{what}: more than {MAX_PAGES_PER_CHUNK} pages; the service keeps linking more")


def _results_to_bars(results: list[dict], what: str) -> pl.DataFrame:
    """Polygon aggregate objects ({t, o, h, l, c, v, ...}) -> a bars table (not yet validated)."""
    if not results:
        return empty_bars()
    missing = [f for f in ("t", "o", "h", "l", "c") if any(f not in r for r in results[:1])]
    if missing:
        raise ProviderError(f"{what}: aggregate objects lack field(s) {', '.join(missing)}")
    frame = pl.DataFrame(
        {
            "t": [r.get("t") for r in results],
            "open": [r.get("o") for r in results],
            "high": [r.get("h") for r in results],
            "low": [r.get("l") for r in results],
            "close": [r.get("c") for r in results],
            "volume": [r.get("v", 0.0) for r in results],
        },
        schema={"t": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
                "volume": pl.Float64},
        strict=False,
    )
    return frame.select(
        pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
        *BAR_COLUMNS[1:],
    )


def fetch_resolution(lake: Lake, client: PolygonClient, ticker: str, ticker_key: str, resolution: str,
                     lo: dt.datetime, hi: dt.datetime, *, now: dt.datetime, log: Log | None = None,
                     stats: FetchStats | None = None) -> pl.DataFrame:
    """Provider bars of `resolution` overlapping [lo, hi) that had finished by `complete_until(now)`.

    Returns a validated bars table (may be empty) covering whole chunks; the caller trims it.
    """
    stats = stats if stats is not None else FetchStats()
    until = complete_until(now)
    frames = []
    if lo >= until:
        return empty_bars()
    for chunk in plan_chunks(resolution, lo, min(hi, until + dt.timedelta(microseconds=1))):
        stats.chunks += 1
        what = f"{resolution} bars of {ticker} {chunk.first}"
        if chunk.end <= until:
            pages = _fetch_pages(lake, client, ticker, ticker_key, chunk, chunk.end, str(chunk.last), stats, log)
            frames.append(_results_to_bars([r for p in pages for r in p.get("results", [])], what))
        else:
            needed = min(hi, until)
            marker_key = partial_key(lake, ticker_key, chunk)
            marker = lake.get_json(marker_key) if lake.exists(marker_key) else None
            if marker is not None and dt.datetime.fromisoformat(marker["to"]) >= needed:
                to = dt.datetime.fromisoformat(marker["to"])
            else:
                to = until
            label = to.strftime("%Y%m%dT%H%M")
            pages = _fetch_pages(lake, client, ticker, ticker_key, chunk, to, label, stats, log)
            if marker is None or dt.datetime.fromisoformat(marker["to"]) < to:
                lake.put_json(marker_key, {"to": to.isoformat(), "label": label, "pages": len(pages)})
            bars = _results_to_bars([r for p in pages for r in p.get("results", [])], what)
            # A bar still forming when its page was fetched is not final: leave it to a later fetch.
            frames.append(bars.filter(pl.col("ts") + BAR_LENGTH[resolution] <= to))
    if not frames:
        return empty_bars()
    combined = pl.concat(frames).unique(maintain_order=True)
    if combined.is_empty():
        return empty_bars()
    return validate_bars(combined, source=f"Polygon {resolution} bars of {ticker}")


def reference_data(lake: Lake, client: PolygonClient | None, ticker: str, ticker_key: str,
                   refresh: bool = False) -> dict | None:
    """Polygon reference `results` for the ticker (cached in the lake); None when the service has none."""
    key = reference_key(lake, ticker_key)
    if lake.exists(key) and not refresh:
        return lake.get_json(key).get("results")
    if client is None:
        return None
    results = client.ticker_details(ticker)
    lake.put_json(key, {"ticker": ticker, "results": results,
                        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    return results


@dataclass(frozen=True)
class ProviderBars:
    minute: pl.DataFrame
    hour: pl.DataFrame
    day: pl.DataFrame
    reference: dict | None
    stats: FetchStats


def _overlapping(df: pl.DataFrame, lo: dt.datetime, hi: dt.datetime, length: dt.timedelta) -> pl.DataFrame:
    return df.filter((pl.col("ts") < hi) & (pl.col("ts") + length > lo))


def fetch_polygon_bars(lake: Lake, request: BacktestRequest, client: PolygonClient, *,
                       now: dt.datetime | None = None, log: Log | None = None,
                       bounds: tuple[dt.datetime, dt.datetime] | None = None) -> ProviderBars:
    """Minute, hour and day bars of the request's local dates, from the provider through the page cache.

    Minute bars lie in [lo, hi) (`bounds`, default the request's local dates: the backtest passes
    its calendar's window, warm-up included); hour and day bars are those overlapping it. The
    reference data is asked for first, so a refused key fails before any page is written.
    """
    now = now or dt.datetime.now(dt.UTC)
    lo, hi = bounds or request_bounds(request)
    reference = reference_data(lake, client, request.ticker, request.ticker_key)
    stats = FetchStats()
    tables = {
        res: _overlapping(
            fetch_resolution(lake, client, request.ticker, request.ticker_key, res, lo, hi, now=now, log=log, stats=stats),
            lo, hi, BAR_LENGTH[res],
        )
        for res in RESOLUTIONS
    }
    return ProviderBars(tables["minute"], tables["hour"], tables["day"], reference, stats)


def refresh_ticker(lake: Lake, ticker_key: str, *, client: PolygonClient | None = None,
                   now: dt.datetime | None = None, log: Log | None = None) -> BacktestRequest:
    """Extend the ticker's stored request to its latest complete session and fetch what is new.

    Refetches the reference data, fetches the missing chunks (the cache serves the rest) and saves
    the request with the new `end`, so the next materialization of raw_bars covers it. Returns
    the saved request; raises ProviderError when there is nothing newer than the stored end.
    """
    now = now or dt.datetime.now(dt.UTC)
    request = stored_request(lake, ticker_key)
    latest = latest_complete_session(request.timezone, now)
    if latest <= request.start:
        raise ProviderError(f"ticker {request.ticker}: no complete session after start {request.start} yet")
    client = client or PolygonClient.from_env(log=log)
    reference_data(lake, client, request.ticker, ticker_key, refresh=True)
    updated = parse_request({**request.model_dump(mode="json"), "end": latest.isoformat()}, source="refresh")
    bars = fetch_polygon_bars(lake, updated, client, now=now, log=log)
    if bars.minute.is_empty():
        raise ProviderError(f"ticker {request.ticker}: the provider has no minute bars from {request.start} to {latest}")
    save_request(lake, updated)
    return updated
