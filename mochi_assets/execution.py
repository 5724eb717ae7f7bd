"""How steps run: in process on one machine (embedded default) or one Kubernetes pod per step.

`MOCHI_EXECUTOR` picks the executor when a run starts (`mochi_executor` reads it then, never at
import): `in_process` (default for the embedded setup: one process, no pod), `multiprocess` (one
process per step on one machine), or `k8s` (dagster-k8s's `k8s_job_executor`: each step its own
pod, sized by the op tags below). A run's config may choose too (`execution: {config: {kind: ...}}`).
The tags are declared once here and imported by the assets; they are inert outside Kubernetes.
"""

import math
import os

import dagster as dg

from mochi_assets.environment import unknown_executor  # the CLI checks MOCHI_EXECUTOR before any import

# Peak RSS (MB) of each kind of step run alone in a fresh process, as its pod runs it: the largest
# over the steps of that kind and the four scenarios of the 10-year x 4 scenarios x 5,000-trader
# case on an S3 lake (`benchmarks/bench_pods.py --case four --s3 --all-scenarios`, 2026-11-29;
# README, "Benchmarks"). That case is the largest a request may ask for (MOCHI_MAX_TRADER_YEARS:
# 5,000 traders x 10 years), and the same steps on a local lake peaked lower.
MEASURED_PEAK_MB = {
    "small": 346,  # leaderboard of four scenarios (backtest_request, live and filings steps: documents, not measured here)
    "bars": 1157,  # enhanced_bars (raw_bars 714, scenarios 746)
    "simulation": 1282,  # trades: chunked, does not grow with the grid
    "aggregation": 1283,  # walk_forward (aggregates 1,102, robustness 1,090)
    "reporting": 1128,  # stops_graph (best_traders_graph 456, trade_lens 438, trade_extracts 371)
}
HEADROOM = 1.25  # memory limit at least this times the measured peak

# Kubernetes requests and limits per kind of step: the request about the measured peak, the limit
# at least HEADROOM times it (a test checks). CPU: the simulation and the aggregation use two
# threads, the rest mostly one.
_SIZES = {
    "small": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "bars": {"requests": {"cpu": "500m", "memory": "1280Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    "simulation": {"requests": {"cpu": "2", "memory": "1536Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "aggregation": {"requests": {"cpu": "1", "memory": "1536Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "reporting": {"requests": {"cpu": "500m", "memory": "1280Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
}


# The heavy simulation runs one at a time: dagster.yaml (and the Helm values) limit this pool to 1.
SIMULATION_POOL = "mochi_simulation"
# Raw bars download from the data provider one step at a time, so the Polygon requests-per-minute
# budget (enforced inside one client) holds across concurrent runs; limit 1 in dagster.yaml too.
PROVIDER_POOL = "mochi_provider"


def cpu_threads(size: str) -> int:
    """Threads a step of this size may keep busy: its pod's CPU limit, rounded up (at least 1)."""
    limit = str(_SIZES[size]["limits"]["cpu"])
    cores = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    return max(1, math.ceil(cores))


def step_tags(size: str, pool: str | None = None) -> dict:
    """Op tags carrying the pod resources of a step of the given size (and its pool, as a pod label).

    The pod's environment sets NUMBA_NUM_THREADS to the CPU limit (numba otherwise starts one thread
    per CPU of the node, not of the pod, and the limit throttles them); DuckDB's threads follow the
    same limit, read from the cgroup (mochi_resources/sql_engine.py, cpu_limit)."""
    labels = {"mochi/step-size": size}
    if pool:
        labels["mochi/pool"] = pool
    threads = str(cpu_threads(size))
    return {
        "mochi/step_size": size,
        "dagster-k8s/config": {
            "container_config": {
                "resources": _SIZES[size],
                "env": [{"name": "NUMBA_NUM_THREADS", "value": threads}],
            },
            "pod_template_spec_metadata": {"labels": labels},
        },
    }


def step_resources(size: str) -> dict:
    return _SIZES[size]


def _delegate(kind: str) -> dg.ExecutorDefinition:
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise dg.DagsterInvalidConfigError(unknown_executor(kind), [], kind)


@dg.executor(
    name="mochi",
    config_schema={
        "kind": dg.Field(
            str,
            is_required=False,
            description="in_process, multiprocess or k8s; default: the MOCHI_EXECUTOR environment variable "
                        "of the process that executes the run (in_process when unset).",
        )
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def mochi_executor(init_context: dg.InitExecutorContext):
    """The executor chosen when a run starts (never at import): `kind`, else MOCHI_EXECUTOR."""
    # Dagster has no public way to hand a run to another executor definition: the chosen one is
    # built from its own default config with Dagster's config processing (internal API).
    from dagster._config import process_config

    kind = init_context.executor_config.get("kind") or os.environ.get("MOCHI_EXECUTOR") or "in_process"
    delegate = _delegate(kind)
    config = process_config(delegate.config_schema.config_type, {})
    if not config.success:
        raise dg.DagsterInvalidConfigError(f"executor {kind}: default config rejected", config.errors, {})
    return delegate.executor_creation_fn(
        dg.InitExecutorContext(job=init_context.job, executor_def=delegate, executor_config=config.value,
                               instance=init_context.instance)
    )
