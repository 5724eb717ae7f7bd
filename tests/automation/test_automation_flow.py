"""Submissions, sensors and the daily schedule driving the real definitions end to end.

The daemon's part is played by `_launch`: it registers the partitions a tick asks for and runs
each requested run in process on the same instance, as the sensor daemon would launch them.
"""

import datetime as dt
import json

import dagster as dg
import pytest

from mochi_assets.automation.sensors import REQUEST_ID_TAG
from mochi_assets.automation.submissions import submissions_prefix, submit_request
from mochi_assets.definitions import all_assets, defs
from mochi_assets.partitions import TICKER_DIMENSION
from mochi_assets.request import parse_request
from mochi_assets.store import stored_request
from mochi_resources.io_manager import LakeResource
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

from tests.automation.requests import small_request

PROVENANCE = ["request_id", "request_hash", "code_version", "input_hash", "engine_storage", "engine_sql"]


def _tick(instance, name, cursor=None):
    sensor = defs.get_repository_def().get_sensor_def(name)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={"lake": LakeResource()})
    return sensor(context)


def _launch(instance, result):
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    runs = []
    for rr in result.run_requests or []:
        job = defs.resolve_job_def(rr.job_name)
        run = job.execute_in_process(
            partition_key=rr.partition_key, instance=instance, tags=rr.tags,
            asset_selection=list(rr.asset_selection) if rr.asset_selection else None,
        )
        assert run.success
        runs.append(run)
    return runs


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
    with dg.instance_for_test() as instance:
        state = {"lake": lake, "request": request, "instance": instance, "prefix": prefix}
        submit_request(lake, request)
        # dropped in by hand: an invalid request (with a space in its name) and a stray file
        lake.store.put_bytes(f"{prefix}bad gold.yaml", b"ticker: SYN:GOLD\nstart: 2024-05-01\nend: 2024-04-01\n")
        lake.store.put_bytes(f"{prefix}notes.txt", b"hello")
        first = _tick(instance, "backtest_request_sensor")
        state["first"] = first
        _launch(instance, first)
        stages = []
        for _ in range(4):
            tick = _tick(instance, "backtest_stage_sensor")
            stages.append(tick)
            _launch(instance, tick)
        state["stages"] = stages
        yield state
    mp.undo()


def test_new_request_registers_the_partition_and_starts_the_ticker_job(flow):
    first = flow["first"]
    assert [r.job_name for r in first.run_requests] == ["ticker_job"]
    run = first.run_requests[0]
    assert run.partition_key == "SYN_GOLD" and run.tags[REQUEST_ID_TAG] == flow["request"].request_id
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["SYN_GOLD"]]
    assert first.dynamic_partitions_requests[0].partitions_def_name == TICKER_DIMENSION
    assert stored_request(flow["lake"], "SYN_GOLD").request_hash == flow["request"].request_hash


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


def test_later_stages_follow_without_clicking(flow):
    jobs = [[(r.job_name, str(r.partition_key)) for r in t.run_requests] for t in flow["stages"]]
    assert jobs[0] == [("scenario_job", "breakout-long|SYN_GOLD"), ("scenario_job", "breakout-short|SYN_GOLD")]
    assert jobs[1] == [("leaderboard_job", "SYN_GOLD")]
    assert jobs[2] == jobs[3] == []
    assert "SYN_GOLD: up to date" in flow["stages"][3].skip_reason.skip_message
    assert _count(flow["instance"], "leaderboard") == 1


def test_provenance_on_every_asset(flow):
    instance = flow["instance"]
    for assets_def in all_assets:
        records = instance.fetch_materializations(assets_def.key, limit=100).records
        assert records, assets_def.key
        for record in records:
            meta = record.asset_materialization.metadata
            missing = [f for f in PROVENANCE if f not in meta]
            assert not missing, (assets_def.key, missing)
            assert meta["request_hash"].value == flow["request"].request_hash
            assert meta["engine_storage"].value == "local" and meta["engine_sql"].value == "duckdb"
            assert meta["input_hash"].value == record.asset_materialization.tags["dagster/data_version"] or \
                assets_def.key.to_user_string() == "raw_bars"


def test_schedule_tick_refreshes_bars_and_a_rerun_resimulates_nothing(flow):
    instance = flow["instance"]
    schedule = defs.get_repository_def().get_schedule_def("daily_refresh_schedule")
    context = dg.build_schedule_context(instance=instance, resources={"lake": LakeResource()},
                                        repository_def=defs.get_repository_def(),
                                        scheduled_execution_time=dt.datetime(2024, 4, 22, 6, 30, tzinfo=dt.UTC))
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert [(r.job_name, r.partition_key, list(r.asset_selection)) for r in requests] == [
        ("ticker_job", "SYN_GOLD", [dg.AssetKey("raw_bars")])
    ]
    trades_before = _count(instance, "trades")
    raw_before = _count(instance, "raw_bars")
    _launch(instance, dg.SensorResult(run_requests=requests))
    assert _count(instance, "raw_bars") == raw_before + 1
    # the whole ticker stage again, as from the UI: same data versions
    assert defs.resolve_job_def("ticker_job").execute_in_process(partition_key="SYN_GOLD", instance=instance).success
    tick = _tick(instance, "backtest_stage_sensor")
    assert tick.run_requests == [] and "SYN_GOLD: up to date" in tick.skip_reason.skip_message
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
    assert [(r.job_name, r.partition_key) for r in tick.run_requests] == [("ticker_job", "SYN_GOLD")]
    assert tick.run_requests[0].run_key == f"{changed.request_id}:after:{flow['request'].request_hash}"
    assert tick.dynamic_partitions_requests == []  # the partition exists already
    assert stored_request(lake, "SYN_GOLD").request_hash == changed.request_hash
    _launch(instance, tick)
    stage = _tick(instance, "backtest_stage_sensor")
    assert sorted(str(r.partition_key) for r in stage.run_requests) == ["breakout-long|SYN_GOLD", "breakout-short|SYN_GOLD"]
    assert all("changed" in r.tags["mochi/reason"] for r in stage.run_requests)
