"""Forward tracking: a promoted trader on the sessions after its promotion, against its backtest.

Which bars count: at promotion the configuration records `forward_after`, the last session date of
the ticker's enhanced bars at that moment (the data the trader was selected on). Forward tracking
simulates the trader, with the same engine (`mochi_assets.simulation.api.simulate`) and the
parameters, tick size and timezone recorded at promotion, on the enhanced bars whose session date
is later than `forward_after`: only bars that arrived after the promotion. ATR values of those
sessions come from the enhanced bars as always (computed from earlier sessions only), so warm-up
history is used for the indicator and never for a trade. A trade still open on the last bar exits
`end` and is provisional, as in any backtest.

Expectation band (what the backtest led to expect over the same number of sessions):
the trader's backtest daily series d (sum of its trades' R per session date, zero on sessions
without a trade, over the sessions after ATR warm-up; the README's "Statistics, verdict and units") has mean m
and standard deviation s (ddof 1). Over n forward sessions the cumulative R is expected near
n*m, and the band is

    n*m - 2*s*sqrt(n)  <=  forward cumulative R  <=  n*m + 2*s*sqrt(n)

(about 95% of outcomes if days were independent and near normal), and the forward maximum
drawdown of cumulative R (running peak starting at 0) must not exceed the drawdown limit:

- the Monte Carlo band where the robustness asset provides one: when the trader was among the
  scenario's top traders at promotion, promotion copies the robustness table's Monte Carlo figures
  (`mc_max_drawdown_p5/p50/p95`, `mc_final_r_*`, `mc_loss_share`, `mc_paths`,
  `mc_block_sessions`: block-bootstrap histories of the trader's backtest daily series, see
  `mochi_assets/validation/robustness.py`) and the limit is `mc_max_drawdown_p95`, the drawdown
  that 95% of resampled backtest-length histories stay within (`drawdown_band` "monte_carlo_p95");
- otherwise the backtest's own maximum drawdown of cumulative R, the deepest fall the trader
  survived in its one history (`drawdown_band` "backtest_max").

The limit used is `drawdown_limit_r` in the summary. `within_expectation` is true when both the
cumulative-R band and the drawdown limit hold; zero forward sessions is trivially within.

Equity: each trade multiplies the account by (1 + risk_per_trade * r), in exit order, starting at 1.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl

from mochi_assets.aggregation.stats import annualized_sharpe, max_drawdown
from mochi_assets.contracts import TRADER_PARAMETERS
from mochi_assets.simulation.api import TRADE_COLUMNS, simulate, trades_schema

BAND_SIGMAS = 2.0

SUMMARY_SCHEMA = {
    "config_id": pl.Utf8, "broker": pl.Utf8, "scenario": pl.Utf8, "trader_id": pl.Int64, "status": pl.Utf8,
    "forward_after": pl.Date, "forward_sessions": pl.Int64, "forward_trades": pl.Int64, "forward_r": pl.Float64,
    "forward_sharpe": pl.Float64, "forward_max_drawdown_r": pl.Float64, "forward_equity": pl.Float64,
    "expected_r": pl.Float64, "band_low_r": pl.Float64, "band_high_r": pl.Float64,
    "backtest_sharpe": pl.Float64, "backtest_max_drawdown_r": pl.Float64, "drawdown_limit_r": pl.Float64,
    "drawdown_band": pl.Utf8, "within_expectation": pl.Boolean, "outside_reason": pl.Utf8,
}
DRAWDOWN_BANDS = {"monte_carlo_p95": "the Monte Carlo 95th percentile", "backtest_max": "the backtest's"}
EQUITY_SCHEMA = {
    "config_id": pl.Utf8, "session_date": pl.Date, "day_r": pl.Float64, "cum_r": pl.Float64,
    "drawdown_r": pl.Float64, "equity": pl.Float64, "expected_r": pl.Float64, "band_low_r": pl.Float64,
    "band_high_r": pl.Float64,
}


def daily_series(trades: pl.DataFrame, sessions: pl.Series) -> np.ndarray:
    """Sum of r per session date over `sessions` (sorted dates), zero where nothing traded."""
    if sessions.len() == 0:
        return np.zeros(0)
    daily = trades.group_by("session_date").agg(pl.col("r").sum())
    frame = pl.DataFrame({"session_date": sessions}).join(daily, on="session_date", how="left")
    return frame["r"].fill_null(0.0).cast(pl.Float64).to_numpy()


def backtest_expectation(trades: pl.DataFrame, sessions: pl.Series) -> dict:
    """What the backtest says about a trader: its daily-R mean and std, Sharpe and max drawdown in R."""
    d = daily_series(trades, sessions)
    std = float(np.std(d, ddof=1)) if d.size > 1 else float("nan")
    sharpe = float(annualized_sharpe(d)) if d.size > 1 else float("nan")
    return {
        "sessions": int(d.size),
        "trades": int(trades.height),
        "daily_r_mean": float(d.mean()) if d.size else float("nan"),
        "daily_r_std": std,
        "sharpe": None if math.isnan(sharpe) else sharpe,
        "max_drawdown_r": max_drawdown(d),
        "total_r": float(d.sum()),
    }


def monte_carlo_expectation(robustness: pl.DataFrame, trader_id: int) -> dict | None:
    """The robustness table's Monte Carlo figures of `trader_id` (every `mc_` column), or None when
    the table has none for it (the trader is not among the top traders given them)."""
    if "mc_max_drawdown_p95" not in robustness.columns:
        return None
    rows = robustness.filter(pl.col("trader_id") == trader_id)
    if rows.is_empty():
        return None
    row = rows.row(0, named=True)
    value = row["mc_max_drawdown_p95"]
    if value is None or not math.isfinite(value):
        return None
    return {name: row[name] for name in rows.columns if name.startswith("mc_")}


def drawdown_limit(backtest: dict) -> tuple[float, str]:
    """(deepest forward drawdown in R still within expectation, which band gave it): the Monte Carlo
    95th percentile when promotion recorded one, else the backtest's maximum drawdown."""
    mc = backtest.get("monte_carlo")
    if mc and mc.get("mc_max_drawdown_p95") is not None:
        return float(mc["mc_max_drawdown_p95"]), "monte_carlo_p95"
    return float(backtest["expectation"]["max_drawdown_r"]), "backtest_max"


def band(expectation: dict, n: int) -> tuple[float, float, float]:
    """(expected, low, high) cumulative R after n sessions (module docstring)."""
    m = expectation["daily_r_mean"]
    s = expectation["daily_r_std"]
    if n == 0:
        return 0.0, 0.0, 0.0
    if m is None or s is None or math.isnan(m) or math.isnan(s):
        return float("nan"), float("nan"), float("nan")
    width = BAND_SIGMAS * s * math.sqrt(n)
    return n * m, n * m - width, n * m + width


def trader_frame(config: dict) -> pl.DataFrame:
    """The one-row traders table of a configuration (the parameters copied at promotion)."""
    p = config["parameters"]
    return pl.DataFrame({
        "trader_id": [int(config["trader_id"])],
        **{name: [p[name]] for name in TRADER_PARAMETERS},
    })


def forward_bars(bars: pl.DataFrame, forward_after: dt.date) -> pl.DataFrame:
    """Enhanced bars of the sessions after promotion (the only ones forward tracking may use)."""
    return bars.filter(pl.col("session_date") > forward_after)


def _calendar(config: dict) -> dict:
    """The simulation's calendar argument: the backtest's session calendar recorded at promotion
    (configurations promoted before calendars were recorded trade calendar days in `timezone`)."""
    session = config.get("session")
    if session:
        from mochi_assets.market_data.sessions import parse_session

        return {"session": parse_session(session["spec"], session["timezone"], field="session")}
    return {"timezone": config["timezone"]}


def track(config: dict, bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Forward trades, forward equity per session and the summary row of one configuration."""
    after = dt.date.fromisoformat(config["forward_after"])
    fwd = forward_bars(bars, after)
    trades = simulate(fwd, trader_frame(config), tick_size=float(config["tick_size"]), **_calendar(config))
    sessions = fwd.filter(pl.col("atr").is_not_null())["session_date"].unique().sort()
    d = daily_series(trades, sessions)
    n = int(d.size)
    exp = config["backtest"]["expectation"]
    expected, low, high = band(exp, n)
    cum = np.cumsum(d)
    peak = np.maximum.accumulate(np.maximum(cum, 0.0)) if n else cum
    risk = float(config["risk_per_trade"])
    by_exit = trades.sort("exit_ts")
    growth = (1.0 + risk * by_exit["r"].cast(pl.Float64)).to_numpy() if trades.height else np.zeros(0)
    equity_by_day = pl.DataFrame({"session_date": by_exit["session_date"], "g": growth}).group_by(
        "session_date").agg(pl.col("g").product())
    eq = pl.DataFrame({"session_date": sessions}).join(equity_by_day, on="session_date", how="left")
    equity = np.cumprod(eq["g"].fill_null(1.0).to_numpy()) if n else np.zeros(0)
    steps = np.arange(1, n + 1, dtype=np.float64)
    m, s = exp["daily_r_mean"], exp["daily_r_std"]
    defined = m is not None and s is not None and not (math.isnan(m) or math.isnan(s))
    equity_frame = pl.DataFrame({
        "config_id": [config["name"]] * n,
        "session_date": sessions,
        "day_r": d,
        "cum_r": cum,
        "drawdown_r": peak - cum,
        "equity": equity,
        "expected_r": steps * m if defined else np.full(n, np.nan),
        "band_low_r": steps * m - BAND_SIGMAS * s * np.sqrt(steps) if defined else np.full(n, np.nan),
        "band_high_r": steps * m + BAND_SIGMAS * s * np.sqrt(steps) if defined else np.full(n, np.nan),
    }, schema=EQUITY_SCHEMA)
    total = float(cum[-1]) if n else 0.0
    fwd_dd = max_drawdown(d)
    bt_dd = float(exp["max_drawdown_r"])
    dd_limit, dd_band = drawdown_limit(config["backtest"])
    reasons = []
    if n and not math.isnan(low):
        if total < low:
            reasons.append(f"cumulative R {total:.2f} below the band's low {low:.2f}")
        if total > high:
            reasons.append(f"cumulative R {total:.2f} above the band's high {high:.2f}")
    if fwd_dd > dd_limit:
        reasons.append(f"drawdown {fwd_dd:.2f} R deeper than {DRAWDOWN_BANDS[dd_band]} {dd_limit:.2f} R")
    sharpe = float(annualized_sharpe(d)) if n > 1 else float("nan")
    summary = {
        "config_id": config["name"], "broker": config["broker"], "scenario": config["scenario"],
        "trader_id": int(config["trader_id"]), "status": config["status"], "forward_after": after,
        "forward_sessions": n, "forward_trades": trades.height, "forward_r": total,
        "forward_sharpe": None if math.isnan(sharpe) else sharpe, "forward_max_drawdown_r": fwd_dd,
        "forward_equity": float(equity[-1]) if n else 1.0,
        "expected_r": expected, "band_low_r": low, "band_high_r": high,
        "backtest_sharpe": config["backtest"]["statistics"].get("sharpe"), "backtest_max_drawdown_r": bt_dd,
        "drawdown_limit_r": dd_limit, "drawdown_band": dd_band,
        "within_expectation": not reasons, "outside_reason": "; ".join(reasons) or None,
    }
    trades_out = trades.select(
        pl.lit(config["name"]).alias("config_id"), pl.lit(config["broker"]).alias("broker"), *TRADE_COLUMNS)
    return trades_out, equity_frame, summary


def track_all(configs: list[dict], bars: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """forward_trades, forward_equity and forward_summary of every configuration of one ticker."""
    trade_parts, equity_parts, rows = [], [], []
    for config in sorted(configs, key=lambda c: c["name"]):
        t, e, s = track(config, bars)
        trade_parts.append(t)
        equity_parts.append(e)
        rows.append(s)
    empty_trades = pl.DataFrame(schema={"config_id": pl.Utf8, "broker": pl.Utf8}).hstack(
        pl.from_arrow(trades_schema().empty_table()))
    return {
        "forward_trades": pl.concat(trade_parts) if trade_parts else empty_trades,
        "forward_equity": pl.concat(equity_parts) if equity_parts else pl.DataFrame(schema=EQUITY_SCHEMA),
        "forward_summary": pl.DataFrame(rows, schema=SUMMARY_SCHEMA),
    }

