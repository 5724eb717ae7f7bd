"""Metadata every asset records: previews, ranges, provenance, versions. Shared so each asset stays short.

Versions (what makes "nothing changed, nothing re-simulated" work):

- `code_version(...)` is the asset's Dagster code version: a hash of the source files of the
  stages it runs and of the libraries whose results it depends on, so any edit to that code
  marks the asset's materializations out of date.
- `frames_version(...)` is a content hash of tables (raw bars use it as their data version:
  an incremental refresh that brings no new bar keeps the same version).
- `provenance(...)` is metadata only (request, code version, engines). Every other asset's
  data version is Dagster's default: a hash of its code version and its inputs' data versions,
  and every asset has `backtest_request` (data version = the request's hash) as an input, so a
  changed request, code or input makes what follows stale.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from importlib import metadata as importlib_metadata
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import xxhash

from mochi_assets.request import BacktestRequest

_PACKAGE_ROOT = Path(__file__).resolve().parent

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
    (`"simulation"`, `"scenarios"`, ...) or modules (`"request.py"`) and of the given libraries' installed versions."""
    digest = hashlib.sha256()
    for stage in sorted(stages):
        folder = _PACKAGE_ROOT / stage
        if folder.is_file():  # a module of mochi_assets itself (`"request.py"`)
            paths = [folder]
        elif folder.is_dir():
            paths = sorted(p for p in folder.rglob("*") if p.suffix in (".py", ".sql"))
        else:
            raise ValueError(f"code_version: {stage!r} is not a stage package or module of mochi_assets")
        for path in paths:
            digest.update(path.relative_to(_PACKAGE_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    for lib in sorted(libraries):
        digest.update(f"{lib}=={importlib_metadata.version(lib)}".encode())
    return digest.hexdigest()[:16]


# Physical types whose values frames_version hashes as NumPy buffers.
_BUFFER_DTYPES = frozenset({pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
                            pl.Float32, pl.Float64, pl.Boolean})


def frames_version(*frames: pl.DataFrame) -> str:
    """Content hash of tables (schema and every value, in order): equal tables, equal version.

    XXH3-128 of each column's values as they lie in memory (numbers, dates and times as their
    physical values of up to 64 bits; a column with nulls adds its null mask, and its nulls hash
    as zeros) and of the schema and heights; columns of other types (text, decimals, lists)
    through polars' own value hash. 10 years of minute bars (3.8 M rows x 6 columns) hash in about 0.03 s, against
    0.1 s for polars' row hash of every column (which polars does not promise to keep between
    its versions). Chunking does not matter: equal values, equal version.
    """
    digest = xxhash.xxh3_128()
    for df in frames:
        digest.update(str(df.schema).encode())
        digest.update(df.height.to_bytes(8, "little"))
        for series in df.get_columns():
            physical = series.to_physical()
            if physical.dtype in _BUFFER_DTYPES:
                if physical.null_count():
                    digest.update(physical.is_null().to_numpy().tobytes())
                    physical = physical.fill_null(0)
                digest.update(np.ascontiguousarray(physical.to_numpy()).data)
            else:
                digest.update(series.hash(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:24]


def engine_storage(context: dg.AssetExecutionContext | None = None) -> str:
    """Where the step stores data: the `local` lake folder or `s3` (from the lake resource in use)."""
    lake = getattr(context.resources, "lake", None) if context is not None else None
    if lake is not None and hasattr(lake, "settings"):
        return "s3" if lake.settings().s3_endpoint else "local"
    return "local"


def _current_context() -> dg.AssetExecutionContext | None:
    try:
        return dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return None


def provenance(request: BacktestRequest, *, synthetic: bool, context: dg.AssetExecutionContext | None = None,
               engine_sql: str | None = None) -> dict[str, object]:
    """Metadata saying which request, code and engines a materialization came from, and whether its
    data is synthetic. It only returns metadata: data versions are Dagster's own (code version and
    input data versions, the request's hash among them), recorded by Dagster with every
    materialization. `engine_sql` is given by the steps that ran SQL, naming the engine that ran."""
    meta: dict[str, object] = {
        "request_id": request.request_id,
        "request_hash": request.request_hash,
        "ticker": request.ticker,
        "date_range": f"{request.start} to {request.end}",
        "data": "synthetic data" if synthetic else "market data",
    }
    context = context or _current_context()
    if context is not None:
        meta["code_version"] = context.assets_def.code_versions_by_key.get(context.asset_key) or "unversioned"
    meta["engine_storage"] = engine_storage(context)
    if engine_sql is not None:
        meta["engine_sql"] = engine_sql
    return meta


def png_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG embedded in Markdown, so the graph shows on the materialization in the UI."""
    encoded = base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})")
