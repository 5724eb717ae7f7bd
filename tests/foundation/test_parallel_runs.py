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


def test_unset_it_follows_the_size_of_the_backtest_and_the_machine(monkeypatch):
    from mochi_assets.request import parse_request
    from mochi_assets.run_worker import AUTO_MAX_TRADER_DAYS, auto_parallel_runs

    monkeypatch.delenv("MOCHI_PARALLEL_RUNS", raising=False)
    base = {"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-12-31"}  # 366 days
    readme = parse_request(base)  # four derived families, at most 64 traders each
    assert parallel_runs(readme) == auto_parallel_runs(readme)
    gib = 2**30
    assert auto_parallel_runs(readme, cpus=2, memory_bytes=24 * gib) == 2
    assert auto_parallel_runs(readme, cpus=1, memory_bytes=24 * gib) == 1  # nothing to overlap on
    assert auto_parallel_runs(readme, cpus=8, memory_bytes=2 * gib) == 1  # a small pod
    # the largest scenario decides: 10 x 10 x 10 x 5 = 5,000 traders x 366 days is over the bound
    big = {"direction": "long", "offset_ticks": [0, 10, 20, 40, 80], "stop_atr": [0.1 * i for i in range(1, 11)],
           "limit_atr": [0.2 * i for i in range(1, 11)], "duration_min": [15 * i for i in range(1, 11)]}
    small = {"direction": "short", "offset_ticks": [0], "stop_atr": [1.0], "limit_atr": [2.0]}
    mixed = parse_request({**base, "scenarios": {"big": big, "small": small}})
    assert 5_000 * 366 <= AUTO_MAX_TRADER_DAYS < 5_000 * 3 * 366
    assert auto_parallel_runs(mixed, cpus=2, memory_bytes=24 * gib) == 2
    ten_years = parse_request({**base, "start": "2015-01-01", "scenarios": {"big": big, "small": small}})
    assert auto_parallel_runs(ten_years, cpus=2, memory_bytes=24 * gib) == 1
    one = parse_request({**base, "scenarios": {"small": small}})
    assert auto_parallel_runs(one, cpus=2, memory_bytes=24 * gib) == 1  # one scenario: nothing to run beside it
