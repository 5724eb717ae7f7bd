"""Trade extracts keep exactly the top traders' trades, with their parameters."""

from __future__ import annotations

import polars as pl
import pytest

from mochi_assets.reporting.extracts import PARAMETER_COLUMNS, extract_trades
from mochi_resources.errors import MochiError


def test_extract_keeps_exactly_the_top_traders_trades(grid_traders, random_grid_trades):
    top = [7, 2, 5]
    extract = extract_trades(random_grid_trades, grid_traders, top)

    expected = random_grid_trades.filter(pl.col("trader_id").is_in(pl.Series(top).implode()))
    assert extract.height == expected.height > 0
    assert set(extract["trader_id"].unique().to_list()) == set(top)
    # Every trade column survives unchanged, row for row, in trader_id, entry_ts order.
    ordered = expected.sort("trader_id", "entry_ts")
    assert extract.select(random_grid_trades.columns).equals(ordered)
    assert extract.select("trader_id", "entry_ts").equals(ordered.select("trader_id", "entry_ts"))


def test_extract_rows_carry_their_traders_parameters(grid_traders, random_grid_trades):
    extract = extract_trades(random_grid_trades, grid_traders, [4, 9])
    for column in PARAMETER_COLUMNS:
        assert column in extract.columns
    joined = extract.select("trader_id", *PARAMETER_COLUMNS).unique().sort("trader_id")
    expected = grid_traders.filter(pl.col("trader_id").is_in([4, 9])).select("trader_id", *PARAMETER_COLUMNS)
    assert joined.equals(expected.sort("trader_id"))
    assert extract["scenario"].unique().to_list() == ["breakout-long"]


def test_extract_with_no_top_traders_is_empty_with_columns(grid_traders, random_grid_trades):
    extract = extract_trades(random_grid_trades, grid_traders, [])
    assert extract.is_empty()
    assert set(random_grid_trades.columns) | set(PARAMETER_COLUMNS) <= set(extract.columns)


def test_extract_of_a_top_trader_without_trades_is_empty(grid_traders, random_grid_trades):
    trades = random_grid_trades.filter(pl.col("trader_id") != 3)
    assert extract_trades(trades, grid_traders, [3]).is_empty()


def test_extract_repeated_top_ids_do_not_duplicate_trades(grid_traders, random_grid_trades):
    once = extract_trades(random_grid_trades, grid_traders, [1])
    assert extract_trades(random_grid_trades, grid_traders, [1, 1]).equals(once)


def test_extract_rejects_unknown_top_trader(grid_traders, random_grid_trades):
    with pytest.raises(MochiError, match="99"):
        extract_trades(random_grid_trades, grid_traders, [1, 99])


def test_extract_rejects_duplicate_trader_ids(grid_traders, random_grid_trades):
    doubled = pl.concat([grid_traders, grid_traders.filter(pl.col("trader_id") == 2)])
    with pytest.raises(MochiError, match="trader_id 2 appears 2 times"):
        extract_trades(random_grid_trades, doubled, [2])


def test_extract_names_missing_columns(grid_traders, random_grid_trades):
    with pytest.raises(MochiError, match="traders: missing column.*stop_atr"):
        extract_trades(random_grid_trades, grid_traders.drop("stop_atr"), [1])
