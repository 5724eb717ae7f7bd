"""Metadata every asset records: previews, ranges, provenance. Shared so each asset stays short."""

from __future__ import annotations

import base64
import datetime as dt

import dagster as dg
import polars as pl

from mochi_assets.request import BacktestRequest

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


def provenance(request: BacktestRequest, *, synthetic: bool) -> dict[str, object]:
    """Which request a materialization came from and whether its data is synthetic."""
    return {
        "request_id": request.request_id,
        "request_hash": request.request_hash,
        "ticker": request.ticker,
        "date_range": f"{request.start} to {request.end}",
        "data": "synthetic data" if synthetic else "market data",
    }


def png_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG embedded in Markdown, so the graph shows on the materialization in the UI."""
    encoded = base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})")
