"""MOCHI_PARALLEL_RUNS: how many scenario runs `mochi backtest` executes at once."""

import pytest

from mochi_assets.runner import parallel_runs
from mochi_resources.errors import MochiError


def test_default_is_the_usable_cpus_at_most_two(monkeypatch):
    monkeypatch.delenv("MOCHI_PARALLEL_RUNS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert parallel_runs() == 2
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
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


def _request(years: int, stops: int):
    from mochi_assets.request import parse_request

    grid = {"offset_ticks": [0, 10], "stop_atr": [0.5 + i / 10 for i in range(stops)], "limit_atr": [1.0, 2.0]}
    return parse_request({
        "ticker": "SYN:GOLD", "start": f"{2025 - years}-01-01", "end": "2024-12-31",
        "scenarios": {"a": {"direction": "long", **grid}, "b": {"direction": "short", **grid}},
    })


def test_only_small_multi_scenario_backtests_go_parallel_by_default(monkeypatch):
    from mochi_assets.run_worker import wants_workers

    monkeypatch.delenv("MOCHI_PARALLEL_RUNS", raising=False)
    small, large = _request(1, 2), _request(10, 200)
    assert wants_workers(small, 2)
    assert not wants_workers(small, 1)
    assert not wants_workers(large, 2)  # 2 x 200 x 2 x entry times x durations traders over 10 years
    monkeypatch.setenv("MOCHI_PARALLEL_RUNS", "2")  # asked for: always
    assert wants_workers(large, 2)
