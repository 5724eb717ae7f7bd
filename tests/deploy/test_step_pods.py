"""The Kubernetes Jobs that dagster-k8s builds for Mochi's steps, from the real op tags.

The step pod is built the way `k8s_job_executor` builds it: the run launcher configured from
deploy/helm/values.yaml gives the run's container context (`K8sContainerContext.create_for_run`),
the step's op tags are merged over it (`get_user_defined_k8s_config`), and
`construct_dagster_k8s_job` makes the Job, which must be a valid Kubernetes 1.35 Job.
"""

from __future__ import annotations

import math
import kubernetes
import kubernetes_validate
import pytest
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job, get_k8s_job_name, get_user_defined_k8s_config
from deploy_files import FAKE_KUBECONFIG, K8S_VERSION, values

import dagster as dg
from mochi_assets.definitions import defs
from mochi_assets.execution import HEADROOM, MEASURED_PEAK_MB, step_resources



def _snake(config: dict) -> dict:
    return {
        "container_config": config.get("containerConfig"),
        "pod_spec_config": config.get("podSpecConfig"),
        "job_spec_config": config.get("jobSpecConfig"),
        "pod_template_spec_metadata": config.get("podTemplateSpecMetadata"),
        "job_metadata": config.get("jobMetadata"),
    }


@pytest.fixture(scope="module")
def run_launcher(tmp_path_factory) -> K8sRunLauncher:
    """The K8sRunLauncher the chart configures from the values (no cluster is contacted)."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    cfg = values()["runLauncher"]["config"]["k8sRunLauncher"]
    return K8sRunLauncher(
        service_account_name="dagster",
        instance_config_map="dagster-instance",
        postgres_password_secret=values()["global"]["postgresqlSecretName"],
        dagster_home=values()["global"]["dagsterHome"],
        job_image="registry.example.invalid/mochi:test",
        image_pull_policy=cfg["imagePullPolicy"],
        load_incluster_config=False,
        kubeconfig_file=str(kubeconfig),
        job_namespace="mochi",
        env_config_maps=[c["name"] for c in cfg["envConfigMaps"]],
        env_secrets=[s["name"] for s in cfg["envSecrets"]],
        env_vars=cfg["envVars"],
        volume_mounts=cfg["volumeMounts"],
        volumes=cfg["volumes"],
        labels=cfg["labels"],
        resources=cfg["resources"],
        security_context=cfg["securityContext"],
        run_k8s_config={k: v for k, v in _snake(cfg["runK8sConfig"]).items() if v},
    )


def step_job(run_launcher: K8sRunLauncher, asset_key: str) -> dict:
    """The Job body of the step of `asset_key` in scenario_job, as k8s_job_executor makes it."""
    op = defs.get_assets_def(asset_key).op
    run = dg.DagsterRun(job_name="scenario_job", run_id="0f3c2a1e-5b7d-4c8e-9a6f-1d2e3f4a5b6c")
    context = K8sContainerContext.create_for_run(run, run_launcher, include_run_tags=False)
    context = context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op.tags)))
    job_name = f"dagster-step-{get_k8s_job_name(run.run_id, op.name)}"
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(None, run_launcher),
        args=["dagster", "api", "execute_step"],
        job_name=job_name,
        pod_name=job_name,
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": run.job_name, "dagster/op": op.name, "dagster/run-id": run.run_id},
        env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": op.name}],
    )
    body = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    return {"apiVersion": "batch/v1", "kind": "Job", **body}


@pytest.mark.parametrize("asset_key,size", [("trades", "simulation"), ("aggregates", "aggregation")])
def test_step_pod_carries_the_declared_resources(run_launcher, asset_key, size):
    job = step_job(run_launcher, asset_key)
    container = job["spec"]["template"]["spec"]["containers"][0]
    # The op tags win over the run launcher's (smaller) run worker resources.
    assert container["resources"] == step_resources(size)
    assert container["resources"] != values()["runLauncher"]["config"]["k8sRunLauncher"]["resources"]


@pytest.mark.parametrize("asset_key", ["trades", "aggregates"])
def test_step_job_is_a_valid_kubernetes_job(run_launcher, asset_key):
    kubernetes_validate.validate(step_job(run_launcher, asset_key), K8S_VERSION, strict=True)


@pytest.mark.parametrize("asset_key", ["trades", "aggregates"])
def test_step_pod_gets_the_environment_labels_and_scratch_volume(run_launcher, asset_key):
    pod = step_job(run_launcher, asset_key)["spec"]["template"]
    spec = pod["spec"]
    container = spec["containers"][0]
    sources = {(next(iter(k for k in s if k != "prefix")), next(iter(s.values()))["name"]) for s in container["envFrom"]}
    assert {("configMapRef", "mochi-env"), ("secretRef", "mochi-s3-credentials"), ("secretRef", "mochi-polygon")} <= sources
    # The NetworkPolicies select run and step pods by this label.
    assert pod["metadata"]["labels"]["mochi/pipeline-pod"] == "true"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "step_worker"
    assert {"name": "mochi-scratch", "mountPath": "/var/lib/mochi"} in container["volumeMounts"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["fsGroup"] == 10001


def test_trades_step_is_in_the_simulation_pool_and_aggregates_is_not():
    """The pool is enforced by Dagster before the step pod is created, so it lives on the op."""
    assert defs.get_assets_def("trades").op.pool == "mochi_simulation"
    assert defs.get_assets_def("aggregates").op.pool is None


def test_step_pods_carry_the_pool_and_size_labels(run_launcher):
    """The pool is visible on the pod too, so `kubectl get pods -l mochi/pool=...` finds the simulation."""
    trades = step_job(run_launcher, "trades")["spec"]["template"]["metadata"]["labels"]
    aggregates = step_job(run_launcher, "aggregates")["spec"]["template"]["metadata"]["labels"]
    assert trades["mochi/pool"] == "mochi_simulation" and trades["mochi/step-size"] == "simulation"
    assert "mochi/pool" not in aggregates and aggregates["mochi/step-size"] == "aggregation"


@pytest.mark.parametrize("size", sorted(MEASURED_PEAK_MB))
def test_each_size_holds_its_measured_peak_with_headroom(size):
    def mib(text: str) -> float:
        return float(text[:-2]) * {"Mi": 1, "Gi": 1024}[text[-2:]]

    resources = step_resources(size)
    request, limit = mib(resources["requests"]["memory"]), mib(resources["limits"]["memory"])
    assert limit >= HEADROOM * MEASURED_PEAK_MB[size]
    # the scheduler places a pod where its request fits: at least the measured peak
    assert MEASURED_PEAK_MB[size] <= request <= limit


@pytest.mark.parametrize("asset_key,size", [("trades", "simulation"), ("aggregates", "aggregation"),
                                            ("raw_bars", "bars")])
def test_step_threads_follow_the_pod_cpu_limit(run_launcher, asset_key, size):
    container = step_job(run_launcher, asset_key)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    limit = step_resources(size)["limits"]["cpu"]
    cores = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    assert env["NUMBA_NUM_THREADS"] == str(max(1, math.ceil(cores)))
