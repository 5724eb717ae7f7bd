"""Golden files: a fixed small backtest gives the same aggregates, rankings and graph CSVs as stored.

The backtest (`golden.REQUEST`: SYN:GOLD, January to March 2024, one scenario family of 36
traders) runs through the real asset graph with `dg.materialize` in a fresh MOCHI_HOME (local
lake), every asset except `trade_extracts` and `trade_lens` (PNG only, nothing ranked). Then every
table of the `aggregates` and `rankings` buckets (as CSV) and every CSV file behind a graph
(years, stops, best traders, walk-forward) is compared with `tests/golden/expected/`:

- equal text passes; otherwise cell by cell, numbers equal within a relative 1e-12 (the speed
  work may reorder a float sum, it may not change a figure), everything else exactly, same rows in
  the same order (row order is part of a ranking). Two runs of the same code give identical text.
- the failure names the file, the first differing row (CSV line) and column.
- nothing is excluded today: these outputs hold no run timestamps, run ids or lake paths. A column
  that legitimately varies would go to `golden.VARYING_COLUMNS`, with its reason.

Regenerate deliberately (after a change that is meant to change results), then review the diff:

    MOCHI_UPDATE_GOLDEN=1 pytest tests/golden
"""

from __future__ import annotations

import os

import dagster as dg
import pytest

from tests.golden.golden import EXPECTED, REQUEST, first_difference, golden_outputs, read_expected, write_expected
from tests.instances import mochi_instance_for_test


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    from mochi_assets.definitions import all_assets, build_resources, leaderboard_assets, scenario_assets, ticker_assets
    from mochi_assets.partitions import SCENARIO_DIMENSION, ticker_scenario_key
    from mochi_assets.reporting import assets as reporting
    from mochi_assets.request import parse_request
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings
    from tests.automation.requests import materialize_request

    mp = pytest.MonkeyPatch()
    mp.setenv("MOCHI_HOME", str(tmp_path_factory.mktemp("golden")))
    for var in ("MOCHI_S3_ENDPOINT", "POLYGON_API_KEY", "MOCHI_BUCKET_PREFIX", "DAGSTER_HOME", "MOCHI_TRINO_URL"):
        mp.delenv(var, raising=False)
    try:
        request = parse_request(REQUEST)
        key = request.ticker_key
        compared = [a for a in scenario_assets if a not in (reporting.trade_extracts, reporting.trade_lens)]
        with mochi_instance_for_test() as instance:
            resources = build_resources()
            materialize_request(instance, request, resources)
            runs = [dg.materialize(all_assets, selection=ticker_assets, partition_key=key, instance=instance,
                                   resources=resources)]
            scenarios = sorted(instance.get_dynamic_partitions(SCENARIO_DIMENSION))
            for name in scenarios:
                runs.append(dg.materialize(all_assets, selection=compared, partition_key=ticker_scenario_key(key, name),
                                           instance=instance, resources=resources))
            runs.append(dg.materialize(all_assets, selection=leaderboard_assets, partition_key=key,
                                       instance=instance, resources=resources))
        assert all(r.success for r in runs)
        assert scenarios == sorted(REQUEST["scenarios"])
        yield golden_outputs(Lake(MochiSettings.from_env()), key, scenarios)
    finally:
        mp.undo()


def test_outputs_equal_the_golden_files(outputs):
    if os.environ.get("MOCHI_UPDATE_GOLDEN") == "1":
        write_expected(outputs)
        pytest.skip(f"MOCHI_UPDATE_GOLDEN=1: rewrote {len(outputs)} files in {EXPECTED}; review the diff")
    expected = read_expected()
    assert expected, f"no golden files in {EXPECTED}: run MOCHI_UPDATE_GOLDEN=1 pytest tests/golden"
    assert sorted(outputs) == sorted(expected), (
        f"files differ: missing {sorted(set(expected) - set(outputs))}, new {sorted(set(outputs) - set(expected))}"
    )
    differences = [d for name in sorted(expected) if (d := first_difference(name, expected[name], outputs[name]))]
    assert not differences, f"{len(differences)} of {len(expected)} golden files differ:\n" + "\n".join(differences)
