"""Running a whole backtest for one ticker on the Dagster instance (what `mochi backtest` does).

The three jobs of definitions.py run in order, in process, on the instance under DAGSTER_HOME
(by default `$MOCHI_HOME/dagster`), so every run shows in `dagster dev` started with the same
MOCHI_HOME: the ticker job (bars, indicators, scenarios), one scenario job per scenario the
scenarios asset registered, then the leaderboard job.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from mochi_assets.market_data.sources import check_source
from mochi_assets.partitions import SCENARIO_DIMENSION, TICKER_DIMENSION, ticker_scenario_key
from mochi_assets.request import BacktestRequest
from mochi_assets.store import save_request
from mochi_resources.errors import MochiError
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

# Dagster's own console output is replaced by Mochi's progress bar; failures are reported by Mochi.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def ensure_dagster_home(settings: MochiSettings) -> Path:
    """Point DAGSTER_HOME at `$MOCHI_HOME/dagster` unless set, seeded with the repo's dagster.yaml."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    if not target.exists() and _REPO_DAGSTER_YAML.is_file():
        shutil.copyfile(_REPO_DAGSTER_YAML, target)
    return home


def get_instance(settings: MochiSettings) -> dg.DagsterInstance:
    ensure_dagster_home(settings)
    return dg.DagsterInstance.get()


@dataclass
class BacktestResult:
    request: BacktestRequest
    scenarios: list[str]
    leaderboard: pl.DataFrame
    lake_location: str
    locations: dict[str, str]  # what -> where, for people (folders or s3:// URIs)
    dagster_home: Path
    run_ids: list[str]


class RunFailed(MochiError):
    """A Dagster run of the backtest failed; the message carries the step's own error."""


Progress = Callable[[str, int, int | None], None]  # (what is running, steps done, steps total)


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            # user-facing errors travel as their message; others keep their class name
            while err is not None and err.cls_name in ("DagsterExecutionStepExecutionError",) and err.cause:
                err = err.cause
            if err is None:
                break
            text = err.message.strip()
            if err.cls_name in {"MochiError", "RequestError", "BarsError", "LakeError", "ProviderError", "PolygonAuthError", "Failure"}:
                text = text.split(": ", 1)[1] if text.startswith(err.cls_name + ":") else text
            return f"step {event.step_key} failed: {text}"
    return "the run failed (see the Dagster UI for its logs)"


def _run(instance: dg.DagsterInstance, job: dg.JobDefinition, partition_key: str, tags: dict,
         label: str, done_before: int, total: int | None, progress: Progress | None) -> str:
    run_id = str(uuid.uuid4())
    stop = threading.Event()

    def watch() -> None:
        seen = 0
        while not stop.wait(0.5):
            try:
                seen = len(instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records)
            except Exception:  # the run's event log may not exist yet
                continue
            if progress:
                progress(label, done_before + seen, total)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = job.execute_in_process(
            partition_key=partition_key,
            instance=instance,
            run_id=run_id,
            tags=tags,
            raise_on_error=False,
            run_config=QUIET_RUN_CONFIG,
        )
    finally:
        stop.set()
        watcher.join()
    if not result.success:
        raise RunFailed(_failure_message(result))
    return run_id


def result_locations(lake: Lake, ticker_key: str) -> dict[str, str]:
    """Where a ticker's results are, in the store in use."""
    def tables(bucket: str) -> str:
        return lake.uri(lake.settings.bucket(bucket)) + f"/*/ticker={ticker_key}"

    return {
        "leaderboard": lake.uri(lake.folder_key("rankings", "leaderboard", ticker_key)),
        "rankings": lake.uri(lake.folder_key("rankings", "rankings", ticker_key)),
        "graphs": tables("graphs"),
        "trades": lake.uri(lake.folder_key("trades", "trades", ticker_key)),
        "aggregates": tables("aggregates"),
    }


def run_backtest(request: BacktestRequest, *, progress: Progress | None = None) -> BacktestResult:
    """Materialize the whole graph for the request's ticker, every scenario; raise MochiError on failure."""
    from mochi_assets.definitions import defs, leaderboard_job, scenario_assets, ticker_assets

    settings = MochiSettings.from_env()
    lake = Lake(settings)
    check_source(lake, request)  # an unknown ticker fails here, before anything is written
    instance = get_instance(settings)
    ticker_key = request.ticker_key
    save_request(lake, request)
    instance.add_dynamic_partitions(TICKER_DIMENSION, [ticker_key])
    tags = {"mochi/request_id": request.request_id, "mochi/ticker": request.ticker}

    run_ids = [
        _run(instance, defs.resolve_job_def("ticker_job"), ticker_key, tags,
             "bars and scenarios", 0, None, progress)
    ]
    grids = lake.read_table(lake.key("ticker-meta", "scenario_grids", ticker_key))
    names = grids["scenario"].to_list()
    known = set(instance.get_dynamic_partitions(SCENARIO_DIMENSION))
    missing = [n for n in names if n not in known]
    if missing:
        raise MochiError(f"scenario partitions {missing} were not registered by the scenarios asset")
    per_scenario = len(scenario_assets)
    total = len(ticker_assets) + per_scenario * len(names) + len(leaderboard_job.selection.resolve(defs.resolve_asset_graph()))
    done = len(ticker_assets)
    if progress:
        progress("scenarios", done, total)
    scenario_job = defs.resolve_job_def("scenario_job")
    for name in names:
        run_ids.append(
            _run(instance, scenario_job, ticker_scenario_key(ticker_key, name), tags, name, done, total, progress)
        )
        done += per_scenario
    run_ids.append(
        _run(instance, defs.resolve_job_def("leaderboard_job"), ticker_key, tags, "leaderboard", done, total, progress)
    )
    if progress:
        progress("done", total, total)
    board = lake.read_table(lake.key("rankings", "leaderboard", ticker_key))
    return BacktestResult(
        request=request,
        scenarios=names,
        leaderboard=board,
        lake_location=lake.location,
        locations=result_locations(lake, ticker_key),
        dagster_home=settings.dagster_home,
        run_ids=run_ids,
    )
