"""Shared fixtures: every test that touches the lake or Dagster gets its own MOCHI_HOME."""

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same generated examples every time (a failure there must be reproducible, and a
# clean run must not turn red by chance); locally every run explores new examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))

# How pytest-xdist shares the suite between its workers (`-n 2 --dist loadscope`, pyproject.toml).
# A worker takes whole work units: a module (so a module-scoped fixture, e.g. one backtest read by
# several tests, is built once), or one of these groups.
# Directories whose tests share a session-scoped fixture worth building once (a SeaweedFS server,
# the reporting frames).
SHARED_SESSION_FIXTURES = {"lake", "reporting"}
# Modules that start whole `mochi` backtests (several cores and up to gigabytes each) or assert
# how fast a process stops: they run one after another on one worker, never two at once, while
# the other worker runs the rest of the suite; the longest unit, so it is handed out first.
HEAVY = "heavy-backtests"
HEAVY_MODULES = {
    "automation/test_pool.py",
    "e2e/test_concurrent_starts.py",
    "e2e/test_crash_recovery.py",
    "e2e/test_signals.py",
    "faults/test_fault_scale.py",
    "faults/test_fault_workers.py",
}


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: HEAVY, a directory of SHARED_SESSION_FIXTURES, or its module."""
    module = nodeid.split("::", 1)[0]
    name = module.removeprefix("tests/")
    if name in HEAVY_MODULES:
        return HEAVY
    top = name.split("/", 1)[0]
    return f"tests/{top}" if top in SHARED_SESSION_FIXTURES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope` with work_unit() as the scope. (xdist's own `loadgroup` relies on
    rewriting node ids, which pytest 9.2 no longer allows: its groups are silently ignored.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from collections import OrderedDict

    from xdist.scheduler import LoadScopeScheduling

    class HeavyFirst(OrderedDict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if key == HEAVY:
                self.move_to_end(key, last=False)

    class WorkUnits(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            self.workqueue = HeavyFirst()

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # collection order, HEAVY first
    return WorkUnits(config, log)


@pytest.fixture
def mochi_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "mochi"
    monkeypatch.setenv("MOCHI_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MOCHI_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("MOCHI_BUCKET_PREFIX", raising=False)
    return home
