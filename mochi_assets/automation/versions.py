"""Is a partition up to date? Data and code versions read back from the Dagster instance.

Every materialization carries Dagster's version tags: `dagster/code_version`,
`dagster/data_version` and `dagster/input_data_version/<upstream>` (the data version of each
upstream partition it read). A partition is up to date when its latest materialization was made
by the current code version from the current data versions of its upstream partitions. Ticker
assets are upstream of every ticker x scenario partition of that ticker; assets of the same
partitions definition map one to one. This is what lets the daily refresh re-run nothing
downstream of bars that did not change.
"""

from __future__ import annotations

import hashlib

import dagster as dg

from mochi_assets.metadata import CODE_VERSION_TAG, DATA_VERSION_TAG
from mochi_assets.partitions import ticker_scenario_key

INPUT_VERSION_PREFIX = "dagster/input_data_version/"


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> dg.EventLogRecord | None:
    """The newest materialization record of one partition of an asset, or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def _tags(record: dg.EventLogRecord) -> dict[str, str]:
    mat = record.asset_materialization
    return dict(mat.tags or {}) if mat is not None else {}


def data_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    """The data version of a partition's latest materialization (None if never materialized)."""
    record = latest_materialization(instance, key, partition)
    return _tags(record).get(DATA_VERSION_TAG) if record else None


def _upstream_partition(repo: dg.RepositoryDefinition, upstream: dg.AssetKey, ticker: str, partition: str) -> str | None:
    """Which partition of `upstream` a step of `partition` reads (None: a fan-in, not compared)."""
    up_def = repo.assets_defs_by_key[upstream].partitions_def
    if isinstance(up_def, dg.MultiPartitionsDefinition):
        return partition if "|" in partition else None
    return ticker


def _partitions_version(versions: list[str | None]) -> str | None:
    """How Dagster records the version of a partitioned input: sha256 of its partitions' versions
    joined in partition order (one partition: of that one version)."""
    if any(v is None for v in versions):
        return None
    return hashlib.sha256("".join(versions).encode()).hexdigest()


def stale_reason(
    instance: dg.DagsterInstance, repo: dg.RepositoryDefinition, key: dg.AssetKey, ticker: str, partition: str
) -> str | None:
    """Why an asset partition must be re-materialized, or None when it is up to date."""
    record = latest_materialization(instance, key, partition)
    if record is None:
        return f"{key.to_user_string()}[{partition}] was never materialized"
    tags = _tags(record)
    current_code = repo.assets_defs_by_key[key].code_versions_by_key.get(key)
    if current_code is not None and tags.get(CODE_VERSION_TAG) != current_code:
        return f"{key.to_user_string()}[{partition}]: code version changed"
    for tag, recorded in tags.items():
        if not tag.startswith(INPUT_VERSION_PREFIX):
            continue
        upstream = dg.AssetKey.from_user_string(tag[len(INPUT_VERSION_PREFIX):])
        if upstream not in repo.assets_defs_by_key:
            continue
        up_partition = _upstream_partition(repo, upstream, ticker, partition)
        if up_partition is None:
            continue
        current = data_version(instance, upstream, up_partition)
        if recorded not in (current, _partitions_version([current])):
            return f"{key.to_user_string()}[{partition}]: input {upstream.to_user_string()}[{up_partition}] changed"
    return None


def first_stale(
    instance: dg.DagsterInstance, repo: dg.RepositoryDefinition, keys: list[dg.AssetKey], ticker: str, partition: str
) -> str | None:
    """The reason of the first asset of `keys` (in graph order) that is out of date, or None."""
    for key in keys:
        reason = stale_reason(instance, repo, key, ticker, partition)
        if reason:
            return reason
    return None


def scenario_partition(ticker: str, scenario: str) -> str:
    return str(ticker_scenario_key(ticker, scenario))


def fingerprint(*parts: object) -> str:
    """A short stable hash of what a run request was made from (part of its run key)."""
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:16]
