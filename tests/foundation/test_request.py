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


# --- numbers that are numbers, documents that are documents, limits ----------------------------

from mochi_assets.request import parse_request_text, trader_bounds  # noqa: E402
from mochi_resources.settings import Limits  # noqa: E402

HEAD = "ticker: SYN:GOLD\nstart: 2024-01-01\nend: 2024-02-01\n"


def one_error(text: str, **limits) -> str:
    with pytest.raises(RequestError) as err:
        parse_request_text(text, "r.yaml", Limits(**limits) if limits else None)
    return str(err.value)


@pytest.mark.parametrize(
    "line, field",
    [
        ("tick_size: .inf", "tick_size"),
        ("tick_size: 1e300", "tick_size"),
        ("tick_size: .nan", "tick_size"),
        ("cost_ticks: .inf", "cost_ticks"),
        ("cost_ticks: -.inf", "cost_ticks"),
        ("cost_ticks: Infinity", "cost_ticks"),
        ("cost_ticks: 1e12", "cost_ticks"),
        ("atr: {alpha: .nan}", "atr.alpha"),
        ("atr: {short: 1000000000}", "atr.short"),
        ("duration_min: 100000000", "duration_min"),
        ("scenarios: {a: {direction: long, stop_atr: [.inf]}}", "scenarios.a.stop_atr.0"),
        ("scenarios: {a: {direction: long, limit_atr: [1, .nan]}}", "scenarios.a.limit_atr.1"),
        ("scenarios: {a: {direction: long, offset_ticks: [5, 100000000000]}}", "scenarios.a.offset_ticks.1"),
        ("walk_forward: {random_paths: 1000000000000000000}", "walk_forward.random_paths"),
        ("walk_forward: {mc_paths: 10000000}", "walk_forward.mc_paths"),
        ("walk_forward: {spa_reps: 10000000}", "walk_forward.spa_reps"),
        ("walk_forward: {is_sessions: 1000000}", "walk_forward.is_sessions"),
        ("walk_forward: {top: 100000}", "walk_forward.top"),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused_naming_the_field(line, field):
    text = one_error(HEAD + line + "\n")
    assert text.startswith("r.yaml: invalid backtest request")
    assert any(row.strip().startswith(field + ":") for row in text.splitlines()[1:]), text


@pytest.mark.parametrize(
    "text, key, line",
    [
        (HEAD + "start: 2024-01-05\n", "start", 4),
        (HEAD + "scenarios:\n  a: {direction: long, stop_atr: [1], stop_atr: [2]}\n", "stop_atr", 5),
        ('{"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-02-01",\n "end": "2024-03-01"}', "end", 2),
    ],
)
def test_duplicate_keys_are_an_error_naming_the_key(text, key, line):
    assert one_error(text) == f"r.yaml: line {line}: key {key!r} is given twice in the same mapping"


@pytest.mark.parametrize(
    "text, field",
    [
        ("ticker: SYN:GOLD\nstart: 2024-13-01\nend: 2024-12-31\n", "start"),
        ("ticker: SYN:GOLD\nstart: 2024-01-01\nend: 2024-02-30\n", "end"),
    ],
)
def test_impossible_unquoted_dates_are_refused_naming_the_field(text, field):
    # YAML reads an unquoted 2024-13-01 as a date and PyYAML's constructor raised a bare
    # ValueError ("month must be in 1..12") that reached the user as a traceback.
    message = one_error(text)
    assert message.startswith("r.yaml: invalid backtest request"), message
    assert any(row.strip().startswith(field + ":") for row in message.splitlines()[1:]), message


def test_unquoted_and_quoted_dates_give_the_same_request():
    unquoted = parse_request_text(HEAD, "r.yaml")
    quoted = parse_request_text('ticker: SYN:GOLD\nstart: "2024-01-01"\nend: "2024-02-01"\n', "r.yaml")
    assert unquoted == quoted
    assert unquoted.request_hash == quoted.request_hash
    assert str(unquoted.start) == "2024-01-01"


def test_deep_nesting_is_refused_without_recursion():
    deep = HEAD + "scenarios: " + "[" * 100_000 + "]" * 100_000 + "\n"
    text = one_error(deep)
    assert "nesting depth exceeds the limit of 16 (set MOCHI_MAX_REQUEST_DEPTH" in text
    assert "\n" not in text


def test_alias_bombs_count_expanded():
    bomb = HEAD + "x: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
    for name, prev in zip("bcdef", "abcde"):
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    assert "number of values in the document exceeds the limit of 100,000 (set MOCHI_MAX_REQUEST_NODES" in one_error(bomb)


def test_oversize_documents_are_refused_before_reading(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(HEAD + "# " + "x" * 2_000_000 + "\n")
    with pytest.raises(RequestError) as err:
        load_request(big)
    assert str(err.value) == (
        f"{big}: the file's size ({big.stat().st_size:,} bytes) exceeds the limit of 1,048,576 "
        "(set MOCHI_MAX_REQUEST_BYTES to raise it)"
    )
    assert "r.yaml: the document's size (51 bytes) exceeds the limit of 20 " in one_error(HEAD, request_bytes=20)


def test_limits_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCHI_MAX_REQUEST_BYTES", "50")
    doc = tmp_path / "r.yaml"
    doc.write_text(HEAD)
    with pytest.raises(RequestError, match="limit of 50 .set MOCHI_MAX_REQUEST_BYTES"):
        load_request(doc)
    monkeypatch.setenv("MOCHI_MAX_REQUEST_BYTES", "lots")
    with pytest.raises(Exception, match="MOCHI_MAX_REQUEST_BYTES: 'lots' is not a number"):
        load_request(doc)


def test_derived_grids_are_counted_at_their_largest():
    req = parse_request({**GOOD, "entry_times": ["09:30", "10:00"], "duration_min": [60, 120]})
    # breakouts: 4 offsets x 4 stops x 4 limits; pullbacks: 3 offsets; times 2 x durations 2
    assert trader_bounds(req) == {"breakout-long": 256, "breakout-short": 256, "pullback-long": 192, "pullback-short": 192}


def test_grids_over_the_trader_limits_are_refused():
    axis = list(range(1, 101))
    family = {"direction": "long", "offset_ticks": axis, "stop_atr": axis, "limit_atr": axis[:11]}
    text = one_error(HEAD + f"scenarios: {{a: {json.dumps(family)}}}\n")
    assert text.splitlines() == [
        "r.yaml: request over a limit",
        "  scenarios.a: a grid of 110,000 traders exceeds the limit of 100,000 "
        "(set MOCHI_MAX_TRADERS_PER_SCENARIO to raise it)",
    ]
    # a 100,000-trader family is within the defaults; five of them are not
    family["limit_atr"] = axis[:10]
    five = {name: family for name in "abcde"}
    text = one_error(HEAD + f"scenarios: {json.dumps(five)}\n")
    assert "scenarios: 500,000 traders in all exceeds the limit of 400,000 (set MOCHI_MAX_TRADERS_PER_REQUEST" in text
    assert "traders_per_scenario" not in text and "MOCHI_MAX_TRADERS_PER_SCENARIO" not in text
    # a grid of 1.44e12 traders is refused at once, before anything is expanded
    huge = {"direction": "long", "offset_ticks": list(range(1200)), "stop_atr": [i / 10 for i in range(1, 1001)],
            "limit_atr": [i / 10 for i in range(1, 1001)], "duration_min": list(range(1, 1201))}
    assert "a grid of 1,440,000,000,000 traders" in one_error(
        HEAD + f"scenarios: {{a: {json.dumps(huge)}}}\n", request_nodes=10**6
    )


def test_ranges_over_the_year_limit_are_refused():
    text = one_error("ticker: SYN:GOLD\nstart: 1970-01-01\nend: 2020-01-01\n")
    assert "end: the range 1970-01-01 to 2020-01-01 (50.0 years) exceeds the limit of 25 (set MOCHI_MAX_YEARS" in text
    assert parse_request_text("ticker: SYN:GOLD\nstart: 2000-01-01\nend: 2024-12-31\n", "r.yaml").end.year == 2024


def test_trader_years_bound_the_trades_of_a_family():
    axis = list(range(1, 51))
    family = {"direction": "long", "offset_ticks": axis, "stop_atr": axis, "limit_atr": [1, 2]}  # 5,000 traders
    head = "ticker: SYN:GOLD\nstart: 2010-01-01\nend: 2024-12-31\n"
    text = one_error(head + f"scenarios: {{a: {json.dumps(family)}}}\n")
    assert text.splitlines()[1] == (
        "  scenarios.a: 5,000 traders over 15.0 years (74,990 trader-years) exceeds the limit of 50,000 "
        "(set MOCHI_MAX_TRADER_YEARS to raise it); shrink the grid or the range"
    )
    assert parse_request_text(head.replace("2010", "2020") + f"scenarios: {{a: {json.dumps(family)}}}\n", "r.yaml")
