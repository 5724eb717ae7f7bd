"""Trade extracts: every trade of the best traders, next to the parameters that produced it.

The extract is what a researcher opens to look at individual trades of a ranked
trader (and what the trade lens analyses), so each row carries the trader's
parameters and needs no join with the traders table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl

from mochi_assets.contracts import TRADER_PARAMETERS
from mochi_resources.errors import MochiError

# Trader parameters copied onto every extracted trade (the traders columns of docs/strategy.md section 9).
PARAMETER_COLUMNS: tuple[str, ...] = tuple(p for p in TRADER_PARAMETERS if p != "cost_ticks")
# Copied too when the traders table has them (they are part of the contract but
# not needed to read a trade).
OPTIONAL_PARAMETER_COLUMNS: tuple[str, ...] = ("scenario", "cost_ticks")

TRADE_COLUMNS: tuple[str, ...] = ("trader_id", "entry_ts")


def require_columns(frame: pl.DataFrame | pl.LazyFrame, columns: Iterable[str], table: str) -> None:
    """Raise MochiError naming the table and every column it lacks (a lazy frame: from its schema)."""
    names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    missing = [c for c in columns if c not in names]
    if missing:
        raise MochiError(
            f"{table}: missing column(s) {', '.join(missing)} (has {', '.join(names) or 'no columns'})"
        )


def unique_ids(ids: Sequence[int]) -> list[int]:
    """The ids in their given order with repeats removed (top lists are ranked)."""
    return list(dict.fromkeys(int(i) for i in ids))


def extract_trades(trades: pl.DataFrame, traders: pl.DataFrame, top_ids: list[int]) -> pl.DataFrame:
    """Every trade of the traders in ``top_ids``, joined with their parameters.

    ``trades`` and ``traders`` have the columns of docs/strategy.md section 9.
    Returns the trades columns followed by direction, entry_time, offset_ticks,
    stop_atr, limit_atr, duration_min, timeout_min (and scenario, cost_ticks when
    present), sorted by trader_id, entry_ts. A top trader without trades simply has
    no rows. Raises MochiError when a top trader is not in ``traders`` or a
    trader_id appears twice there.
    """
    require_columns(trades, TRADE_COLUMNS, "trades")
    require_columns(traders, ("trader_id", *PARAMETER_COLUMNS), "traders")

    ids = unique_ids(top_ids)
    wanted = pl.DataFrame({"trader_id": ids}, schema={"trader_id": pl.Int64})

    optional = [c for c in OPTIONAL_PARAMETER_COLUMNS if c in traders.columns and c not in trades.columns]
    params = traders.select(
        pl.col("trader_id").cast(pl.Int64), *PARAMETER_COLUMNS, *optional
    ).join(wanted, on="trader_id", how="semi")

    repeated = params.group_by("trader_id").len().filter(pl.col("len") > 1)
    if not repeated.is_empty():
        first = repeated.sort("trader_id").row(0, named=True)
        raise MochiError(
            f"traders: trader_id {first['trader_id']} appears {first['len']} times (trader ids must be unique)"
        )
    unknown = sorted(set(ids) - set(params["trader_id"].to_list()))
    if unknown:
        raise MochiError(f"traders: top trader id(s) {unknown} are not in the traders table")

    # Parameter columns already on the trades table (unusual) keep the traders' value.
    overlap = [c for c in PARAMETER_COLUMNS if c in trades.columns]
    selected = (
        trades.drop(overlap)
        .with_columns(pl.col("trader_id").cast(pl.Int64))
        .join(wanted, on="trader_id", how="semi")
    )
    return selected.join(params, on="trader_id", how="left").sort(["trader_id", "entry_ts"])
