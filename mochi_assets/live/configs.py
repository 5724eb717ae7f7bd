"""Live-trade configurations: a ranked trader promoted to a broker, with what its backtest said.

A configuration's id is `{ticker_key}.{scenario}.{trader_id}.{broker}` (one per trader and broker).
Promotion copies from the lake: the trader's parameters (rankings), its backtest statistics and
rank, the verdict at promotion time, the backtest request's id and hash, the ticker's tick size and
the request's timezone, and the expectation forward tracking compares against
(`mochi_assets.live.forward`: the backtest's daily-R band and, when the robustness asset gave the
trader Monte Carlo figures, those). Records are versioned like brokers (`mochi_assets.live.records`);
`edit` changes only risk and limits, `pause`/`resume` the status, `remove` ends it (a version too).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import polars as pl

from mochi_assets.contracts import TRADER_PARAMETERS
from mochi_assets.live.brokers import get_broker, remove_broker
from mochi_assets.live.records import RecordStore, strip_bookkeeping
from mochi_resources.errors import MochiError
from mochi_resources.lake import Lake

KIND = "configurations"
STATUSES = ("active", "paused", "removed")
DEFAULT_RISK = 0.01
MAX_RISK = 0.1
DEFAULT_MAX_OPEN = 1
MAX_MAX_OPEN = 100
STATISTICS = ("rank", "trades", "wins", "win_rate", "net_pnl", "avg_r", "profit_factor", "max_drawdown",
              "sharpe", "dsr", "dsr_eff", "psr", "pbo", "eligible", "positive_year_share", "duplicate_of")


class ConfigError(MochiError):
    """A live configuration command cannot be carried out; the message names the field or record."""


def config_store(lake: Lake) -> RecordStore:
    return RecordStore(lake, KIND)


def config_id(ticker_key: str, scenario: str, trader_id: int, broker: str) -> str:
    return f"{ticker_key}.{scenario}.{trader_id}.{broker}"


def check_risk(risk: float) -> float:
    if risk is None or not isinstance(risk, (int, float)) or math.isnan(risk) or not 0 < risk <= MAX_RISK:
        raise ConfigError(f"--risk-per-trade: {risk} must be a fraction of equity in (0, {MAX_RISK}] "
                          "(0.01 risks 1% of the account per trade)")
    return float(risk)


def check_max_open(max_open: int) -> int:
    if not isinstance(max_open, int) or not 1 <= max_open <= MAX_MAX_OPEN:
        raise ConfigError(f"--max-open: {max_open} must be a whole number from 1 to {MAX_MAX_OPEN}")
    return max_open


def verdict_of(ranked: pl.DataFrame, trader_id: int) -> dict:
    """The verdict on one ranked trader at promotion: the rankings' own rule, never a copy of it.

    `significant`: the trader's row meets every condition of `reporting.rankings.SIGNIFICANCE`
    (eligible, DSR >= 0.95, its scenario's PBO < 0.5). `text` says so with the trader's figures;
    `scenario_verdict` is the rankings' one-sentence verdict of the whole scenario.
    """
    from mochi_assets.reporting import rankings as ranking

    row = ranked.filter(pl.col("trader_id") == trader_id)
    significant = not ranking.significant_traders(row).is_empty()
    r = row.row(0, named=True)
    text = (f"trader {trader_id} is {'significant' if significant else 'not significant'}: "
            f"eligible={bool(r.get('eligible'))}, dsr={_num(r.get('dsr'))}, scenario pbo={_num(r.get('pbo'))} "
            f"(significant needs {', '.join(name for name, _ in ranking.SIGNIFICANCE)})")
    return {"significant": significant, "text": text, "scenario_verdict": ranking.verdict(ranked),
            "source": "mochi_assets.reporting.rankings.SIGNIFICANCE"}


def _num(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def backtest_request(lake: Lake, ticker_key: str):
    """The backtest request a promotion records (its id, hash, range and timezone): read here only."""
    from mochi_assets.store import stored_request

    return stored_request(lake, ticker_key)


def _rankings(lake: Lake, ticker: str, ticker_key: str, scenario: str, trader_id: int) -> pl.DataFrame:
    key = lake.key("rankings", "rankings", ticker_key, scenario)
    if not lake.exists(key):
        raise ConfigError(f"no rankings for {ticker} / {scenario} in {lake.location}: run `mochi backtest` "
                          f"first (`mochi results {ticker}` lists its scenarios)")
    ranked = lake.read_table(key)
    if ranked.filter(pl.col("trader_id") == trader_id).is_empty():
        raise ConfigError(f"unknown trader {trader_id} in {ticker} / {scenario} (trader ids 0 to "
                          f"{ranked['trader_id'].max()}; see `mochi results {ticker} --scenario {scenario}`)")
    return ranked


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def promote(lake: Lake, ticker: str, scenario: str, trader_id: int, broker: str, *,
            risk_per_trade: float = DEFAULT_RISK, max_open: int = DEFAULT_MAX_OPEN,
            acknowledge_not_significant: bool = False) -> dict:
    """Create (or re-create after removal) the live configuration of a ranked trader at a broker."""
    check_risk(risk_per_trade)
    check_max_open(max_open)
    if not isinstance(trader_id, int) or trader_id < 0:
        raise ConfigError(f"TRADER_ID: {trader_id} must be a trader id (a whole number >= 0)")
    get_broker(lake, broker)
    # imported here: they pull in Dagster, numba and scipy, which list/edit/pause do not need
    from mochi_assets.partitions import check_scenario_name, sanitize_ticker

    ticker_key = sanitize_ticker(ticker)
    check_scenario_name(scenario)
    ranked = _rankings(lake, ticker, ticker_key, scenario, trader_id)
    row = ranked.filter(pl.col("trader_id") == trader_id).row(0, named=True)
    verdict = verdict_of(ranked, trader_id)
    if not verdict["significant"] and not acknowledge_not_significant:
        # the verdict's text names the trader and says why: "trader 60 is not significant: ..."
        raise ConfigError(f"{ticker} / {scenario}: {verdict['text']}; promote it anyway with "
                          "--i-understand-not-significant (recorded in the configuration)")
    from mochi_assets.live.forward import backtest_expectation, monte_carlo_expectation

    from mochi_assets.market_data.sources import session_calendar

    request = backtest_request(lake, ticker_key)
    calendar = session_calendar(lake, request)
    meta = lake.read_table(lake.key("ticker-meta", "ticker_meta", ticker_key))
    bars = lake.scan_table(lake.key("prepared", "enhanced_bars", ticker_key))
    sessions = (bars.filter(pl.col("atr").is_not_null()).select(pl.col("session_date").unique().sort())
                .collect().to_series())
    last_session = bars.select(pl.col("session_date").max()).collect().item()
    robust_key = lake.key("rankings", "robustness", ticker_key, scenario)
    robustness = lake.read_table(robust_key) if lake.exists(robust_key) else pl.DataFrame()
    trades = (lake.scan_table(lake.key("trades", "trades", ticker_key, scenario))
              .filter(pl.col("trader_id") == trader_id).collect())
    state = {
        "status": "active",
        "broker": broker,
        "ticker": request.ticker,
        "ticker_key": ticker_key,
        "scenario": scenario,
        "trader_id": trader_id,
        "parameters": {p: _clean(row[p]) for p in TRADER_PARAMETERS},
        "tick_size": float(meta["tick_size"].item()),
        "timezone": calendar.timezone,
        # the backtest's session calendar: forward tracking and the bot trade the same sessions
        "session": {"spec": calendar.spec, "timezone": calendar.timezone, "description": calendar.describe()},
        "synthetic": bool(meta["synthetic"].item()) if "synthetic" in meta.columns else False,
        "risk_per_trade": float(risk_per_trade),
        "max_open": int(max_open),
        "backtest": {
            "request_id": request.request_id,
            "request_hash": request.request_hash,
            "start": str(request.start),
            "end": str(request.end),
            "statistics": {s: _clean(row[s]) for s in STATISTICS if s in row},
            "expectation": backtest_expectation(trades, sessions),
            "monte_carlo": monte_carlo_expectation(robustness, trader_id),
        },
        "verdict": verdict,
        "acknowledged_not_significant": bool(acknowledge_not_significant and not verdict["significant"]),
        "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "forward_after": str(last_session),
    }
    cid = config_id(ticker_key, scenario, trader_id, broker)
    if ".." in cid:
        raise ConfigError(f"ticker {ticker!r}: a ticker key ending in '.' cannot name a configuration")

    def change(current: dict | None) -> dict:
        if current is not None and current["status"] != "removed":
            raise ConfigError(f"live configuration {cid} already exists ({current['status']}); "
                              "edit it with `mochi live edit`")
        return state

    return config_store(lake).append(cid, change, "promote")


def get_config(lake: Lake, cid: str) -> dict:
    doc = config_store(lake).latest(cid) if _safe_id(cid) else None
    if doc is None:
        raise ConfigError(f"unknown live configuration {cid!r} (see `mochi live list`)")
    return doc


def _safe_id(cid: str) -> bool:
    return bool(re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$", cid or "")) and ".." not in cid


def list_configs(lake: Lake, broker: str | None = None, include_removed: bool = False) -> list[dict]:
    out = []
    for doc in config_store(lake).all_latest():
        if (include_removed or doc["status"] != "removed") and (broker is None or doc["broker"] == broker):
            out.append(doc)
    return out


def _update(lake: Lake, cid: str, action: str, fn) -> dict:
    get_config(lake, cid)

    def change(current: dict | None) -> dict:
        if current is None or current["status"] == "removed":
            raise ConfigError(f"live configuration {cid} is removed; promote the trader again to re-create it")
        return fn(strip_bookkeeping(current))

    return config_store(lake).append(cid, change, action)


def edit_config(lake: Lake, cid: str, *, risk_per_trade: float | None = None, max_open: int | None = None) -> dict:
    if risk_per_trade is None and max_open is None:
        raise ConfigError("nothing to edit: give --risk-per-trade and/or --max-open")
    if risk_per_trade is not None:
        check_risk(risk_per_trade)
    if max_open is not None:
        check_max_open(max_open)

    def fn(state: dict) -> dict:
        if risk_per_trade is not None:
            state["risk_per_trade"] = float(risk_per_trade)
        if max_open is not None:
            state["max_open"] = int(max_open)
        return state

    return _update(lake, cid, "edit", fn)


def set_status(lake: Lake, cid: str, status: str) -> dict:
    action = {"active": "resume", "paused": "pause", "removed": "remove"}[status]

    def fn(state: dict) -> dict:
        if state["status"] == status:
            raise ConfigError(f"live configuration {cid} is already {status}")
        state["status"] = status
        return state

    return _update(lake, cid, action, fn)


def configs_using_broker(lake: Lake, broker: str) -> list[str]:
    return [c["name"] for c in list_configs(lake, broker=broker)]


def remove_broker_checked(lake: Lake, name: str) -> dict:
    """Remove a broker unless a live configuration (active or paused) still uses it."""
    return remove_broker(lake, name, configs_using_broker(lake, name))

