"""Partition keys: sanitized tickers, safe scenario names."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mochi_assets.partitions import check_scenario_name, check_ticker_key, sanitize_ticker
from mochi_resources.errors import RequestError


@pytest.mark.parametrize(
    "ticker, key",
    [("C:XAUUSD", "C_XAUUSD"), ("X:BTCUSD", "X_BTCUSD"), ("aapl", "AAPL"), ("SYN:GOLD", "SYN_GOLD"), ("BRK.B", "BRK.B")],
)
def test_sanitize(ticker, key):
    assert sanitize_ticker(ticker) == key


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a b", "x'y", 'x"y', "a\\b", "..", "A..B", "x" * 41, "|X", "a|b", "%2e"])
def test_unsafe_tickers_are_refused(bad):
    with pytest.raises(RequestError):
        sanitize_ticker(bad)


@given(st.text(max_size=60))
def test_any_accepted_key_is_path_and_sql_safe(text):
    try:
        key = sanitize_ticker(text)
    except RequestError:
        return
    assert check_ticker_key(key) == key
    assert not set(key) & set("/\\:'\" |%*?") and ".." not in key


def test_scenario_names():
    assert check_scenario_name("breakout-long") == "breakout-long"
    for bad in ["Breakout", "a_b", "-x", "", "a/b", "x" * 49]:
        with pytest.raises(RequestError):
            check_scenario_name(bad)
