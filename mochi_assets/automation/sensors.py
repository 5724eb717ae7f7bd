"""Sensors that run backtests without anyone clicking.

- `backtest_request_sensor` watches the params location (`submissions/`, see submissions.py) for
  new or changed request documents. A valid one becomes its ticker's current request and, in the
  same tick, the ticker partition is registered and the ticker job (raw bars, enhanced bars,
  scenarios) is requested. A malformed one is moved to `rejected/` with its error beside it and in
  the tick's log; it never stops the other documents. A document equal to the ticker's current
  request, already run, starts nothing (the same request submitted twice runs once).
- `backtest_stage_sensor` makes every later stage follow, per tracked ticker, once no run of that
  ticker is queued or running: enhanced bars and scenarios when the raw bars changed (the daily
  refresh), one scenario job per scenario of the ticker's latest grids whose partition is out of
  date (versions.py), and the leaderboard once every scenario is up to date and some ranking is
  newer than it. A partition whose inputs and code did not change is never requested again.

Run keys make each request idempotent: they name the request (or the versions it was computed
from), so a tick evaluated twice or a cursor lost launches nothing twice.
"""

from __future__ import annotations

import json

import dagster as dg

from mochi_assets.automation.submissions import (
    Submission,
    list_submissions,
    parse_submission,
    reject_submission,
)
from mochi_assets.automation.versions import (
    first_stale,
    fingerprint,
    latest_materialization,
    scenario_partition,
    stale_reason,
)
from mochi_assets.market_data.sources import check_source
from mochi_assets.partitions import (
    SCENARIO_DIMENSION,
    TICKER_DIMENSION,
    ticker_partitions_def,
    ticker_scenario_key,
)
from mochi_assets.request import BacktestRequest
from mochi_assets.store import request_key, save_request, stored_request
from mochi_resources.errors import LakeError, MochiError
from mochi_resources.io_manager import LakeResource
from mochi_resources.lake import Lake

REQUEST_ID_TAG = "mochi/request_id"
REQUEST_HASH_TAG = "mochi/request_hash"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
RAW_BARS = dg.AssetKey("raw_bars")
PREPARED = [dg.AssetKey("enhanced_bars"), dg.AssetKey("scenarios")]
SCENARIOS = dg.AssetKey("scenarios")
RANKINGS = dg.AssetKey("rankings")
LEADERBOARD = dg.AssetKey("leaderboard")


def request_tags(request: BacktestRequest) -> dict[str, str]:
    """Tags of every run made for a request (the UI filters runs by them)."""
    return {
        REQUEST_ID_TAG: request.request_id,
        REQUEST_HASH_TAG: request.request_hash,
        "mochi/ticker": request.ticker,
    }


# --- backtest_request_sensor ---------------------------------------------------------------


def _already_run(instance: dg.DagsterInstance, request: BacktestRequest) -> bool:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name="ticker_job", tags={REQUEST_ID_TAG: request.request_id}), limit=1
    )
    return bool(runs)


def _current_hash(lake: Lake, ticker_key: str) -> str | None:
    if not lake.exists(request_key(lake, ticker_key)):
        return None
    try:
        return stored_request(lake, ticker_key).request_hash
    except MochiError:  # an unreadable current request is replaced by the new one
        return None


def evaluate_requests(context: dg.SensorEvaluationContext, lake: Lake) -> dg.SensorResult:
    """One tick of backtest_request_sensor (see the module docstring)."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    try:
        submissions = list_submissions(lake)
    except LakeError as exc:
        return dg.SensorResult(skip_reason=f"cannot list the params location: {exc}", cursor=context.cursor)
    fresh = [s for s in submissions if seen.get(s.name) != s.etag]
    notes: list[str] = []
    valid: dict[str, list[tuple[Submission, BacktestRequest]]] = {}
    for sub in fresh:
        try:
            request = parse_submission(lake, sub)
            check_source(lake, request)
        except MochiError as exc:
            try:
                where = lake.uri(reject_submission(lake, sub, str(exc)))
                seen.pop(sub.name, None)
            except LakeError as move_exc:  # leave it in place, but never read it again unchanged
                where = f"(could not be moved: {move_exc})"
                seen[sub.name] = sub.etag
            context.log.warning(f"rejected {sub.name}, set aside as {where}:\n{exc}")
            notes.append(f"rejected {sub.name}: {exc}")
            continue
        except LakeError as exc:  # a read failed: try again next tick, the others go on
            context.log.warning(f"cannot read {sub.name} yet: {exc}")
            continue
        seen[sub.name] = sub.etag
        valid.setdefault(request.ticker_key, []).append((sub, request))

    run_requests: list[dg.RunRequest] = []
    new_partitions: list[str] = []
    for ticker_key, docs in sorted(valid.items()):
        docs.sort(key=lambda d: (d[0].modified, d[0].name))
        sub, request = docs[-1]  # the newest document of a ticker wins; older ones of this tick are superseded
        for older, _ in docs[:-1]:
            notes.append(f"{older.name}: superseded by {sub.name} for {ticker_key}")
        previous = _current_hash(lake, ticker_key)
        if previous == request.request_hash and _already_run(context.instance, request):
            notes.append(f"{sub.name}: request {request.request_id} is already the current request of {ticker_key}")
            continue
        save_request(lake, request)
        if not context.instance.has_dynamic_partition(TICKER_DIMENSION, ticker_key):
            new_partitions.append(ticker_key)
        run_requests.append(
            dg.RunRequest(
                job_name="ticker_job",
                partition_key=ticker_key,
                run_key=f"{request.request_id}:after:{previous or 'none'}",
                tags={**request_tags(request), "mochi/submission": sub.name},
            )
        )
        context.log.info(f"{sub.name}: request {request.request_id} for {request.ticker} accepted")

    present = {s.name for s in list_submissions(lake)} if notes or run_requests else {s.name for s in submissions}
    cursor = json.dumps({name: etag for name, etag in seen.items() if name in present}, sort_keys=True)
    for note in notes:
        context.log.info(note)
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[ticker_partitions_def.build_add_request(new_partitions)] if new_partitions else [],
        cursor=cursor,
        skip_reason=None if run_requests else ("; ".join(notes) if notes else "no new or changed request documents"),
    )


# --- backtest_stage_sensor -------------------------------------------------------------------


def _in_flight(instance: dg.DagsterInstance, ticker_key: str) -> bool:
    for tags in ({"dagster/partition": ticker_key}, {f"dagster/partition/{TICKER_DIMENSION}": ticker_key}):
        if instance.get_run_records(filters=dg.RunsFilter(statuses=IN_FLIGHT, tags=tags), limit=1):
            return True
    return False


def tracked_tickers(instance: dg.DagsterInstance, lake: Lake) -> list[str]:
    """Registered ticker partitions that have a current request (what the daily refresh covers)."""
    return [
        t for t in sorted(instance.get_dynamic_partitions(TICKER_DIMENSION))
        if lake.exists(request_key(lake, t))
    ]


def _scenario_names(record: dg.EventLogRecord) -> list[str]:
    meta = record.asset_materialization.metadata if record.asset_materialization else {}
    value = meta.get("scenarios")
    text = value.value if value is not None else ""
    return [n.strip() for n in str(text).split(",") if n.strip()]


def _code_versions(repo: dg.RepositoryDefinition, keys: list[dg.AssetKey]) -> str:
    return ",".join(str(repo.assets_defs_by_key[k].code_versions_by_key.get(k)) for k in keys)


def _stage_requests(context: dg.SensorEvaluationContext, repo: dg.RepositoryDefinition, ticker_key: str,
                    scenario_keys: list[dg.AssetKey]) -> tuple[list[dg.RunRequest], str]:
    """Run requests that bring one ticker's later stages up to date, and what was decided."""
    instance = context.instance
    raw = latest_materialization(instance, RAW_BARS, ticker_key)
    if raw is None:
        return [], f"{ticker_key}: waiting for raw bars"
    reason = first_stale(instance, repo, PREPARED, ticker_key, ticker_key)
    if reason:
        key = fingerprint(raw.storage_id, _code_versions(repo, PREPARED))
        return [
            dg.RunRequest(
                job_name="ticker_job", partition_key=ticker_key, asset_selection=PREPARED,
                run_key=f"{ticker_key}:prepare:{key}", tags={"mochi/reason": reason[:200]},
            )
        ], reason
    grids = latest_materialization(instance, SCENARIOS, ticker_key)
    names = _scenario_names(grids)
    requests, stale = [], []
    for name in names:
        partition = scenario_partition(ticker_key, name)
        reason = first_stale(instance, repo, scenario_keys, ticker_key, partition)
        if reason is None:
            continue
        stale.append(name)
        key = fingerprint(grids.storage_id, _code_versions(repo, scenario_keys))
        requests.append(
            dg.RunRequest(
                job_name="scenario_job", partition_key=ticker_scenario_key(ticker_key, name),
                run_key=f"{partition}:{key}", tags={"mochi/reason": reason[:200]},
            )
        )
    if stale:
        return requests, f"{ticker_key}: scenarios {', '.join(stale)} out of date"
    board = latest_materialization(instance, LEADERBOARD, ticker_key)
    newest_ranking = max(
        (r.storage_id for n in names if (r := latest_materialization(instance, RANKINGS, scenario_partition(ticker_key, n)))),
        default=0,
    )
    reason = stale_reason(instance, repo, LEADERBOARD, ticker_key, ticker_key)
    if reason is None and board is not None and board.storage_id < newest_ranking:
        reason = f"leaderboard[{ticker_key}]: a ranking changed"
    if names and reason:
        key = fingerprint(grids.storage_id, newest_ranking, _code_versions(repo, [LEADERBOARD]))
        return [
            dg.RunRequest(job_name="leaderboard_job", partition_key=ticker_key,
                          run_key=f"{ticker_key}:leaderboard:{key}", tags={"mochi/reason": reason[:200]})
        ], reason
    return [], f"{ticker_key}: up to date"


def evaluate_stages(context: dg.SensorEvaluationContext, lake: Lake, scenario_keys: list[dg.AssetKey]) -> dg.SensorResult:
    """One tick of backtest_stage_sensor (see the module docstring)."""
    repo = context.repository_def
    run_requests: list[dg.RunRequest] = []
    notes: list[str] = []
    known_scenarios = set(context.instance.get_dynamic_partitions(SCENARIO_DIMENSION))
    for ticker_key in tracked_tickers(context.instance, lake):
        if _in_flight(context.instance, ticker_key):
            notes.append(f"{ticker_key}: runs in progress")
            continue
        requests, note = _stage_requests(context, repo, ticker_key, scenario_keys)
        missing = [
            r.partition_key.keys_by_dimension[SCENARIO_DIMENSION] for r in requests
            if isinstance(r.partition_key, dg.MultiPartitionKey)
            and r.partition_key.keys_by_dimension[SCENARIO_DIMENSION] not in known_scenarios
        ]
        if missing:  # the scenarios asset registers them; never request a run for an unknown partition
            notes.append(f"{ticker_key}: scenario partitions {missing} not registered")
            continue
        run_requests.extend(requests)
        notes.append(note)
    for note in notes:
        context.log.info(note)
    return dg.SensorResult(
        run_requests=run_requests,
        skip_reason=None if run_requests else ("; ".join(notes) or "no tracked tickers"),
    )


def build_sensors(ticker_job, scenario_job, leaderboard_job, scenario_assets: list) -> list[dg.SensorDefinition]:
    """The two automation sensors, targeting the three jobs of the code location."""
    scenario_keys = [a.key for a in scenario_assets]

    @dg.sensor(
        name="backtest_request_sensor",
        jobs=[ticker_job],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts the ticker job for new or changed request documents in the params location.",
    )
    def backtest_request_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        return evaluate_requests(context, lake.get_lake())

    @dg.sensor(
        name="backtest_stage_sensor",
        jobs=[ticker_job, scenario_job, leaderboard_job],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs the later stages of every tracked ticker whose inputs or code changed.",
    )
    def backtest_stage_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        return evaluate_stages(context, lake.get_lake(), scenario_keys)

    return [backtest_request_sensor, backtest_stage_sensor]
