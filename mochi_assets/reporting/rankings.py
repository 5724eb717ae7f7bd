"""Rankings of the traders of a scenario, and a per-ticker leaderboard across scenarios.

A grid of thousands of traders always has a lucky best one, so the order prefers results that are
likely real over the highest raw Sharpe. Traders are ordered by, in turn:

1. ``eligible`` first: at least ``min_trades`` trades (default ``MIN_TRADES_DEFAULT`` = 30, the
   usual minimum sample for a mean/std estimate to mean anything);
2. ``dsr`` descending (Deflated Sharpe Ratio: probability that the Sharpe is real after
   accounting for the number of traders tried and for skew/fat tails);
3. ``positive_year_share`` descending (share of the scenario's years in which the trader made
   money: consistency across regimes);
4. ``sharpe`` descending;
5. ``trader_id`` ascending, so equal statistics always give the same order.

Statistics are compared at 12 significant digits: traders with the same trades but different
stops have the same Sharpe and DSR in exact arithmetic (both are scale-invariant in r), yet
differ in the last bits in floating point; such ties go to the lower ``trader_id``, not to noise.

Nulls (undefined statistics) sort after every value at each step. ``rank`` 1 is the best.

``positive_year_share`` = years with positive net_pnl / years in the scenario, where the years of
the scenario are the distinct years of its ``trader_by_year`` table (years in which any trader
traded). A trader that trades in one good year out of ten scores 0.1, not 1.0.

The conservative ``dsr`` (every trader of the scenario a trial) ranks; ``dsr_eff`` (deflated by
the effective number of independent trials, see ``mochi_assets.aggregation.stats``) is shown
beside it. A trader whose trades are identical to a lower trader_id's carries ``duplicate_of``:
it ranks right after that trader (same statistics, higher id) and is left out of the leaderboard
and of the top traders drawn in graphs, so each distinct outcome shows once.

The verdict (``verdict``) says in one sentence whether anything beats luck: a trader is
significant only when every condition of ``SIGNIFICANCE`` holds (eligible, DSR >= 0.95, its
scenario's PBO < 0.5). The best significant trader is named; otherwise the sentence says that no
trader in this backtest beats what luck explains, with the best DSR and its scenario's PBO.
"""

from __future__ import annotations

import math

import polars as pl

from mochi_assets.contracts import TRADER_PARAMETERS
from mochi_resources.errors import MochiError

MIN_TRADES_DEFAULT = 30
SIGNIFICANT_DSR = 0.95
MAX_PBO = 0.5

# What a trader must meet to be called significant: (what the sentence calls it, condition). A
# null fact (undefined DSR or PBO) fails its condition. A new condition (for example an
# out-of-sample check) is one more entry here, over a column the ranked tables carry.
OOS_COLUMN = "oos_beats_random"
SIGNIFICANCE = (
    ("eligible", pl.col("eligible")),
    (f"DSR >= {SIGNIFICANT_DSR:g}", pl.col("dsr") >= SIGNIFICANT_DSR),
    (f"PBO < {MAX_PBO:g}", pl.col("pbo") < MAX_PBO),
    # the walk-forward (mochi_assets/validation): a scenario whose selection does not beat random
    # picks out of sample has no significant trader; without a walk-forward result it does not block
    ("a selection that beats random picks out of sample", pl.col(OOS_COLUMN).fill_null(True)),
)
NO_LUCK_BEATEN = "No trader in this backtest beats what luck explains"

PARAMETER_COLUMNS = TRADER_PARAMETERS

SIGNIFICANT_DIGITS = 12  # statistics equal to this many digits are ties (module docstring)

# (column, descending) of the ranking order described in the module docstring.
ORDER = (
    ("eligible", True),
    ("dsr", True),
    ("positive_year_share", True),
    ("sharpe", True),
)


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MochiError(f"{what}: missing column(s) {', '.join(missing)}")


def _sorted(frame: pl.DataFrame, tie_breakers: list[str]) -> pl.DataFrame:
    by = [
        pl.col(c).round_sig_figs(SIGNIFICANT_DIGITS) if frame.schema[c].is_float() else pl.col(c) for c, _ in ORDER
    ] + [pl.col(c) for c in tie_breakers]
    descending = [d for _, d in ORDER] + [False] * len(tie_breakers)
    return frame.sort(by, descending=descending, nulls_last=True)


def rank_traders(
    traders: pl.DataFrame,
    summary: pl.DataFrame,
    by_year: pl.DataFrame,
    *,
    scenario: str,
    pbo: float | None,
    min_trades: int = MIN_TRADES_DEFAULT,
) -> pl.DataFrame:
    """Every trader of ``scenario`` ranked by the module's order (one row per trader).

    Inputs: the trader table (rows of other scenarios are ignored when it has a ``scenario``
    column), ``trader_summary`` and ``trader_by_year`` from ``aggregate_scenario``. Columns: rank,
    trader_id, scenario, the trader parameters, the summary statistics (net_pnl_ticks, net_r,
    dsr_eff, duplicate_of ... when the summary has them; dsr last), positive_year_share, eligible
    (trades >= min_trades) and pbo (the scenario's, on every row).
    """
    if min_trades < 0:
        raise MochiError(f"min_trades: must be >= 0, got {min_trades}")
    _require(traders, ("trader_id",), "traders")
    _require(summary, ("trader_id", "trades", "sharpe", "dsr"), "trader summary")
    _require(by_year, ("trader_id", "year", "net_pnl"), "trader by year")

    if "scenario" in traders.columns:
        mine = traders.filter(pl.col("scenario") == scenario)
        if mine.is_empty() and not traders.is_empty():
            found = ", ".join(sorted(traders["scenario"].unique().cast(pl.Utf8).to_list()))
            raise MochiError(f"traders: no trader of scenario {scenario!r} (found: {found})")
        traders = mine
    if traders["trader_id"].n_unique() != traders.height:
        raise MochiError(f"traders: trader_id is not unique within scenario {scenario!r}")

    params = [c for c in traders.columns if c not in ("trader_id", "scenario")]
    ordered_params = [c for c in PARAMETER_COLUMNS if c in params] + [
        c for c in params if c not in PARAMETER_COLUMNS
    ]
    stat_columns = [c for c in summary.columns if c != "trader_id" and c not in params and c != "dsr"]

    years = by_year.filter(pl.col("trader_id").is_in(traders["trader_id"].implode()))
    n_years = years["year"].n_unique()
    positive = years.group_by("trader_id").agg(
        (pl.col("net_pnl") > 0).sum().cast(pl.Float64).alias("positive_years")
    )

    table = (
        traders.select(["trader_id", *ordered_params])
        .join(summary.select(["trader_id", *stat_columns, "dsr"]), on="trader_id", how="left")
        .join(positive, on="trader_id", how="left")
        .with_columns(
            pl.lit(scenario, dtype=pl.Utf8).alias("scenario"),
            (
                pl.col("positive_years").fill_null(0.0) / n_years
                if n_years
                else pl.lit(None, dtype=pl.Float64)
            ).alias("positive_year_share"),
            (pl.col("trades").fill_null(0) >= min_trades).alias("eligible"),
            pl.lit(pbo, dtype=pl.Float64).fill_nan(None).alias("pbo"),
        )
        .drop("positive_years")
    )
    table = _sorted(table, ["trader_id"]).with_row_index("rank", offset=1)
    return table.select(
        pl.col("rank").cast(pl.Int64),
        "trader_id",
        "scenario",
        *ordered_params,
        *stat_columns,
        "dsr",
        "positive_year_share",
        "eligible",
        "pbo",
    )


def distinct_outcomes(rankings: pl.DataFrame) -> pl.DataFrame:
    """The rows that are not a duplicate of another trader (all rows without ``duplicate_of``)."""
    if "duplicate_of" not in rankings.columns:
        return rankings
    return rankings.filter(pl.col("duplicate_of").is_null())


def top_trader_ids(rankings: pl.DataFrame, n: int = 5) -> list[int]:
    """trader_id of the ``n`` best-ranked distinct traders (by ``rank``, duplicates left out), best first."""
    _require(rankings, ("rank", "trader_id"), "rankings")
    if n < 0:
        raise MochiError(f"n: must be >= 0, got {n}")
    return distinct_outcomes(rankings).sort("rank").head(n)["trader_id"].to_list()


def ineligible_ids(rankings: pl.DataFrame) -> set[int]:
    """trader_id of the traders with too few trades to be eligible."""
    _require(rankings, ("trader_id", "eligible"), "rankings")
    return set(rankings.filter(~pl.col("eligible").fill_null(False))["trader_id"].to_list())


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    return f"{value:.{digits}f}"


def significant_traders(traders: pl.DataFrame) -> pl.DataFrame:
    """The rows of a rankings or leaderboard table that meet every condition of ``SIGNIFICANCE``,
    best DSR first (ties: scenario, trader_id)."""
    _require(traders, ("trader_id", "eligible", "dsr", "pbo"), "traders")
    if OOS_COLUMN not in traders.columns:
        traders = traders.with_columns(pl.lit(None, dtype=pl.Boolean).alias(OOS_COLUMN))
    passes = pl.all_horizontal([condition.fill_null(False) for _, condition in SIGNIFICANCE])
    return _best_first(traders.filter(passes))


def _best_first(traders: pl.DataFrame) -> pl.DataFrame:
    """Rows by DSR descending, ties broken by scenario and trader_id ascending."""
    by = ["dsr", "scenario", "trader_id"] if "scenario" in traders.columns else ["dsr", "trader_id"]
    return traders.sort(by, descending=[True] + [False] * (len(by) - 1), nulls_last=True)


def verdict(traders: pl.DataFrame, *, min_trades: int = MIN_TRADES_DEFAULT) -> str:
    """One sentence: does any trader of this table beat what luck explains (module docstring)?

    ``traders``: rows of ``rank_traders`` (one scenario) or ``leaderboard`` (several): trader_id,
    eligible, dsr, pbo, and scenario and trades when present. The leaderboard gives the same
    sentence as all of its scenarios' rankings together: the top of each scenario is its eligible
    trader with the best DSR. ``min_trades`` only words the sentence (the eligibility rule of the
    table).
    """
    winners = significant_traders(traders)
    if winners.height:
        best = winners.row(0, named=True)
        where = f" ({best['scenario']})" if best.get("scenario") is not None else ""
        trades = f", {best['trades']} trades" if best.get("trades") is not None else ""
        return (
            f"Trader {best['trader_id']}{where} beats what luck explains: DSR {_number(best['dsr'], 3)} "
            f">= {SIGNIFICANT_DSR:g} and its scenario's PBO {_number(best['pbo'])} < {MAX_PBO:g}{trades}."
        )
    with_dsr = traders.filter(pl.col("dsr").is_not_null())
    if with_dsr.is_empty():
        return f"{NO_LUCK_BEATEN}: no trader has a defined DSR (too few trades or sessions)."
    eligible = with_dsr.filter(pl.col("eligible").fill_null(False))
    best = _best_first(eligible if eligible.height else with_dsr).row(0, named=True)
    where = f", {best['scenario']}" if best.get("scenario") is not None else ""
    facts = (
        f"the best DSR is {_number(best['dsr'], 3)} (trader {best['trader_id']}{where}) "
        f"and its scenario's PBO is {_number(best['pbo'])}"
    )
    if not eligible.height:
        return (
            f"{NO_LUCK_BEATEN}: no trader is eligible (at least {min_trades} trades); "
            f"among the ineligible, {facts}."
        )
    needs = " and ".join(name for name, _ in SIGNIFICANCE[1:])
    return f"{NO_LUCK_BEATEN}: {facts} (significant needs {needs})."


def leaderboard(
    rankings: dict[str, pl.DataFrame] | list[pl.DataFrame], top_per_scenario: int = 3
) -> pl.DataFrame:
    """The ``top_per_scenario`` best traders of each scenario of a ticker, in one ranked table.

    ``rankings``: ``rank_traders`` outputs (a dict's keys name the scenario when a frame lacks the
    column). Each distinct outcome shows once: rows with a ``duplicate_of`` are left out before the
    top of each scenario is taken. Rows are ordered by the module's rule (ties: scenario, then
    trader_id, ascending).
    Columns: rank (overall), scenario, scenario_rank, trader_id, then the rankings' other columns
    (parameters, statistics, dsr, pbo ...; columns missing from a scenario are null).
    """
    if top_per_scenario < 1:
        raise MochiError(f"top_per_scenario: must be >= 1, got {top_per_scenario}")
    items = list(rankings.items()) if isinstance(rankings, dict) else [(None, r) for r in rankings]
    parts = []
    for key, frame in items:
        what = f"rankings of scenario {key!r}" if key is not None else "rankings"
        _require(frame, ("rank", "trader_id", *(c for c, _ in ORDER)), what)
        if "scenario" not in frame.columns:
            if key is None:
                raise MochiError(f"{what}: missing column scenario")
            frame = frame.with_columns(pl.lit(key, dtype=pl.Utf8).alias("scenario"))
        top = distinct_outcomes(frame).sort("rank").head(top_per_scenario)
        parts.append(top.rename({"rank": "scenario_rank"}))
    if not parts:
        return pl.DataFrame(
            schema={"rank": pl.Int64, "scenario": pl.Utf8, "scenario_rank": pl.Int64, "trader_id": pl.Int64}
        )
    board = _sorted(pl.concat(parts, how="diagonal_relaxed"), ["scenario", "trader_id"])
    board = board.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))
    first = ["rank", "scenario", "scenario_rank", "trader_id"]
    return board.select(first + [c for c in board.columns if c not in first])
