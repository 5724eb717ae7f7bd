"""The cluster manifests: valid Kubernetes 1.35 objects (strict schemas), and consistent with Mochi.

Strict validation rejects unknown fields, so a misspelt key fails here rather than being dropped
silently by the API server.
"""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
from deploy_files import K8S_VERSION, MANIFESTS, hive_catalog_properties, manifest_docs, pod_templates, values

from mochi_resources.settings import BUCKETS
from mochi_resources.trino_engine import parse_trino_url

DOCS = manifest_docs()


def test_there_are_manifests():
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment", "Job", "NetworkPolicy"} <= kinds
    assert len(MANIFESTS) >= 6


@pytest.mark.parametrize(
    "doc", [doc for _, doc in DOCS], ids=[f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in DOCS]
)
def test_manifest_is_valid_against_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_is_strict_and_catches_a_misspelt_field():
    deployment = next(doc for _, doc in DOCS if doc["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_everything_is_in_the_mochi_namespace():
    for name, doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "mochi", name


def test_bucket_job_creates_exactly_the_lake_buckets():
    job = next(doc for _, doc in DOCS if doc["kind"] == "Job" and doc["metadata"]["name"] == "minio-buckets")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    stages = re.search(r"for stage in ([^;]+); do", script).group(1).split()
    assert stages == list(BUCKETS)
    assert 'mc mb --ignore-existing "lake/${MOCHI_BUCKET_PREFIX}${stage}"' in script


def test_env_config_map_sets_what_the_code_reads():
    env = next(doc for _, doc in DOCS if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "mochi-env")["data"]
    for key in ("MOCHI_HOME", "MOCHI_S3_ENDPOINT", "MOCHI_BUCKET_PREFIX", "MOCHI_TRINO_URL",
                "MOCHI_POLYGON_BASE_URL", "NUMBA_CACHE_DIR", "DAGSTER_HOME"):
        assert env[key], key
    assert env["MOCHI_EXECUTOR"] == "k8s"
    assert env["MOCHI_BUCKET_PREFIX"] == "mochi-"
    assert env["MOCHI_TRINO_URL"].endswith("/hive/mochi")
    # The chart mounts the instance where global.dagsterHome says; both must agree.
    assert env["DAGSTER_HOME"] == values()["global"]["dagsterHome"]
    # Credentials are never in a ConfigMap.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POLYGON_API_KEY"} & set(env)


def test_trino_catalog_enables_the_procedures_the_engine_calls():
    """The engine's default partition mode (`register`, see MOCHI_TRINO_URL in the manifests) calls
    `system.register_partition`, which Trino's Hive connector refuses unless the catalog allows it."""
    env = next(doc for _, doc in DOCS if doc["metadata"]["name"] == "mochi-env")["data"]
    target = parse_trino_url(env["MOCHI_TRINO_URL"])
    props = hive_catalog_properties()
    if target.partitions == "register":
        assert props.get("hive.allow-register-partition-procedure") == "true"
    assert env["MOCHI_TRINO_URL"].split("/")[-2] == "hive"  # the catalog these properties configure


def test_trino_catalog_reads_minio_path_style_through_the_metastore():
    props = hive_catalog_properties()
    assert props["connector.name"] == "hive"
    assert props["s3.path-style-access"] == "true"
    assert props["hive.metastore.uri"] == "thrift://hive-metastore.mochi.svc.cluster.local:9083"
    assert props["s3.aws-access-key"] == "${ENV:AWS_ACCESS_KEY_ID}"


def _policies(direction: str) -> list[dict]:
    return [doc for _, doc in DOCS if doc["kind"] == "NetworkPolicy" and direction in doc["spec"]["policyTypes"]]


def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are evaluated here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _allowed(source: dict, target: dict, port: int) -> bool:
    """Would the policies let a pod labelled `source` reach one labelled `target` on TCP `port`?"""
    def open_side(direction: str, subject: dict, peer: dict, key: str) -> bool:
        for policy in _policies(direction):
            if not _selects(policy["spec"]["podSelector"], subject):
                continue
            for rule in policy["spec"].get(direction.lower(), []):
                ports = [p["port"] for p in rule.get("ports", []) if p.get("protocol", "TCP") == "TCP"]
                peers = [p["podSelector"] for p in rule.get(key, []) if set(p) == {"podSelector"}]
                if port in ports and any(_selects(sel, peer) for sel in peers):
                    return True
        return False

    return open_side("Egress", source, target, "to") and open_side("Ingress", target, source, "from")


def _labels() -> dict[str, dict]:
    """Pod labels of every party: the manifests' workloads and the Dagster pods of the values."""
    labels = {name: template["metadata"]["labels"] for name, template in pod_templates()}
    v = values()
    labels["dagster-webserver"] = v["dagsterWebserver"]["labels"]
    labels["dagster-daemon"] = v["dagsterDaemon"]["labels"]
    labels["code-location"] = v["dagster-user-deployments"]["deployments"][0]["labels"]
    labels["run-and-step-pods"] = v["runLauncher"]["config"]["k8sRunLauncher"]["labels"]
    return labels


# Every flow Mochi needs: (client, server, port).
NEEDED = [
    ("dagster-webserver", "postgres", 5432),
    ("dagster-webserver", "code-location", 4000),
    ("dagster-daemon", "postgres", 5432),
    ("dagster-daemon", "code-location", 4000),
    ("code-location", "postgres", 5432),
    ("code-location", "minio", 9000),
    ("run-and-step-pods", "postgres", 5432),
    ("run-and-step-pods", "minio", 9000),
    ("run-and-step-pods", "trino-coordinator", 8080),
    ("minio-buckets", "minio", 9000),
    ("hive-metastore", "postgres", 5432),
    ("hive-metastore", "minio", 9000),
    ("trino-coordinator", "hive-metastore", 9083),
    ("trino-worker", "hive-metastore", 9083),
    ("trino-worker", "minio", 9000),
    ("trino-worker", "trino-coordinator", 8080),
    ("trino-coordinator", "trino-worker", 8080),
]
# Flows that must stay closed (least privilege).
FORBIDDEN = [
    ("minio-buckets", "postgres", 5432),
    ("trino-worker", "postgres", 5432),
    ("dagster-webserver", "minio", 9000),
    ("run-and-step-pods", "code-location", 4000),
    ("code-location", "hive-metastore", 9083),
]


def test_default_deny_in_both_directions():
    deny = next(doc for _, doc in DOCS if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == "default-deny-all")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize("client,server,port", NEEDED)
def test_needed_flow_is_allowed_on_both_ends(client, server, port):
    labels = _labels()
    assert _allowed(labels[client], labels[server], port), f"{client} -> {server}:{port} is blocked"


@pytest.mark.parametrize("client,server,port", FORBIDDEN)
def test_unneeded_flow_is_blocked(client, server, port):
    labels = _labels()
    assert not _allowed(labels[client], labels[server], port)


def test_every_service_port_has_an_ingress_rule():
    """A Service whose pods no ingress rule opens is the silent-drop surprise of the old system."""
    labels = _labels()
    for _, svc in ((n, d) for n, d in DOCS if d["kind"] == "Service"):
        target = svc["spec"]["selector"]
        for port in svc["spec"]["ports"]:
            if port["name"] == "console":
                continue  # MinIO's console is reached with kubectl port-forward only.
            reachable = any(_allowed(src, target, port["port"]) for src in labels.values())
            assert reachable, f"service {svc['metadata']['name']}:{port['port']} is unreachable"


def test_every_dns_client_may_resolve():
    dns = next(doc for _, doc in DOCS if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == "allow-dns-egress")
    assert dns["spec"]["podSelector"] == {}
    assert {p["protocol"] for p in dns["spec"]["egress"][0]["ports"]} == {"UDP", "TCP"}
