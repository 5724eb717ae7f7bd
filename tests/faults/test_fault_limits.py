"""Requests over a limit are refused by the real `mochi` command before any run: one clear
message naming the limit and how to raise it, and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MOCHI = [sys.executable, "-m", "mochi_assets.cli"]
AXIS = list(range(1, 101))


def mochi(args, home, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    environ.update({"MOCHI_HOME": str(home), **env})
    return subprocess.run([*MOCHI, *args], capture_output=True, text=True, env=environ, timeout=120)


@pytest.mark.parametrize(
    "document, env, expected",
    [
        (
            {"scenarios": {"wide": {"direction": "long", "offset_ticks": AXIS, "stop_atr": AXIS, "limit_atr": AXIS}}},
            {},
            "  scenarios.wide: a grid of 1,000,000 traders exceeds the limit of 100,000 "
            "(set MOCHI_MAX_TRADERS_PER_SCENARIO to raise it)",
        ),
        (
            {"entry_times": ["09:30", "10:30"]},
            {"MOCHI_MAX_TRADERS_PER_REQUEST": "400"},
            "  scenarios: 448 traders in all exceeds the limit of 400 (set MOCHI_MAX_TRADERS_PER_REQUEST to raise it)",
        ),
        (
            {"start": "1990-01-02"},
            {},
            "  end: the range 1990-01-02 to 2024-03-22 (34.2 years) exceeds the limit of 25 "
            "(set MOCHI_MAX_YEARS to raise it)",
        ),
    ],
)
def test_requests_over_a_limit_are_refused_before_any_run(tmp_path, document, env, expected):
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"ticker": "SYN:GOLD", "start": "2024-03-04", "end": "2024-03-22", **document}))
    home = tmp_path / "home"
    proc = mochi(["backtest", "--request", str(req)], home, **env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == f"mochi: error: {req}: request over a limit" and expected in lines[1:], proc.stderr
    assert not home.exists()  # no run, no instance, no lake


def test_oversize_deep_and_duplicate_documents_are_refused_in_one_line(tmp_path):
    home = tmp_path / "home"
    head = "ticker: SYN:GOLD\nstart: 2024-03-04\nend: 2024-03-22\n"
    cases = {
        "big.yaml": (head + "#" * 5000 + "\n", {"MOCHI_MAX_REQUEST_BYTES": "4096"},
                     "the file's size (5,052 bytes) exceeds the limit of 4,096 (set MOCHI_MAX_REQUEST_BYTES to raise it)"),
        "deep.yaml": (head + "scenarios: " + "[" * 50_000 + "]" * 50_000 + "\n", {},
                      "line 4: the document's nesting depth exceeds the limit of 16 (set MOCHI_MAX_REQUEST_DEPTH to raise it)"),
        "dup.json": ('{"ticker": "SYN:GOLD", "start": "2024-03-04", "end": "2024-03-22", "end": "2024-03-29"}', {},
                     "line 1: key 'end' is given twice in the same mapping"),
        "date.yaml": (head.replace("2024-03-04", "2024-13-04"), {}, "invalid backtest request"),
        "inf.yaml": (head + "cost_ticks: .inf\n", {}, "invalid backtest request"),
    }
    for name, (text, env, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        commands = [["backtest", "--request", str(path)]] + ([["submit", str(path)]] if name == "dup.json" else [])
        for command in commands:
            proc = mochi(command, home, **env)
            assert proc.returncode == 2, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert lines[0] == f"mochi: error: {path}: {message}", proc.stderr
            assert "Traceback" not in proc.stderr
            if name == "date.yaml":  # YAML's date reading used to raise a bare ValueError
                assert lines[1].startswith("  start: Input should be a valid date"), proc.stderr
    assert "  cost_ticks: Input should be a finite number" in proc.stderr
    assert not home.exists()


@pytest.mark.parametrize(
    "env, message",
    [
        ({"NUMBA_NUM_THREADS": "0"}, "NUMBA_NUM_THREADS: 0 must be at least 1 (the simulation's threads, e.g. 2)"),
        ({"NUMBA_NUM_THREADS": "two"}, "NUMBA_NUM_THREADS: 'two' is not a whole number (the simulation's threads, e.g. 2)"),
        ({"MOCHI_EXECUTOR": "bogus"}, "MOCHI_EXECUTOR: 'bogus' is not one of in_process, multiprocess, k8s"),
    ],
)
def test_bad_process_variables_are_refused_before_any_import_in_one_line(tmp_path, env, message):
    # NUMBA_NUM_THREADS=0 raised a traceback from numba's import; MOCHI_EXECUTOR=bogus failed the
    # first run with Dagster's "Failure during initialization for job ..."
    home = tmp_path / "home"
    proc = mochi(["backtest", "SYN:GOLD", "--start", "2024-01-01", "--end", "2024-02-15", "--no-progress"], home, **env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"mochi: error: {message}"], proc.stderr
    assert not home.exists()


def test_environment_problem_accepts_what_numba_and_the_executor_accept():
    from mochi_assets.environment import environment_problem

    assert environment_problem({}) is None
    assert environment_problem({"NUMBA_NUM_THREADS": "2", "MOCHI_EXECUTOR": "k8s"}) is None
    assert environment_problem({"NUMBA_NUM_THREADS": "", "MOCHI_EXECUTOR": ""}) is None  # unset in effect
    assert environment_problem({"NUMBA_NUM_THREADS": "-1"}).startswith("NUMBA_NUM_THREADS: -1")
