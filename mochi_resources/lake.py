"""The lake: Mochi's tables and files in one Hive-style layout, on a local folder.

Keys are `{prefix}{bucket}/{table}/ticker={T}[/scenario={S}]/{file}`, so a SQL engine can read a
table folder as an external table partitioned by ticker and scenario. Tables are Parquet (zstd).

Writes are all-or-nothing per file: data is written to a staging file on the same filesystem
and renamed into place (`os.replace` is atomic), so a reader sees the previous or the new file,
never half of one. A partition's output is replaced whole: files of an older version that the new
one does not have are removed after the new files are in place.

The backend is chosen by configuration (`MochiSettings`); the S3 backend plugs in behind the same
`Lake` methods.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from mochi_resources.errors import LakeError
from mochi_resources.settings import MochiSettings

PARQUET_FILE = "data.parquet"


def partition_path(ticker: str, scenario: str | None = None) -> str:
    """Hive-style partition folder for a ticker (and scenario)."""
    return f"ticker={ticker}" if scenario is None else f"ticker={ticker}/scenario={scenario}"


class Lake:
    """Tables and files of every pipeline stage, in one layout (see the module docstring)."""

    def __init__(self, settings: MochiSettings):
        if settings.s3_endpoint:
            raise LakeError(
                f"MOCHI_S3_ENDPOINT is set to {settings.s3_endpoint!r}, but this build of Mochi only has "
                "the local lake; unset MOCHI_S3_ENDPOINT to use the folder under MOCHI_HOME"
            )
        self.settings = settings
        self.root = settings.lake_root

    # --- keys -------------------------------------------------------------------------------

    def key(self, bucket: str, table: str, ticker: str, scenario: str | None = None, file: str = PARQUET_FILE) -> str:
        return f"{self.settings.bucket(bucket)}/{table}/{partition_path(ticker, scenario)}/{file}"

    def folder_key(self, bucket: str, table: str, ticker: str | None = None, scenario: str | None = None) -> str:
        base = f"{self.settings.bucket(bucket)}/{table}"
        return base if ticker is None else f"{base}/{partition_path(ticker, scenario)}"

    def uri(self, key: str) -> str:
        """Where a key lives, for people (a path they can open)."""
        return str(self.root / key)

    def _path(self, key: str) -> Path:
        return self.root / key

    # --- staging ----------------------------------------------------------------------------

    @contextmanager
    def staging_file(self, suffix: str = ".parquet") -> Iterator[Path]:
        """A scratch file on the lake's filesystem (so committing it is a rename); removed if unused."""
        path = self.staging_path(suffix)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def staging_path(self, suffix: str = ".parquet") -> Path:
        """A scratch file name for an output committed later with `put_file` (the caller cleans up on failure)."""
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging / f"{uuid.uuid4().hex}{suffix}"

    # --- writes -----------------------------------------------------------------------------

    def put_file(self, key: str, local: Path) -> None:
        """Move a finished local file into place atomically."""
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
        try:
            try:
                os.replace(local, tmp)
            except OSError:
                shutil.copyfile(local, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise LakeError(f"cannot write {self.uri(key)}: {exc.strerror or exc}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.staging_file(suffix=".bin") as tmp:
            tmp.write_bytes(data)
            self.put_file(key, tmp)

    def put_table(self, key: str, df: pl.DataFrame) -> None:
        with self.staging_file() as tmp:
            df.write_parquet(tmp, compression="zstd", statistics=True)
            self.put_file(key, tmp)

    def put_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def replace_folder(self, folder_key: str, files: Mapping[str, Path | bytes | pl.DataFrame]) -> None:
        """Write every file of a partition folder, then drop files the new version does not have."""
        for name, value in files.items():
            key = f"{folder_key}/{name}"
            if isinstance(value, pl.DataFrame):
                self.put_table(key, value)
            elif isinstance(value, bytes):
                self.put_bytes(key, value)
            else:
                self.put_file(key, Path(value))
        folder = self._path(folder_key)
        for old in folder.iterdir():
            if old.is_file() and old.name not in files and not old.name.startswith("."):
                old.unlink(missing_ok=True)

    # --- reads ------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise LakeError(f"{self.uri(key)} does not exist (has the asset been materialized?)") from None

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def scan_table(self, key: str) -> pl.LazyFrame:
        path = self._path(key)
        if not path.is_file():
            raise LakeError(f"{self.uri(key)} does not exist (has the asset been materialized?)")
        return pl.scan_parquet(path)

    def read_table(self, key: str) -> pl.DataFrame:
        return self.scan_table(key).collect()

    def list_partitions(self, bucket: str, table: str) -> list[str]:
        """Ticker keys that have a folder in a table (for showing results)."""
        folder = self._path(self.folder_key(bucket, table))
        if not folder.is_dir():
            return []
        return sorted(p.name.removeprefix("ticker=") for p in folder.iterdir() if p.name.startswith("ticker="))

    def delete_folder(self, folder_key: str) -> None:
        shutil.rmtree(self._path(folder_key), ignore_errors=True)

