"""From a backtest to a promoted trader: promotion, the live_trades export and its check, forward
tracking on sessions appended after the promotion, and the `mochi live` commands end to end."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from mochi_assets.definitions import all_assets, build_resources, scenario_assets, ticker_assets
from mochi_assets.live.assets import live_trades, portfolio_tracking
from mochi_assets.live.brokers import add_broker
from mochi_assets.live.configs import config_store, promote
from mochi_assets.live.export import export_key
from mochi_assets.live.forward import monte_carlo_expectation, track, trader_frame
from mochi_assets.market_data.sessions import parse_session
from mochi_assets.partitions import BROKER_DIMENSION, ticker_scenario_key
from mochi_assets.reporting.rankings import significant_traders, verdict
from mochi_assets.request import parse_request
from mochi_assets.simulation.api import TRADE_COLUMNS, simulate
from tests.automation.requests import materialize_request
from tests.instances import mochi_instance_for_test
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

REQUEST = {
    "ticker": "SYN:GOLD", "start": "2024-01-02", "end": "2024-02-16",
    "atr": {"short": 3, "long": 5, "alpha": 0.5}, "entry_times": ["09:30"], "duration_min": 120,
    "timeout_min": 30, "cost_ticks": 2,
    "scenarios": {"breakout-long": {"direction": "long", "offset_ticks": [0, 20], "stop_atr": [1.0],
                                    "limit_atr": [1.0, 2.0]}},
}
LATER_END = "2024-03-15"  # the daily refresh's stand-in: the same synthetic bars, later sessions appended


def _mochi(*args):
    return subprocess.run([sys.executable, "-m", "mochi_assets.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MOCHI_HOME", str(tmp_path_factory.mktemp("mochi")))
    for var in ("MOCHI_S3_ENDPOINT", "POLYGON_API_KEY", "MOCHI_BUCKET_PREFIX", "DAGSTER_HOME"):
        mp.delenv(var, raising=False)
    lake = Lake(MochiSettings.from_env())
    request = parse_request(REQUEST)
    key = request.ticker_key
    resources = build_resources()
    with mochi_instance_for_test() as instance:
        materialize_request(instance, request, resources)
        assert dg.materialize(all_assets, selection=ticker_assets, partition_key=key, instance=instance,
                              resources=resources).success
        pk = ticker_scenario_key(key, "breakout-long")
        assert dg.materialize(all_assets, selection=scenario_assets, partition_key=pk, instance=instance,
                              resources=resources).success
        add_broker(lake, "paper", "paper", "DU123", "USD", credentials_env="PAPER_CREDS")
        best = lake.read_table(lake.key("rankings", "rankings", key, "breakout-long")).row(0, named=True)
        ranked = lake.read_table(lake.key("rankings", "rankings", key, "breakout-long"))
        # the best trader of a small synthetic grid may or may not pass the verdict: promote it as a
        # user would, with the acknowledgement exactly when the rankings' rule asks for it
        significant = not significant_traders(ranked.head(1)).is_empty()
        config = promote(lake, "SYN:GOLD", "breakout-long", best["trader_id"], "paper", risk_per_trade=0.01,
                         acknowledge_not_significant=not significant)
        bars_at_promotion = lake.read_table(lake.key("prepared", "enhanced_bars", key))
        # later sessions arrive: the request is extended and the ticker's bars re-materialized
        materialize_request(instance, parse_request({**REQUEST, "end": LATER_END}), resources)
        assert dg.materialize(all_assets, selection=ticker_assets, partition_key=key, instance=instance,
                              resources=resources).success
        tracking = dg.materialize([*all_assets, portfolio_tracking], selection=[portfolio_tracking], partition_key=key,
                                  instance=instance, resources=resources)
        instance.add_dynamic_partitions(BROKER_DIMENSION, ["paper"])
        export = dg.materialize([live_trades], partition_key="paper", instance=instance, resources=resources)
    yield {"lake": lake, "key": key, "config": config, "best": best, "ranked": ranked,
           "significant": significant, "bars_at_promotion": bars_at_promotion,
           "tracking": tracking, "export": export}
    mp.undo()


def test_promotion_copies_parameters_statistics_request_and_verdict(promoted):
    config, best = promoted["config"], promoted["best"]
    assert config["name"] == f"SYN_GOLD.breakout-long.{best['trader_id']}.paper"
    assert config["parameters"]["stop_atr"] == best["stop_atr"] and config["parameters"]["entry_time"] == "09:30"
    stats = config["backtest"]["statistics"]
    assert stats["sharpe"] == pytest.approx(best["sharpe"]) and stats["dsr"] == pytest.approx(best["dsr"])
    assert config["backtest"]["request_hash"] == parse_request(REQUEST).request_hash
    # the rankings' rule (eligible, dsr >= 0.95, scenario pbo < 0.5, out-of-sample check) decides
    significant = promoted["significant"]
    assert significant == (bool(best["eligible"]) and best["dsr"] >= 0.95 and best["pbo"] < 0.5
                           and best.get("oos_beats_random") is not False)
    assert config["verdict"]["significant"] is significant
    assert config["acknowledged_not_significant"] is (not significant)
    assert config["verdict"]["scenario_verdict"] == verdict(promoted["ranked"])
    assert config["forward_after"] == str(promoted["bars_at_promotion"]["session_date"].max())
    # the expectation's Sharpe is the rankings' Sharpe (same daily series, same convention)
    assert config["backtest"]["expectation"]["sharpe"] == pytest.approx(best["sharpe"])


def test_forward_trades_are_the_engines_trades_of_the_sessions_after_promotion(promoted):
    lake, key, config = promoted["lake"], promoted["key"], promoted["config"]
    assert promoted["tracking"].success
    forward = lake.read_table(lake.key("portfolio-tracking", "forward_trades", key))
    after = dt.date.fromisoformat(config["forward_after"])
    bars = lake.read_table(lake.key("prepared", "enhanced_bars", key))
    assert bars["session_date"].max() > after  # later sessions did arrive
    assert forward.height > 0 and (forward["session_date"] > after).all()  # nothing before promotion counts

    # the engine over every bar, restricted to the sessions after promotion
    # the backtest's calendar (forex for SYN:), recorded at promotion
    assert config["session"]["spec"] == "forex" and config["timezone"] == "America/New_York"
    engine = simulate(bars, trader_frame(config), tick_size=config["tick_size"],
                      session=parse_session("forex", "America/New_York"))
    before = engine.filter(pl.col("session_date") <= after)
    last_bar_before = bars.filter(pl.col("session_date") <= after)["ts"].max()
    assert (before["exit_ts"] <= last_bar_before).all()  # no position spans the promotion
    expected = engine.filter(pl.col("session_date") > after)
    assert forward.select(TRADE_COLUMNS).equals(expected.select(TRADE_COLUMNS))

    summary = lake.read_table(lake.key("portfolio-tracking", "forward_summary", key)).row(0, named=True)
    sessions = bars.filter((pl.col("session_date") > after) & pl.col("atr").is_not_null())["session_date"].n_unique()
    assert summary["forward_trades"] == forward.height and summary["forward_sessions"] == sessions
    assert summary["forward_r"] == pytest.approx(forward["r"].sum())
    exp = config["backtest"]["expectation"]
    assert summary["expected_r"] == pytest.approx(sessions * exp["daily_r_mean"])
    half = 2 * exp["daily_r_std"] * sessions ** 0.5
    assert summary["band_low_r"] == pytest.approx(summary["expected_r"] - half)
    # the best trader is among the top traders the robustness asset gave Monte Carlo figures
    assert summary["drawdown_band"] == "monte_carlo_p95"
    assert summary["drawdown_limit_r"] == config["backtest"]["monte_carlo"]["mc_max_drawdown_p95"]
    within = (summary["band_low_r"] <= summary["forward_r"] <= summary["band_high_r"]
              and summary["forward_max_drawdown_r"] <= summary["drawdown_limit_r"])
    assert summary["within_expectation"] is within
    equity = lake.read_table(lake.key("portfolio-tracking", "forward_equity", key))
    assert equity.height == sessions and equity["cum_r"][-1] == pytest.approx(summary["forward_r"])
    growth = (1 + 0.01 * forward.sort("exit_ts")["r"]).product()
    assert equity["equity"][-1] == pytest.approx(growth)
    check = promoted["tracking"].get_asset_check_evaluations()[0]
    assert check.check_name == "forward_within_expectation" and check.passed is within


def test_promotion_records_the_robustness_monte_carlo_figures(promoted):
    lake, key, config = promoted["lake"], promoted["key"], promoted["config"]
    robustness = lake.read_table(lake.key("rankings", "robustness", key, "breakout-long"))
    row = robustness.filter(pl.col("trader_id") == config["trader_id"]).row(0, named=True)
    mc = config["backtest"]["monte_carlo"]
    assert set(mc) == {c for c in robustness.columns if c.startswith("mc_")} and "mc_paths" in mc
    assert all(mc[name] == pytest.approx(row[name]) for name in mc)
    assert monte_carlo_expectation(robustness, 10_000) is None  # not a top trader: no figures
    assert monte_carlo_expectation(pl.DataFrame({"trader_id": [1]}), 1) is None


def test_drawdown_band_is_monte_carlo_where_provided_else_the_backtests(promoted):
    """Both paths of the drawdown limit on the same forward bars: the recorded Monte Carlo 95th
    percentile, or without Monte Carlo figures the backtest's maximum drawdown."""
    lake, key, config = promoted["lake"], promoted["key"], promoted["config"]
    bars = lake.read_table(lake.key("prepared", "enhanced_bars", key))
    _, _, with_mc = track(config, bars)
    forward_dd = with_mc["forward_max_drawdown_r"]
    assert forward_dd > 0
    without = {**config, "backtest": {**config["backtest"], "monte_carlo": None}}
    _, _, plain = track(without, bars)
    assert plain["drawdown_band"] == "backtest_max"
    assert plain["drawdown_limit_r"] == config["backtest"]["expectation"]["max_drawdown_r"]
    assert {k: v for k, v in plain.items() if "drawdown_" not in k and k not in ("within_expectation", "outside_reason")} \
        == {k: v for k, v in with_mc.items() if "drawdown_" not in k and k not in ("within_expectation", "outside_reason")}
    tight = {**config, "backtest": {**config["backtest"], "monte_carlo": {
        **config["backtest"]["monte_carlo"], "mc_max_drawdown_p95": forward_dd / 2}}}
    _, _, outside = track(tight, bars)
    assert (outside["drawdown_band"], outside["drawdown_limit_r"]) == ("monte_carlo_p95", forward_dd / 2)
    assert outside["within_expectation"] is False
    assert f"deeper than the Monte Carlo 95th percentile {forward_dd / 2:.2f} R" in outside["outside_reason"]
    loose = {**tight, "backtest": {**tight["backtest"], "monte_carlo": {
        **tight["backtest"]["monte_carlo"], "mc_max_drawdown_p95": forward_dd}}}
    assert "Monte Carlo" not in (track(loose, bars)[2]["outside_reason"] or "")


def test_live_trades_exports_active_configurations_and_refuses_stale_ones(promoted, tmp_path):
    lake, config = promoted["lake"], promoted["config"]
    assert promoted["export"].success
    doc = lake.get_json(export_key(lake, "paper"))
    assert doc["schema"] == "mochi.live_trades/1" and doc["broker"]["credentials_env"] == "PAPER_CREDS"
    [entry] = doc["configurations"]
    assert entry["id"] == config["name"] and entry["stop_atr"] == config["parameters"]["stop_atr"]
    assert entry["risk_per_trade"] == 0.01 and entry["request_hash"] == config["backtest"]["request_hash"]
    assert promoted["export"].get_asset_check_evaluations()[0].passed

    # a configuration whose trader is gone from the lake is left out, and the check fails
    ghost = {**{k: v for k, v in config.items() if k not in ("name", "version", "action", "recorded_at", "write_id")},
             "trader_id": 999}
    config_store(lake).append("SYN_GOLD.breakout-long.999.paper", lambda current: ghost, "promote")
    with mochi_instance_for_test() as instance:
        instance.add_dynamic_partitions(BROKER_DIMENSION, ["paper"])
        result = dg.materialize([live_trades], partition_key="paper", instance=instance, resources=build_resources())
    evaluation = result.get_asset_check_evaluations()[0]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "trader 999 no longer exists" in evaluation.description
    assert [c["id"] for c in lake.get_json(export_key(lake, "paper"))["configurations"]] == [config["name"]]
    config_store(lake).append("SYN_GOLD.breakout-long.999.paper", lambda c: {**ghost, "status": "removed"}, "remove")


@pytest.mark.e2e
def test_mochi_live_commands(promoted):
    lake, config = promoted["lake"], promoted["config"]
    cid = config["name"]
    store = config_store(lake)
    ranked = lake.read_table(lake.key("rankings", "rankings", promoted["key"], "breakout-long"))
    # a trader the verdict does not call significant, other than the one promoted by the fixture
    weak = ranked.filter((pl.col("dsr") < 0.95) & (pl.col("trader_id") != config["trader_id"]))["trader_id"][0]
    versions = len(store.history(cid))
    for args, message in [
        (("promote", "SYN:GOLD", "breakout-long", "0", "--broker", "nobody"), "unknown broker 'nobody'"),
        (("promote", "SYN:GOLD", "breakout-long", "4242", "--broker", "paper"), "unknown trader 4242"),
        (("promote", "SYN:GOLD", "breakout-long", "0", "--broker", "paper", "--risk-per-trade", "-0.01"),
         "--risk-per-trade: -0.01 must be a fraction"),
        (("promote", "SYN:GOLD", "breakout-long", str(weak), "--broker", "paper"), "is not significant"),
        (("edit", cid, "--risk-per-trade", "-1"), "--risk-per-trade: -1.0 must be a fraction"),
        (("pause", "nope"), "unknown live configuration 'nope'"),
    ]:
        out = _mochi("live", *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.strip().splitlines()[-1].startswith("mochi: error: ") and message in out.stderr, out.stderr
    assert store.names() == sorted([cid, "SYN_GOLD.breakout-long.999.paper"])  # nothing new written
    assert len(store.history(cid)) == versions
    forced = _mochi("live", "promote", "SYN:GOLD", "breakout-long", str(weak), "--broker", "paper",
                    "--i-understand-not-significant", "--no-export")
    assert forced.returncode == 0, forced.stderr
    assert "promoted with --i-understand-not-significant" in forced.stdout
    weak_config = store.latest(f"SYN_GOLD.breakout-long.{weak}.paper")
    assert weak_config["acknowledged_not_significant"] is True and weak_config["verdict"]["significant"] is False
    assert _mochi("live", "remove", weak_config["name"], "--no-export").returncode == 0

    assert _mochi("live", "edit", cid, "--max-open", "2", "--no-export").returncode == 0
    assert _mochi("live", "pause", cid, "--no-export").returncode == 0
    shown = _mochi("live", "show", cid)
    assert json.loads(shown.stdout)["status"] == "paused" and json.loads(shown.stdout)["max_open"] == 2
    history = _mochi("live", "show", cid, "--history")
    assert "promote" in history.stdout and "edit" in history.stdout and "pause" in history.stdout
    removal = _mochi("brokers", "remove", "paper")
    assert removal.returncode == 2 and f"used by live configuration(s) {cid}" in removal.stderr
    resumed = _mochi("live", "resume", cid)  # exports the broker again (a Dagster run)
    assert resumed.returncode == 0, resumed.stderr
    assert "Exported 1 active configuration(s) of paper" in resumed.stdout
    status = _mochi("live", "status", "--no-track")
    assert status.returncode == 0, status.stderr
    summary = lake.read_table(lake.key("portfolio-tracking", "forward_summary", promoted["key"])).row(0, named=True)
    line = next(ln for ln in status.stdout.splitlines() if cid in ln)
    assert f"{summary['forward_trades']}" in line.split() and f"{summary['forward_r']:.2f}" in line.split()
    brokers = _mochi("brokers", "list", "--history")
    assert brokers.returncode == 0 and "paper" in brokers.stdout and "PAPER_CREDS" in brokers.stdout
    for group in ("brokers", "live"):
        assert _mochi(group, "--help").returncode == 0
