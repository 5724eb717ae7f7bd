"""`mochi brokers ...` and `mochi live ...`: brokers, live-trade configurations, forward status.

Changes are appended as new versions in the lake's live-trades bucket (see `records.py`); after a
change of configurations the broker's `live_trades` export is materialized at once (a Dagster
run on this MOCHI_HOME's instance) unless `--no-export` is given.
"""

from __future__ import annotations

import json
import sys

import click
import polars as pl

from mochi_resources.errors import MochiError

CONFIG_COLUMNS = ["id", "version", "status", "broker", "ticker", "scenario", "trader_id", "direction", "entry_time",
                  "risk_per_trade", "max_open", "significant", "recorded_at"]
HISTORY_COLUMNS = ["version", "action", "recorded_at", "status"]


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"mochi: error: {message}", err=True)
    sys.exit(code)


def _lake():
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    return Lake(MochiSettings.from_env())


def _print(rows: list[dict], columns: list[str]) -> None:
    from mochi_assets.cli import _table

    if not rows:
        click.echo("(none)")
        return
    frame = pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], infer_schema_length=None)
    click.echo(_table(frame, columns))


def _run(job_name: str, partition_key: str, dimension: str) -> None:
    """Materialize a job's partition in process on the instance (registering the dynamic partition)."""
    from mochi_assets.runner import run_job_partition

    run_job_partition(job_name, partition_key, dimension, {"mochi/command": job_name})


def _export(lake, broker: str) -> None:
    from mochi_assets.live.configs import list_configs
    from mochi_assets.live.export import export_key, stale_reason
    from mochi_assets.partitions import BROKER_DIMENSION

    _run("live_trades_job", broker, BROKER_DIMENSION)
    doc = lake.get_json(export_key(lake, broker))
    click.echo(f"Exported {len(doc['configurations'])} active configuration(s) of {broker} to "
               f"{lake.uri(export_key(lake, broker))}")
    exported = {c["id"] for c in doc["configurations"]}
    cache: dict = {}
    for config in list_configs(lake, broker=broker):
        if config["status"] == "active" and config["name"] not in exported:
            why = stale_reason(lake, config, cache) or "changed during the export"
            click.echo(f"mochi: warning: {config['name']} left out of the export: {why}", err=True)


# --- brokers ----------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def brokers() -> None:
    """Brokers live configurations trade at (no secrets: at most the NAME of a credentials variable)."""


@brokers.command("add")
@click.argument("name")
@click.option("--kind", required=True, help="Broker kind, e.g. interactive-brokers, oanda, alpaca, paper.")
@click.option("--account", required=True, help="Account id at the broker.")
@click.option("--currency", required=True, help="Account currency, ISO 4217 (USD, EUR, ...).")
@click.option("--credentials-env", default=None,
              help="NAME of the environment variable that will hold the credentials on the bot's machine "
                   "(never the credentials themselves).")
@click.option("--note", default=None, help="A short description (at most 200 characters).")
def brokers_add(name, kind, account, currency, credentials_env, note):
    """Add broker NAME (lower-case letters, digits, '-'); a removed name can be added again."""
    from mochi_assets.live.brokers import add_broker
    from mochi_assets.partitions import BROKER_DIMENSION
    from mochi_assets.runner import get_instance
    from mochi_resources.settings import MochiSettings

    try:
        lake = _lake()
        doc = add_broker(lake, name, kind, account, currency, credentials_env, note)
        get_instance(MochiSettings.from_env()).add_dynamic_partitions(BROKER_DIMENSION, [name])
    except MochiError as exc:
        _fail(str(exc))
    click.echo(f"Added broker {name} ({kind}, account {account}, {currency}), version {doc['version']}")


@brokers.command("list")
@click.argument("name", required=False)
@click.option("--history", is_flag=True, help="Show every version (of NAME, or of every broker), removals included.")
def brokers_list(name, history):
    """List the brokers (or one broker, NAME); --history shows every recorded version."""
    from mochi_assets.live.brokers import broker_store, check_broker_name, list_brokers

    try:
        lake = _lake()
        store = broker_store(lake)
        if history:
            names = [check_broker_name(name)] if name else store.names()
            rows = [{"broker": n, **v} for n in names for v in store.history(n)]
            if name and not rows:
                _fail(f"unknown broker {name!r}")
            _print(rows, ["broker", *HISTORY_COLUMNS, "kind", "account", "currency", "credentials_env"])
            return
        rows = [b for b in list_brokers(lake) if name is None or b["name"] == name]
    except MochiError as exc:
        _fail(str(exc))
    _print(rows, ["name", "kind", "account", "currency", "credentials_env", "version", "recorded_at"])


@brokers.command("remove")
@click.argument("name")
def brokers_remove(name):
    """Remove broker NAME (refused while a live configuration, active or paused, uses it)."""
    from mochi_assets.live.configs import remove_broker_checked

    try:
        doc = remove_broker_checked(_lake(), name)
    except MochiError as exc:
        _fail(str(exc))
    click.echo(f"Removed broker {name} (version {doc['version']}; its history is kept)")


# --- live configurations ---------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def live() -> None:
    """Live-trade configurations: promote ranked traders to a broker, manage them, track them forward."""


def _row(doc: dict) -> dict:
    return {"id": doc["name"], **doc, **doc["parameters"], "significant": doc["verdict"]["significant"]}


@live.command("promote")
@click.argument("ticker")
@click.argument("scenario")
@click.argument("trader_id", type=int)
@click.option("--broker", required=True, help="Broker NAME (see `mochi brokers list`).")
@click.option("--risk-per-trade", type=float, default=0.01, show_default=True,
              help="Fraction of account equity risked per trade (the stop distance), in (0, 0.1].")
@click.option("--max-open", type=int, default=1, show_default=True, help="Most positions open at once (1-100).")
@click.option("--i-understand-not-significant", "acknowledge", is_flag=True,
              help="Promote a trader the verdict does not call significant (recorded in the configuration).")
@click.option("--no-export", is_flag=True, help="Do not materialize the broker's live_trades export now.")
def live_promote(ticker, scenario, trader_id, broker, risk_per_trade, max_open, acknowledge, no_export):
    """Promote trader TRADER_ID of TICKER / SCENARIO (from its rankings) to a live configuration at --broker.

    \b
    Copies the trader's parameters, its backtest statistics, request hash and the verdict at
    promotion; forward tracking starts with the first session after the bars the backtest had.
    Example: mochi live promote SYN:GOLD breakout-long 17 --broker paper --risk-per-trade 0.005
    """
    from mochi_assets.live.configs import promote

    try:
        lake = _lake()
        doc = promote(lake, ticker, scenario, trader_id, broker, risk_per_trade=risk_per_trade,
                      max_open=max_open, acknowledge_not_significant=acknowledge)
    except MochiError as exc:
        _fail(str(exc))
    verdict = doc["verdict"]
    click.echo(f"Promoted {doc['name']} (version {doc['version']}): {doc['ticker']} / {scenario} trader {trader_id} "
               f"at {broker}, risk {doc['risk_per_trade']:g} per trade, max open {doc['max_open']}")
    click.echo(f"Verdict at promotion: {verdict['text']}"
               + (" [promoted with --i-understand-not-significant]" if doc["acknowledged_not_significant"] else ""))
    click.echo(f"Forward tracking counts sessions after {doc['forward_after']}.")
    if not no_export:
        try:
            _export(lake, broker)
        except MochiError as exc:
            _fail(f"promoted, but the export failed: {exc}", code=1)


@live.command("list")
@click.option("--broker", default=None, help="Only this broker's configurations.")
@click.option("--all", "include_removed", is_flag=True, help="Include removed configurations.")
def live_list(broker, include_removed):
    """List live configurations (active and paused; --all adds removed ones)."""
    from mochi_assets.live.configs import list_configs

    try:
        rows = [_row(d) for d in list_configs(_lake(), broker=broker, include_removed=include_removed)]
    except MochiError as exc:
        _fail(str(exc))
    _print(rows, CONFIG_COLUMNS)


@live.command("show")
@click.argument("config_id")
@click.option("--history", is_flag=True, help="Show every version instead of the current one.")
def live_show(config_id, history):
    """Show configuration CONFIG_ID as JSON (--history: every version, and what changed)."""
    from mochi_assets.live.configs import config_store, get_config

    try:
        lake = _lake()
        doc = get_config(lake, config_id)
        if history:
            _print(config_store(lake).history(config_id), [*HISTORY_COLUMNS, "risk_per_trade", "max_open"])
            return
    except MochiError as exc:
        _fail(str(exc))
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def _change(config_id: str, no_export: bool, fn, what: str) -> None:
    try:
        lake = _lake()
        doc = fn(lake)
    except MochiError as exc:
        _fail(str(exc))
    click.echo(f"{what} {config_id}: version {doc['version']}, status {doc['status']}, "
               f"risk {doc['risk_per_trade']:g}, max open {doc['max_open']}")
    if not no_export:
        try:
            _export(lake, doc["broker"])
        except MochiError as exc:
            _fail(f"{what.lower()}, but the export failed: {exc}", code=1)


_NO_EXPORT = click.option("--no-export", is_flag=True, help="Do not materialize the broker's live_trades export now.")


@live.command("edit")
@click.argument("config_id")
@click.option("--risk-per-trade", type=float, default=None, help="New fraction of equity risked per trade, in (0, 0.1].")
@click.option("--max-open", type=int, default=None, help="New most positions open at once (1-100).")
@_NO_EXPORT
def live_edit(config_id, risk_per_trade, max_open, no_export):
    """Change the risk and limits of CONFIG_ID (the trader's parameters never change)."""
    from mochi_assets.live.configs import edit_config

    _change(config_id, no_export, lambda lake: edit_config(lake, config_id, risk_per_trade=risk_per_trade,
                                                           max_open=max_open), "Edited")


@live.command("pause")
@click.argument("config_id")
@_NO_EXPORT
def live_pause(config_id, no_export):
    """Pause CONFIG_ID: it leaves the export (bots stop opening trades) but stays tracked."""
    from mochi_assets.live.configs import set_status

    _change(config_id, no_export, lambda lake: set_status(lake, config_id, "paused"), "Paused")


@live.command("resume")
@click.argument("config_id")
@_NO_EXPORT
def live_resume(config_id, no_export):
    """Resume a paused CONFIG_ID."""
    from mochi_assets.live.configs import set_status

    _change(config_id, no_export, lambda lake: set_status(lake, config_id, "active"), "Resumed")


@live.command("remove")
@click.argument("config_id")
@_NO_EXPORT
def live_remove(config_id, no_export):
    """Remove CONFIG_ID (a new version with status removed; the history is kept)."""
    from mochi_assets.live.configs import set_status

    _change(config_id, no_export, lambda lake: set_status(lake, config_id, "removed"), "Removed")


@live.command("export")
@click.argument("broker")
def live_export(broker):
    """Materialize BROKER's live_trades export (the JSON document execution bots poll) and say where it is."""
    from mochi_assets.live.brokers import get_broker

    try:
        lake = _lake()
        get_broker(lake, broker)
        _export(lake, broker)
    except MochiError as exc:
        _fail(str(exc))


@live.command("status")
@click.option("--broker", default=None, help="Only this broker's configurations.")
@click.option("--no-track", is_flag=True, help="Show the last tracking instead of materializing portfolio_tracking now.")
def live_status(broker, no_track):
    """Each configuration's forward trades, R and whether it is within its backtest's expectation.

    Materializes `portfolio_tracking` for every ticker with a configuration first (unless
    --no-track), simulating each promoted trader on the sessions after its promotion.
    """
    from mochi_assets.live.configs import list_configs

    try:
        lake = _lake()
        configs = list_configs(lake, broker=broker)
        rows = []
        for ticker_key in sorted({c["ticker_key"] for c in configs}):
            if not no_track:
                from mochi_assets.partitions import TICKER_DIMENSION

                _run("tracking_job", ticker_key, TICKER_DIMENSION)
            key = lake.key("portfolio-tracking", "forward_summary", ticker_key)
            tracked = lake.read_table(key) if lake.exists(key) else pl.DataFrame()
            by_id = {r["config_id"]: r for r in tracked.iter_rows(named=True)} if tracked.height else {}
            for c in configs:
                if c["ticker_key"] != ticker_key:
                    continue
                r = by_id.get(c["name"])
                if r is None:
                    rows.append({"id": c["name"], "status": c["status"], "within": "not tracked yet"})
                    continue
                rows.append({
                    "id": c["name"], "status": c["status"], "after": str(r["forward_after"]),
                    "sessions": r["forward_sessions"], "trades": r["forward_trades"], "R": r["forward_r"],
                    "expected_R": r["expected_r"], "band": f"[{r['band_low_r']:.2f}, {r['band_high_r']:.2f}]",
                    "max_dd_R": r["forward_max_drawdown_r"],
                    "dd_limit_R": r.get("drawdown_limit_r", r["backtest_max_drawdown_r"]),
                    "dd_band": r.get("drawdown_band") or "backtest_max",
                    "within": "yes" if r["within_expectation"] else f"NO: {r['outside_reason']}",
                })
    except MochiError as exc:
        _fail(str(exc), code=1 if exc.__class__.__name__ == "RunFailed" else 2)
    _print(rows, ["id", "status", "after", "sessions", "trades", "R", "expected_R", "band", "max_dd_R",
                  "dd_limit_R", "dd_band", "within"])
