"""Bounded waits: an endpoint that accepts connections and never answers fails in bounded time
with one line naming it (Polygon and S3, the latter through the real `mochi` command)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mochi_resources.errors import LakeError, ProviderError
from mochi_resources.polygon import PolygonClient, PolygonConfig
from mochi_resources.s3 import S3Store


def test_polygon_that_never_answers_fails_within_the_bound(silent_server):
    config = PolygonConfig(api_key="k", base_url=silent_server.url, requests_per_minute=0,
                           max_retries=2, timeout_s=0.5, backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        PolygonClient(config).get("/v2/aggs/ticker/AAPL/range/1/day/1/2", what="day bars of AAPL")
    elapsed = time.monotonic() - started
    # (retries + 1) x timeout + backoffs (at most 0.05 + 0.1), with slack for a loaded machine
    assert elapsed < 3 * 0.5 + 0.15 + 2.0
    assert str(err.value) == (
        f"day bars of AAPL: the Polygon API at {silent_server.url} failed 3 times, last: no answer within 0.5 s"
    )


def test_s3_that_never_answers_fails_within_the_bound(silent_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    store = S3Store(silent_server.url, ["silent-raw"], max_attempts=2, connect_timeout_s=1, read_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(LakeError) as err:
        store.check()
    elapsed = time.monotonic() - started
    # 2 attempts x 1 s read timeout + botocore's first backoff (below 1 s), with slack
    assert elapsed < 2 * 1 + 1 + 3.0
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        f"S3 endpoint {silent_server.url}: no answer within 1 s in 2 attempt(s) while trying to check bucket s3://silent-raw"
    )


def test_mochi_command_against_a_silent_s3_endpoint_ends_with_one_line(silent_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "POLYGON_API_KEY", "AWS_PROFILE")}
    env.update({
        "MOCHI_HOME": str(tmp_path / "home"),
        "MOCHI_S3_ENDPOINT": silent_server.url,
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "MOCHI_S3_READ_TIMEOUT_S": "1",
        "MOCHI_S3_MAX_ATTEMPTS": "2",
    })
    proc = subprocess.run([sys.executable, "-m", "mochi_assets.cli", "results"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mochi: error: S3 endpoint {silent_server.url}: no answer within 1 s in 2 attempt(s)"), proc.stderr
    assert "Traceback" not in proc.stderr
