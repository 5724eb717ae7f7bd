"""When each stage runs by itself: Dagster declarative automation, declared once for every asset.

Dagster's automation condition sensor (`mochi_automation_sensor`, definitions.py) evaluates these
conditions; nothing in Mochi decides staleness by hand. Every asset below `backtest_request`
carries `follows_upstream()`: requested when a partition is newly missing (a ticker or scenario
was just registered), when the data version of an upstream partition changed (a new request, new
bars: a re-materialization that produced the same data changes nothing downstream), or when the
asset's own code version changed; never while it, or anything it depends on, is in progress, and
never while an upstream partition is missing. Data versions are Dagster's defaults (code version +
input data versions; raw bars: their content hash; the request: its hash), so "nothing changed"
means nothing is requested.

Ticker x scenario partitions exist for every pair of registered ticker and scenario name, but a
ticker only has the scenario families its grids define: `scenario_of_its_ticker()` keeps the
pairs named in the latest materialization of the ticker's `scenarios` asset (its `scenarios`
metadata), so no step is ever launched for a scenario the ticker does not have.

The leaderboard reads every scenario of its ticker: it waits until each has rankings and none is
in progress, so it runs once after a whole backtest, not once per scenario.
"""

from __future__ import annotations

import dagster as dg

from mochi_assets.partitions import SCENARIO_DIMENSION, TICKER_DIMENSION, ticker_scenario_key

SCENARIOS_ASSET = dg.AssetKey("scenarios")
RANKINGS_ASSET = dg.AssetKey("rankings")
REQUEST_ASSET = dg.AssetKey("backtest_request")
SCENARIOS_METADATA = "scenarios"


def scenario_names(record: dg.EventLogRecord | None) -> list[str]:
    """Scenario family names recorded by a materialization of `scenarios` (metadata `scenarios`)."""
    mat = record.asset_materialization if record is not None else None
    value = (mat.metadata or {}).get(SCENARIOS_METADATA) if mat is not None else None
    return [n.strip() for n in str(value.value if value is not None else "").split(",") if n.strip()]


def ticker_scenarios(instance: dg.DagsterInstance, ticker_key: str) -> list[str]:
    """The scenario families of a ticker's latest grids (empty before its first `scenarios`)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SCENARIOS_ASSET, asset_partitions=[ticker_key]), limit=1
    ).records
    return scenario_names(records[0] if records else None)


class ScenarioOfItsTicker(dg.AutomationCondition):
    """True for the ticker x scenario partitions whose scenario is one of the ticker's grids."""

    @property
    def name(self) -> str:
        return "scenario_of_its_ticker"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        instance = context.asset_graph_view.instance
        partitions_def = context.partitions_def
        names: dict[str, set[str]] = {}
        keep = set()
        for key in candidates.expensively_compute_partition_keys():
            dims = partitions_def.get_partition_key_from_str(key).keys_by_dimension
            ticker = dims[TICKER_DIMENSION]
            if ticker not in names:
                names[ticker] = set(ticker_scenarios(instance, ticker))
            if dims[SCENARIO_DIMENSION] in names[ticker]:
                keep.add(key)
        return dg.AutomationResult(context, true_subset=candidates.compute_intersection_with_partition_keys(keep))


def scenario_of_its_ticker() -> dg.AutomationCondition:
    return ScenarioOfItsTicker()


def _changed_or_new(ignore: list[dg.AssetKey] | None = None, same_tick: bool = True) -> dg.AutomationCondition:
    changed = dg.AutomationCondition.data_version_changed()
    if same_tick:
        changed = changed | dg.AutomationCondition.will_be_requested()
    deps_changed = dg.AutomationCondition.any_deps_match(changed)
    if ignore:
        deps_changed = deps_changed.ignore(dg.AssetSelection.assets(*ignore))
    return (
        dg.AutomationCondition.newly_missing()
        | deps_changed.with_label("any_deps_data_changed")
        | dg.AutomationCondition.code_version_changed()
    ).since_last_handled()


def follows_upstream(partitions_def: dg.PartitionsDefinition | None = None) -> dg.AutomationCondition:
    """The condition of every stage below the request (see the module docstring)."""
    scenario_level = isinstance(partitions_def, dg.MultiPartitionsDefinition)
    # A scenario stage follows the request through the ticker stages (whose data versions include
    # the request's): reacting to the request itself would start it before the new grids exist.
    condition = (
        _changed_or_new(ignore=[REQUEST_ASSET] if scenario_level else None)
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )
    if scenario_level:
        # last: an AND narrows its candidates left to right, so the grids are read only for the
        # partitions every other condition already selected (none in the steady state)
        condition = condition & scenario_of_its_ticker()
    return condition.with_label("follows_upstream")


class ScenariosRanked(dg.AutomationCondition):
    """True for the ticker partitions whose every scenario (of its latest grids) has rankings."""

    @property
    def name(self) -> str:
        return "every_scenario_ranked"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        instance = context.asset_graph_view.instance
        keep = set()
        ranked = instance.get_materialized_partitions(RANKINGS_ASSET)
        for ticker in candidates.expensively_compute_partition_keys():
            names = ticker_scenarios(instance, ticker)
            if names and all(str(ticker_scenario_key(ticker, n)) in ranked for n in names):
                keep.add(ticker)
        return dg.AutomationResult(context, true_subset=candidates.compute_intersection_with_partition_keys(keep))


def leaderboard_follows() -> dg.AutomationCondition:
    """The leaderboard's condition: once every scenario of its ticker is ranked and none is running.

    Rankings live in another partitions definition, so they are never requested in the same run
    as the leaderboard: it follows on the tick after they changed, once none is in progress."""
    # the request and the grids reach it through the rankings, like the scenario stages
    return (
        _changed_or_new(ignore=[REQUEST_ASSET, SCENARIOS_ASSET], same_tick=False)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & ScenariosRanked()
    ).with_label("leaderboard_follows")
