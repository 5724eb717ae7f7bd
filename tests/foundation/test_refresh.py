"""Refreshing a tracked ticker: only provider tickers grow; fixed sources come back unchanged."""

import datetime as dt

from mochi_assets.market_data.sources import refresh_request
from mochi_assets.request import parse_request
from mochi_assets.store import save_request, stored_request
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

NOW = dt.datetime(2024, 4, 25, 12, 0, tzinfo=dt.UTC)


def test_synthetic_request_is_a_fixed_source(mochi_home):
    lake = Lake(MochiSettings.from_env())
    request = parse_request({"ticker": "SYN:GOLD", "start": "2024-03-01", "end": "2024-04-19"})
    save_request(lake, request)
    assert refresh_request(lake, request, now=NOW) == request
    assert stored_request(lake, "SYN_GOLD").request_hash == request.request_hash
