"""Graphs render readable PNGs for normal and degenerate input, and their tables hold the right numbers."""

from __future__ import annotations

import datetime as dt
import io

import polars as pl
from polars.testing import assert_frame_equal
import pytest
from PIL import Image

from mochi_assets.reporting.extracts import extract_trades
from mochi_assets.reporting.graphs import (
    DPI,
    FIGURE_SIZE,
    GraphContext,
    best_traders_graph,
    equity_in_r,
    graph_title,
    lens_graph,
    mae_histogram,
    mae_in_r,
    panel_title,
    stop_limit_cells,
    stops_graph,
    value_labels,
    years_graph,
)
from mochi_assets.reporting.lens import trade_lens

CTX = GraphContext(
    ticker="SYN:GOLD",
    scenario="breakout-long",
    start=dt.date(2021, 1, 4),
    end=dt.date(2021, 12, 31),
    synthetic=True,
    timezone="America/New_York",
)
D = dt.datetime
EXPECTED_SIZE = (int(FIGURE_SIZE[0] * DPI), int(FIGURE_SIZE[1] * DPI))


def assert_png(png: bytes) -> None:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 5_000  # a titled figure, not an empty file
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == EXPECTED_SIZE
        # Something besides the background was drawn.
        assert len(image.convert("L").getcolors(maxcolors=1 << 16)) > 2


# ---------------------------------------------------------------- titles


def test_title_names_ticker_scenario_range_and_synthetic():
    for narrow in (False, True):
        title = graph_title(CTX, "Annual net P&L", narrow=narrow)
        for part in ("Annual net P&L", "SYN:GOLD", "breakout-long", "2021-01-04", "2021-12-31", "synthetic data"):
            assert part in title
    assert "synthetic data" in panel_title(CTX, "MAE")


def test_title_of_real_data_does_not_say_synthetic():
    real = GraphContext("C:XAUUSD", "breakout-long", dt.date(2020, 1, 1), dt.date(2020, 6, 30), synthetic=False)
    assert "synthetic" not in graph_title(real, "Annual net P&L")
    assert "synthetic" not in graph_title(real, "Annual net P&L", narrow=True)
    assert panel_title(real, "MAE") == "MAE"


# ---------------------------------------------------------------- normal input


def test_graphs_render_on_random_trades(tables, grid_traders, random_grid_trades):
    top = [9, 4, 1]
    png, table = years_graph(tables.by_year(random_grid_trades), top, CTX)
    assert_png(png)
    assert table["trader_id"].unique().sort().to_list() == [1, 4, 9]

    png, table = stops_graph(grid_traders, tables.summarize(random_grid_trades), random_grid_trades, CTX)
    assert_png(png)
    assert table.filter(pl.col("kind") == "heatmap").height == 9
    assert table.filter(pl.col("kind") == "mae_r")["outcome"].to_list() == ["win", "loss"]
    # the histogram's bars count every trade of the MAE summary
    bars = table.filter(pl.col("kind") == "mae_r_bin").group_by("outcome").agg(pl.col("trades").sum())
    summary = table.filter(pl.col("kind") == "mae_r").select("outcome", "trades")
    assert sorted(bars.rows()) == sorted(summary.rows())

    png, table = best_traders_graph(random_grid_trades, top, CTX)
    assert_png(png)
    assert table.height == random_grid_trades.filter(pl.col("trader_id").is_in(top)).height

    lens = trade_lens(extract_trades(random_grid_trades, grid_traders, top), timezone="America/New_York")
    assert_png(lens_graph(lens, CTX))


def test_rendering_is_deterministic(tables, random_grid_trades):
    by_year = tables.by_year(random_grid_trades)
    assert years_graph(by_year, [3, 1], CTX)[0] == years_graph(by_year, [3, 1], CTX)[0]


# ---------------------------------------------------------------- degenerate input


def test_graphs_render_with_no_trades(tables, grid_traders, random_grid_trades):
    no_trades = random_grid_trades.clear()
    png, table = years_graph(tables.by_year(no_trades), [1, 2], CTX)
    assert_png(png)
    assert table.is_empty() and "net_pnl" in table.columns

    png, table = stops_graph(grid_traders, tables.summarize(no_trades), no_trades, CTX)
    assert_png(png)
    heatmap = table.filter(pl.col("kind") == "heatmap")
    assert heatmap["mean_net_pnl"].to_list() == [0.0] * 9  # traders without trades made nothing
    assert table.filter(pl.col("kind") == "mae_r").is_empty()

    png, table = best_traders_graph(no_trades, [1, 2], CTX)
    assert_png(png)
    assert table.is_empty() and "cum_r" in table.columns

    lens = trade_lens(extract_trades(no_trades, grid_traders, [1, 2]), timezone="America/New_York")
    assert_png(lens_graph(lens, CTX))


def test_graphs_render_with_empty_top_list(tables, random_grid_trades):
    png, table = years_graph(tables.by_year(random_grid_trades), [], CTX)
    assert_png(png)
    assert table.is_empty()
    png, table = best_traders_graph(random_grid_trades, [], CTX)
    assert_png(png)
    assert table.is_empty()


def test_graphs_render_one_trader_one_year(tables):
    traders = tables.make_traders([1.0], [2.0])
    t = tables.trade
    trades = tables.trades_frame([t(1, D(2021, 3, 1, 14, 30), 45, 4.0, 0.4, mae=2.0, mfe=5.0)])
    png, table = years_graph(tables.by_year(trades), [1], CTX)
    assert_png(png)
    assert table.rows() == [(1, 1, 2021, 1, 4.0, 1.0)]
    png, _ = stops_graph(traders, tables.summarize(trades), trades, CTX)
    assert_png(png)
    png, table = best_traders_graph(trades, [1], CTX)
    assert_png(png)
    assert table["cum_r"].to_list() == [0.4]
    lens = trade_lens(extract_trades(trades, traders, [1]), timezone="America/New_York")
    assert_png(lens_graph(lens, CTX))


# ---------------------------------------------------------------- tables behind the graphs


def test_years_table_keeps_top_traders_in_rank_order(tables):
    by_year = pl.DataFrame(
        {
            "trader_id": [1, 1, 2, 3, 3],
            "year": [2020, 2021, 2020, 2020, 2021],
            "trades": [10, 12, 5, 7, 8],
            "net_pnl": [1.5, -2.0, 4.0, 3.0, 3.5],
            "win_rate": [0.6, 0.4, 0.8, 0.5, 0.5],
        }
    )
    _, table = years_graph(by_year, [3, 1], CTX)
    assert table.rows() == [
        (1, 3, 2020, 7, 3.0, 0.5),
        (1, 3, 2021, 8, 3.5, 0.5),
        (2, 1, 2020, 10, 1.5, 0.6),
        (2, 1, 2021, 12, -2.0, 0.4),
    ]


def test_heatmap_cell_is_mean_net_pnl_of_its_traders(tables):
    traders = tables.make_traders([1.0, 2.0], [2.0])  # trader 1: stop 1, trader 2: stop 2
    traders = pl.concat([traders, traders.filter(pl.col("trader_id") == 1).with_columns(trader_id=pl.lit(3, pl.Int64))])
    summary = pl.DataFrame({"trader_id": [1, 3], "trades": [4, 6], "net_pnl": [10.0, -4.0]})
    cells = stop_limit_cells(traders, summary)
    assert cells.select("stop_atr", "limit_atr", "traders", "traders_with_trades", "mean_net_pnl").rows() == [
        (1.0, 2.0, 2, 2, 3.0),
        (2.0, 2.0, 1, 0, 0.0),  # trader 2 is not in the summary: no trades, net 0
    ]
    assert cells["best_net_pnl"].to_list() == [10.0, 0.0]
    assert cells["worst_net_pnl"].to_list() == [-4.0, 0.0]


def test_heatmap_cells_carry_ticks_beside_price_units(tables):
    traders = tables.make_traders([1.0, 2.0], [2.0])
    summary = pl.DataFrame(
        {"trader_id": [1], "trades": [4], "net_pnl": [0.0042], "net_pnl_ticks": [42.0]}
    )
    cells = stop_limit_cells(traders, summary)
    assert cells["mean_net_pnl_ticks"].to_list() == [42.0, 0.0]
    assert stop_limit_cells(traders, summary.drop("net_pnl_ticks"))["mean_net_pnl_ticks"].null_count() == 2


def test_value_labels_follow_the_magnitude():
    # a forex pair's P&L: never "0.00" everywhere
    assert value_labels([0.0042, -0.0011, 0.0]) == ["0.00420", "-0.00110", "0.00000"]
    assert value_labels([0.00005]) == ["0.0000500"]
    assert value_labels([3.14159, -1.5]) == ["3.14", "-1.50"]
    assert value_labels([12.5, 3.0]) == ["12.5", "3.0"]
    # large magnitudes: no decimals, thousands separators
    assert value_labels([123456.7, -980.2]) == ["123,457", "-980"]
    assert value_labels([2.5e9]) == ["2,500,000,000"]
    assert value_labels([0.0, 0.0]) == ["0", "0"]
    assert value_labels([float("nan"), 0.25]) == ["-", "0.250"]


def test_forex_stops_heatmap_and_verdict_caption_render(tables):
    """A forex-sized grid (P&L of a few ten-thousandths) draws; the verdict changes the picture."""
    traders = tables.make_traders([0.5, 1.0], [1.0, 2.0])
    trades = tables.random_trades(traders, days=40).with_columns(
        pl.col("pnl") / 10_000, pl.col("mae") / 10_000, pl.col("mfe") / 10_000
    )
    summary = tables.summarize(trades).with_columns(net_pnl_ticks=pl.col("net_pnl") * 100_000)
    png, table = stops_graph(traders, summary, trades, CTX)
    assert_png(png)
    assert table.filter(pl.col("kind") == "heatmap")["mean_net_pnl_ticks"].null_count() == 0
    top = [1, 2]
    plain, _ = best_traders_graph(trades, top, CTX)
    captioned, _ = best_traders_graph(trades, top, CTX, verdict="No trader in this backtest beats what luck explains.")
    assert_png(captioned)
    assert plain != captioned


def test_mae_in_r_uses_the_session_atr_implied_by_the_trades(tables):
    traders = tables.make_traders([1.0, 2.0], [3.0])  # trader 1: stop 1 ATR, trader 2: stop 2 ATR
    t = tables.trade
    # 2021-03-01: ATR 10, so trader 1 risks 10 and trader 2 risks 20.
    # 2021-03-02: only a break-even trade (r = 0): its risk cannot be told, it is left out.
    trades = tables.trades_frame(
        [
            t(1, D(2021, 3, 1, 14, 30), 30, 5.0, 0.5, mae=4.0),
            t(2, D(2021, 3, 1, 14, 30), 30, -20.0, -1.0, mae=15.0),
            t(2, D(2021, 3, 1, 16, 30), 30, 0.0, 0.0, mae=6.0),
            t(1, D(2021, 3, 2, 14, 30), 30, 0.0, 0.0, mae=3.0),
        ]
    )
    mae = mae_in_r(trades, traders)
    assert mae.select("trader_id", "mae_r", "outcome").rows() == [
        (1, pytest.approx(0.4), "win"),
        (2, pytest.approx(0.75), "loss"),
        (2, pytest.approx(0.3), "loss"),
    ]
    _, table = stops_graph(traders, tables.summarize(trades), trades, CTX)
    rows = table.filter(pl.col("kind") == "mae_r").select("outcome", "trades", "mae_r_mean", "mae_r_max").rows()
    assert rows == [("win", 1, pytest.approx(0.4), pytest.approx(0.4)), ("loss", 2, pytest.approx(0.525), pytest.approx(0.75))]


def test_equity_and_drawdown_in_r(tables):
    t = tables.trade
    trades = tables.trades_frame(
        [
            t(1, D(2021, 3, 1, 14, 30), 30, 1.0, 1.0),
            t(1, D(2021, 3, 2, 14, 30), 30, -0.5, -0.5),
            t(1, D(2021, 3, 3, 14, 30), 30, -1.0, -1.0),
            t(1, D(2021, 3, 4, 14, 30), 30, 2.0, 2.0),
            t(2, D(2021, 3, 1, 14, 30), 30, -1.0, -1.0),
            t(2, D(2021, 3, 2, 14, 30), 30, 0.5, 0.5),
            t(3, D(2021, 3, 1, 14, 30), 30, 9.0, 9.0),
        ]
    )
    table = equity_in_r(trades.reverse(), [2, 1])
    assert table.select("rank", "trader_id").rows() == [(1, 2), (1, 2), (2, 1), (2, 1), (2, 1), (2, 1)]
    assert table["cum_r"].to_list() == pytest.approx([-1.0, -0.5, 1.0, 0.5, -0.5, 1.5])
    # The peak starts at zero: a trader that starts by losing is in drawdown.
    assert table["drawdown_r"].to_list() == pytest.approx([-1.0, -0.5, 0.0, -0.5, -1.5, 0.0])


def test_mae_histogram_bins_are_fixed_with_one_overflow_bin():
    mae = pl.DataFrame(
        {
            "mae_r": [0.0, 0.049, 0.05, 0.15, 0.15, 1.0, 2.99, 3.0, 7.5, float("nan")],
            "outcome": ["win", "win", "win", "loss", "loss", "loss", "loss", "loss", "win", "loss"],
        }
    )
    bins = mae_histogram(mae)
    assert bins.columns == ["outcome", "bin_from_r", "bin_to_r", "trades"]
    assert bins.rows() == [
        ("win", 0.0, 0.05, 2),
        ("win", 0.05, pytest.approx(0.1), 1),
        ("win", 3.0, None, 1),  # 3 R and beyond: one open-ended bin
        ("loss", pytest.approx(0.15), pytest.approx(0.2), 2),  # 0.15 R is the start of its bin
        ("loss", 1.0, pytest.approx(1.05), 1),
        ("loss", pytest.approx(2.95), 3.0, 1),
        ("loss", 3.0, None, 1),
    ]
    assert mae_histogram(mae.clear()).is_empty()


def test_ineligible_top_traders_are_marked_in_legends(tables, random_grid_trades):
    from mochi_assets.reporting.graphs import _trader_labels

    assert _trader_labels([5, 7], frozenset({7})) == {5: "#1 trader 5", 7: "#2 trader 7 (ineligible: too few trades)"}
    plain, _ = best_traders_graph(random_grid_trades, [1, 2], CTX)
    marked, _ = best_traders_graph(random_grid_trades, [1, 2], CTX, ineligible=[2])
    assert_png(marked)
    assert plain != marked
    by_year = tables.by_year(random_grid_trades)
    assert years_graph(by_year, [1, 2], CTX)[0] != years_graph(by_year, [1, 2], CTX, ineligible={1})[0]


def test_scatter_points_keep_one_point_per_occupied_cell_and_group():
    from mochi_assets.reporting.graphs import scatter_points

    import numpy as np

    rng = np.random.default_rng(3)
    n = 20_000
    points = pl.DataFrame(
        {"x": rng.exponential(5.0, n), "y": rng.exponential(8.0, n), "win": rng.random(n) < 0.5, "row": range(n)}
    )
    kept = scatter_points(points, "x", "y", "win", cells=(100, 50))
    assert kept.equals(scatter_points(points, "x", "y", "win", cells=(100, 50)))  # same input, same rows
    assert 0 < kept.height <= 2 * 100 * 50 and kept.height < n
    assert kept["row"].is_sorted()  # drawing order kept
    # every extreme point of each group survives (outliers are never dropped)
    for win in (True, False):
        group = points.filter(pl.col("win") == win)
        for column in ("x", "y"):
            for pick in (group.sort(column).tail(1), group.sort(column).head(1)):
                # the kept point of an extreme's cell lies within one cell of it
                row = pick.row(0, named=True)
                near = kept.filter(
                    (pl.col("win") == win)
                    & ((pl.col("x") - row["x"]).abs() <= points["x"].max() / 100 + 1e-9)
                    & ((pl.col("y") - row["y"]).abs() <= points["y"].max() / 50 + 1e-9)
                )
                assert near.height >= 1
    # non-finite coordinates are not drawn; a single point or a zero-width range still works
    odd = pl.DataFrame({"x": [1.0, float("nan"), None, 1.0], "y": [2.0, 1.0, 1.0, float("inf")], "win": [True] * 4})
    assert scatter_points(odd, "x", "y", "win").rows() == [(1.0, 2.0, True)]
    flat = pl.DataFrame({"x": [1.0, 1.0, 1.0], "y": [2.0, 2.0, 2.0], "win": [True, False, True]})
    assert scatter_points(flat, "x", "y", "win").rows() == [(1.0, 2.0, False), (1.0, 2.0, True)]


def test_stops_graph_reads_a_lazy_trades_scan_and_gives_the_same_table(tables):
    traders = tables.make_traders([0.5, 1.0], [1.0, 2.0])
    trades = tables.random_trades(traders, days=30)
    summary = tables.summarize(trades)
    _, eager = stops_graph(traders, summary, trades, CTX)
    _, lazy = stops_graph(traders, summary, trades.lazy(), CTX)
    # the same numbers; a mean may differ in its last bit (polars adds a group's values in the
    # order its threads meet them)
    assert_frame_equal(lazy, eager, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
