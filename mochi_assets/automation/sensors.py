"""The sensors of Mochi: submitted request documents, and Dagster's declarative automation.

- `backtest_request_sensor` watches the params location (`submissions/`, see submissions.py) for
  new or changed request documents. For a valid one it registers the ticker partition and, in the
  same tick, materializes `backtest_request` for it with the document as run config (exactly what
  the web UI's launchpad does). A malformed one is moved to `rejected/` with its error beside it
  and in the tick's log; it never stops the other documents. A document equal to the ticker's
  latest request starts nothing (the same request submitted twice runs once).
- `mochi_automation_sensor` is Dagster's own automation condition sensor: every stage below the
  request follows by itself (the conditions are in `mochi_assets/conditions.py`).

Run keys make each request idempotent: they name the request and the one it replaces, so a tick
evaluated twice or a cursor lost launches nothing twice.
"""

from __future__ import annotations

import json
import warnings

import dagster as dg

from mochi_assets.automation.submissions import (
    Submission,
    list_submissions,
    parse_submission,
    reject_submission,
)
from mochi_assets.market_data.sources import check_source
from mochi_assets.partitions import TICKER_DIMENSION, ticker_partitions_def
from mochi_assets.request import BacktestRequest
from mochi_assets.request_asset import latest_request_hash, request_run_config
from mochi_resources.errors import LakeError, MochiError
from mochi_resources.io_manager import LakeResource
from mochi_resources.lake import Lake

REQUEST_ID_TAG = "mochi/request_id"
REQUEST_HASH_TAG = "mochi/request_hash"
REQUEST_JOB = "request_job"
AUTOMATION_SENSOR = "mochi_automation_sensor"


def request_tags(request: BacktestRequest) -> dict[str, str]:
    """Tags of every run made for a request (the UI filters runs by them)."""
    return {
        REQUEST_ID_TAG: request.request_id,
        REQUEST_HASH_TAG: request.request_hash,
        "mochi/ticker": request.ticker,
    }


# --- backtest_request_sensor ---------------------------------------------------------------


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
        previous = latest_request_hash(context.instance, ticker_key)
        if previous == request.request_hash:
            notes.append(f"{sub.name}: request {request.request_id} is already the current request of {ticker_key}")
            continue
        if not context.instance.has_dynamic_partition(TICKER_DIMENSION, ticker_key):
            new_partitions.append(ticker_key)
        run_requests.append(
            dg.RunRequest(
                job_name=REQUEST_JOB,
                partition_key=ticker_key,
                run_key=f"{request.request_id}:after:{previous or 'none'}",
                run_config=request_run_config(request),
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


def tracked_tickers(instance: dg.DagsterInstance) -> list[str]:
    """Registered ticker partitions with a materialized request (what the daily refresh covers)."""
    return [
        t for t in sorted(instance.get_dynamic_partitions(TICKER_DIMENSION))
        if latest_request_hash(instance, t) is not None
    ]


def build_sensors(request_job, backtest_assets: list) -> list[dg.SensorDefinition]:
    """The request sensor (targeting the request job) and Dagster's automation condition sensor."""

    @dg.sensor(
        name="backtest_request_sensor",
        jobs=[request_job],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers tickers and materializes backtest_request for documents in the submissions location.",
    )
    def backtest_request_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        return evaluate_requests(context, lake.get_lake())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # use_user_code_server: the warning would reach every CLI user
        automation_sensor = _automation_sensor(backtest_assets)
    return [backtest_request_sensor, automation_sensor]


def _automation_sensor(backtest_assets: list) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        # the backtest pipeline; live trading has its own sensor (portfolio_tracking_sensor)
        target=dg.AssetSelection.assets(*backtest_assets),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        # the scenario condition reads each ticker's grids: Python, evaluated in the code location
        use_user_code_server=True,
        description="Runs every stage whose inputs' data or code version changed (Dagster declarative automation).",
    )
