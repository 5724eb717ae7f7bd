"""walk_forward and robustness materialized on one ticker x scenario partition, then shown by `mochi results`."""

import io
import os
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from mochi_assets.definitions import all_assets, build_resources, leaderboard_assets, ticker_assets
from mochi_assets.partitions import SCENARIO_DIMENSION, ticker_scenario_key
from mochi_assets.reporting.rankings import significant_traders
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
    "duration_min": 120,
    "scenarios": {"breakout-long": {"direction": "long", "stop_atr": [0.5, 1.0], "limit_atr": [1.0, 2.0]}},
    "walk_forward": {"is_sessions": 15, "oos_sessions": 5, "min_trades": 3, "top": 3, "mc_paths": 100,
                     "spa_reps": 100, "random_paths": 500},
}
SCENARIO_SELECTION = ["trades", "aggregates", "walk_forward", "robustness", "rankings"]


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("mochi")
    mp.setenv("MOCHI_HOME", str(home))
    for var in ("MOCHI_S3_ENDPOINT", "POLYGON_API_KEY", "MOCHI_BUCKET_PREFIX", "DAGSTER_HOME"):
        mp.delenv(var, raising=False)
    request = parse_request(REQUEST)
    lake = Lake(MochiSettings.from_env())
    key = request.ticker_key
    with mochi_instance_for_test() as instance:
        resources = build_resources()
        materialize_request(instance, request, resources)
        assert dg.materialize(all_assets, selection=ticker_assets, partition_key=key, instance=instance,
                              resources=resources).success
        assert instance.get_dynamic_partitions(SCENARIO_DIMENSION) == ["breakout-long"]
        scenario = dg.materialize(
            all_assets, selection=SCENARIO_SELECTION, partition_key=ticker_scenario_key(key, "breakout-long"),
            instance=instance, resources=resources,
        )
        board = dg.materialize(all_assets, selection=leaderboard_assets, partition_key=key, instance=instance,
                               resources=resources)
    yield {"lake": lake, "key": key, "home": home, "scenario": scenario, "board": board}
    mp.undo()


def _table(m, table, scenario="breakout-long"):
    return m["lake"].read_table(m["lake"].key("rankings", table, m["key"], scenario))


def test_walk_forward_and_robustness_are_materialized_with_metadata(materialized):
    result = materialized["scenario"]
    assert result.success
    meta = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert "graph" in meta["walk_forward"] and "verdict" in meta["walk_forward"]
    assert "](data:image/png;base64," in meta["walk_forward"]["graph"].value
    assert meta["walk_forward"]["folds"].value >= 2
    assert "spa_pvalue" in meta["robustness"] and "robustness" in meta["robustness"]
    assert "plateau_score" in meta["rankings"]["robustness"].value

    folds = _table(materialized, "walk_forward_folds")
    summary = _table(materialized, "walk_forward_summary").row(0, named=True)
    assert folds.height == summary["folds"] >= 2
    assert (folds["oos_start"] > folds["is_end"]).all()
    assert summary["oos_trades"] == folds["oos_trades"].sum()
    robust = _table(materialized, "robustness")
    assert robust.height == 3 and robust["rank"].to_list() == [1, 2, 3]
    assert robust["spa_pvalue"].drop_nulls().is_between(0, 1).all()
    lake = materialized["lake"]
    png = lake.get_bytes(lake.key("rankings", "walk_forward", materialized["key"], "breakout-long", "walk_forward.png"))
    csv = lake.get_bytes(lake.key("rankings", "walk_forward", materialized["key"], "breakout-long", "walk_forward.csv"))
    assert png.startswith(b"\x89PNG")
    assert pl.read_csv(io.BytesIO(csv)).height == summary["oos_sessions_total"]

    ranked = lake.read_table(lake.key("rankings", "rankings", materialized["key"], "breakout-long"))
    assert {"oos_beats_random_share", "oos_beats_random", "spa_pvalue"} <= set(ranked.columns)
    board = lake.read_table(lake.key("rankings", "leaderboard", materialized["key"]))
    assert "oos_verdict" in board.columns
    significant = significant_traders(board)
    assert significant.filter(pl.col("oos_beats_random") == False).is_empty()  # noqa: E712
    board_meta = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
                  for e in materialized["board"].get_asset_materialization_events()}["leaderboard"]
    assert "Out of sample (walk-forward), breakout-long: its selection beats" in board_meta["verdict"].value


def test_mochi_results_shows_the_walk_forward(materialized):
    env = {**os.environ, "MOCHI_HOME": str(materialized["home"])}
    out = subprocess.run(
        [sys.executable, "-m", "mochi_assets.cli", "results", "SYN:GOLD", "--walk-forward"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "walk-forward (rolling, 15 in-sample / 5 out-of-sample sessions" in out.stdout
    assert "Folds:" in out.stdout and "Robustness of the top traders:" in out.stdout
    assert "plateau_score" in out.stdout and "walk_forward.png" in out.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "mochi_assets.cli", "results", "SYN:GOLD", "--walk-forward", "--scenario", "nope"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert missing.returncode == 2 and "no walk-forward results for SYN:GOLD / nope" in missing.stderr
