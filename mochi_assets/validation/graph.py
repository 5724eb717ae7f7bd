"""The walk-forward graph: stitched out-of-sample equity of the selection against the grid.

One panel over the out-of-sample sessions: the selection's stitched cumulative R (each fold
trading its in-sample pick), the median trader of the grid (the median over every trader of its
cumulative R, each held throughout) with the 10-90% band, fold boundaries as dashed lines
labelled with the fold's pick. Drawn with plotnine at the reporting graphs' size and dpi, titled
like them (ticker, scenario, dates, "synthetic data").
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
from plotnine import (  # noqa: E402
    aes,
    annotate,
    element_text,
    geom_hline,
    geom_line,
    geom_ribbon,
    geom_text,
    geom_vline,
    labs,
    scale_color_manual,
    theme,
    theme_bw,
)

from mochi_assets.reporting.graphs import GraphContext, Plot, render, graph_title  # noqa: E402

_COLOURS = {"selection (stitched OOS)": "#b2182b", "median trader of the grid": "#2166ac"}


def walk_forward_graph(equity: pl.DataFrame, folds: pl.DataFrame, summary: pl.DataFrame, ctx: GraphContext) -> bytes:
    """PNG of the walk-forward (``walk_forward.walk_forward`` outputs); a message when there are no folds."""
    title = graph_title(ctx, "Walk-forward: in-sample picks, stitched out-of-sample equity (R)")
    style = theme_bw()
    style += theme(plot_title=element_text(size=11, ha="left"), axis_title=element_text(size=9),
                   axis_text=element_text(size=8), legend_position="bottom")
    if equity.is_empty():
        note = summary["note"].item() if summary.height else "no walk-forward"
        plot = (Plot() + annotate("text", x=0, y=0, label=note, size=9) + labs(title=title, x="", y="") + style)
        return render(plot)
    frame = equity.to_pandas()
    frame["session_date"] = pd.to_datetime(frame["session_date"])
    lines = pd.concat(
        [
            pd.DataFrame({"session_date": frame["session_date"], "cum_r": frame["oos_cum_r"],
                          "series": "selection (stitched OOS)"}),
            pd.DataFrame({"session_date": frame["session_date"], "cum_r": frame["grid_median_cum_r"],
                          "series": "median trader of the grid"}),
        ]
    )
    bounds = folds.select(
        pl.col("oos_start").cast(pl.Datetime("us")).alias("session_date"),
        pl.when(pl.col("trader_id").is_null()).then(pl.lit("no pick"))
        .otherwise(pl.format("#{}", pl.col("trader_id"))).alias("label"),
    ).to_pandas()
    top = float(max(frame["grid_q90_cum_r"].max(), frame["oos_cum_r"].max()))
    bounds["y"] = top
    row = summary.row(0, named=True)
    share = row["beats_random_share"]
    subtitle = (
        f"OOS Sharpe {row['oos_sharpe'] if row['oos_sharpe'] is not None else float('nan'):.2f} · "
        f"beats {100 * share:.0f}% of random picks · {row['folds']} folds ({row['mode']}, "
        f"{row['is_sessions']}/{row['oos_sessions']} sessions, selection: {row['selection']})"
        if share is not None else f"{row['folds']} folds: {row['note']}"
    )
    plot = (
        Plot(lines, aes("session_date", "cum_r", color="series"))
        + geom_ribbon(aes(x="session_date", ymin="grid_q10_cum_r", ymax="grid_q90_cum_r"), data=frame,
                      inherit_aes=False, fill="#2166ac", alpha=0.12)
        + geom_vline(aes(xintercept="session_date"), data=bounds, linetype="dashed", color="#777777", size=0.3)
        + geom_text(aes(x="session_date", y="y", label="label"), data=bounds, inherit_aes=False,
                    size=6, angle=90, ha="right", va="top", nudge_x=2, color="#444444")
        + geom_line(size=0.6)
        + geom_hline(yintercept=0, color="#333333", size=0.3)
        + scale_color_manual(values=_COLOURS)
        + labs(title=f"{title}\n{subtitle}", x="out-of-sample session date (dashed: fold start, label: in-sample pick)",
               y="cumulative R (band: 10-90% of the grid)", color="")
        + style
    )
    return render(plot)
