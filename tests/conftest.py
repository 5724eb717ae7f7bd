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


@pytest.fixture
def mochi_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "mochi"
    monkeypatch.setenv("MOCHI_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MOCHI_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("MOCHI_BUCKET_PREFIX", raising=False)
    return home
