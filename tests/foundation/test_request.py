"""Request documents: defaults, and one clear message per bad field."""

import datetime as dt
import json

import pytest

from mochi_assets.request import BacktestRequest, load_request, parse_request
from mochi_resources.errors import RequestError

GOOD = {"ticker": "C:XAUUSD", "start": "2015-01-01", "end": "2024-12-31"}


def test_defaults_are_filled_in():
    req = parse_request(GOOD)
    assert req.timezone == "America/New_York"
    assert (req.atr.short, req.atr.long, req.atr.alpha) == (14, 50, 0.5)
    assert req.entry_times == ["09:30"]
    assert (req.duration_min, req.timeout_min, req.cost_ticks) == (240, 30, 2.0)
    assert req.scenarios is None
    assert req.ticker_key == "C_XAUUSD"


def test_design_example_document_parses(tmp_path):
    doc = tmp_path / "req.yaml"
    doc.write_text(
        """
ticker: "C:XAUUSD"
start: 2015-01-01
end: 2024-12-31
timezone: America/New_York
atr: {short: 14, long: 50, alpha: 0.5}
entry_times: ["09:30"]
duration_min: 240
timeout_min: 30
cost_ticks: 2
scenarios:
  breakout-long:
    direction: long
    offset_ticks: [0, 5, 10]
    stop_atr: [0.5, 1.0, 1.5]
    limit_atr: [1.0, 2.0]
"""
    )
    req = load_request(doc)
    assert req.start == dt.date(2015, 1, 1)
    assert req.scenarios["breakout-long"].offset_ticks == [0, 5, 10]


def test_json_documents_parse(tmp_path):
    doc = tmp_path / "req.json"
    doc.write_text(json.dumps(GOOD))
    assert load_request(doc).ticker == "C:XAUUSD"


def test_hash_is_stable_and_sensitive():
    a, b = parse_request(GOOD), parse_request(dict(GOOD))
    assert a.request_hash == b.request_hash
    assert parse_request({**GOOD, "cost_ticks": 3}).request_hash != a.request_hash


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"end": "2014-01-01"}, "end", "inverted"),
        ({"end": "2015-01-01"}, "end", "empty"),
        ({"atr": {"short": 0}}, "atr.short", "greater than 0"),
        ({"atr": {"long": -5}}, "atr.long", "greater than 0"),
        ({"atr": {"alpha": 1.5}}, "atr.alpha", "less than or equal to 1"),
        ({"atr": {"alpha": -0.1}}, "atr.alpha", "greater than or equal to 0"),
        ({"duration_min": 0}, "duration_min", "greater than 0"),
        ({"timeout_min": -1}, "timeout_min", "greater than 0"),
        ({"cost_ticks": -1}, "cost_ticks", "greater than or equal to 0"),
        ({"entry_times": ["9:30"]}, "entry_times", "HH:MM"),
        ({"entry_times": ["24:00"]}, "entry_times", "HH:MM"),
        ({"entry_times": []}, "entry_times", "at least one"),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"start": "2015-13-01"}, "start", "date"),
        ({"ticker": "../etc"}, "ticker", "valid symbol"),
        ({"ticker": "A B"}, "ticker", "valid symbol"),
        ({"scenarios": {"x": {"direction": "sideways"}}}, "scenarios.x.direction", "'long' or 'short'"),
        ({"scenarios": {"x": {"direction": "long", "stop_atr": []}}}, "scenarios.x.stop_atr", "at least one"),
        ({"scenarios": {"x": {"direction": "long", "offset_ticks": []}}}, "scenarios.x.offset_ticks", "at least one"),
        ({"scenarios": {"Bad Name": {"direction": "long"}}}, "scenarios", "not a valid scenario name"),
        ({"scenarios": {"x": {"direction": "long", "limit_atr": [0]}}}, "scenarios.x.limit_atr", "greater than 0"),
        ({"colour": "red"}, "colour", "not a known key"),
        ({"atr": {"short": 20, "long": 10}}, "atr", "must not be shorter"),
    ],
)
def test_each_bad_field_is_named(change, field, words):
    doc = {**GOOD, **change}
    with pytest.raises(RequestError) as err:
        parse_request(doc, source="req.yaml")
    text = str(err.value)
    assert text.startswith("req.yaml: invalid backtest request")
    assert any(line.strip().startswith(f"{field}") and words in line for line in text.splitlines()), text


def test_missing_keys_are_required():
    with pytest.raises(RequestError) as err:
        parse_request({"ticker": "SYN:GOLD"})
    assert "start: is required" in str(err.value) and "end: is required" in str(err.value)


def test_unreadable_and_malformed_files_name_the_file(tmp_path):
    with pytest.raises(RequestError, match="nope.yaml: cannot read"):
        load_request(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ticker: [unclosed\n")
    with pytest.raises(RequestError, match="bad.yaml: not valid YAML or JSON"):
        load_request(bad)
    listdoc = tmp_path / "list.yaml"
    listdoc.write_text("- a\n- b\n")
    with pytest.raises(RequestError, match="list.yaml: a request must be a mapping"):
        load_request(listdoc)


def test_model_is_the_documented_one():
    assert set(BacktestRequest.model_fields) >= {
        "ticker", "start", "end", "timezone", "atr", "entry_times", "duration_min", "timeout_min", "cost_ticks", "scenarios",
    }


def test_trader_grid_follows_the_traders_contract():
    from mochi_assets.contracts import TRADER_COLUMNS
    from mochi_assets.scenarios.grids import TRADER_SCHEMA

    assert tuple(TRADER_SCHEMA) == TRADER_COLUMNS
