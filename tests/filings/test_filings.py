"""SEC filings: the EDGAR client, the sec_filings asset, the filing-day lens and `mochi filings`,
against a loopback stand-in of EDGAR's endpoints (tests/filings/edgar_standin.py)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from mochi_assets.filings.assets import filing_day_lens, sec_filings
from mochi_assets.filings.sec import fetch_filings, select_filings
from mochi_assets.partitions import TICKER_DIMENSION, ticker_scenario_partitions_def
from mochi_assets.reporting.lens import by_filing_day
from mochi_resources.edgar import EdgarClient, EdgarConfigError, EdgarError, EdgarResource, EdgarSettings
from mochi_resources.io_manager import LakeIOManager, LakeResource
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

from tests.filings.edgar_standin import APPLE_CIK, OLDER, RECENT, EdgarStandIn
from tests.instances import mochi_instance_for_test

UA = "Mochi tests ops@example.com"


@pytest.fixture
def edgar():
    with EdgarStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def sec_env(edgar, mochi_home, monkeypatch):
    monkeypatch.setenv("MOCHI_SEC_USER_AGENT", UA)
    monkeypatch.setenv("MOCHI_SEC_BASE_URL", edgar.url)
    monkeypatch.delenv("MOCHI_SEC_DATA_BASE_URL", raising=False)
    monkeypatch.delenv("MOCHI_SEC_RPS", raising=False)
    return edgar


def _client(edgar, sleeps=None) -> EdgarClient:
    settings = EdgarSettings(user_agent=UA, base_url=edgar.url, data_base_url=edgar.url)
    return EdgarClient(settings, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_ticker_to_cik_then_every_filing_with_its_primary_document_url(edgar):
    client = _client(edgar)
    assert client.cik_of("AAPL") == (APPLE_CIK, "Apple Inc.")
    assert client.cik_of("brk.b")[0] == 1067983  # EDGAR writes share classes with '-'
    assert client.cik_of("NOSUCH") is None
    filings = fetch_filings(client, "AAPL")
    assert filings.height == len(RECENT) + len(OLDER)  # the older submissions file is merged in
    assert filings["filing_date"].is_sorted(descending=True)
    ten_k = filings.filter(pl.col("form") == "10-K").row(0, named=True)
    assert ten_k["accession_number"] == "0000320193-23-000106"
    assert ten_k["filing_date"] == dt.date(2023, 11, 3) and ten_k["report_date"] == dt.date(2023, 9, 30)
    assert ten_k["primary_document_url"] == (
        f"{edgar.url}/Archives/edgar/data/{APPLE_CIK}/000032019323000106/aapl-20230930.htm")
    assert ten_k["company"] == "Apple Inc." and ten_k["cik"] == APPLE_CIK
    assert {ua for _, ua, _ in edgar.requests} == {UA}
    assert select_filings(filings, "10-q", dt.date(2024, 1, 1)).height == 3


def test_requests_stay_within_ten_per_second(edgar):
    now = [100.0]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    client = EdgarClient(EdgarSettings(user_agent=UA, base_url=edgar.url, data_base_url=edgar.url),
                         sleep=sleep, clock=lambda: now[0])
    for i in range(12):
        now[0] += 0.03 * (i % 3)  # requests that take 0 to 60 ms
        client._pace()
        sent.append(now[0])
    assert min(b - a for a, b in zip(sent, sent[1:])) >= 0.1 - 1e-9
    # and on the wire, with the real clock: six requests span at least five tenths of a second
    real = EdgarClient(EdgarSettings(user_agent=UA, base_url=edgar.url, data_base_url=edgar.url))
    for _ in range(6):
        real.get_json(f"{edgar.url}/files/company_tickers.json")
    arrivals = [t for _, _, t in edgar.requests]
    assert arrivals[-1] - arrivals[0] >= 0.45


def test_429_and_503_are_retried_honouring_retry_after(edgar):
    edgar.queued = [(429, {"Retry-After": "2"}), (503, {})]
    sleeps: list[float] = []
    client = _client(edgar, sleeps)
    assert client.cik_of("AAPL")[0] == APPLE_CIK
    assert len(edgar.requests) == 3
    assert 2.0 in sleeps  # the Retry-After of the 429
    assert any(0.75 < s < 1.25 for s in sleeps)  # the backoff of a second failed attempt (1 s, jittered)


def test_persistent_503_fails_after_bounded_retries_and_403_fails_at_once(edgar):
    edgar.queued = [(503, {})] * 10
    client = _client(edgar)
    client.max_retries = 2
    with pytest.raises(EdgarError, match="HTTP 503, still failing after 2 retries"):
        client.cik_of("AAPL")
    assert len(edgar.requests) == 3
    edgar.queued = [(403, {})]
    with pytest.raises(EdgarError, match="403 Forbidden"):
        client.cik_of("AAPL")
    assert len(edgar.requests) == 4


def test_a_host_that_does_not_resolve_fails_at_once_and_a_silent_resolver_is_retried(monkeypatch):
    def resolver_says(errno, text):
        def getaddrinfo(*_args, **_kwargs):
            raise socket.gaierror(errno, text)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    sleeps: list[float] = []
    client = EdgarClient(EdgarSettings(user_agent=UA, base_url="http://www.sec.invalid",
                                       data_base_url="http://data.sec.invalid"), sleep=sleeps.append)
    resolver_says(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(EdgarError, match=r"www\.sec\.invalid/files/company_tickers\.json: cannot resolve the host"):
        client.cik_of("AAPL")
    assert sleeps == [] and client.requests_made == 1
    resolver_says(socket.EAI_AGAIN, "Temporary failure in name resolution")
    client.max_retries = 2
    with pytest.raises(EdgarError, match="connection failed .*still failing after 2 retries"):
        client.cik_of("AAPL")
    assert client.requests_made == 1 + 3  # the first attempt and two retries (sleeps also pace the requests)


def test_no_user_agent_refuses_before_any_request(edgar, monkeypatch):
    monkeypatch.delenv("MOCHI_SEC_USER_AGENT", raising=False)
    with pytest.raises(EdgarConfigError, match="MOCHI_SEC_USER_AGENT is not set"):
        EdgarClient(EdgarSettings.resolve(base_url=edgar.url))
    with pytest.raises(EdgarConfigError, match="not descriptive"):
        EdgarClient(EdgarSettings.resolve(user_agent="mochi", base_url=edgar.url))
    assert edgar.requests == []


def test_base_urls_default_to_the_two_edgar_hosts_or_one_stand_in(monkeypatch):
    for var in ("MOCHI_SEC_BASE_URL", "MOCHI_SEC_DATA_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    s = EdgarSettings.resolve(user_agent=UA)
    assert (s.base_url, s.data_base_url) == ("https://www.sec.gov", "https://data.sec.gov")
    monkeypatch.setenv("MOCHI_SEC_BASE_URL", "http://proxy:8080/")
    s = EdgarSettings.resolve(user_agent=UA)
    assert (s.base_url, s.data_base_url) == ("http://proxy:8080", "http://proxy:8080")
    monkeypatch.setenv("MOCHI_SEC_DATA_BASE_URL", "http://data-proxy:8080")
    assert EdgarSettings.resolve(user_agent=UA).data_base_url == "http://data-proxy:8080"
    monkeypatch.setenv("MOCHI_SEC_BASE_URL", "ftp://x")
    with pytest.raises(EdgarConfigError, match="MOCHI_SEC_BASE_URL"):
        EdgarSettings.resolve(user_agent=UA)


def _materialize(key: str):
    lake = LakeResource()
    with mochi_instance_for_test() as instance:
        instance.add_dynamic_partitions(TICKER_DIMENSION, [key])
        return dg.materialize(
            [sec_filings], partition_key=key, instance=instance, raise_on_error=False,
            resources={"lake": lake, "io_manager": LakeIOManager(lake=lake), "edgar": EdgarResource()},
        )


def test_sec_filings_asset_stores_filings_and_shows_the_latest(sec_env):
    result = _materialize("AAPL")
    assert result.success
    lake = Lake(MochiSettings.from_env())
    table = lake.read_table(lake.key("filings", "sec_filings", "AAPL"))
    assert table.height == len(RECENT) + len(OLDER)
    meta = result.asset_materializations_for_node("sec_filings")[0].metadata
    assert meta["filings"].value == 8 and meta["cik"].value == APPLE_CIK
    assert meta["latest_filing_date"].value == "2024-08-02"
    assert "0000320193-24-000081" in meta["latest"].value  # the newest, in the UI's preview
    assert meta["count_10-Q"].value == 4


def test_non_equity_ticker_is_skipped_with_a_note(sec_env):
    result = _materialize("C_XAUUSD")
    assert result.success
    meta = result.asset_materializations_for_node("sec_filings")[0].metadata
    assert "not an equity (asset class metals)" in meta["note"].value
    assert sec_env.requests == []
    lake = Lake(MochiSettings.from_env())
    assert lake.read_table(lake.key("filings", "sec_filings", "C_XAUUSD")).is_empty()


def test_asset_without_user_agent_fails_once_saying_so(sec_env, monkeypatch):
    monkeypatch.delenv("MOCHI_SEC_USER_AGENT")
    result = _materialize("AAPL")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "MOCHI_SEC_USER_AGENT is not set" in failure.step_failure_data.error.message
    assert sec_env.requests == []


def _slow_filing_lens(extract: pl.DataFrame, filings: pl.DataFrame) -> dict:
    """Reference: per trader and label, (trades, net_pnl), by looping over trades."""
    forms: dict = {}
    for f in filings.iter_rows(named=True):
        form = f["form"].upper().removesuffix("/A")
        if form in ("8-K", "10-Q", "10-K"):
            forms.setdefault(f["filing_date"], set()).add(form)
    out: dict = {}
    for t in extract.iter_rows(named=True):
        labels = sorted(forms.get(t["session_date"], set()))
        labels += ["any filing"] if labels else ["no filing"]
        for label in labels:
            n, pnl = out.get((t["trader_id"], label), (0, 0.0))
            out[(t["trader_id"], label)] = (n + 1, pnl + t["pnl"])
    return out


def test_filing_day_lens_matches_a_slow_reference():
    filings = pl.DataFrame({
        "form": ["8-K", "10-Q", "4", "10-K/A", "8-K"],
        "filing_date": [dt.date(2024, 5, 2), dt.date(2024, 5, 2), dt.date(2024, 5, 6), dt.date(2024, 5, 7),
                        dt.date(2024, 5, 9)],
    })
    days = [dt.date(2024, 5, d) for d in (1, 2, 2, 6, 7, 9, 10)]
    extract = pl.DataFrame({
        "trader_id": [1, 1, 2, 1, 2, 2, 1], "session_date": days,
        "pnl": [1.0, -2.0, 3.0, 0.5, -1.0, 2.0, 4.0], "r": [0.1, -0.2, 0.3, 0.05, -0.1, 0.2, 0.4],
    })
    table = by_filing_day(extract, filings)
    got = {(r["trader_id"], r["filing_day"]): (r["trades"], r["net_pnl"]) for r in table.iter_rows(named=True)}
    want = _slow_filing_lens(extract, filings)
    assert set(got) == set(want)
    for key, (trades, pnl) in want.items():
        assert got[key][0] == trades and got[key][1] == pytest.approx(pnl)
    assert got[(1, "no filing")] == (3, 5.5)  # a form 4 day is not a filing day of the lens
    assert table.filter(pl.col("trader_id") == 2)["filing_day"].to_list() == ["8-K", "10-Q", "10-K", "any filing"]


def test_filing_day_lens_asset_reads_the_extracts_of_every_scenario(sec_env):
    lake_res = LakeResource()
    lake = Lake(MochiSettings.from_env())
    extract = pl.DataFrame({"trader_id": [0, 0], "session_date": [dt.date(2024, 8, 1), dt.date(2024, 8, 5)],
                            "entry_ts": [dt.datetime(2024, 8, 1, 14, tzinfo=dt.UTC)] * 2,
                            "pnl": [1.0, -1.0], "r": [0.5, -0.5]})
    lake.put_table(lake.key("extracts", "trade_extracts", "AAPL", "breakout-long"), extract)
    trade_extracts_spec = dg.AssetSpec("trade_extracts", partitions_def=ticker_scenario_partitions_def,
                                       metadata={"mochi/bucket": "extracts"})
    with mochi_instance_for_test() as instance:
        instance.add_dynamic_partitions(TICKER_DIMENSION, ["AAPL"])
        instance.add_dynamic_partitions("scenario", ["breakout-long"])
        result = dg.materialize(
            [sec_filings, filing_day_lens, trade_extracts_spec], selection=[sec_filings, filing_day_lens],
            partition_key="AAPL", instance=instance,
            resources={"lake": lake_res, "io_manager": LakeIOManager(lake=lake_res), "edgar": EdgarResource()},
        )
    assert result.success
    lens = lake.read_table(lake.key("extracts", "lens_filing_days", "AAPL"))
    rows = {(r["scenario"], r["filing_day"]): r["trades"] for r in lens.iter_rows(named=True)}
    assert rows == {("breakout-long", "8-K"): 1, ("breakout-long", "any filing"): 1,
                    ("breakout-long", "no filing"): 1}


def _mochi(*args, env):
    return subprocess.run([sys.executable, "-m", "mochi_assets.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.e2e
def test_mochi_filings_command(sec_env, mochi_home):
    env = dict(os.environ)
    out = _mochi("filings", "AAPL", "--form", "10-K", env=env)
    assert out.returncode == 0, out.stderr
    assert "Apple Inc. (AAPL, CIK 320193): 1 filing(s) of form 10-K" in out.stdout
    assert "aapl-20230930.htm" in out.stdout
    offline = _mochi("filings", "AAPL", "--since", "2024-05-01", "--no-fetch", env=env)
    assert offline.returncode == 0 and "4 filing(s) since 2024-05-01" in offline.stdout
    metal = _mochi("filings", "C:XAUUSD", env=env)
    assert metal.returncode == 2
    assert metal.stderr.strip().splitlines()[-1] == (
        "mochi: error: C:XAUUSD is not an equity (asset class metals): SEC EDGAR lists filings of companies only")
    no_ua = _mochi("filings", "MSFT", env={k: v for k, v in env.items() if k != "MOCHI_SEC_USER_AGENT"})
    assert no_ua.returncode == 2 and "MOCHI_SEC_USER_AGENT is not set" in no_ua.stderr
    lake = Lake(MochiSettings.from_env())
    assert not lake.exists(lake.key("filings", "sec_filings", "MSFT"))
    bad_date = _mochi("filings", "AAPL", "--since", "May 1", env=env)
    assert bad_date.returncode == 2 and "--since: 'May 1' is not a date" in bad_date.stderr
    assert _mochi("filings", "--help", env=env).returncode == 0
