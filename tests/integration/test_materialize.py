"""The whole asset graph for one synthetic ticker and two scenarios, with dg.materialize."""

import io

import dagster as dg
import polars as pl
import pytest

from mochi_assets.definitions import all_assets, build_resources, leaderboard_assets, scenario_assets, ticker_assets
from mochi_assets.market_data.sessions import parse_session, session_date_expr
from mochi_assets.partitions import SCENARIO_DIMENSION, ticker_scenario_key
from mochi_assets.request import parse_request
from tests.automation.requests import materialize_request
from tests.instances import mochi_instance_for_test
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

REQUEST = {
    "ticker": "SYN:GOLD",
    "start": "2024-01-02",
    "end": "2024-02-23",
    "atr": {"short": 3, "long": 5, "alpha": 0.5},
    "entry_times": ["09:30", "14:00"],
    "duration_min": 120,
    "timeout_min": 30,
    "cost_ticks": 2,
    "scenarios": {
        "breakout-long": {"direction": "long", "stop_atr": [0.5, 1.0], "limit_atr": [1.0, 2.0]},
        "pullback-short": {"direction": "short", "offset_ticks": [-20, -50], "stop_atr": [1.0], "limit_atr": [0.5, 1.5]},
    },
}

DESIGN_COLUMNS = {
    "bars": ["ts", "open", "high", "low", "close", "volume"],
    "enhanced": ["ts", "open", "high", "low", "close", "volume", "session_date", "atr_short", "atr_long", "atr"],
    "meta": ["ticker", "tick_size", "timezone", "asset_class"],
    "traders": ["trader_id", "scenario", "direction", "entry_time", "offset_ticks", "stop_atr", "limit_atr",
                "duration_min", "timeout_min", "cost_ticks"],
    "trades": ["trader_id", "session_date", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason",
               "pnl", "pnl_ticks", "r", "mae", "mfe", "bars_held"],
    "summary": ["trader_id", "trades", "wins", "win_rate", "net_pnl", "avg_r", "profit_factor", "max_drawdown", "sharpe"],
    "by_year": ["trader_id", "year", "trades", "net_pnl", "win_rate"],
    "rankings": ["rank", "trader_id", "scenario", "direction", "entry_time", "offset_ticks", "stop_atr", "limit_atr",
                 "duration_min", "timeout_min", "trades", "win_rate", "net_pnl", "sharpe", "dsr"],
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Materialize every stage once (module scope: the graph is the expensive part)."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("mochi")
    mp.setenv("MOCHI_HOME", str(home))
    for var in ("MOCHI_S3_ENDPOINT", "POLYGON_API_KEY", "MOCHI_BUCKET_PREFIX"):
        mp.delenv(var, raising=False)
    request = parse_request(REQUEST)
    lake = Lake(MochiSettings.from_env())
    key = request.ticker_key
    results = {}
    with mochi_instance_for_test() as instance:
        resources = build_resources()
        results["request"] = materialize_request(instance, request, resources)
        results["ticker"] = dg.materialize(all_assets, selection=ticker_assets, partition_key=key, instance=instance,
                                           resources=resources)
        scenarios = sorted(instance.get_dynamic_partitions(SCENARIO_DIMENSION))
        for name in scenarios:
            results[name] = dg.materialize(
                all_assets, selection=scenario_assets, partition_key=ticker_scenario_key(key, name),
                instance=instance, resources=resources,
            )
        results["leaderboard"] = dg.materialize(
            all_assets, selection=leaderboard_assets, partition_key=key, instance=instance, resources=resources
        )
        checks = {
            (e.asset_key.to_user_string(), e.check_name): e.passed
            for r in results.values()
            for e in r.get_asset_check_evaluations()
        }
    yield {"lake": lake, "key": key, "scenarios": scenarios, "results": results, "checks": checks, "request": request}
    mp.undo()


def _table(p, bucket, table, scenario=None):
    return p["lake"].read_table(p["lake"].key(bucket, table, p["key"], scenario))


def test_every_run_succeeds_and_registers_the_scenarios(pipeline):
    assert all(r.success for r in pipeline["results"].values())
    assert pipeline["scenarios"] == ["breakout-long", "pullback-short"]


def test_bars_stages(pipeline):
    minute = _table(pipeline, "raw", "bars_minute")
    hour = _table(pipeline, "raw", "bars_hour")
    day = _table(pipeline, "raw", "bars_day")
    for df in (minute, hour, day):
        assert df.columns[:6] == DESIGN_COLUMNS["bars"]
        assert df["ts"].is_sorted() and df["ts"].n_unique() == df.height
    assert minute.height > hour.height > day.height > 30
    assert abs(hour["volume"].sum() - minute["volume"].sum()) < 1e-6 * minute["volume"].sum()
    enhanced = _table(pipeline, "prepared", "enhanced_bars")
    assert enhanced.columns[:10] == DESIGN_COLUMNS["enhanced"]
    # the raw bars reach back before start (ATR warm-up); the enhanced bars hold the requested
    # forex sessions only (Monday to Friday), with the ATR defined from the first one
    forex = session_date_expr(parse_session("forex", "UTC"))
    request = pipeline["request"]
    assert minute.select(forex.min()).item() < request.start
    assert enhanced.height == minute.filter(forex.is_between(request.start, request.end)).height
    per_day = enhanced.group_by("session_date").agg(pl.col("atr").first()).sort("session_date")
    assert per_day["session_date"][0] == request.start and per_day["atr"].is_not_null().all()
    assert set(per_day["session_date"].dt.weekday()) == {1, 2, 3, 4, 5}
    assert all(pipeline["checks"].values()), pipeline["checks"]
    assert ("raw_bars", "ohlc_consistent") in pipeline["checks"]


def test_ticker_meta_and_grids(pipeline):
    meta = _table(pipeline, "ticker-meta", "ticker_meta")
    assert meta.columns[:4] == DESIGN_COLUMNS["meta"]
    assert meta.row(0, named=True)["ticker"] == "SYN:GOLD"
    assert meta["synthetic"].item() is True and meta["source"].item() == "synthetic"
    grids = _table(pipeline, "ticker-meta", "scenario_grids")
    sizes = dict(zip(grids["scenario"], grids["traders"]))
    # breakout-long: 2 entry times x 4 derived offsets x 2 stops x 2 limits; pullback: 2 x 2 x 1 x 2
    assert sizes == {"breakout-long": 32, "pullback-short": 8}


def test_trades_and_aggregates(pipeline):
    for scenario, n in (("breakout-long", 32), ("pullback-short", 8)):
        traders = _table(pipeline, "trades", "traders", scenario)
        trades = _table(pipeline, "trades", "trades", scenario)
        assert traders.columns == DESIGN_COLUMNS["traders"] and traders.height == n
        assert trades.columns[:13] == DESIGN_COLUMNS["trades"]
        assert trades.height > 0
        assert set(trades["exit_reason"].unique()) <= {"stop", "limit", "time", "end"}
        assert (trades["exit_ts"] >= trades["entry_ts"]).all()
        assert (trades["mae"] >= 0).all() and (trades["mfe"] >= 0).all()
        summary = _table(pipeline, "aggregates", "trader_summary", scenario)
        assert summary.columns[:9] == DESIGN_COLUMNS["summary"] and summary.height == n
        assert summary["trades"].sum() == trades.height
        by_trader = trades.group_by("trader_id").agg(pl.col("pnl").sum()).sort("trader_id")
        joined = summary.join(by_trader, on="trader_id")
        assert (joined["net_pnl"] - joined["pnl"]).abs().max() < 1e-9
        by_year = _table(pipeline, "aggregates", "trader_by_year", scenario)
        assert by_year.columns[:5] == DESIGN_COLUMNS["by_year"]
        assert by_year["year"].unique().to_list() == [2024]


def test_rankings_graphs_extracts_lens(pipeline):
    for scenario in pipeline["scenarios"]:
        ranked = _table(pipeline, "rankings", "rankings", scenario)
        assert all(c in ranked.columns for c in DESIGN_COLUMNS["rankings"])
        assert ranked["rank"].to_list() == list(range(1, ranked.height + 1))
        assert ranked["dsr"].drop_nulls().is_between(0, 1).all()
        lake = pipeline["lake"]
        for name in ("years", "stops", "best_traders"):
            png = lake.get_bytes(lake.key("graphs", f"{name}_graph", pipeline["key"], scenario, f"{name}.png"))
            csv = lake.get_bytes(lake.key("graphs", f"{name}_graph", pipeline["key"], scenario, f"{name}.csv"))
            assert png.startswith(b"\x89PNG") and len(png) > 5000
            assert pl.read_csv(io.BytesIO(csv)).height > 0
        extract = _table(pipeline, "extracts", "trade_extracts", scenario)
        top = ranked.filter(pl.col("duplicate_of").is_null()).head(10)["trader_id"].to_list()  # distinct outcomes
        assert set(extract["trader_id"].unique()) <= set(top) and extract.height > 0
        lens = _table(pipeline, "extracts", "lens_by_weekday", scenario)
        assert lens["trades"].sum() == extract.height


def test_leaderboard_spans_scenarios(pipeline):
    board = _table(pipeline, "rankings", "leaderboard")
    assert set(board["scenario"]) == set(pipeline["scenarios"])
    assert board["rank"].to_list() == list(range(1, board.height + 1))
    assert board["synthetic"].all()
    assert board["duplicate_of"].null_count() == board.height  # each distinct outcome once


def test_materializations_carry_metadata(pipeline):
    result = pipeline["results"]["breakout-long"]
    mats = {m.asset_key.to_user_string(): m.metadata for m in result.get_asset_materialization_events() and
            [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]}
    trades_meta = mats["trades"]
    assert trades_meta["traders"].value == 32
    assert trades_meta["request_id"].value == pipeline["request"].request_id
    assert "synthetic" in trades_meta["data"].value
    assert "preview" in mats["rankings"] and "best_trader" in mats["rankings"]
    assert "beats what luck explains" in mats["rankings"]["verdict"].value
    assert mats["rankings"]["distinct_outcomes"].value <= 32
    assert "graph" in mats["years_graph"]
