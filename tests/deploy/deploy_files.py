"""Paths and loaders of the deployment files, shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "manifests").glob("*.yaml"))
VALUES = DEPLOY / "helm" / "values.yaml"
# Newest Kubernetes the cluster runs (the original Mochi ran 1.35); kubernetes-validate bundles it.
K8S_VERSION = "1.35.0"
# A kubeconfig that lets dagster-k8s objects be built; nothing connects to it.
FAKE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: test}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
"""


def manifest_docs() -> list[tuple[str, dict]]:
    """(file name, document) for every Kubernetes object in deploy/manifests."""
    docs = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def pod_templates() -> list[tuple[str, dict]]:
    """(object name, pod template) of every workload in the manifests."""
    out = []
    for _, doc in manifest_docs():
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            out.append((doc["metadata"]["name"], doc["spec"]["template"]))
    return out


def hive_catalog_properties() -> dict[str, str]:
    """The Hive catalog of the deployed Trino (`hive.properties` of the trino-common ConfigMap)."""
    common = next(doc for _, doc in manifest_docs() if doc["metadata"]["name"] == "trino-common")["data"]
    return dict(line.split("=", 1) for line in common["hive.properties"].splitlines() if line.strip())
