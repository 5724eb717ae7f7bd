"""What every graph states about its backtest (ticker, scenario, range), without the plotting
libraries: the assets build it on every run, the graphs module (plotnine, matplotlib, pandas:
seconds of imports) is imported only by the steps that draw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class GraphContext:
    """What every graph title states: ticker, scenario, date range, synthetic or not.

    ``timezone`` only labels local-time axes of the lens graph.
    """

    ticker: str
    scenario: str
    start: date
    end: date
    synthetic: bool
    currency: str = "price units"
    timezone: str | None = None


def graph_title(ctx: GraphContext, what: str, *, narrow: bool = False) -> str:
    """Title naming what the graph shows, the ticker, scenario, date range (and "synthetic data").

    Two lines; three when ``narrow`` (the first panel of a composed graph is half as wide).
    """
    where = f"{ctx.ticker} · scenario {ctx.scenario}"
    when = f"{ctx.start:%Y-%m-%d} to {ctx.end:%Y-%m-%d}"
    if ctx.synthetic:
        when += " · synthetic data"
    return f"{what}\n{where}\n{when}" if narrow else f"{what}\n{where} · {when}"


def panel_title(ctx: GraphContext, what: str) -> str:
    """Title of a secondary panel of a composed graph (the first panel carries graph_title)."""
    return f"{what} (synthetic data)" if ctx.synthetic else what
