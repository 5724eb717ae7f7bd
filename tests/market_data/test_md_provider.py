"""The Polygon provider against the local stand-in (conftest.py): paging, chunks, 429s, 401, 5xx,
timeouts, empty pages, a resumed fetch, incremental fetches, refresh, and key hygiene."""

import datetime as dt
import random
import socket

import dagster as dg
import polars as pl
import pytest
from tests.market_data.conftest import API_KEY

from mochi_assets.market_data.checks import resolution_mismatches
from mochi_assets.market_data.meta import fallback_info, polygon_info
from mochi_assets.market_data.provider import (
    fetch_polygon_bars,
    latest_complete_session,
    page_key,
    plan_chunks,
    refresh_ticker,
    request_bounds,
)
from mochi_assets.market_data.sessions import parse_session, session_date_expr
from mochi_assets.market_data.sources import check_source, load_raw_bars
from mochi_assets.request import parse_request
from mochi_assets.store import save_request, stored_request
from mochi_resources.errors import ProviderError, ProviderUnavailable
from mochi_resources.lake import Lake
from mochi_resources.polygon import PolygonAuthError, PolygonClient, PolygonConfig, scrub
from mochi_resources.settings import MochiSettings
from tests.instances import mochi_instance_for_test

UTC = dt.UTC
NOW = dt.datetime(2024, 6, 1, tzinfo=UTC)
JAN = {"ticker": "C:EURUSD", "start": "2024-01-08", "end": "2024-01-19"}


class FakeClock:
    """Monotonic time that only moves when the client sleeps: tests never wait for real."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def lake(mochi_home):
    return Lake(MochiSettings.from_env())


def client_for(server, clock, key=API_KEY, rpm=0, **overrides):
    settings = {"timeout_s": 2.0, "backoff_s": 0.5, "max_retries": 3, **overrides}
    config = PolygonConfig(api_key=key, base_url=server.url, requests_per_minute=rpm, **settings)
    return PolygonClient(config, sleep=clock.sleep, clock=clock, rng=random.Random(7))


def expected(server, request, resolution="minute"):
    lo, hi = request_bounds(request)
    return server.tables[resolution].filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))


def expected_sessions(server, request):
    """The stand-in's minutes of the forex sessions from the warm-up start to `end` (the stand-in's
    data begin on 2023-12-28, after the warm-up start: the raw bars begin with them)."""
    forex = parse_session("forex", "UTC")
    first = forex.warmup_start(request.start, request.atr.long + 1)
    assert server.tables["minute"]["ts"].min() > dt.datetime.combine(first, dt.time(), UTC)
    session = session_date_expr(forex)
    return server.tables["minute"].filter(session.is_not_null() & (session <= request.end))


def files_under(path):
    return [p for p in path.rglob("*") if p.is_file()]


def test_pages_follow_next_url_with_the_documented_parameters(polygon_server, lake):
    polygon_server.page_size = 1000
    request = parse_request(JAN)
    got = fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=NOW)
    assert got.minute.equals(expected(polygon_server, request))
    january = polygon_server.tables["minute"].filter(pl.col("ts").dt.month() == 1).height
    minute_calls = polygon_server.agg_requests("minute")
    assert len(minute_calls) == -(-january // 1000)
    assert got.stats.pages_fetched == len(polygon_server.agg_requests())
    first = minute_calls[0]
    assert first["query"] == {"adjusted": "true", "sort": "asc", "limit": "50000"}
    assert all("cursor" in c["query"] for c in minute_calls[1:])
    assert got.reference["market"] == "fx"
    # hour and day bars come from the provider, and agree with the minutes
    assert got.hour.height > 0 and got.day.height > 0
    assert resolution_mismatches(got.minute, got.hour, "hour").is_empty()
    assert resolution_mismatches(got.minute, got.day, "day").is_empty()


def test_a_range_is_split_in_calendar_chunks(polygon_server, lake):
    request = parse_request({**JAN, "start": "2024-01-25", "end": "2024-02-06"})
    got = fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=NOW)
    assert got.minute.equals(expected(polygon_server, request))
    ms = lambda d: int(dt.datetime.combine(d, dt.time(), UTC).timestamp() * 1000)  # noqa: E731
    spans = [(c["from"], c["to"]) for c in polygon_server.agg_requests("minute")]
    assert spans == [(ms(dt.date(2024, 1, 1)), ms(dt.date(2024, 2, 1)) - 1),
                     (ms(dt.date(2024, 2, 1)), ms(dt.date(2024, 3, 1)) - 1)]
    for first, last in ((dt.date(2024, 1, 1), "2024-01-31"), (dt.date(2024, 2, 1), "2024-02-29")):
        chunk = next(c for c in plan_chunks("minute", *request_bounds(request)) if c.first == first)
        assert lake.exists(page_key(lake, request.ticker_key, chunk, last, 0))


def test_plan_chunks_grid():
    lo = dt.datetime(2023, 11, 20, 5, tzinfo=UTC)
    hi = dt.datetime(2024, 2, 3, tzinfo=UTC)
    assert [(c.first, c.last) for c in plan_chunks("minute", lo, hi)] == [
        (dt.date(2023, 11, 1), dt.date(2023, 11, 30)), (dt.date(2023, 12, 1), dt.date(2023, 12, 31)),
        (dt.date(2024, 1, 1), dt.date(2024, 1, 31)), (dt.date(2024, 2, 1), dt.date(2024, 2, 29))]
    assert [(c.first, c.last) for c in plan_chunks("hour", lo, hi)] == [
        (dt.date(2023, 1, 1), dt.date(2023, 12, 31)), (dt.date(2024, 1, 1), dt.date(2024, 12, 31))]
    assert [(c.first, c.last) for c in plan_chunks("day", lo, hi)] == [(dt.date(2020, 1, 1), dt.date(2029, 12, 31))]


def test_429_waits_retry_after_or_backs_off_within_the_budget(polygon_server, lake):
    clock = FakeClock()
    polygon_server.clock = clock
    polygon_server.page_size = 5000
    polygon_server.fail_next(None, ("429", 7), ("429", None))
    request = parse_request(JAN)
    got = fetch_polygon_bars(lake, request, client_for(polygon_server, clock, rpm=5), now=NOW)
    assert got.minute.equals(expected(polygon_server, request))
    assert 7.0 in clock.sleeps
    slot = 60 / 5
    assert any(slot <= s <= 2 * slot for s in clock.sleeps if s != 7.0), clock.sleeps  # second 429: jittered 2 slots
    times = [r["clock"] for r in polygon_server.requests]
    assert len(times) > 5
    # never more than 5 requests in any minute of the (fake) clock
    assert all(later - earlier >= 60 - 1e-9 for earlier, later in zip(times, times[5:]))


def test_429_gives_up_after_its_bound(polygon_server, lake):
    polygon_server.fail_next(("429", 1), ("429", 1), ("429", 1))
    client = client_for(polygon_server, FakeClock(), max_rate_limit_retries=2)
    with pytest.raises(ProviderError, match="still rate limited after 3 attempts"):
        client.ticker_details("C:EURUSD")


def test_401_fails_at_once_and_writes_nothing(polygon_server, lake, mochi_home):
    bad_key = "wrong-KEY-777777"
    request = parse_request(JAN)
    clock = FakeClock()
    with pytest.raises(PolygonAuthError) as err:
        fetch_polygon_bars(lake, request, client_for(polygon_server, clock, key=bad_key), now=NOW)
    message = str(err.value)
    assert "POLYGON_API_KEY" in message and "HTTP 401" in message
    assert bad_key not in message  # the stand-in echoes the key it got; the client scrubs it
    assert len(polygon_server.requests) == 1 and clock.sleeps == []
    assert files_under(mochi_home) == []


def test_key_revoked_mid_fetch_keeps_only_pages_already_fetched(polygon_server, lake):
    polygon_server.page_size = 5000
    polygon_server.fail_next(None, None, "badkey")
    request = parse_request(JAN)
    with pytest.raises(PolygonAuthError):
        fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=NOW)
    chunk = plan_chunks("minute", *request_bounds(request))[0]
    assert lake.exists(page_key(lake, request.ticker_key, chunk, "2024-01-31", 0))
    assert not lake.exists(page_key(lake, request.ticker_key, chunk, "2024-01-31", 1))


def test_5xx_retried_a_bounded_number_of_times(polygon_server, lake):
    clock = FakeClock()
    polygon_server.fail_next(503, 502)
    client = client_for(polygon_server, clock)
    assert client.ticker_details("C:EURUSD")["market"] == "fx"
    assert len(clock.sleeps) == 2 and 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0
    polygon_server.fail_next(500, 500, 500, 500)
    with pytest.raises(ProviderError) as err:
        client.ticker_details("C:EURUSD")
    assert "failed 4 times, last: HTTP 500" in str(err.value)
    assert API_KEY not in str(err.value)


def test_timeouts_are_retried(polygon_server):
    clock = FakeClock()
    polygon_server.fail_next("slow")
    client = client_for(polygon_server, clock, timeout_s=0.3)
    assert client.ticker_details("C:EURUSD")["name"].startswith("Euro")
    assert len(polygon_server.requests) == 2 and len(clock.sleeps) == 1
    polygon_server.fail_next("slow", "slow")
    client = client_for(polygon_server, clock, timeout_s=0.3, max_retries=1)
    with pytest.raises(ProviderError, match="no answer within 0.3 s"):
        client.ticker_details("C:EURUSD")


def _resolver_says(monkeypatch, errno: int, text: str) -> None:
    def getaddrinfo(*_args, **_kwargs):
        raise socket.gaierror(errno, text)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _unresolvable_client(clock):
    config = PolygonConfig(api_key=API_KEY, base_url="http://api.polygon.invalid", timeout_s=2.0, backoff_s=0.5,
                           max_retries=3)
    return PolygonClient(config, sleep=clock.sleep, clock=clock, rng=random.Random(7))


def test_a_host_that_does_not_resolve_fails_at_once(monkeypatch):
    # EAI_NONAME: the resolver says the name does not exist (a mistyped base URL, or no DNS at all)
    _resolver_says(monkeypatch, socket.EAI_NONAME, "Name or service not known")
    clock = FakeClock()
    client = _unresolvable_client(clock)
    with pytest.raises(ProviderError) as err:
        client.ticker_details("C:EURUSD")
    assert type(err.value) is ProviderError  # not ProviderUnavailable: Dagster's retries skip it
    assert "cannot resolve the host of the Polygon API at http://api.polygon.invalid" in str(err.value)
    assert "MOCHI_POLYGON_BASE_URL" in str(err.value)
    assert clock.sleeps == [] and client.requests_sent == 1
    assert API_KEY not in str(err.value)


def test_a_resolver_that_may_come_back_is_retried(monkeypatch):
    # EAI_AGAIN: "Temporary failure in name resolution" (the resolver did not answer) may pass
    _resolver_says(monkeypatch, socket.EAI_AGAIN, "Temporary failure in name resolution")
    clock = FakeClock()
    client = _unresolvable_client(clock)
    with pytest.raises(ProviderUnavailable, match="failed 4 times, last: cannot connect"):
        client.ticker_details("C:EURUSD")
    assert len(clock.sleeps) == 3


def test_empty_pages_and_ranges_without_data(polygon_server, lake, monkeypatch):
    polygon_server.page_size = 10000
    polygon_server.fail_next(None, "empty")  # the first minute page comes back empty, linking on
    request = parse_request(JAN)
    got = fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=NOW)
    assert got.minute.equals(expected(polygon_server, request))
    later = parse_request({**JAN, "start": "2024-04-08", "end": "2024-04-12"})
    monkeypatch.setenv("POLYGON_API_KEY", API_KEY)
    with pytest.raises(ProviderError, match="no data in the sessions 2024-04-08 to 2024-04-12"):
        load_raw_bars(lake, later, client=client_for(polygon_server, FakeClock()), now=NOW)


def test_a_failed_fetch_resumes_from_the_cache(polygon_server, lake):
    polygon_server.page_size = 3000
    polygon_server.fail_next(None, None, None, None, 500, 500, 500, 500)  # reference, 3 pages, then down
    request = parse_request(JAN)
    with pytest.raises(ProviderError, match="page 4"):
        fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=NOW)
    before = len(polygon_server.requests)
    got = fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=NOW)
    again = polygon_server.requests[before:]
    assert got.minute.equals(expected(polygon_server, request))
    assert got.stats.pages_cached == 3
    assert again[0]["kind"] == "aggs" and again[0]["query"]["cursor"]  # straight to page 4, no reference call
    # a rerun with everything cached asks the service nothing
    count = len(polygon_server.requests)
    fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=NOW)
    assert len(polygon_server.requests) == count


def test_a_later_request_fetches_only_what_is_missing(polygon_server, lake):
    fetch_polygon_bars(lake, parse_request(JAN), client_for(polygon_server, FakeClock()), now=NOW)
    before = len(polygon_server.requests)
    wider = parse_request({**JAN, "end": "2024-02-16"})
    got = fetch_polygon_bars(lake, wider, client_for(polygon_server, FakeClock()), now=NOW)
    new = polygon_server.requests[before:]
    assert got.minute.equals(expected(polygon_server, wider))
    assert [(r["timespan"], r["from"]) for r in new] == [
        ("minute", int(dt.datetime(2024, 2, 1, tzinfo=UTC).timestamp() * 1000))]


def test_partial_chunk_then_refresh_to_the_latest_complete_session(polygon_server, lake):
    first_now = dt.datetime(2024, 2, 7, 15, 30, tzinfo=UTC)
    request = parse_request({**JAN, "end": "2024-02-06"})
    save_request(lake, request)
    got = fetch_polygon_bars(lake, request, client_for(polygon_server, FakeClock()), now=first_now)
    assert got.minute.equals(expected(polygon_server, request))
    marker = lake.get_json(lake.key("raw", "polygon_pages", request.ticker_key, None, "minute-2024-02-01-partial.json"))
    assert marker["to"] == "2024-02-07T14:30:00+00:00"
    # bars that had not finished by then are left out, even those the service sent
    assert got.day["ts"].max() == dt.datetime(2024, 2, 6, tzinfo=UTC)  # the Feb 7 bar was still forming

    later = dt.datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    assert latest_complete_session("America/New_York", later) == dt.date(2024, 3, 4)
    before = len(polygon_server.requests)
    refreshed = refresh_ticker(lake, request.ticker_key, client=client_for(polygon_server, FakeClock()), now=later)
    assert refreshed.end == dt.date(2024, 3, 4) and stored_request(lake, request.ticker_key).end == refreshed.end
    fetched = [(r["kind"], r.get("timespan")) for r in polygon_server.requests[before:]]
    # reference again, February now complete and March so far; hour and day partial chunks up to now
    assert fetched == [("reference", None), ("minute", "minute"), ("minute", "minute"), ("aggs", "hour"),
                       ("aggs", "day")] or sorted(fetched, key=str) == sorted(
        [("reference", None), ("aggs", "minute"), ("aggs", "minute"), ("aggs", "hour"), ("aggs", "day")], key=str)
    count = len(polygon_server.requests)
    final = fetch_polygon_bars(lake, refreshed, client_for(polygon_server, FakeClock()), now=later)
    assert len(polygon_server.requests) == count  # the refresh left everything cached
    assert final.minute.equals(expected(polygon_server, refreshed))


def test_the_key_is_never_stored_or_logged(polygon_server, lake, mochi_home):
    polygon_server.page_size = 4000
    polygon_server.key_in_next_url = True
    polygon_server.fail_next(None, 500)
    lines: list[str] = []
    client = client_for(polygon_server, FakeClock())
    client._log = lines.append
    got = fetch_polygon_bars(lake, parse_request(JAN), client, now=NOW, log=lines.append)
    assert got.minute.height > 0 and lines
    assert not any(API_KEY in line for line in lines)
    for path in files_under(mochi_home):
        assert API_KEY.encode() not in path.read_bytes(), path
    chunk = plan_chunks("minute", *request_bounds(parse_request(JAN)))[0]
    page = lake.get_json(page_key(lake, "C_EURUSD", chunk, "2024-01-31", 0))
    assert "apiKey=***" in page["next_url"]
    assert API_KEY not in repr(client.config)
    assert scrub(f"https://x/y?apiKey={API_KEY}&cursor=1 and {API_KEY}", API_KEY) == "https://x/y?apiKey=***&cursor=1 and ***"


def test_next_url_is_rerooted_on_the_configured_host(polygon_server):
    client = client_for(polygon_server, FakeClock())
    url = client.url("https://api.polygon.io/v2/aggs/ticker/C:EURUSD/range/1/minute/1/2?cursor=abc&apiKey=zzz")
    assert url == f"{polygon_server.url}/v2/aggs/ticker/C:EURUSD/range/1/minute/1/2?cursor=abc"


def test_ticker_meta_from_reference_and_fallbacks(polygon_server, lake):
    client = client_for(polygon_server, FakeClock())
    eur = polygon_info("C:EURUSD", client.ticker_details("C:EURUSD"))
    assert (eur.asset_class, eur.tick_size, eur.timezone, eur.meta_source) == ("forex", 0.00001, "America/New_York", "polygon reference")
    assert eur.name == "Euro - United States Dollar"
    assert client.ticker_details("C:USDJPY") is None  # 404: unknown to the reference data
    jpy = polygon_info("C:USDJPY", None)
    assert (jpy.asset_class, jpy.tick_size, jpy.meta_source) == ("forex", 0.001, "fallback (ticker prefix)")
    assert (fallback_info("C:XAUUSD").asset_class, fallback_info("C:XAUUSD").tick_size) == ("metals", 0.01)
    crypto = fallback_info("X:BTCUSD")
    assert crypto.asset_class == "crypto" and crypto.timezone == "UTC"
    assert crypto.trading_session.startswith("crypto: 00:00 to 24:00 UTC, sessions daily")
    aapl = fallback_info("AAPL")
    assert (aapl.asset_class, aapl.tick_size, aapl.timezone) == ("stocks", 0.01, "America/New_York")


def test_check_source_says_what_to_set(mochi_home, lake, monkeypatch):
    request = parse_request(JAN)
    with pytest.raises(ProviderError, match="Set POLYGON_API_KEY"):
        check_source(lake, request)
    monkeypatch.setenv("POLYGON_API_KEY", API_KEY)
    monkeypatch.setenv("MOCHI_POLYGON_BASE_URL", "ftp://example")
    with pytest.raises(ProviderError, match="MOCHI_POLYGON_BASE_URL: 'ftp://example' is not an http"):
        check_source(lake, request)
    monkeypatch.delenv("MOCHI_POLYGON_BASE_URL")
    assert check_source(lake, request) == "polygon"


def test_raw_bars_through_dagster_from_the_provider(polygon_server, mochi_home, lake, monkeypatch):
    """End to end: environment-configured provider, the ticker's assets and their checks."""
    from mochi_assets.definitions import all_assets, build_resources, ticker_assets
    from tests.automation.requests import materialize_request

    monkeypatch.setenv("POLYGON_API_KEY", API_KEY)
    monkeypatch.setenv("MOCHI_POLYGON_BASE_URL", polygon_server.url)
    monkeypatch.setenv("MOCHI_POLYGON_RPM", "0")
    request = parse_request({"ticker": "C:EURUSD", "start": "2024-01-02", "end": "2024-02-23",
                             "atr": {"short": 3, "long": 5}})
    direct = load_raw_bars(lake, request)
    assert direct.source == "polygon" and direct.minute.equals(expected_sessions(polygon_server, request))
    assert direct.tick_size == 0.00001 and direct.info.meta_source == "polygon reference"
    before = len(polygon_server.requests)
    with mochi_instance_for_test() as instance:
        materialize_request(instance, request)
        result = dg.materialize(all_assets, selection=ticker_assets, partition_key=request.ticker_key,
                                instance=instance, resources=build_resources())
        assert result.success
        checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
        events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    assert len(polygon_server.requests) == before  # the run found every page in the cache
    assert checks[("raw_bars", "resolutions_agree")] and checks[("raw_bars", "ohlc_consistent")]
    assert checks[("enhanced_bars", "atr_no_lookahead")] and checks[("raw_bars", "sessions_covered")]
    raw = lake.read_table(lake.key("raw", "bars_minute", request.ticker_key))
    assert raw.equals(expected_sessions(polygon_server, request))
    enhanced = lake.read_table(lake.key("prepared", "enhanced_bars", request.ticker_key))
    # the stand-in's data begin on 2023-12-28: three sessions before start, where the ATR needs five,
    # so the first tradable session is the third of the range, and the metadata says so
    loaded = sorted(raw.select(session_date_expr(parse_session("forex", "UTC")).unique()).to_series().to_list())
    assert loaded[:4] == [dt.date(2023, 12, 28), dt.date(2023, 12, 29), dt.date(2024, 1, 1), dt.date(2024, 1, 2)]
    first = loaded[5]
    assert enhanced["session_date"].min() == dt.date(2024, 1, 2)
    assert enhanced.filter(pl.col("atr").is_null())["session_date"].max() < first
    assert enhanced.filter(pl.col("session_date") >= first)["atr"].null_count() == 0
    enhanced_meta = next(e.metadata for e in events if "first_tradable_session" in e.metadata)
    assert enhanced_meta["first_tradable_session"].value == str(first)
    meta = lake.read_table(lake.key("ticker-meta", "ticker_meta", request.ticker_key)).row(0, named=True)
    assert (meta["tick_size"], meta["asset_class"], meta["source"], meta["synthetic"]) == (0.00001, "forex", "polygon", False)
    for event in events:
        assert API_KEY not in repr(event.metadata)
