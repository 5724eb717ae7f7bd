"""Brokers and live configurations as append-only records: lifecycle, history, refusals, and
concurrent edits from two processes on the local lake and on S3 (SeaweedFS)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mochi_assets.live.brokers import BrokerError, add_broker, broker_store, get_broker, list_brokers, refuse_secrets
from mochi_assets.live.configs import (
    ConfigError,
    config_store,
    edit_config,
    get_config,
    list_configs,
    remove_broker_checked,
    set_status,
)
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

from tests.live.record_writer import risk_of

ROOT = Path(__file__).resolve().parents[2]
CID = "SYN_GOLD.breakout-long.3.paper"


def _lake() -> Lake:
    return Lake(MochiSettings.from_env())


def _config(lake: Lake, broker: str = "paper") -> dict:
    """A configuration record as promotion writes it (promotion itself is tested in test_live_forward)."""
    state = {"status": "active", "broker": broker, "ticker": "SYN:GOLD", "ticker_key": "SYN_GOLD",
             "scenario": "breakout-long", "trader_id": 3, "risk_per_trade": 0.01, "max_open": 1,
             "parameters": {"direction": "long"}, "verdict": {"significant": True}}
    return config_store(lake).append(f"SYN_GOLD.breakout-long.3.{broker}", lambda current: state, "promote")


def test_broker_add_list_remove_and_history(local_env):
    lake = _lake()
    doc = add_broker(lake, "paper", "paper", "DU123", "USD", credentials_env="PAPER_CREDS", note="paper account")
    assert (doc["version"], doc["status"], doc["credentials_env"]) == (1, "active", "PAPER_CREDS")
    with pytest.raises(BrokerError, match="broker paper already exists"):
        add_broker(lake, "paper", "paper", "DU999", "EUR")
    add_broker(lake, "ib", "interactive-brokers", "U7654321", "EUR")
    assert [b["name"] for b in list_brokers(lake)] == ["ib", "paper"]
    remove_broker_checked(lake, "paper")
    assert [b["name"] for b in list_brokers(lake)] == ["ib"]
    with pytest.raises(BrokerError, match="unknown broker 'paper' \\(known: ib\\)"):
        get_broker(lake, "paper")
    add_broker(lake, "paper", "paper", "DU456", "USD")
    history = broker_store(lake).history("paper")
    assert [(v["version"], v["action"], v["status"], v["account"]) for v in history] == [
        (1, "add", "active", "DU123"), (2, "remove", "removed", "DU123"), (3, "add", "active", "DU456")]
    files = sorted(p.name for p in (Path(local_env["MOCHI_HOME"]) / "lake/mochi-live-trades/brokers/name=paper").iterdir())
    assert files == ["v000001.json", "v000002.json", "v000003.json"]  # nothing overwritten


@pytest.mark.parametrize("fields, message", [
    ({"password": "x"}, "field 'password' would hold a secret"),
    ({"api_key": "x"}, "field 'api_key' would hold a secret"),
    ({"note": "password=hunter2"}, "note looks like a secret"),
    ({"note": "key AKIAIOSFODNN7EXAMPLE"}, "note looks like a secret"),
    ({"credentials_env": "sk_live_51HaBcDeFgHiJkLmN"}, "credentials_env looks like a secret"),
    ({"account": "q8Zr2LmX0pV7tK4wN9sB6yD3"}, "account looks like a secret"),
])
def test_secret_looking_fields_and_values_are_refused(fields, message):
    with pytest.raises(BrokerError, match=message):
        refuse_secrets(fields, "broker b")


def test_a_secret_is_refused_and_nothing_is_written(local_env):
    lake = _lake()
    with pytest.raises(BrokerError, match="looks like a secret"):
        add_broker(lake, "ib", "interactive-brokers", "U1", "USD", credentials_env="ghp_abcdefghijklmnopqrstuvwxyz0123")
    with pytest.raises(BrokerError, match="--credentials-env: 'my creds' is not an environment variable name"):
        add_broker(lake, "ib", "interactive-brokers", "U1", "USD", credentials_env="my creds")
    with pytest.raises(BrokerError, match="--currency"):
        add_broker(lake, "ib", "interactive-brokers", "U1", "dollars")
    assert broker_store(lake).names() == []
    refuse_secrets({"account": "DU1234567", "note": "IB paper account, see https://portal.example.com/a/9f3k2j5h8g7d6s"},
                   "broker ok")
    with pytest.raises(BrokerError, match="note looks like a secret"):
        refuse_secrets({"note": "https://portal.example.com/login?token=abc123"}, "broker b")


def test_configuration_edit_pause_resume_remove_and_history(local_env):
    lake = _lake()
    add_broker(lake, "paper", "paper", "DU123", "USD")
    _config(lake)
    edit_config(lake, CID, risk_per_trade=0.005)
    edit_config(lake, CID, max_open=3)
    with pytest.raises(ConfigError, match="--risk-per-trade: -0.01 must be a fraction"):
        edit_config(lake, CID, risk_per_trade=-0.01)
    with pytest.raises(ConfigError, match="--max-open: 0 must be"):
        edit_config(lake, CID, max_open=0)
    set_status(lake, CID, "paused")
    with pytest.raises(ConfigError, match="already paused"):
        set_status(lake, CID, "paused")
    with pytest.raises(BrokerError, match="used by live configuration"):
        remove_broker_checked(lake, "paper")  # a paused configuration still uses it
    set_status(lake, CID, "active")
    set_status(lake, CID, "removed")
    with pytest.raises(ConfigError, match="is removed"):
        edit_config(lake, CID, max_open=2)
    history = config_store(lake).history(CID)
    assert [(v["version"], v["action"], v["status"], v["risk_per_trade"], v["max_open"]) for v in history] == [
        (1, "promote", "active", 0.01, 1), (2, "edit", "active", 0.005, 1), (3, "edit", "active", 0.005, 3),
        (4, "pause", "paused", 0.005, 3), (5, "resume", "active", 0.005, 3), (6, "remove", "removed", 0.005, 3)]
    assert list_configs(lake) == [] and len(list_configs(lake, include_removed=True)) == 1
    remove_broker_checked(lake, "paper")  # no configuration uses it any more
    with pytest.raises(ConfigError, match="unknown live configuration 'nope'"):
        get_config(lake, "nope")


def _race(env: dict, n: int) -> None:
    """Two processes edit CID n times each, starting together."""
    cmd = [sys.executable, "-m", "tests.live.record_writer", CID]
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([*cmd, str(w), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=full_env, cwd=ROOT) for w in (1, 2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "READY", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _check_no_version_lost(lake: Lake, n: int) -> None:
    history = config_store(lake).history(CID)
    assert [v["version"] for v in history] == list(range(1, 2 * n + 2))
    edits = [v["risk_per_trade"] for v in history[1:]]
    assert sorted(edits) == sorted(risk_of(w, k) for w in (1, 2) for k in range(n))  # each edit exactly once
    for writer in (1, 2):  # and each writer's edits in its own order
        mine = [r for r in edits if round(r * 1e6) // 1000 == writer]
        assert mine == [risk_of(writer, k) for k in range(n)]


def test_concurrent_edits_from_two_processes_lose_no_version_on_the_local_lake(local_env):
    lake = _lake()
    add_broker(lake, "paper", "paper", "DU123", "USD")
    _config(lake)
    _race(local_env, 12)
    _check_no_version_lost(lake, 12)


def test_concurrent_edits_from_two_processes_lose_no_version_on_s3(s3_env, s3_server):
    lake = _lake()
    add_broker(lake, "paper", "paper", "DU123", "USD")
    _config(lake)
    _race(s3_env, 8)
    _check_no_version_lost(lake, 8)
    bucket = f"{s3_env['MOCHI_BUCKET_PREFIX']}live-trades"
    keys = s3_server.keys(bucket, f"configurations/name={CID}/")
    assert len(keys) == 17


def test_s3_conditional_put_refuses_an_existing_key(s3_env, s3_server):
    lake = _lake()
    key = f"{s3_env['MOCHI_BUCKET_PREFIX']}live-trades/configurations/name=x/v000001.json"
    assert lake.put_bytes_if_absent(key, b"first") is True
    assert lake.put_bytes_if_absent(key, b"second") is False
    assert lake.get_bytes(key) == b"first"
