"""The document an execution bot polls: one broker's active live configurations (schema in the README).

`{prefix}live-trades/live_trades/broker={NAME}/live_trades.json`, replaced whole on every export
(one atomic PUT or rename), so a bot never reads half a document. A configuration whose ticker,
scenario or trader no longer exists in the lake, or whose trader's parameters there differ from the
ones promoted (a new grid reused the id), is left out of the export and reported by the asset check.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mochi_assets.contracts import TRADER_PARAMETERS
from mochi_assets.live.brokers import get_broker
from mochi_assets.live.configs import list_configs
from mochi_assets.live.records import BUCKET
from mochi_resources.lake import Lake

SCHEMA = "mochi.live_trades/1"
EXPORT_FILE = "live_trades.json"


def export_key(lake: Lake, broker: str) -> str:
    return f"{lake.folder_key(BUCKET, 'live_trades')}/broker={broker}/{EXPORT_FILE}"


def stale_reason(lake: Lake, config: dict, cache: dict) -> str | None:
    """Why a configuration no longer matches the lake (None when its trader is still there)."""
    tk, scenario = config["ticker_key"], config["scenario"]
    if (tk, scenario) not in cache:
        key = lake.key("trades", "traders", tk, scenario)
        cache[(tk, scenario)] = lake.read_table(key) if lake.exists(key) else None
    traders = cache[(tk, scenario)]
    if traders is None:
        return f"ticker {config['ticker']} / scenario {scenario} has no traders table in the lake"
    row = traders.filter(pl.col("trader_id") == config["trader_id"])
    if row.is_empty():
        return f"trader {config['trader_id']} no longer exists in {config['ticker']} / {scenario}"
    now = row.row(0, named=True)
    changed = [p for p in TRADER_PARAMETERS if str(now[p]) != str(config["parameters"][p])
               and not _same_number(now[p], config["parameters"][p])]
    if changed:
        return (f"trader {config['trader_id']} of {config['ticker']} / {scenario} now has other parameters "
                f"({', '.join(changed)}): the grid changed since promotion")
    return None


def _same_number(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-12
    except (TypeError, ValueError):
        return False


def _entry(config: dict) -> dict:
    return {
        "id": config["name"],
        "version": config["version"],
        "ticker": config["ticker"],
        "scenario": config["scenario"],
        "trader_id": config["trader_id"],
        **{p: config["parameters"][p] for p in TRADER_PARAMETERS},
        "tick_size": config["tick_size"],
        "timezone": config["timezone"],
        "session": (config.get("session") or {}).get("spec"),
        "risk_per_trade": config["risk_per_trade"],
        "max_open": config["max_open"],
        "request_hash": config["backtest"]["request_hash"],
        "significant": config["verdict"]["significant"],
        "promoted_at": config["promoted_at"],
    }


def build_export(lake: Lake, broker: str) -> tuple[dict, dict[str, str]]:
    """(the export document, {config id: why it was left out}) for one broker."""
    record = get_broker(lake, broker)
    cache: dict = {}
    entries, stale = [], {}
    for config in sorted(list_configs(lake, broker=broker), key=lambda c: c["name"]):
        if config["status"] != "active":
            continue
        reason = stale_reason(lake, config, cache)
        if reason:
            stale[config["name"]] = reason
        else:
            entries.append(_entry(config))
    doc = {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "broker": {k: record[k] for k in ("kind", "account", "currency", "credentials_env")} | {"name": broker},
        "configurations": entries,
    }
    return doc, stale
