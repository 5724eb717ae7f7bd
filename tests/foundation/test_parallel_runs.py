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
