"""The request asset: its config, its data version, and a run pinned to the request it was made for."""

import dagster as dg
import pytest

from mochi_assets import launch
from mochi_assets.definitions import build_resources, defs
from mochi_assets.partitions import TICKER_DIMENSION
from mochi_assets.request import BacktestRequest, parse_request
from mochi_assets.request_asset import RequestConfig, backtest_request, request_run_config

from tests.automation.requests import materialize_request, small_request
from tests.instances import mochi_instance_for_test


def _materialize(instance, partition, config):
    instance.add_dynamic_partitions(TICKER_DIMENSION, [partition])
    return dg.materialize([backtest_request], partition_key=partition, instance=instance, resources=build_resources(),
                          run_config={"ops": {"backtest_request": {"config": config}}}, raise_on_error=False)


def _failure(result) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.user_failure_data.description


def test_the_launchpad_config_describes_every_field_with_its_default():
    fields = RequestConfig.to_config_schema().as_field().config_type.fields
    assert set(fields) == set(BacktestRequest.model_fields)  # a new request key needs its launchpad field
    assert all(f.description for f in fields.values())
    assert fields["timezone"].default_value == "America/New_York"
    assert fields["atr"].config_type.fields["long"].default_value == 50
    assert fields["ticker"].is_required and not fields["cost_ticks"].is_required


def test_ui_config_and_document_give_the_same_request_and_hash(mochi_home):
    request = parse_request(small_request())
    config = request_run_config(request)["ops"]["backtest_request"]["config"]
    assert parse_request(RequestConfig(**config).to_document()).request_hash == request.request_hash
    with mochi_instance_for_test() as instance:
        result = materialize_request(instance, request)
        [mat] = result.asset_materializations_for_node("backtest_request")
        assert mat.metadata["request_hash"].value == request.request_hash
        record = instance.fetch_materializations(dg.AssetKey("backtest_request"), limit=1).records[0]
        assert record.asset_materialization.tags["dagster/data_version"] == request.request_hash


def test_a_bad_field_fails_once_naming_it(mochi_home):
    with mochi_instance_for_test() as instance:
        result = _materialize(instance, "SYN_GOLD", {"ticker": "SYN:GOLD", "start": "2024-03-01", "end": "2024-04-01",
                                                     "atr": {"alpha": 2.0}})
        assert not result.success
        assert "atr.alpha: Input should be less than or equal to 1" in _failure(result)
        assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]


def test_the_ticker_must_be_the_partition(mochi_home):
    with mochi_instance_for_test() as instance:
        result = _materialize(instance, "SYN_SILVER", {"ticker": "SYN:GOLD", "start": "2024-03-01", "end": "2024-04-01"})
        assert not result.success
        assert "'SYN:GOLD' sanitizes to partition SYN_GOLD, not SYN_SILVER" in _failure(result)


def test_a_request_submitted_while_a_run_is_pending_does_not_change_that_run(mochi_home):
    first = parse_request(small_request(scenarios=1))
    second = parse_request(small_request(scenarios=1, short=4))
    assert first.request_hash != second.request_hash
    with mochi_instance_for_test() as instance:
        materialize_request(instance, first)
        pending = launch.create_run(instance, defs, "ticker_job", "SYN_GOLD")  # queued, steps not started
        materialize_request(instance, second)
        ended = launch.execute(instance, pending)
        assert ended.status == dg.DagsterRunStatus.SUCCESS
        records = instance.get_records_for_run(pending.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        hashes = {r.event_log_entry.asset_materialization.asset_key.to_user_string():
                  r.event_log_entry.asset_materialization.metadata["request_hash"].value for r in records}
        assert hashes == {"raw_bars": first.request_hash, "enhanced_bars": first.request_hash,
                          "scenarios": first.request_hash}
        # a run created now computes with the second request
        later = launch.execute(instance, launch.create_run(instance, defs, "ticker_job", "SYN_GOLD",
                                                           asset_selection=[dg.AssetKey("enhanced_bars")]))
        [record] = instance.get_records_for_run(later.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        assert record.event_log_entry.asset_materialization.metadata["request_hash"].value == second.request_hash


@pytest.fixture
def mochi_home(mochi_home, monkeypatch):
    monkeypatch.delenv("MOCHI_TRINO_URL", raising=False)
    return mochi_home


def test_a_runs_pinned_request_is_looked_up_once_per_process(mochi_home, monkeypatch):
    """The steps of a run after its first one that reads the request ask the instance nothing."""
    from mochi_assets import request_asset

    request = parse_request(small_request(scenarios=1))
    with mochi_instance_for_test() as instance:
        materialize_request(instance, request)
        run = launch.create_run(instance, defs, "ticker_job", "SYN_GOLD")
        asked = []
        original = instance.get_records_for_run
        monkeypatch.setattr(instance, "get_records_for_run", lambda *a, **k: asked.append(a) or original(*a, **k))
        first = request_asset.pinned_request_hash(instance, run.run_id, "SYN_GOLD")
        assert first == request.request_hash and len(asked) == 1
        assert request_asset.pinned_request_hash(instance, run.run_id, "SYN_GOLD") == first
        assert len(asked) == 1  # remembered
        other = launch.create_run(instance, defs, "ticker_job", "SYN_GOLD")
        assert request_asset.pinned_request_hash(instance, other.run_id, "SYN_GOLD") == first
        assert len(asked) == 2  # another run asks for itself
