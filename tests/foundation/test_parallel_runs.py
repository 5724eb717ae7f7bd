"""MOCHI_PARALLEL_RUNS: how many scenario runs `mochi backtest` executes at once."""

import pytest

from mochi_assets.runner import parallel_runs
from mochi_resources.errors import MochiError


def test_default_is_one_at_a_time(monkeypatch):
    monkeypatch.delenv("MOCHI_PARALLEL_RUNS", raising=False)
    assert parallel_runs() == 1


@pytest.mark.parametrize("text, value", [("1", 1), (" 3 ", 3)])
def test_set_explicitly(monkeypatch, text, value):
    monkeypatch.setenv("MOCHI_PARALLEL_RUNS", text)
    assert parallel_runs() == value


@pytest.mark.parametrize("text", ["two", "0", "-1", "1.5"])
def test_a_bad_value_names_the_variable(monkeypatch, text):
    monkeypatch.setenv("MOCHI_PARALLEL_RUNS", text)
    with pytest.raises(MochiError, match="MOCHI_PARALLEL_RUNS"):
        parallel_runs()


def test_parallel_only_for_two_scenarios_or_more():
    from mochi_assets.request import parse_request
    from mochi_assets.run_worker import wants_workers

    grid = {"offset_ticks": [0, 10], "stop_atr": [0.5, 1.0], "limit_atr": [1.0, 2.0]}
    base = {"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-12-31"}
    two = parse_request({**base, "scenarios": {"a": {"direction": "long", **grid}, "b": {"direction": "short", **grid}}})
    one = parse_request({**base, "scenarios": {"a": {"direction": "long", **grid}}})
    derived = parse_request(base)  # four derived families
    assert wants_workers(two, 2) and wants_workers(derived, 2)
    assert not wants_workers(one, 2) and not wants_workers(two, 1)
