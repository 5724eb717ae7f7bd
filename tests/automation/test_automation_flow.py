"""Submissions, the request sensor, declarative automation and the daily schedule, end to end.

The daemon's part is played here: `_launch` registers the partitions a sensor tick asks for and
runs its run requests in process; `_follow` evaluates the assets' automation conditions with
Dagster's own test utility (`dg.evaluate_automation_conditions`, what the automation condition
sensor runs) and materializes what they request, one run per partition, as the sensor would.
"""

import datetime as dt
import json

import dagster as dg
import pytest

from mochi_assets.automation.sensors import REQUEST_ID_TAG, REQUEST_JOB
from mochi_assets.automation.submissions import submissions_prefix, submit_request
from mochi_assets.definitions import all_assets, build_resources, defs
from mochi_assets.partitions import SCENARIO_DIMENSION, TICKER_DIMENSION
from mochi_assets.request import parse_request
from mochi_assets.request_asset import latest_request_hash
from mochi_resources.io_manager import LakeResource
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

from tests.automation.requests import small_request
from tests.instances import mochi_instance_for_test

PROVENANCE = ["request_id", "request_hash", "code_version", "engine_storage"]
TICKER_STAGES = {"raw_bars", "enhanced_bars", "scenarios"}
SCENARIO_STAGES = {"trades", "aggregates", "walk_forward", "robustness", "rankings", "years_graph", "stops_graph",
                   "best_traders_graph", "trade_extracts", "trade_lens"}
PARTITIONS = {"breakout-long|SYN_GOLD", "breakout-short|SYN_GOLD"}


def _tick(instance, name, cursor=None):
    sensor = defs.get_repository_def().get_sensor_def(name)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={"lake": LakeResource()})
    return sensor(context)


def _launch(instance, result):
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    for rr in result.run_requests or []:
        job = defs.resolve_job_def(rr.job_name)
        run = job.execute_in_process(
            partition_key=rr.partition_key, instance=instance, tags=rr.tags, run_config=rr.run_config,
            asset_selection=list(rr.asset_selection) if rr.asset_selection else None,
        )
        assert run.success


def _requested(result) -> dict[str, set[str]]:
    """What one evaluation requested: partition key -> asset names."""
    out: dict[str, set[str]] = {}
    for assets_def in all_assets:
        for partition in result.get_requested_partitions(assets_def.key):
            out.setdefault(str(partition), set()).add(assets_def.key.to_user_string())
    return out


def _follow(instance, cursor, definitions=defs):
    """One automation tick, then its requests materialized (one run per partition)."""
    result = dg.evaluate_automation_conditions(definitions, instance, cursor=cursor)
    requested = _requested(result)
    for partition, names in sorted(requested.items()):
        outcome = dg.materialize(all_assets, selection=sorted(names), partition_key=partition, instance=instance,
                                 resources=build_resources())
        assert outcome.success
    return result.cursor, requested


def _count(instance, key):
    return len(instance.fetch_materializations(dg.AssetKey(key), limit=1000).records)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("auto") / "mochi"
    mp.setenv("MOCHI_HOME", str(home))
    for var in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY", "MOCHI_BUCKET_PREFIX", "MOCHI_TRINO_URL"):
        mp.delenv(var, raising=False)
    lake = Lake(MochiSettings.from_env())
    request = parse_request(small_request())
    prefix = submissions_prefix(lake)
    with mochi_instance_for_test() as instance:
        state = {"lake": lake, "request": request, "instance": instance, "prefix": prefix}
        cursor, before = _follow(instance, None)  # the automation sensor was already running
        state["before"] = before
        # another ticker's scenario family exists: SYN_GOLD x other-family is no partition to run
        instance.add_dynamic_partitions(SCENARIO_DIMENSION, ["other-family"])
        submit_request(lake, request)
        # dropped in by hand: an invalid request (with a space in its name) and a stray file
        lake.store.put_bytes(f"{prefix}bad gold.yaml", b"ticker: SYN:GOLD\nstart: 2024-05-01\nend: 2024-04-01\n")
        lake.store.put_bytes(f"{prefix}notes.txt", b"hello")
        first = _tick(instance, "backtest_request_sensor")
        state["first"] = first
        _launch(instance, first)
        ticks = []
        for _ in range(4):
            cursor, requested = _follow(instance, cursor)
            ticks.append(requested)
        state["ticks"], state["cursor"] = ticks, cursor
        yield state
    mp.undo()


def test_new_request_registers_the_partition_and_materializes_the_request(flow):
    first = flow["first"]
    assert [r.job_name for r in first.run_requests] == [REQUEST_JOB]
    run = first.run_requests[0]
    assert run.partition_key == "SYN_GOLD" and run.tags[REQUEST_ID_TAG] == flow["request"].request_id
    assert run.run_config["ops"]["backtest_request"]["config"]["ticker"] == "SYN:GOLD"
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["SYN_GOLD"]]
    assert first.dynamic_partitions_requests[0].partitions_def_name == TICKER_DIMENSION
    assert latest_request_hash(flow["instance"], "SYN_GOLD") == flow["request"].request_hash


def test_malformed_files_are_set_aside_with_their_error(flow):
    lake = flow["lake"]
    names = [o.key.rsplit("/", 1)[1] for o in lake.store.list(flow["prefix"])]
    assert names == [f"{flow['request'].request_id}.json"]
    rejected = f"{lake.settings.bucket('params')}/rejected/"
    kept = {o.key[len(rejected):]: o.key for o in lake.store.list(rejected)}
    assert set(kept) == {"bad_gold.yaml", "bad_gold.yaml.error.txt", "notes.txt", "notes.txt.error.txt"}
    error = lake.get_bytes(kept["bad_gold.yaml.error.txt"]).decode()
    assert "bad gold.yaml: invalid backtest request" in error and "end: the date range is inverted" in error
    assert "not a request document" in lake.get_bytes(kept["notes.txt.error.txt"]).decode()
    assert lake.get_bytes(kept["bad_gold.yaml"]).startswith(b"ticker: SYN:GOLD")
    cursor = json.loads(flow["first"].cursor)
    assert list(cursor) == [f"{flow['request'].request_id}.json"]


def test_the_graph_follows_the_request_by_declarative_automation(flow):
    assert flow["before"] == {}
    ticks = flow["ticks"]
    # the ticker stages in one tick (each requested as its upstream will be), scenarios next
    assert ticks[0] == {"SYN_GOLD": TICKER_STAGES}
    assert ticks[1] == {p: SCENARIO_STAGES for p in PARTITIONS}  # never other-family|SYN_GOLD
    assert ticks[2] == {"SYN_GOLD": {"leaderboard"}}  # once, after every scenario
    assert ticks[3] == {}  # an unchanged graph requests nothing
    assert _count(flow["instance"], "leaderboard") == 1


def test_provenance_on_every_asset_without_overriding_data_versions(flow):
    instance = flow["instance"]
    for assets_def in all_assets:
        records = instance.fetch_materializations(assets_def.key, limit=100).records
        assert records, assets_def.key
        for record in records:
            meta = record.asset_materialization.metadata
            assert meta["request_hash"].value == flow["request"].request_hash
            name = assets_def.key.to_user_string()
            if name == "backtest_request":
                assert record.asset_materialization.tags["dagster/data_version"] == flow["request"].request_hash
                continue
            assert not [f for f in PROVENANCE if f not in meta], name
            assert meta["engine_storage"].value == "local"
            assert ("engine_sql" in meta) == (name == "aggregates")
            tags = record.asset_materialization.tags
            # Dagster's own version bookkeeping, untouched: a default (logical) data version and
            # the recorded version of the request input
            assert "dagster/input_data_version/backtest_request" in tags
            assert tags["dagster/data_version"] != flow["request"].request_hash or name == "raw_bars"


def test_a_code_version_change_requests_only_that_stage_and_what_follows(flow):
    instance = flow["instance"]

    def bump(spec):
        return spec.replace_attributes(code_version="changed") if spec.key == dg.AssetKey("aggregates") else spec

    changed = dg.Definitions(
        assets=[a.map_asset_specs(bump) if dg.AssetKey("aggregates") in a.keys else a for a in all_assets],
        resources=build_resources(),
    )
    result = dg.evaluate_automation_conditions(changed, instance, cursor=flow["cursor"])
    expected = SCENARIO_STAGES - {"trades", "walk_forward"}  # walk_forward reads the trades, not the aggregates
    assert _requested(result) == {p: expected for p in PARTITIONS}


def test_schedule_tick_refreshes_bars_and_unchanged_bars_request_nothing(flow):
    instance = flow["instance"]
    schedule = defs.get_repository_def().get_schedule_def("daily_refresh_schedule")
    context = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def(),
                                        scheduled_execution_time=dt.datetime(2024, 4, 22, 6, 30, tzinfo=dt.UTC))
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert [(r.job_name, r.partition_key, list(r.asset_selection)) for r in requests] == [
        ("ticker_job", "SYN_GOLD", [dg.AssetKey("raw_bars")])
    ]
    trades_before = _count(instance, "trades")
    raw_before = _count(instance, "raw_bars")
    _launch(instance, dg.SensorResult(run_requests=requests))
    assert _count(instance, "raw_bars") == raw_before + 1
    cursor, requested = _follow(instance, flow["cursor"])
    assert requested == {}  # same bars, same data version: nothing downstream
    flow["cursor"] = cursor
    assert _count(instance, "trades") == trades_before


def test_the_same_request_submitted_twice_runs_once(flow):
    lake, instance = flow["lake"], flow["instance"]
    cursor = flow["first"].cursor
    submit_request(lake, flow["request"])  # the same document again
    lake.store.put_bytes(f"{flow['prefix']}again.json", flow["request"].canonical_json().encode())
    tick = _tick(instance, "backtest_request_sensor", cursor=cursor)
    assert tick.run_requests == []
    assert "already the current request of SYN_GOLD" in tick.skip_reason.skip_message
    # a lost cursor re-reads everything and still starts nothing
    assert _tick(instance, "backtest_request_sensor").run_requests == []
    lake.store.delete([f"{flow['prefix']}again.json"])


def test_a_changed_request_reruns_the_ticker_and_every_scenario(flow):
    lake, instance = flow["lake"], flow["instance"]
    changed = parse_request(small_request(short=4))
    submit_request(lake, changed)
    tick = _tick(instance, "backtest_request_sensor", cursor=flow["first"].cursor)
    assert [(r.job_name, r.partition_key) for r in tick.run_requests] == [(REQUEST_JOB, "SYN_GOLD")]
    assert tick.run_requests[0].run_key == f"{changed.request_id}:after:{flow['request'].request_hash}"
    assert tick.dynamic_partitions_requests == []  # the partition exists already
    _launch(instance, tick)
    assert latest_request_hash(instance, "SYN_GOLD") == changed.request_hash
    cursor, requested = _follow(instance, flow["cursor"])
    assert requested == {"SYN_GOLD": TICKER_STAGES}
    cursor, requested = _follow(instance, cursor)
    assert requested == {p: SCENARIO_STAGES for p in PARTITIONS}
    cursor, requested = _follow(instance, cursor)
    assert requested == {"SYN_GOLD": {"leaderboard"}}
    assert _follow(instance, cursor)[1] == {}
    latest = instance.fetch_materializations(dg.AssetKey("leaderboard"), limit=1).records[0]
    assert latest.asset_materialization.metadata["request_hash"].value == changed.request_hash
