"""Runs launched by `mochi`, carrying the `mochi` code location's origin, executed in this process.

Why internal Dagster APIs, and only here: Dagster's public ways to launch a run with a code
location origin (`dagster job launch`, the web UI, a sensor) go through a workspace and a run
launcher, which start a fresh Python process (and a gRPC code server) per run: several seconds of
process start and imports for every run of a backtest. Dagster has no public API for "create a run
as the `mochi` location would, then execute it here". So this module builds the same origin the
workspace (`workspace.yaml`: module `mochi_assets.definitions`, location `mochi`) gives its runs,
creates the run with it (`DagsterInstance.create_run_for_job`) and executes it in process with
`execute_run` on a reconstructable job. The runs then show on the Overview timeline, the Jobs
pages and the asset pages like any run launched from the UI, and `instance.get_runs` finds them
by the repository label of the `mochi` location (`repository_label()`).

The staleness question ("is this partition up to date?") is Dagster's own: the stale status the
UI shows (`CachingStaleStatusResolver`: code version and input data versions), not Mochi's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import execute_run
from dagster._core.loader import LoadingContext
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

LOCATION_NAME = "mochi"
DEFINITIONS_MODULE = "mochi_assets.definitions"
REPOSITORY_NAME = "__repository__"  # the name Dagster gives the repository of a Definitions object


def repository_origin() -> RemoteRepositoryOrigin:
    """The origin the `mochi` code location gives its repository (as `workspace.yaml` loads it)."""
    target = LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE)
    location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=LOCATION_NAME)
    return RemoteRepositoryOrigin(code_location_origin=location, repository_name=REPOSITORY_NAME)


def repository_label() -> str:
    """`__repository__@mochi`: the tag value by which runs of the location are found."""
    return repository_origin().get_label()


def runs_filter_of_location(**kwargs) -> dg.RunsFilter:
    """A RunsFilter for the runs of the `mochi` location (more fields may be given)."""
    tags = {REPOSITORY_LABEL_TAG: repository_label(), **kwargs.pop("tags", {})}
    return dg.RunsFilter(tags=tags, **kwargs)


def _reconstructable(job_name: str):
    return ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs").get_reconstructable_job(job_name)


def create_run(instance: dg.DagsterInstance, defs: dg.Definitions, job_name: str, partition_key: str, *,
               asset_selection: Iterable[dg.AssetKey] | None = None, run_config: Mapping | None = None,
               tags: Mapping[str, str] | None = None, run_id: str | None = None) -> dg.DagsterRun:
    """A NOT_STARTED run of a job for one partition, with the `mochi` location's origin."""
    job = defs.resolve_job_def(job_name)
    selection = frozenset(asset_selection) if asset_selection is not None else None
    if selection is not None:
        job = job.get_subset(asset_selection=selection)
    all_tags = {**job.get_tags_for_partition_key(partition_key, selected_asset_keys=selection), **(tags or {})}
    return instance.create_run_for_job(
        job_def=job,
        run_id=run_id,
        run_config=dict(run_config or {}),
        tags=all_tags,
        asset_selection=selection,
        remote_job_origin=RemoteJobOrigin(repository_origin=repository_origin(), job_name=job_name),
        job_code_origin=_reconstructable(job_name).get_python_origin(),
    )


def execute(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun:
    """Execute a created run here, in process; returns the run as it ended."""
    execute_run(_reconstructable(run.job_name), run, instance)
    return instance.get_run_by_id(run.run_id)


class _Loading(LoadingContext):
    """The batching context the stale-status resolver needs (the web UI passes its request context)."""

    def __init__(self, instance: dg.DagsterInstance):
        self._instance = instance
        self._loaders: dict = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._instance

    @property
    def loaders(self) -> dict:
        return self._loaders


def out_of_date(instance: dg.DagsterInstance, defs: dg.Definitions, keys: Iterable[dg.AssetKey],
                partition_key: str) -> list[dg.AssetKey]:
    """The assets among `keys` whose partition is missing or stale (code or input data version changed)."""
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), _Loading(instance))
    return [k for k in keys if resolver.get_status(k, partition_key) != StaleStatus.FRESH]
