"""The one IO manager of Mochi: every asset's output goes to the lake, whatever its backend.

An asset says where its output lives with definition metadata:

- `mochi/bucket`: the stage bucket (`raw`, `prepared`, `trades`, ...);
- `mochi/tables`: when the asset returns a dict, the names of its tables (each its own Hive table
  folder); a value is a polars DataFrame or the path of a finished Parquet file to commit (large
  outputs written in row groups while they are produced);
- `mochi/files`: file names (`years.png`, `years.csv`) stored as bytes in the asset's own folder.

An asset without `mochi/tables` or `mochi/files` returns one DataFrame, stored as the table named
after the asset. Tables load as `pl.LazyFrame` (cheap: the reader decides what to collect), files
as bytes; an asset's tables load as a `LakeTables` dict, which also gives a reader that opens files
itself (DuckDB) the local path of the very version its frames read (`local_parquet`). An input spanning several partitions loads as a dict keyed by partition key, with the
partitions that were never materialized left out.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from mochi_resources.errors import LakeError
from mochi_resources.lake import PARQUET_FILE, Lake, TableVersion
from mochi_resources.stores import KeyMissing
from mochi_resources.settings import MochiSettings

BUCKET_KEY = "mochi/bucket"
TABLES_KEY = "mochi/tables"
FILES_KEY = "mochi/files"


def lake_metadata(bucket: str, tables: list[str] | None = None, files: list[str] | None = None) -> dict:
    """Definition metadata telling the IO manager where an asset lives."""
    meta: dict[str, Any] = {BUCKET_KEY: bucket}
    if tables:
        meta[TABLES_KEY] = list(tables)
    if files:
        meta[FILES_KEY] = list(files)
    return meta


class LakeResource(dg.ConfigurableResource):
    """The lake (local folder under MOCHI_HOME, or an S3 API), resolved when a run starts."""

    home: str | None = None
    bucket_prefix: str | None = None
    s3_endpoint: str | None = None

    def settings(self) -> MochiSettings:
        return MochiSettings.from_env(self.home, self.bucket_prefix, self.s3_endpoint)

    def get_lake(self) -> Lake:
        return Lake(self.settings())


class LakeTables(dict):
    """An asset's tables as loaded: name -> `pl.LazyFrame` (and name -> bytes for its files).

    `local_parquet(name)` is the path of the committed version the frame of table `name` reads,
    for a reader in this process that opens files itself (DuckDB): on a folder lake only, else
    None (read the frame). `scan(name)` is that version as polars' own Parquet scan where there is
    such a path (it streams: for queries that reduce a large table), else the frame.
    """

    def __init__(self, frames: dict[str, Any], versions: dict[str, TableVersion]):
        super().__init__(frames)
        self._versions = versions

    def local_parquet(self, name: str) -> str | None:
        return self._versions[name].local_path()

    def scan(self, name: str) -> pl.LazyFrame:
        """Table `name` for a large streaming query: polars' own scan of the pinned local file
        (`TableVersion.native_scan`) on a folder lake, else its frame."""
        native = self._versions[name].native_scan()
        return self[name] if native is None else native


def local_parquet(tables: dict, name: str) -> str | None:
    """`LakeTables.local_parquet` of a loaded asset's table; None for tables not loaded by the IO
    manager (tests may pass plain dicts): read the frame then."""
    return tables.local_parquet(name) if isinstance(tables, LakeTables) else None


def streaming_scan(tables: dict, name: str) -> pl.LazyFrame:
    """Table `name` of a loaded asset for a query that reduces a large table: `LakeTables.scan`
    when the IO manager loaded it, else the frame as given (tests may pass plain dicts)."""
    return tables.scan(name) if isinstance(tables, LakeTables) else tables[name]


def _partition_dims(partitions_def: dg.PartitionsDefinition | None, key: str | None) -> tuple[str, str | None]:
    if key is None:
        raise LakeError("Mochi assets are partitioned; no partition key was given for this step")
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension
        return dims["ticker"], dims["scenario"]
    return str(key), None


def _asset_name(asset_key: dg.AssetKey) -> str:
    return asset_key.path[-1]


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores asset outputs in the lake in its Hive-style layout (see the module docstring)."""

    lake: LakeResource

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        meta = context.definition_metadata or {}
        bucket = meta.get(BUCKET_KEY)
        if bucket is None:
            raise LakeError(f"asset {context.asset_key.to_user_string()} has no {BUCKET_KEY} metadata")
        tables = meta.get(TABLES_KEY)
        files = meta.get(FILES_KEY)
        ticker, scenario = _partition_dims(context.asset_partitions_def, context.partition_key)
        lake = self.lake.get_lake()
        name = _asset_name(context.asset_key)

        folders: dict[str, dict[str, Any]] = defaultdict(dict)
        if not tables and not files:
            if not isinstance(obj, pl.DataFrame):
                raise LakeError(f"asset {name} must return a polars DataFrame, got {type(obj).__name__}")
            folders[lake.folder_key(bucket, name, ticker, scenario)][PARQUET_FILE] = obj
        else:
            if not isinstance(obj, dict):
                raise LakeError(f"asset {name} must return a dict of its tables and files")
            expected = set(tables or []) | set(files or [])
            if set(obj) != expected:
                raise LakeError(f"asset {name} returned {sorted(obj)}, declared {sorted(expected)}")
            for table in tables or []:
                value = obj[table]
                if not isinstance(value, (pl.DataFrame, Path)):
                    raise LakeError(f"asset {name}: table {table} must be a DataFrame or a Parquet file path")
                folders[lake.folder_key(bucket, table, ticker, scenario)][PARQUET_FILE] = value
            for file in files or []:
                value = obj[file]
                if not isinstance(value, bytes):
                    raise LakeError(f"asset {name}: file {file} must be bytes")
                folders[lake.folder_key(bucket, name, ticker, scenario)][file] = value

        lake.replace_folders(dict(folders))  # one commit: an asset's tables switch together
        uris = [lake.uri(folder) for folder in folders]
        context.add_output_metadata(
            {"lake_location": dg.MetadataValue.path(uris[0]) if len(uris) == 1 else dg.MetadataValue.md(
                "\n".join(f"- `{u}`" for u in uris))}
        )

    def _load_one(self, lake: Lake, meta: dict, name: str, ticker: str, scenario: str | None) -> Any:
        bucket = meta[BUCKET_KEY]
        tables = meta.get(TABLES_KEY)
        files = meta.get(FILES_KEY)
        if not tables and not files:
            return lake.scan_table(lake.key(bucket, name, ticker, scenario))
        out: dict[str, Any] = {}
        versions: dict[str, TableVersion] = {}
        for table in tables or []:
            versions[table] = lake.table_version(lake.key(bucket, table, ticker, scenario))
            out[table] = versions[table].frame()
        for file in files or []:
            out[file] = lake.get_bytes(lake.key(bucket, name, ticker, scenario, file))
        return LakeTables(out, versions)

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        meta = upstream.definition_metadata or {}
        name = _asset_name(context.asset_key)
        lake = self.lake.get_lake()
        partitions_def = context.asset_partitions_def
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        run_key = context.partition_key if context.has_partition_key else None
        # a ticker step reading a ticker x scenario asset gathers every scenario (ticker keys never hold "|")
        fan_in = isinstance(partitions_def, dg.MultiPartitionsDefinition) and run_key is not None and "|" not in run_key
        if not fan_in and len(keys) == 1:
            ticker, scenario = _partition_dims(partitions_def, keys[0])
            return self._load_one(lake, meta, name, ticker, scenario)
        loaded: dict[str, Any] = {}
        for key in keys:
            ticker, scenario = _partition_dims(partitions_def, key)
            try:
                loaded[str(key)] = self._load_one(lake, meta, name, ticker, scenario)
            except KeyMissing:  # a scenario of another ticker, never materialized for this one
                continue
        return loaded
