"""How steps run: in process on one machine (embedded default) or one Kubernetes pod per step.

`MOCHI_EXECUTOR` picks the executor when the code location loads: `in_process` (default for the
embedded setup: one process, no pod), `multiprocess` (one process per step on one machine), or
`k8s` (dagster-k8s's `k8s_job_executor`: each step its own pod, sized by the op tags below).
The tags are declared once here and imported by the assets; they are inert outside Kubernetes.
"""

import os

import dagster as dg

# Kubernetes requests and limits per kind of step: small for bars and scenarios, sized for the
# grid for the simulation (chunked: memory does not grow with the number of traders), moderate
# for aggregation and graphs.
_SIZES = {
    "small": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    "simulation": {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "aggregation": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "reporting": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
}


# The heavy simulation runs one at a time: dagster.yaml (and the Helm values) limit this pool to 1.
SIMULATION_POOL = "mochi_simulation"
# Raw bars download from the data provider one step at a time, so the Polygon requests-per-minute
# budget (enforced inside one client) holds across concurrent runs; limit 1 in dagster.yaml too.
PROVIDER_POOL = "mochi_provider"


def step_tags(size: str, pool: str | None = None) -> dict:
    """Op tags carrying the pod resources of a step of the given size (and its pool, as a pod label)."""
    labels = {"mochi/step-size": size}
    if pool:
        labels["mochi/pool"] = pool
    return {
        "mochi/step_size": size,
        "dagster-k8s/config": {
            "container_config": {"resources": _SIZES[size]},
            "pod_template_spec_metadata": {"labels": labels},
        },
    }


def step_resources(size: str) -> dict:
    return _SIZES[size]


def executor() -> dg.ExecutorDefinition:
    choice = os.environ.get("MOCHI_EXECUTOR", "in_process")
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"MOCHI_EXECUTOR: {choice!r} is not one of in_process, multiprocess, k8s")
