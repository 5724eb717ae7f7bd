"""Graphs of a ticker x scenario: years, stops, best traders and the trade lens.

Every graph function takes the product's tables (polars; columns in docs/strategy.md section 9)
and a GraphContext and returns the PNG bytes, plus (except the lens graph) the polars table the
picture was drawn from, so that the numbers behind a graph can be stored next to it as CSV.

Pictures are drawn with plotnine on matplotlib's "Agg" backend (no display), at a
fixed size and dpi so that the files stay small and a given input always renders
to the same bytes. Every title names the ticker, scenario and date range, and says
"synthetic data" when the bars came from the synthetic generator. Degenerate input
(no trades, no top traders) still renders a readable PNG that says so.

Units: the years graph is in price units, the stops heatmap in price units with ticks beside
them (cell labels), the equity curves in R. Numbers printed on a graph are formatted to the
magnitude of the values shown together (``value_labels``), so a forex pair's P&L of 0.0042 does
not print as 0.00.
"""

from __future__ import annotations

import io
import textwrap
import warnings
from collections.abc import Iterable
from datetime import timedelta

import matplotlib
import matplotlib.image

matplotlib.use("Agg")

import pandas as pd  # noqa: E402  (plotnine must be imported after the backend is chosen)
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import polars as pl  # noqa: E402
from plotnine import (  # noqa: E402
    aes,
    element_text,
    facet_wrap,
    geom_col,
    geom_hline,
    geom_line,
    geom_point,
    geom_ribbon,
    geom_text,
    geom_tile,
    geom_vline,
    ggplot,
    labs,
    position_dodge,
    scale_color_brewer,
    scale_color_hue,
    scale_color_manual,
    scale_fill_brewer,
    scale_fill_hue,
    scale_fill_gradient2,
    scale_fill_manual,
    scale_x_datetime,
    scale_y_continuous,
    theme,
    theme_bw,
    theme_void,
    xlim,
    ylim,
)
from plotnine.composition import Compose  # noqa: E402

from mochi_assets.memory import freeze_long_lived  # noqa: E402
from mochi_assets.reporting.extracts import require_columns, unique_ids  # noqa: E402
from mochi_assets.reporting.lens import WEEKDAYS  # noqa: E402
from mochi_assets.reporting.numbers import value_labels  # noqa: E402
from mochi_resources.errors import MochiError  # noqa: E402
from mochi_assets.reporting.context import GraphContext, graph_title, panel_title  # noqa: E402,F401  (re-exported)

FIGURE_SIZE: tuple[float, float] = (10.0, 6.0)  # inches
DPI: int = 100  # so every PNG is 1000 x 600 pixels

# Below this |r| a trade's implied ATR (pnl / (r * stop_atr)) is dominated by rounding.
_MIN_ABS_R_FOR_RISK = 0.05
# Heatmaps with more cells than this get no value labels (they would overlap).
_MAX_LABELLED_CELLS = 80

_WIN_LOSS_COLOURS = {"win": "#2166ac", "loss": "#b2182b"}

# MAE histogram bins: 1/20 R wide, everything from 3 R up in one last bin.
_MAE_BINS_PER_R = 20
_MAE_HIST_MAX_R = 3.0
_OUTCOME = pl.Enum(["win", "loss"])  # a trade's outcome in the MAE tables: pnl > 0 is a win

# Scatter points drawn on a grid this fine (columns, rows; see scatter_points): the MAE/MFE panel
# is about 400 x 220 pixels and a marker about 5 pixels wide.
_SCATTER_CELLS = (200, 120)


class Plot(ggplot):
    """A single-use ggplot: ``+`` adds in place and a copy is the plot itself.

    plotnine deep-copies a plot (its layers with their data, scales and theme) for every term
    added with ``+``, for every plot put in a composition and once more when it draws it (to
    remember the last plot drawn); that costs as much as drawing a small graph. The graphs here
    build each plot once, draw it once and throw it away, so there is nothing to protect.
    """

    def __add__(self, rhs) -> Plot:
        self += rhs
        return self

    def __deepcopy__(self, memo) -> Plot:
        return self


def _theme(title_size: float = 11) -> theme:
    complete = theme_bw()
    complete += theme(
        plot_title=element_text(size=title_size, ha="left"),
        axis_title=element_text(size=9),
        axis_text=element_text(size=8),
        legend_title=element_text(size=9),
        legend_text=element_text(size=8),
        strip_text=element_text(size=9),
    )
    return complete


def _png(figure: Figure) -> bytes:
    """PNG bytes of a drawn plotnine figure, rendered once.

    ``Figure.savefig`` renders a figure that has a layout engine twice (a first pass with drawing
    disabled to run the layout, then the real one); ``FigureCanvasAgg.draw`` runs the layout
    engine and renders in one pass, to the same pixels.
    """
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, canvas.buffer_rgba(), format="png", origin="upper", dpi=figure.dpi)
    return buffer.getvalue()


def render(plot: ggplot | Compose) -> bytes:
    """PNG bytes of a plot or composition at the fixed size and dpi.

    The plot is drawn in place: every graph function builds its own plot objects, so there is
    nothing to protect with the deep copies ``ggplot.save`` and ``Compose.__and__`` make.
    """
    sizing = theme(figure_size=FIGURE_SIZE, dpi=DPI)
    if isinstance(plot, Compose):
        for panel in _panels(plot):
            panel += sizing
    else:
        plot += sizing
    with warnings.catch_warnings():
        # plotnine warns about dropped non-finite rows and similar; the tables say what was drawn.
        warnings.simplefilter("ignore")
        return _png(plot.draw())


def _panels(composition: Compose) -> list[ggplot]:
    """The plots of a (possibly nested) composition."""
    return [p for item in composition for p in (_panels(item) if isinstance(item, Compose) else [item])]


def _message_plot(title: str, message: str, title_size: float = 11) -> ggplot:
    """An empty panel with a centred message (e.g. "no trades") under the usual title."""
    frame = pd.DataFrame({"x": [0.0], "y": [0.0], "label": [message]})
    return (
        Plot(frame, aes("x", "y", label="label"))
        + geom_text(size=16, color="#555555")
        + xlim(-1, 1)
        + ylim(-1, 1)
        + labs(title=title)
        + theme_void()
        + theme(plot_title=element_text(size=title_size, ha="left"), plot_margin=0.03)
    )


def _trader_labels(ids: list[int], ineligible: frozenset[int] = frozenset()) -> dict[int, str]:
    """Legend labels in rank order; a trader with too few trades to be ranked on merit says so."""
    return {
        trader_id: f"#{rank} trader {trader_id}" + (" (ineligible: too few trades)" if trader_id in ineligible else "")
        for rank, trader_id in enumerate(ids, start=1)
    }


def _ranks(ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"rank": list(range(1, len(ids) + 1)), "trader_id": ids},
        schema={"rank": pl.Int64, "trader_id": pl.Int64},
    )


def _labelled(frame: pl.DataFrame, ids: list[int], ineligible: frozenset[int] = frozenset()) -> pd.DataFrame:
    """Pandas copy for plotnine with an ordered ``trader`` category (legend in rank order)."""
    labels = _trader_labels(ids, ineligible)
    data = frame.to_pandas()
    data["trader"] = pd.Categorical(
        [labels[i] for i in data["trader_id"]], categories=[labels[i] for i in ids], ordered=True
    )
    return data


def _trader_colours(ids: list[int]) -> list:
    """Distinct, legible colours per trader (Dark2 up to 8 traders, evenly spaced hues beyond)."""
    if len(ids) <= 8:
        return [scale_color_brewer(type="qual", palette="Dark2"), scale_fill_brewer(type="qual", palette="Dark2")]
    return [scale_color_hue(), scale_fill_hue()]


def _date_labels(times: pl.Series) -> str:
    """strftime pattern for a time axis: show the clock when the span is short."""
    span = times.max() - times.min()
    return "%Y-%m-%d %H:%M" if span < timedelta(days=3) else "%Y-%m-%d"


# ---------------------------------------------------------------- years


def years_graph(
    by_year: pl.DataFrame, top_ids: list[int], ctx: GraphContext, ineligible: Iterable[int] = ()
) -> tuple[bytes, pl.DataFrame]:
    """Annual net P&L of the top traders, one bar per trader per year (dodged, in rank order).

    Traders in ``ineligible`` (too few trades) are marked so in the legend.

    ``by_year`` is the trader-by-year table (trader_id, year, trades, net_pnl, win_rate).
    The table returned is: rank, trader_id, year, trades, net_pnl, win_rate for the top
    traders, sorted by rank then year (top traders without trades have no rows).
    """
    require_columns(by_year, ("trader_id", "year", "trades", "net_pnl", "win_rate"), "trader by year")
    ids = unique_ids(top_ids)
    table = (
        by_year.select(
            pl.col("trader_id").cast(pl.Int64),
            pl.col("year").cast(pl.Int64),
            pl.col("trades").cast(pl.Int64),
            pl.col("net_pnl").cast(pl.Float64),
            pl.col("win_rate").cast(pl.Float64),
        )
        .join(_ranks(ids), on="trader_id", how="inner")
        .select("rank", "trader_id", "year", "trades", "net_pnl", "win_rate")
        .sort("rank", "year")
    )
    title = graph_title(ctx, "Annual net P&L of the top traders")
    if table.is_empty():
        message = "no trades" if ids else "no top traders"
        return render(_message_plot(title, message)), table

    data = _labelled(table, ids, frozenset(ineligible))
    years = [str(y) for y in sorted(set(data["year"]))]
    data["year"] = pd.Categorical(data["year"].astype(str), categories=years, ordered=True)
    plot = (
        Plot(data, aes("year", "net_pnl", fill="trader"))
        + geom_col(position=position_dodge(width=0.85, preserve="single"), width=0.8)
        + geom_hline(yintercept=0, color="#333333", size=0.4)
        + _trader_colours(ids)[1]
        + scale_y_continuous(labels=value_labels)
        + labs(title=title, x="year (session dates)", y=f"net P&L ({ctx.currency})", fill="trader (rank)")
        + _theme()
    )
    return render(plot), table


# ---------------------------------------------------------------- stops


def stop_limit_cells(traders: pl.DataFrame, summary: pl.DataFrame) -> pl.DataFrame:
    """Mean net P&L of the traders at each (stop_atr, limit_atr) cell.

    A trader absent from ``summary`` made no trade and counts with net_pnl 0.
    Columns: stop_atr, limit_atr, traders, traders_with_trades, mean_net_pnl,
    median_net_pnl, best_net_pnl, worst_net_pnl, mean_net_pnl_ticks (null when the summary has no
    net_pnl_ticks); sorted by stop_atr, limit_atr.
    """
    require_columns(traders, ("trader_id", "stop_atr", "limit_atr"), "traders")
    require_columns(summary, ("trader_id", "net_pnl"), "trader summary")
    trades_col = pl.col("trades").cast(pl.Int64) if "trades" in summary.columns else pl.lit(1, dtype=pl.Int64)
    ticks_col = (
        pl.col("net_pnl_ticks").cast(pl.Float64) if "net_pnl_ticks" in summary.columns else pl.lit(None, dtype=pl.Float64)
    )
    results = summary.select(
        pl.col("trader_id").cast(pl.Int64),
        pl.col("net_pnl").cast(pl.Float64),
        trades_col.alias("trades"),
        ticks_col.alias("net_pnl_ticks"),
    )
    return (
        traders.select(
            pl.col("trader_id").cast(pl.Int64),
            pl.col("stop_atr").cast(pl.Float64),
            pl.col("limit_atr").cast(pl.Float64),
        )
        .join(results, on="trader_id", how="left")
        .with_columns(
            pl.col("net_pnl").fill_null(0.0),
            pl.col("trades").fill_null(0),
            pl.col("net_pnl_ticks").fill_null(0.0) if "net_pnl_ticks" in summary.columns else pl.col("net_pnl_ticks"),
        )
        .group_by("stop_atr", "limit_atr")
        .agg(
            traders=pl.len().cast(pl.Int64),
            traders_with_trades=(pl.col("trades") > 0).sum().cast(pl.Int64),
            mean_net_pnl=pl.col("net_pnl").mean(),
            median_net_pnl=pl.col("net_pnl").median(),
            best_net_pnl=pl.col("net_pnl").max(),
            worst_net_pnl=pl.col("net_pnl").min(),
            mean_net_pnl_ticks=pl.col("net_pnl_ticks").mean(),
        )
        .sort("stop_atr", "limit_atr")
    )


def _with_stop(trades: pl.DataFrame | pl.LazyFrame, traders: pl.DataFrame) -> pl.LazyFrame:
    """The trade columns the MAE in R needs, with each trade's stop_atr."""
    require_columns(trades, ("trader_id", "session_date", "entry_ts", "pnl", "r", "mae"), "trades")
    require_columns(traders, ("trader_id", "stop_atr"), "traders")
    return (
        trades.lazy()
        .select(
            pl.col("trader_id").cast(pl.Int64),
            "session_date",
            "entry_ts",
            *(pl.col(c).cast(pl.Float64) for c in ("pnl", "r", "mae")),
        )
        .join(
            traders.lazy().select(pl.col("trader_id").cast(pl.Int64), pl.col("stop_atr").cast(pl.Float64)),
            on="trader_id",
            how="inner",
        )
    )


def _atr_by_date(with_stop: pl.LazyFrame) -> pl.LazyFrame:
    """The ATR of each session date: the median of the ATRs its clear trades imply."""
    return (
        with_stop.filter(pl.col("r").abs() >= _MIN_ABS_R_FOR_RISK)
        .with_columns(implied_atr=pl.col("pnl") / (pl.col("r") * pl.col("stop_atr")))
        .group_by("session_date")
        .agg(date_atr=pl.col("implied_atr").median())
    )


def _mae_rows(with_stop: pl.LazyFrame, atr_by_date: pl.LazyFrame) -> pl.LazyFrame:
    return (
        with_stop.join(atr_by_date, on="session_date", how="inner")
        .with_columns(risk=pl.col("stop_atr") * pl.col("date_atr"))
        .filter(pl.col("risk").is_finite() & (pl.col("risk") > 0))
        .with_columns(
            mae_r=pl.col("mae") / pl.col("risk"),
            # an Enum, not strings: grouping millions of trades by it costs half as much
            outcome=pl.when(pl.col("pnl") > 0).then(pl.lit("win", dtype=_OUTCOME)).otherwise(pl.lit("loss", dtype=_OUTCOME)),
        )
    )


def _mae_in_r_lazy(trades: pl.DataFrame | pl.LazyFrame, traders: pl.DataFrame) -> pl.LazyFrame:
    """``mae_in_r`` as a lazy query, unsorted."""
    with_stop = _with_stop(trades, traders)
    return _mae_rows(with_stop, _atr_by_date(with_stop)).select(
        "trader_id", "session_date", "entry_ts", "mae", "risk", "mae_r", "outcome"
    )


def _mae_r_outcomes(trades: pl.DataFrame | pl.LazyFrame, traders: pl.DataFrame) -> pl.DataFrame:
    """mae_r and outcome of ``mae_in_r``'s rows (unsorted), what the stops graph draws, in two
    passes over the trades on polars' streaming engine: the session dates' ATRs, then each
    trade's MAE in R. One query over both held every trade's columns at once (12.4 million
    trades from a file: 1,003 MB peak in a bare process, two passes 710 MB, same tables)."""
    with_stop = _with_stop(trades, traders)
    atr_by_date = _atr_by_date(with_stop).collect(engine="streaming")
    return _mae_rows(with_stop, atr_by_date.lazy()).select("mae_r", "outcome").collect(engine="streaming")


def mae_in_r(trades: pl.DataFrame, traders: pl.DataFrame) -> pl.DataFrame:
    """Each trade's MAE in R (multiples of its initial risk ``stop_atr * ATR``), with its outcome.

    Trades carry no ATR, but every trade of a session date used the same ATR, and
    ``r = pnl / (stop_atr * ATR)``, so each trade with a clear result implies
    ``ATR = pnl / (r * stop_atr)``. The ATR of a session date is the median of the
    values implied by its trades with |r| >= 0.05 (near-zero r makes the ratio
    rounding noise); a trade's risk is its trader's stop_atr times that ATR. Trades
    on a date without such a trade, or with a non-positive implied risk, are left out.
    Columns: trader_id, session_date, entry_ts, mae, risk, mae_r, outcome ("win" when
    pnl > 0, else "loss"); sorted by trader_id, then entry_ts.
    """
    return (
        _mae_in_r_lazy(trades, traders)
        .sort("trader_id", "entry_ts")
        .with_columns(pl.col("outcome").cast(pl.String))
        .collect()
    )


def _outcome_order(mae: pl.DataFrame) -> pl.DataFrame:
    """"win" then "loss", typed as ``mae``'s outcome column (strings or the ``_OUTCOME`` Enum)."""
    return pl.DataFrame({"outcome": pl.Series(["win", "loss"]).cast(mae.schema["outcome"])})


def _mae_summary(mae: pl.DataFrame) -> pl.DataFrame:
    order = _outcome_order(mae)
    return (
        order.join(
            mae.group_by("outcome").agg(
                trades=pl.len().cast(pl.Int64),
                mae_r_mean=pl.col("mae_r").mean(),
                mae_r_median=pl.col("mae_r").median(),
                mae_r_p90=pl.col("mae_r").quantile(0.9, interpolation="linear"),
                mae_r_max=pl.col("mae_r").max(),
            ),
            on="outcome",
            how="inner",
            maintain_order="left",
        )
        .with_columns(pl.col("outcome").cast(pl.String))
    )


def mae_histogram(mae: pl.DataFrame) -> pl.DataFrame:
    """Trades per outcome and MAE-in-R bin: the bars of the stops graph's MAE panel.

    ``mae`` has mae_r and outcome (as ``mae_in_r`` returns). Bins are fixed, 0.05 R wide from
    0 (a bin holds bin_from_r <= mae_r < bin_to_r), so graphs of different scenarios compare;
    MAE of 3 R or more is counted in one last bin from 3 R with bin_to_r null. Only non-empty
    bins have a row. Columns: outcome, bin_from_r, bin_to_r, trades; sorted by outcome ("win"
    first), then bin.
    """
    overflow = round(_MAE_HIST_MAX_R * _MAE_BINS_PER_R)
    order = _outcome_order(mae).with_row_index("outcome_order")
    return (
        mae.lazy()
        .filter(pl.col("mae_r").is_not_null() & pl.col("mae_r").is_not_nan())
        .select(
            "outcome",
            # x * 20 rather than x / 0.05: 0.15 lands in the bin from 0.15, not below it
            bin=(pl.col("mae_r") * _MAE_BINS_PER_R).floor().clip(0, overflow).cast(pl.Int64),
        )
        .group_by("outcome", "bin")
        .agg(trades=pl.len().cast(pl.Int64))
        .join(order.lazy(), on="outcome", how="inner")
        .sort("outcome_order", "bin")
        .select(
            pl.col("outcome").cast(pl.String),
            bin_from_r=pl.col("bin") / _MAE_BINS_PER_R,
            bin_to_r=pl.when(pl.col("bin") < overflow).then((pl.col("bin") + 1) / _MAE_BINS_PER_R),
            trades="trades",
        )
        .collect()
    )


def stops_graph(
    traders: pl.DataFrame, summary: pl.DataFrame, trades: pl.DataFrame | pl.LazyFrame, ctx: GraphContext
) -> tuple[bytes, pl.DataFrame]:
    """Net P&L over the stop x limit grid (heatmap) beside the MAE-in-R distribution of wins and losses.

    The heatmap cell is the mean net_pnl of the traders with that stop_atr and
    limit_atr (see ``stop_limit_cells``); MAE is in R as computed by ``mae_in_r``.
    The table returned stacks them, told apart by ``kind``: "heatmap" rows (stop_atr,
    limit_atr, traders, traders_with_trades, mean/median/best/worst_net_pnl), "mae_r"
    rows (outcome, trades, mae_r_mean, mae_r_median, mae_r_p90, mae_r_max) and
    "mae_r_bin" rows, the histogram's bars (outcome, bin_from_r, bin_to_r, trades; see
    ``mae_histogram``). ``trades`` may be a lazy scan: only the columns the MAE needs are read.
    """
    cells = stop_limit_cells(traders, summary)
    mae = _mae_r_outcomes(trades, traders)
    mae_summary = _mae_summary(mae)
    bins = mae_histogram(mae)
    del mae
    table = pl.concat(
        [
            cells.with_columns(kind=pl.lit("heatmap")),
            mae_summary.with_columns(kind=pl.lit("mae_r")),
            bins.with_columns(kind=pl.lit("mae_r_bin")),
        ],
        how="diagonal",
    )
    table = table.select("kind", *[c for c in table.columns if c != "kind"])

    title = graph_title(ctx, "Net P&L by stop and limit (mean per trader)", narrow=True)
    if cells.is_empty():
        left = _message_plot(title, "no traders", title_size=10)
    else:
        data = cells.to_pandas()
        stops = sorted(set(data["stop_atr"]))
        limits = sorted(set(data["limit_atr"]))
        data["stop"] = pd.Categorical([f"{v:g}" for v in data["stop_atr"]], categories=[f"{v:g}" for v in stops])
        data["limit"] = pd.Categorical(
            [f"{v:g}" for v in data["limit_atr"]], categories=[f"{v:g}" for v in limits]
        )
        data["label"] = value_labels(data["mean_net_pnl"])
        if data["mean_net_pnl_ticks"].notna().all():
            ticks = value_labels(data["mean_net_pnl_ticks"], significant=2)
            data["label"] = [f"{price}\n{tick} t" for price, tick in zip(data["label"], ticks)]
        left = (
            Plot(data, aes("stop", "limit", fill="mean_net_pnl"))
            + geom_tile(color="white")
            + labs(
                title=title,
                x="stop (ATR multiples)",
                y="limit (ATR multiples)",
                fill=f"mean net P&L\n({ctx.currency};\nlabels: also ticks, t)",
            )
            + scale_fill_gradient2(
                low="#b2182b", mid="#f7f7f7", high="#2166ac", midpoint=0, labels=value_labels
            )
            + _theme(title_size=10)
        )
        if len(data) <= _MAX_LABELLED_CELLS:
            # One group: plotnine otherwise makes each (stop, limit) cell a group and transforms
            # and draws them one call at a time (the same PNG; about 0.1 s less per graph).
            left = left + geom_text(aes(label="label", group=1), size=7)

    right_title = panel_title(ctx, "Maximum adverse excursion in R\nof winning and losing trades")
    if bins.is_empty():
        right = _message_plot(right_title, "no trades", title_size=10)
    else:
        # Bars over pre-counted bins: plotting 5 million points through geom_histogram is slow.
        width = 1.0 / _MAE_BINS_PER_R
        bars = bins.to_pandas()
        bars["mid_r"] = bars["bin_from_r"] + width / 2
        bars["outcome"] = pd.Categorical(bars["outcome"], categories=["win", "loss"])
        x_label = "MAE (R = multiples of initial risk; dashed: the stop)"
        if bins["bin_to_r"].null_count():
            x_label += f"\nthe last bar counts every MAE of {_MAE_HIST_MAX_R:g} R or more"
        right = (
            Plot(bars, aes("mid_r", "trades", fill="outcome"))
            + geom_col(position="identity", width=width, alpha=0.55)
            + geom_vline(xintercept=1.0, linetype="dashed", color="#333333")
            + scale_fill_manual(values=_WIN_LOSS_COLOURS)
            + scale_y_continuous(labels=lambda counts: [f"{c:,.0f}" for c in counts])
            + labs(title=right_title, x=x_label, y=f"trades per {width:g} R bin", fill="outcome")
            + _theme(title_size=10)
        )
    return render(left | right), table


# ---------------------------------------------------------------- best traders


def equity_in_r(trades: pl.DataFrame, top_ids: list[int]) -> pl.DataFrame:
    """Cumulative r of each top trader in exit order, and its drawdown from the running peak.

    The peak starts at 0 (before the first trade), so a trader that starts by losing
    is in drawdown. Columns: rank, trader_id, entry_ts, exit_ts, r, cum_r, drawdown_r
    (<= 0); sorted by rank then exit_ts (entry_ts breaks ties).
    """
    require_columns(trades, ("trader_id", "entry_ts", "exit_ts", "r"), "trades")
    ids = unique_ids(top_ids)
    return (
        trades.select(
            pl.col("trader_id").cast(pl.Int64), "entry_ts", "exit_ts", pl.col("r").cast(pl.Float64)
        )
        .join(_ranks(ids), on="trader_id", how="inner")
        .sort("rank", "exit_ts", "entry_ts")
        .with_columns(cum_r=pl.col("r").cum_sum().over("rank"))
        .with_columns(drawdown_r=pl.col("cum_r") - pl.max_horizontal(pl.col("cum_r").cum_max().over("rank"), 0.0))
        .select("rank", "trader_id", "entry_ts", "exit_ts", "r", "cum_r", "drawdown_r")
    )


def best_traders_graph(
    trades: pl.DataFrame,
    top_ids: list[int],
    ctx: GraphContext,
    verdict: str | None = None,
    ineligible: Iterable[int] = (),
) -> tuple[bytes, pl.DataFrame]:
    """Equity curves in R of the top traders (top panel) and their drawdowns (bottom panel).

    ``verdict`` (the rankings' one-sentence verdict) is the caption under the graph; traders in
    ``ineligible`` (too few trades) are marked so in the legend. The table returned is
    ``equity_in_r(trades, top_ids)``.
    """
    ids = unique_ids(top_ids)
    table = equity_in_r(trades, ids)
    title = graph_title(ctx, "Equity of the top traders in R (cumulative r by exit time)")
    caption = labs(caption="\n".join(textwrap.wrap(verdict, 140))) if verdict else None
    if table.is_empty():
        plot = _message_plot(title, "no trades" if ids else "no top traders")
        return render(plot + caption if caption else plot), table

    # Panels share the time axis and have their own R scale; exit times shown in UTC.
    base = table.with_columns(pl.col("exit_ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None))
    marked = frozenset(ineligible)
    equity = _labelled(base.select("trader_id", "exit_ts", value="cum_r"), ids, marked)
    drawdown = _labelled(base.select("trader_id", "exit_ts", value="drawdown_r"), ids, marked)
    panels = ["cumulative R", "drawdown from peak (R)"]
    equity["panel"] = pd.Categorical([panels[0]] * len(equity), categories=panels)
    drawdown["panel"] = pd.Categorical([panels[1]] * len(drawdown), categories=panels)
    drawdown["zero"] = 0.0
    plot = (
        Plot(mapping=aes("exit_ts", "value", color="trader", group="trader"))
        + geom_ribbon(
            aes(ymin="value", ymax="zero", fill="trader"), data=drawdown, alpha=0.15, color=None, outline_type="full"
        )
        + geom_line(data=equity, size=0.6)
        + geom_line(data=drawdown, size=0.4)
        + geom_hline(yintercept=0, color="#333333", size=0.3)
        + facet_wrap("panel", ncol=1, scales="free_y")
        + scale_x_datetime(date_labels=_date_labels(base["exit_ts"]))
        + _trader_colours(ids)[0]
        + _trader_colours(ids)[1]
        + labs(title=title, x="exit time (UTC)", y="R (multiples of initial risk)", color="trader (rank)", fill="trader (rank)")
        + _theme()
    )
    if len(table) == 1:
        # A single trade draws no line; show it as a point.
        plot = plot + geom_point(data=equity, size=2) + geom_point(data=drawdown, size=2)
    if caption:
        plot = plot + caption + theme(plot_caption=element_text(size=9, ha="left"))
    return render(plot), table


# ---------------------------------------------------------------- lens


def _sign_fill(values: pd.Series) -> pd.Categorical:
    return pd.Categorical(["win" if v > 0 else "loss" for v in values], categories=["win", "loss"])


def scatter_points(points: pl.DataFrame, x: str, y: str, group: str, cells: tuple[int, int] = _SCATTER_CELLS) -> pl.DataFrame:
    """The rows of a scatter worth drawing: one per occupied grid cell and ``group``.

    The x and y ranges are cut into ``cells`` (columns, rows), finer than a marker is wide in
    the panel, so a point left out lies under a point of the same group drawn at most a cell
    away: the picture keeps every occupied place and every outlier, and a graph of 25,000
    trades draws a few thousand markers rather than 25,000. Of the points of a cell and group
    the last is kept (the one drawn on top); rows keep their order, so the result is the same
    for the same input. Rows with a null or non-finite x or y are dropped (they are not drawn).
    """
    finite = points.filter(pl.col(x).is_finite() & pl.col(y).is_finite())
    if finite.height <= 1:
        return finite

    def cell(column: str, count: int) -> pl.Expr:
        low, span = pl.col(column).min(), pl.col(column).max() - pl.col(column).min()
        scaled = pl.when(span > 0).then((pl.col(column) - low) / span).otherwise(0.0)
        return (scaled * count).floor().clip(0, count - 1).cast(pl.Int64)

    return (
        finite.with_columns(_cell_x=cell(x, cells[0]), _cell_y=cell(y, cells[1]))
        .unique(subset=["_cell_x", "_cell_y", group], keep="last", maintain_order=True)
        .drop("_cell_x", "_cell_y")
    )


def _lens_bars(table: pl.DataFrame, key: str, categories: list[str], title: str, x: str, ctx: GraphContext) -> ggplot:
    """Net P&L of all the top traders' trades by ``key`` (bars coloured by sign)."""
    data = (
        table.group_by(key)
        .agg(net_pnl=pl.col("net_pnl").sum(), trades=pl.col("trades").sum())
        .to_pandas()
    )
    data[key] = pd.Categorical([str(v) for v in data[key]], categories=categories, ordered=True)
    data["sign"] = _sign_fill(data["net_pnl"])
    return (
        Plot(data, aes(key, "net_pnl", fill="sign"))
        + geom_col(width=0.8, show_legend=False)
        + geom_hline(yintercept=0, color="#333333", size=0.3)
        + scale_fill_manual(values=_WIN_LOSS_COLOURS, drop=False)
        + labs(title=title, x=x, y=f"net P&L ({ctx.currency})")
        + _theme(title_size=9)
    )


def lens_graph(lens: dict[str, pl.DataFrame], ctx: GraphContext) -> bytes:
    """Four panels of a trade lens (``trade_lens`` output), all top traders' trades together:
    net P&L by local entry hour, by weekday, by hold time, and MAE vs MFE of every trade.
    """
    for name in ("by_hour", "by_weekday", "by_hold", "mae_mfe"):
        if name not in lens:
            raise MochiError(f"trade lens: table {name!r} is missing (have {sorted(lens)})")
    if lens["mae_mfe"].is_empty():
        return render(_message_plot(graph_title(ctx, "Trade lens of the top traders"), "no trades"))

    local = f"local time, {ctx.timezone}" if ctx.timezone else "local time"
    hours = [str(h) for h in sorted(lens["by_hour"]["hour"].unique().to_list())]
    present_days = set(lens["by_weekday"]["weekday"].to_list())
    days = [d for d in WEEKDAYS if d in present_days]
    buckets = (
        lens["by_hold"].select("hold_bucket", "hold_min_from").unique().sort("hold_min_from")["hold_bucket"].to_list()
    )
    title = graph_title(ctx, "Trade lens of the top traders: net P&L by entry hour", narrow=True)
    by_hour = _lens_bars(lens["by_hour"], "hour", hours, title, f"hour of entry ({local})", ctx)
    by_weekday = _lens_bars(
        lens["by_weekday"], "weekday", days, panel_title(ctx, "Net P&L by weekday"), f"weekday of entry ({local})", ctx
    )
    by_hold = _lens_bars(
        lens["by_hold"], "hold_bucket", buckets, panel_title(ctx, "Net P&L by hold time"), "minutes held", ctx
    )
    scatter_data = scatter_points(
        lens["mae_mfe"].select("mae", "mfe", "pnl").with_columns(win=pl.col("pnl") > 0), "mae", "mfe", "win"
    ).to_pandas()
    scatter_data["outcome"] = _sign_fill(scatter_data["pnl"])
    scatter = (
        Plot(scatter_data, aes("mae", "mfe", color="outcome"))
        + geom_point(alpha=0.6, size=1.2)
        + scale_color_manual(values=_WIN_LOSS_COLOURS, drop=False)
        + labs(
            title=panel_title(ctx, "MAE vs MFE per trade"),
            x=f"MAE ({ctx.currency})",
            y=f"MFE ({ctx.currency})",
            color="outcome",
        )
        + _theme(title_size=9)
    )
    return render((by_hour | by_weekday) / (by_hold | scatter))


# plotnine, matplotlib and pandas, imported by the first graph step of a process, live as long as
# it: out of the garbage collector's scans, as the definitions' imports are (memory.py)
freeze_long_lived()
