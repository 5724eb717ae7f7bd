"""The backtest request as an asset: `backtest_request`, ticker-partitioned, and how assets receive it.

Launching a backtest is materializing this asset: from the web UI's launchpad (its run config is
`RequestConfig`: every field with its default and description), from `mochi backtest`, or from
`backtest_request_sensor` for a document dropped into the submissions location. The config is
validated by the request model (`mochi_assets/request.py`; errors name the field), the ticker
must sanitize to the partition being materialized, and the output's data version is the
request's hash: an unchanged request changes nothing downstream.

The one way an asset receives the request: declare the input and take the parameter

    @dg.asset(..., ins={"request": request_in(partitions_def)})
    def my_asset(context, request: BacktestRequest, ...): ...

`request_in` maps a ticker x scenario partition to its ticker. The request IO manager stores
every request content-addressed (`params/requests/ticker=T/request-<hash>.json`, never
overwritten) and loads the version the run was made for: the one materialized in the same run,
else the latest one materialized before the run was created. A request submitted while a run is
pending therefore cannot change what that run computes.
"""


import warnings
from collections import OrderedDict

import dagster as dg
from pydantic import Field

from mochi_assets.execution import step_tags
from mochi_assets.metadata import code_version
from mochi_assets.partitions import by_ticker, check_ticker_key, ticker_partitions_def
from mochi_assets.request import AtrSettings, BacktestRequest, WalkForwardSettings, parse_request
from mochi_resources.errors import RequestError
from mochi_resources.io_manager import LakeResource
from mochi_resources.lake import Lake

REQUEST_ASSET = dg.AssetKey("backtest_request")
REQUEST_IO_MANAGER = "request_io_manager"
REQUEST_HASH_KEY = "request_hash"
_DEFAULTS = BacktestRequest.model_fields
_ATR = AtrSettings.model_fields
_WF = WalkForwardSettings.model_fields


class AtrConfig(dg.Config):
    """Indicator settings: Wilder ATR periods on daily bars and the blend weight."""

    short: int = Field(default=_ATR["short"].default, description="Wilder ATR period (sessions) of the short ATR.")
    long: int = Field(default=_ATR["long"].default, description="Wilder ATR period (sessions) of the long ATR; "
                      "also the warm-up loaded before start.")
    alpha: float = Field(default=_ATR["alpha"].default, description="atr = alpha * short + (1 - alpha) * long, 0..1.")


class ScenarioConfig(dg.Config):
    """One scenario family: a direction and the grid axes that differ from the request's (empty: derived)."""

    direction: str = Field(description="long | short")
    offset_ticks: list[int] | None = Field(default=None, description="Entry offsets in ticks (>= 0 stop entries, "
                                           "< 0 limit entries); empty: derived from the median daily ATR.")
    stop_atr: list[float] | None = Field(default=None, description="Stops in ATR multiples; empty: 0.5, 1, 1.5, 2.")
    limit_atr: list[float] | None = Field(default=None, description="Limits in ATR multiples; empty: 0.5, 1, 2, 3.")
    entry_times: list[str] | None = Field(default=None, description="Local entry times HH:MM; empty: the request's.")
    duration_min: list[int] | None = Field(default=None, description="Max holding minutes; empty: the request's.")
    timeout_min: list[int] | None = Field(default=None, description="Minutes an order stays live; empty: the request's.")


class WalkForwardConfig(dg.Config):
    """Walk-forward validation and robustness settings (README, "Walk-forward and robustness")."""

    is_sessions: int = Field(default=_WF["is_sessions"].default, description="In-sample sessions per fold.")
    oos_sessions: int = Field(default=_WF["oos_sessions"].default, description="Out-of-sample sessions per fold.")
    mode: str = Field(default=_WF["mode"].default, description="rolling | anchored in-sample windows.")
    selection: str = Field(default=_WF["selection"].default, description="ranking | sharpe: how a fold picks its trader.")
    min_trades: int = Field(default=_WF["min_trades"].default, description="In-sample trades a candidate needs.")
    random_paths: int = Field(default=_WF["random_paths"].default, description="Random pick sequences to beat.")
    top: int = Field(default=_WF["top"].default, description="Top traders given robustness figures.")
    mc_paths: int = Field(default=_WF["mc_paths"].default, description="Monte Carlo bootstrap paths.")
    block_sessions: int = Field(default=_WF["block_sessions"].default, description="Bootstrap block length, sessions.")
    spa_reps: int = Field(default=_WF["spa_reps"].default, description="SPA / Reality Check bootstrap replications.")
    seed: int = Field(default=_WF["seed"].default, description="Seed of every random draw (results repeat).")


class RequestConfig(dg.Config):
    """The request document's fields (README, "The request document"); the launchpad shows each one."""

    ticker: str = Field(description="Provider symbol, e.g. SYN:GOLD, C:XAUUSD, AAPL; must sanitize to the "
                        "partition being materialized (C:XAUUSD -> C_XAUUSD).")
    start: str = Field(description="First session date, YYYY-MM-DD (inclusive).")
    end: str = Field(description="Last session date, YYYY-MM-DD (inclusive), after start.")
    timezone: str = Field(default=_DEFAULTS["timezone"].default, description="IANA zone of session dates and entry times.")
    atr: AtrConfig = Field(default_factory=AtrConfig, description="ATR periods and blend.")
    entry_times: list[str] = Field(default_factory=lambda: ["09:30"], description="Local entry times HH:MM (one axis).")
    duration_min: list[int] = Field(default_factory=lambda: [_DEFAULTS["duration_min"].default],
                                    description="Max holding minutes; several values make an axis.")
    timeout_min: list[int] = Field(default_factory=lambda: [_DEFAULTS["timeout_min"].default],
                                   description="Minutes an entry order stays live; several values make an axis.")
    cost_ticks: float = Field(default=_DEFAULTS["cost_ticks"].default, description="Round-trip cost per trade, in ticks.")
    tick_size: float | None = Field(default=None, description="Overrides the ticker's tick size (empty: from the data).")
    scenarios: dict[str, ScenarioConfig] | None = Field(
        default=None, description="Explicit grids per scenario family name (empty: four families derived from the data).")
    session: str | None = Field(default=None, description="Trading session calendar override (forex, us-equity, "
                                "us-equity-extended, crypto, calendar-day or OPEN-CLOSE[/DAYS]); empty: the ticker's.")
    walk_forward: WalkForwardConfig = Field(default_factory=WalkForwardConfig,
                                            description="Walk-forward validation and robustness settings.")

    def to_document(self) -> dict:
        """The request document these fields stand for (one-value axes written as plain values, so
        the UI and the CLI give the same request, hence the same hash)."""
        doc = self.model_dump(exclude_none=True)
        for axis in ("duration_min", "timeout_min"):
            if isinstance(doc.get(axis), list) and len(doc[axis]) == 1:
                doc[axis] = doc[axis][0]
        for spec in (doc.get("scenarios") or {}).values():
            for name in [k for k, v in spec.items() if v is None]:
                del spec[name]
        return doc


def request_run_config(request: BacktestRequest) -> dict:
    """Run config that materializes `backtest_request` with this request (CLI and sensor)."""
    doc = request.model_dump(mode="json", exclude_none=True)
    for axis in ("duration_min", "timeout_min"):
        if not isinstance(doc[axis], list):
            doc[axis] = [doc[axis]]
    return {"ops": {REQUEST_ASSET.path[-1]: {"config": doc}}}


def request_in(partitions_def: dg.PartitionsDefinition | None = None) -> dg.AssetIn:
    """The input that gives an asset its partition's request (ticker x scenario: the ticker's)."""
    mapping = by_ticker if isinstance(partitions_def, dg.MultiPartitionsDefinition) else None
    return dg.AssetIn(key=REQUEST_ASSET, partition_mapping=mapping, input_manager_key=REQUEST_IO_MANAGER)


def request_file_key(lake: Lake, ticker_key: str, request_hash: str) -> str:
    return lake.key("params", "requests", ticker_key, None, f"request-{request_hash}.json")


def current_request_key(lake: Lake, ticker_key: str) -> str:
    return lake.key("params", "requests", ticker_key, None, "request.json")


def _hash_of(record: dg.EventLogRecord | None) -> str | None:
    mat = record.asset_materialization if record is not None else None
    if mat is None:
        return None
    value = (mat.metadata or {}).get(REQUEST_HASH_KEY)
    return str(value.value) if value is not None else None


# What a run is pinned to never changes once found (a request materialized in the run comes before
# every step that reads it; one materialized before the run was created stays the latest such):
# each process remembers it per run and ticker, so only a run's first step that reads the request
# asks the instance (three queries, about 25 ms on the embedded SQLite storage).
_PINNED: OrderedDict[tuple[str, str], str] = OrderedDict()
_PINNED_KEPT = 256


def pinned_request_hash(instance: dg.DagsterInstance, run_id: str, ticker_key: str) -> str:
    """The hash of the request a run computes with (see the module docstring)."""
    known = _PINNED.get((run_id, ticker_key))
    if known is not None:
        return known
    request_hash = _find_pinned_request_hash(instance, run_id, ticker_key)
    _PINNED[(run_id, ticker_key)] = request_hash
    while len(_PINNED) > _PINNED_KEPT:
        _PINNED.popitem(last=False)
    return request_hash


def _find_pinned_request_hash(instance: dg.DagsterInstance, run_id: str, ticker_key: str) -> str:
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
        mat = record.event_log_entry.asset_materialization
        if mat is not None and mat.asset_key == REQUEST_ASSET and mat.partition == ticker_key:
            return str(mat.metadata[REQUEST_HASH_KEY].value)
    run = instance.get_run_record_by_id(run_id)
    created = run.create_timestamp.timestamp() if run is not None else None
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=REQUEST_ASSET, asset_partitions=[ticker_key], before_timestamp=created),
        limit=1,
    ).records
    request_hash = _hash_of(found[0]) if found else None
    if request_hash is None:
        raise dg.Failure(
            f"ticker {ticker_key} has no backtest request: materialize backtest_request[{ticker_key}] first "
            "(web UI launchpad, `mochi backtest` or `mochi submit`)",
            allow_retries=False,
        )
    return request_hash


class RequestIOManager(dg.ConfigurableIOManager):
    """Stores requests content-addressed in the lake's params bucket; loads the one a run is pinned to."""

    lake: LakeResource

    def handle_output(self, context: dg.OutputContext, obj: BacktestRequest) -> None:
        the_lake = self.lake.get_lake()
        key = request_file_key(the_lake, obj.ticker_key, obj.request_hash)
        the_lake.put_bytes(key, obj.canonical_json().encode())
        # the ticker's latest request, for `mochi refresh` (assets never read it)
        the_lake.put_bytes(current_request_key(the_lake, obj.ticker_key), obj.canonical_json().encode())
        context.add_output_metadata({"lake_location": dg.MetadataValue.path(the_lake.uri(key))})

    def load_input(self, context: dg.InputContext) -> BacktestRequest:
        ticker_key = check_ticker_key(str(context.asset_partition_key))
        request_hash = pinned_request_hash(context.instance, context.step_context.run_id, ticker_key)
        the_lake = self.lake.get_lake()
        key = request_file_key(the_lake, ticker_key, request_hash)
        return parse_request(the_lake.get_json(key), source=the_lake.uri(key))


@dg.asset(
    partitions_def=ticker_partitions_def,
    group_name="request",
    io_manager_key=REQUEST_IO_MANAGER,
    op_tags=step_tags("small"),
    kinds={"json"},
    code_version=code_version("request.py"),
)
def backtest_request(context: dg.AssetExecutionContext, config: RequestConfig) -> dg.Output:
    """The validated backtest request of a ticker; its data version is the request's hash."""
    partition = check_ticker_key(context.partition_key)
    try:
        request = parse_request(config.to_document(), source=f"backtest_request[{partition}] config")
    except RequestError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    if request.ticker_key != partition:
        raise dg.Failure(
            f"ticker: {request.ticker!r} sanitizes to partition {request.ticker_key}, not {partition}: "
            f"materialize partition {request.ticker_key} (add it first if it is new)",
            allow_retries=False,
        )
    context.log.info(f"request {request.request_id}: {request.ticker} {request.start} to {request.end}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # stable in practice; the warning would reach every CLI user
        return dg.Output(
            request,
            data_version=dg.DataVersion(request.request_hash),
            metadata={
                "request_id": request.request_id,
                REQUEST_HASH_KEY: request.request_hash,
                "ticker": request.ticker,
                "date_range": f"{request.start} to {request.end}",
                "request": dg.MetadataValue.json(request.model_dump(mode="json")),
            },
        )


def latest_request_hash(instance: dg.DagsterInstance, ticker_key: str) -> str | None:
    """The hash of the ticker's latest materialized request (None: never materialized)."""
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=REQUEST_ASSET, asset_partitions=[ticker_key]), limit=1
    ).records
    return _hash_of(found[0]) if found else None

