"""Metadata every asset records: previews, ranges, provenance, versions. Shared so each asset stays short.

Versions (what makes "nothing changed, nothing re-simulated" work):

- `code_version(...)` is the asset's Dagster code version: a hash of the source files of the
  stages it runs and of the libraries whose results it depends on, so any edit to that code
  marks the asset's materializations out of date.
- `frames_version(...)` is a content hash of tables (raw bars use it as their data version:
  an incremental refresh that brings no new bar keeps the same version).
- `provenance(...)` stamps every other asset's data version with its input hash: the request's
  hash, the code version and the data versions of the upstream partitions it read. Dagster's
  own logical version leaves the request out; the request changes results (ATR periods,
  grids) without changing any upstream data, so it must be part of the version.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from importlib import metadata as importlib_metadata
from pathlib import Path

import dagster as dg
import polars as pl

from mochi_assets.request import BacktestRequest

_PACKAGE_ROOT = Path(__file__).resolve().parent
DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"

PREVIEW_ROWS = 10


def preview(df: pl.DataFrame | pl.LazyFrame, n: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows as a Markdown table (what the UI shows under 'preview')."""
    head = (df.head(n).collect() if isinstance(df, pl.LazyFrame) else df.head(n))
    if head.is_empty():
        return dg.MetadataValue.md("_(no rows)_")
    cols = head.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def ts_range(df: pl.DataFrame, column: str = "ts") -> dict[str, dg.MetadataValue]:
    if df.is_empty():
        return {"first": dg.MetadataValue.text("-"), "last": dg.MetadataValue.text("-")}
    return {
        "first": dg.MetadataValue.text(str(df[column].min())),
        "last": dg.MetadataValue.text(str(df[column].max())),
    }


def code_version(*stages: str, libraries: tuple[str, ...] = ("polars", "numpy")) -> str:
    """Code version of an asset: hash of the `.py`/`.sql` files of the named stage packages
    (`"simulation"`, `"scenarios"`, ...) and of the given libraries' installed versions."""
    digest = hashlib.sha256()
    for stage in sorted(stages):
        folder = _PACKAGE_ROOT / stage
        if not folder.is_dir():
            raise ValueError(f"code_version: {stage!r} is not a stage package of mochi_assets")
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".py", ".sql")):
            digest.update(path.relative_to(_PACKAGE_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    for lib in sorted(libraries):
        digest.update(f"{lib}=={importlib_metadata.version(lib)}".encode())
    return digest.hexdigest()[:16]


def frames_version(*frames: pl.DataFrame) -> str:
    """Content hash of tables (schema and every row, in order): equal tables, equal version."""
    digest = hashlib.sha256()
    for df in frames:
        digest.update(str(df.schema).encode())
        digest.update(df.height.to_bytes(8, "little"))
        if df.height:
            digest.update(df.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:24]


def _latest_data_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> str:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records:
        return "never-materialized"
    mat = records[0].asset_materialization
    return (mat.tags or {}).get(DATA_VERSION_TAG, f"storage-{records[0].storage_id}") if mat else "unknown"


def input_versions(context: dg.AssetExecutionContext) -> dict[str, str]:
    """Data version of every upstream partition the step reads, by `asset[partition]`."""
    versions: dict[str, str] = {}
    for input_name, key in context.assets_def.keys_by_input_name.items():
        try:
            partitions = list(context.asset_partition_keys_for_input(input_name))
        except dg.DagsterInvariantViolationError:  # an unpartitioned upstream
            partitions = [None]
        for partition in partitions or [None]:
            label = key.to_user_string() + (f"[{partition}]" if partition else "")
            versions[label] = _latest_data_version(context.instance, key, partition)
    return versions


def engines(context: dg.AssetExecutionContext | None = None) -> dict[str, str]:
    """Where the step stores data (`local` lake folder or `s3`) and which SQL engine is configured."""
    storage = "local"
    lake = getattr(context.resources, "lake", None) if context is not None else None
    if lake is not None and hasattr(lake, "settings"):
        storage = "s3" if lake.settings().s3_endpoint else "local"
    elif os.environ.get("MOCHI_S3_ENDPOINT"):
        storage = "s3"
    sql = "trino" if os.environ.get("MOCHI_TRINO_URL") else "duckdb"
    return {"engine_storage": storage, "engine_sql": sql}


def _current_context() -> dg.AssetExecutionContext | None:
    try:
        return dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return None


def provenance(request: BacktestRequest, *, synthetic: bool,
               context: dg.AssetExecutionContext | None = None) -> dict[str, object]:
    """Which request, code, inputs and engines a materialization came from, and whether its data
    is synthetic. Inside a step (the context is found when not given) it also sets the
    materialization's data version to the input hash, unless the asset sets its own (raw bars:
    a content hash), so a changed request, code or input makes everything downstream stale."""
    meta: dict[str, object] = {
        "request_id": request.request_id,
        "request_hash": request.request_hash,
        "ticker": request.ticker,
        "date_range": f"{request.start} to {request.end}",
        "data": "synthetic data" if synthetic else "market data",
    }
    context = context or _current_context()
    if context is None:  # called outside Dagster (tests of plain functions)
        return {**meta, **engines()}
    key = context.asset_key
    code = context.assets_def.code_versions_by_key.get(key) or "unversioned"
    inputs = input_versions(context)
    digest = hashlib.sha256(f"request={request.request_hash}\ncode={code}\n".encode())
    for label in sorted(inputs):
        digest.update(f"{label}={inputs[label]}\n".encode())
    input_hash = digest.hexdigest()[:24]
    context.set_data_version(key, dg.DataVersion(input_hash))
    return {
        **meta,
        "code_version": code,
        "input_hash": input_hash,
        "inputs": dg.MetadataValue.json(inputs),
        **engines(context),
    }


def png_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG embedded in Markdown, so the graph shows on the materialization in the UI."""
    encoded = base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})")
