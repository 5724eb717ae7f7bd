"""deploy/helm/values.yaml for the official Dagster chart: the keys Mochi relies on, no credential,
and an instance configuration that Dagster itself accepts.

The chart's values.schema.json is not on PyPI and is not vendored here. When a copy of the chart
is at hand (`helm pull dagster/dagster --version 1.13.27 --untar`), point MOCHI_DAGSTER_CHART_DIR
at it and the values, merged over the chart's defaults the way Helm merges them, are validated
against the chart's schema and its user-deployments subchart's schema.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from deploy_files import FAKE_KUBECONFIG, values

import dagster as dg
from mochi_assets.definitions import all_assets

SECRET_WORDS = ("password", "secretkey", "secret_key", "apikey", "api_key", "token", "accesskey")


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, str(i)))
    else:
        yield path, node


def test_no_credential_in_the_values():
    for path, value in _walk(values()):
        leaf = path[-1].lower().replace("-", "")
        # A flag or a Secret's name is not a credential; a string value under such a key is.
        if isinstance(value, str) and any(word in leaf for word in SECRET_WORDS):
            pytest.fail(f"{'.'.join(path)} looks like a credential in the values: use a Secret")
        assert not (isinstance(value, str) and "://" in value and "@" in value), f"{'.'.join(path)} embeds credentials"


def test_user_code_deployment_serves_the_mochi_definitions():
    deployments = values()["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    mochi = deployments[0]
    args = mochi["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == "mochi_assets.definitions"
    assert mochi["port"] == 4000
    assert mochi["includeConfigInLaunchedRuns"]["enabled"] is True
    assert {"name": "mochi-env"} in mochi["envConfigMaps"]
    assert {"name": "mochi-s3-credentials"} in mochi["envSecrets"]
    assert {"name": "mochi-polygon"} in mochi["envSecrets"]
    assert mochi["podSecurityContext"]["runAsNonRoot"] is True


def test_runs_use_the_k8s_run_launcher_with_the_mochi_environment():
    launcher = values()["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    cfg = launcher["config"]["k8sRunLauncher"]
    assert {"name": "mochi-env"} in cfg["envConfigMaps"]
    assert {"name": "mochi-s3-credentials"} in cfg["envSecrets"]
    assert cfg["loadInclusterConfig"] is True


def test_postgres_storage_with_password_from_a_secret():
    v = values()
    assert v["postgresql"]["enabled"] is False
    assert v["postgresql"]["postgresqlHost"].startswith("postgres.mochi.svc")
    assert "postgresqlPassword" not in v["postgresql"]
    assert v["generatePostgresqlPasswordSecret"] is False
    assert v["global"]["postgresqlSecretName"] == "mochi-dagster-postgresql"


def test_run_monitoring_is_on():
    daemon = values()["dagsterDaemon"]
    assert daemon["enabled"] is True
    assert daemon["runMonitoring"]["enabled"] is True
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"


def _instance_yaml(kubeconfig: Path) -> dict:
    """The parts of the chart's dagster.yaml that the values decide (storage aside: Postgres)."""
    v = values()
    launcher = v["runLauncher"]["config"]["k8sRunLauncher"]
    monitoring = v["dagsterDaemon"]["runMonitoring"]
    queued = {k: val for k, val in v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"].items() if val is not None}
    return {
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "service_account_name": "dagster",
                "instance_config_map": "dagster-instance",
                "job_namespace": "mochi",
                "load_incluster_config": False,
                "kubeconfig_file": str(kubeconfig),
                "env_config_maps": [c["name"] for c in launcher["envConfigMaps"]],
                "env_secrets": [c["name"] for c in launcher["envSecrets"]],
                "labels": launcher["labels"],
            },
        },
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator", "config": queued},
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
        },
        "telemetry": {"enabled": v["telemetry"]["enabled"]},
        **v["additionalInstanceConfig"],
    }


def test_dagster_accepts_the_instance_config_and_limits_the_simulation_pool_to_one(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(_instance_yaml(kubeconfig)))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert concurrency.run_queue_config.max_concurrent_runs == 8
        assert instance.run_monitoring_enabled
    # The only pool in the code location is the simulation's, so the default limit is its limit.
    # every pool Mochi declares gets the default limit of 1: the simulation and the provider download
    assert {a.op.pool for a in all_assets} - {None} == {"mochi_simulation", "mochi_provider"}


def test_run_limits_are_not_set_twice():
    """Dagster refuses run limits in both the run coordinator and `concurrency`."""
    queued = values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] is None and queued["tagConcurrencyLimits"] is None
    assert queued["blockOpConcurrencyLimitedRuns"] is None


def _helm_merge(base, override):
    """Helm's values merge: maps merge recursively, null deletes, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = _helm_merge(base.get(key), value)
        return merged
    return override


def _offline(schema):
    """Replace the chart's remote Kubernetes $refs (not reachable offline) by open schemas."""
    if isinstance(schema, dict):
        if str(schema.get("$ref", "")).startswith("http"):
            return {k: _offline(v) for k, v in schema.items() if k != "$ref"}
        return {k: _offline(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_offline(v) for v in schema]
    return schema


CHART_DIR = os.environ.get("MOCHI_DAGSTER_CHART_DIR")


@pytest.mark.skipif(not CHART_DIR, reason="MOCHI_DAGSTER_CHART_DIR not set: the chart's schema is not available offline")
def test_values_match_the_chart_schema():
    import jsonschema

    chart = Path(CHART_DIR)
    merged = _helm_merge(yaml.safe_load((chart / "values.yaml").read_text()), values())
    schema = _offline(json.loads((chart / "values.schema.json").read_text()))
    jsonschema.Draft7Validator(schema).validate(merged)
    sub = chart / "charts" / "dagster-user-deployments"
    sub_values = _helm_merge(yaml.safe_load((sub / "values.yaml").read_text()), values()["dagster-user-deployments"])
    jsonschema.Draft7Validator(_offline(json.loads((sub / "values.schema.json").read_text()))).validate(sub_values)
