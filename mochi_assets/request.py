"""The backtest request document: what a user submits, validated with pydantic.

Every key and default is documented here and in the README ("The request document"):

| key           | default            | meaning                                                       |
|---------------|--------------------|---------------------------------------------------------------|
| ticker        | (required)         | provider symbol, e.g. `C:XAUUSD`, `AAPL`, `SYN:GOLD`           |
| start, end    | (required)         | session dates, both inclusive; end must be after start        |
| timezone      | America/New_York   | zone of explicit `session` hours (named calendars have theirs) |
| session       | by asset class     | trading-session calendar: a name (`forex`, `us-equity`,       |
|               |                    | `us-equity-extended`, `crypto`, `calendar-day`) or hours      |
|               |                    | `OPEN-CLOSE[/DAYS]`; session dates and entry times follow it  |
|               |                    | (table in market_data/sessions.py and docs/strategy.md)       |
| atr.short     | 14                 | Wilder ATR period (daily bars) of the short ATR               |
| atr.long      | 50                 | Wilder ATR period of the long ATR                             |
| atr.alpha     | 0.5                | atr = alpha * short + (1 - alpha) * long                      |
| entry_times   | ["09:30"]          | entry times (HH:MM) in the session's zone, one trader axis    |
| duration_min  | 240                | maximum holding time in minutes (a list makes it an axis)     |
| timeout_min   | 30                 | minutes an entry order stays live (a list makes it an axis)   |
| cost_ticks    | 2                  | round-trip cost per trade in ticks                            |
| tick_size     | from the data      | overrides the ticker's tick size                              |
| scenarios     | derived            | explicit grids per scenario family (see ScenarioSpec)         |
| walk_forward  | see below          | walk-forward validation and robustness (WalkForwardSettings)  |

A scenario family (`scenarios.<name>`) has `direction` (long|short, required) and optional
axes `offset_ticks`, `stop_atr`, `limit_atr`, `entry_times`, `duration_min`, `timeout_min`;
axes left out are derived from the data by the scenarios asset.

`walk_forward` (every key optional; see `mochi_assets/validation/`):

| key            | default  | meaning                                                               |
|----------------|----------|-----------------------------------------------------------------------|
| is_sessions    | adaptive | in-sample window in sessions; left out: min(504, max(60, N // 2))     |
| oos_sessions   | adaptive | out-of-sample window in sessions, folds step by it; left out: is / 4  |
| mode           | rolling  | rolling (fixed in-sample length) or anchored (in-sample from start)   |
| selection      | ranking  | ranking (the rankings' own order) or sharpe (highest in-sample Sharpe) |
| min_trades     | 30       | in-sample trades a trader needs to be selectable                      |
| random_paths   | 10000    | random pick sequences the selection is compared with                  |
| top            | 10       | top-ranked traders given plateau and Monte Carlo figures              |
| mc_paths       | 1000     | Monte Carlo resampled histories per top trader                        |
| block_sessions | 5        | Monte Carlo bootstrap block length in sessions                        |
| spa_reps       | 1000     | bootstrap replications of the SPA / Reality Check test                |
| seed           | 0        | seed of every random draw (same seed, same numbers)                   |

Adaptive windows: N is the number of sessions after the ATR warm-up; with N // 2 sessions in
sample and a quarter of that (rounded, halves up) out of sample about four folds fit, so a
one-year backtest (~262 sessions: 131 / 33) is checked out of sample; from N = 1008 (four years)
on the windows are 504 / 126 (two years / six months); N <= 60 gives no fold. A value given in
the request is used as is (an explicit is_sessions alone gets oos_sessions = is_sessions / 4).
The windows used are in the walk_forward summary (is_sessions, oos_sessions, windows).
Upper bounds (a request over one is refused naming the key): is_sessions and oos_sessions 10,000;
random_paths 100,000; mc_paths and spa_reps 10,000 (bootstrap matrices of paths x sessions);
top 100; block_sessions 1,000; min_trades 1,000,000; seed below 2**32.

Numbers must be finite and within these bounds (anything outside is a typo or an attack, never
a strategy): atr periods 1..1000; tick_size 1e-9..1000; cost_ticks 0..10000; offset_ticks
-1,000,000..1,000,000 (and, once the data is known, within the ticker's price scale);
stop_atr and limit_atr above 0 up to 100; duration_min and timeout_min 1..525600 (a year).

A document is refused before it is parsed when it is larger than MOCHI_MAX_REQUEST_BYTES, and
before it is built when it nests deeper than MOCHI_MAX_REQUEST_DEPTH or holds more values than
MOCHI_MAX_REQUEST_NODES (aliases counted expanded); a key given twice in one mapping is an error
naming the key. After validation the request must fit the grid and range limits
(`mochi_resources.settings.Limits`): traders per scenario family and per request (derived axes
counted at their largest), years from start to end, and trader-years per family (traders x
years, which bounds the trades a family can have and so the aggregation's memory).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import functools

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mochi_assets.market_data.sessions import check_session_spec
from mochi_assets.partitions import check_scenario_name, sanitize_ticker
from mochi_resources.errors import RequestError
from mochi_resources.settings import Limits

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

PositiveInt = Annotated[int, Field(gt=0)]
MINUTES_PER_YEAR = 525_600
Period = Annotated[int, Field(gt=0, le=1000)]
Minutes = Annotated[int, Field(gt=0, le=MINUTES_PER_YEAR)]
AtrMultiple = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
OffsetTicks = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]

# The grids derived when a request leaves a family or an axis out (scenarios/grids.py builds
# them; they live here because the trader limits count them before any data is read).
# stop_atr and limit_atr levels left out are these quantiles of the data's price excursions
# (at most one level each, so at most len(EXCURSION_QUANTILES) levels)
EXCURSION_QUANTILES = (0.2, 0.4, 0.6, 0.8)
BREAKOUT_FRACTIONS = [0.0, 0.05, 0.10, 0.25]
PULLBACK_FRACTIONS = [0.05, 0.10, 0.25]
DEFAULT_FAMILIES = {
    "breakout-long": "long",
    "breakout-short": "short",
    "pullback-long": "long",
    "pullback-short": "short",
}


def _check_entry_time(value: str) -> str:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return value


def _non_empty(values: list | None, what: str) -> list | None:
    if values is not None and len(values) == 0:
        raise ValueError(f"{what} must list at least one value (leave the key out to derive it)")
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"{what} has repeated values")
    return values



@functools.cache
def _known_timezones() -> frozenset[str]:
    """The IANA zone names (read from the tz database once per process: it scans the disk)."""
    return frozenset(available_timezones())

class AtrSettings(BaseModel):
    """Indicator settings: Wilder ATR periods on daily bars and the blend weight."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    short: Period = 14
    long: Period = 50
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5

    @model_validator(mode="after")
    def _periods(self) -> "AtrSettings":
        if self.long < self.short:
            raise ValueError(f"long: period {self.long} must not be shorter than short {self.short}")
        return self


class ScenarioSpec(BaseModel):
    """One scenario family: a direction and the grid axes that differ from the request's."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    direction: Literal["long", "short"]
    offset_ticks: list[OffsetTicks] | None = None
    stop_atr: list[AtrMultiple] | None = None
    limit_atr: list[AtrMultiple] | None = None
    entry_times: list[str] | None = None
    duration_min: list[Minutes] | None = None
    timeout_min: list[Minutes] | None = None

    @field_validator("offset_ticks", "stop_atr", "limit_atr", "duration_min", "timeout_min")
    @classmethod
    def _axis_not_empty(cls, v, info):
        return _non_empty(v, info.field_name)

    @field_validator("entry_times")
    @classmethod
    def _entry_times(cls, v):
        if v is None:
            return v
        return _non_empty([_check_entry_time(t) for t in v], "entry_times")


class WalkForwardSettings(BaseModel):
    """Walk-forward validation and robustness settings (module docstring table)."""

    model_config = ConfigDict(extra="forbid")

    # Upper bounds keep the bootstrap matrices (paths x sessions) within the memory budget.
    is_sessions: Annotated[int, Field(gt=0, le=10_000)] | None = None  # None: adaptive (walk_forward.window_sizes)
    oos_sessions: Annotated[int, Field(gt=0, le=10_000)] | None = None
    mode: Literal["rolling", "anchored"] = "rolling"
    selection: Literal["ranking", "sharpe"] = "ranking"
    min_trades: Annotated[int, Field(ge=0, le=1_000_000)] = 30
    random_paths: Annotated[int, Field(gt=0, le=100_000)] = 10_000
    top: Annotated[int, Field(gt=0, le=100)] = 10
    mc_paths: Annotated[int, Field(gt=0, le=10_000)] = 1000
    block_sessions: Annotated[int, Field(gt=0, le=1_000)] = 5
    spa_reps: Annotated[int, Field(gt=0, le=10_000)] = 1000
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0


class BacktestRequest(BaseModel):
    """A validated backtest request (see the module docstring for keys and defaults)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    ticker: str
    start: dt.date
    end: dt.date
    timezone: str = "America/New_York"
    atr: AtrSettings = Field(default_factory=AtrSettings)
    entry_times: list[str] = Field(default_factory=lambda: ["09:30"])
    duration_min: Minutes | list[Minutes] = 240
    timeout_min: Minutes | list[Minutes] = 30
    cost_ticks: Annotated[float, Field(ge=0.0, le=10_000)] = 2.0
    tick_size: Annotated[float, Field(ge=1e-9, le=1000)] | None = None
    session: str | None = None
    scenarios: dict[str, ScenarioSpec] | None = None
    walk_forward: WalkForwardSettings = Field(default_factory=WalkForwardSettings)

    @field_validator("ticker")
    @classmethod
    def _ticker(cls, v: str) -> str:
        try:
            sanitize_ticker(v)
        except RequestError as exc:
            raise ValueError(str(exc).removeprefix("ticker: ")) from None
        return v.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if v not in _known_timezones():
            raise ValueError(f"{v!r} is not a known IANA timezone (e.g. America/New_York, UTC)")
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a known IANA timezone") from None
        return v

    @field_validator("session")
    @classmethod
    def _session(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return check_session_spec(v).strip()
        except RequestError as exc:
            raise ValueError(str(exc).removeprefix("session: ")) from None

    @field_validator("entry_times")
    @classmethod
    def _entry_times(cls, v: list[str]) -> list[str]:
        return _non_empty([_check_entry_time(t) for t in v], "entry_times")

    @field_validator("duration_min", "timeout_min")
    @classmethod
    def _int_or_axis(cls, v, info):
        if isinstance(v, list):
            _non_empty(v, info.field_name)
        return v

    @field_validator("scenarios")
    @classmethod
    def _scenario_names(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("must name at least one scenario family (leave the key out to derive them)")
        for name in v:
            try:
                check_scenario_name(name)
            except RequestError as exc:
                raise ValueError(str(exc).removeprefix("scenarios: ")) from None
        return v

    @field_validator("end")
    @classmethod
    def _range(cls, end: dt.date, info) -> dt.date:
        # a field validator (not a model one) so that range errors are reported with all others
        start = info.data.get("start")
        if start is not None and end <= start:
            what = "empty" if end == start else "inverted"
            raise ValueError(f"the date range is {what}: end {end} must be after start {start}")
        return end

    # --- derived values -------------------------------------------------------------------

    @property
    def ticker_key(self) -> str:
        return sanitize_ticker(self.ticker)

    @property
    def duration_axis(self) -> list[int]:
        return self.duration_min if isinstance(self.duration_min, list) else [self.duration_min]

    @property
    def timeout_axis(self) -> list[int]:
        return self.timeout_min if isinstance(self.timeout_min, list) else [self.timeout_min]

    def canonical_json(self) -> str:
        """Stable JSON of the request with every default filled in (what is stored and hashed)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def request_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @property
    def request_id(self) -> str:
        return f"{self.ticker_key}-{self.request_hash[:8]}"


# pydantic's names of the branches of a union (`duration_min: int | list[int]`) in error locations
_UNION_TAG = re.compile(r"(constrained-)?(int|float|str)|list\[.*\]")


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        parts = list(err["loc"])
        tags = [p for p in parts if isinstance(p, str) and _UNION_TAG.fullmatch(p)]
        if tags:
            # report the branch the value took: a list's errors from the list branch, a scalar's
            # from the scalar branch
            if tags[-1].startswith("list[") and err["type"] == "list_type":
                continue
            if not tags[-1].startswith("list[") and isinstance(err["input"], list):
                continue
            parts = [p for p in parts if p not in tags]
        loc = ".".join(str(p) for p in parts)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "is not a known key (see the request document in the README)"
        elif err["type"] == "missing":
            msg = "is required"
        if not loc:
            # model-level errors carry the field name at the start of the message
            loc, _, msg = msg.partition(": ")
        lines.append(f"{loc}: {msg}")
    head = f"{source}: invalid backtest request" if source else "invalid backtest request"
    return head + "\n  " + "\n  ".join(lines)


def trader_bounds(request: BacktestRequest) -> dict[str, int]:
    """Traders of each scenario family, derived axes counted at their largest (before any data)."""
    families = request.scenarios or {name: ScenarioSpec(direction=d) for name, d in DEFAULT_FAMILIES.items()}
    bounds = {}
    for name, spec in families.items():
        pullback = name.startswith("pullback")
        derived_offsets = len(PULLBACK_FRACTIONS if pullback else BREAKOUT_FRACTIONS)
        sizes = [
            len(spec.entry_times or request.entry_times),
            len(spec.offset_ticks) if spec.offset_ticks is not None else derived_offsets,
            len(spec.stop_atr or EXCURSION_QUANTILES),
            len(spec.limit_atr or EXCURSION_QUANTILES),
            len(spec.duration_min or request.duration_axis),
            len(spec.timeout_min or request.timeout_axis),
        ]
        n = 1
        for size in sizes:
            n *= size
        bounds[name] = n
    return bounds


def limit_errors(request: BacktestRequest, limits: Limits) -> list[str]:
    """One line per limit the request exceeds (grid size, years), each naming how to raise it."""
    errors = []
    bounds = trader_bounds(request)
    where = "scenarios." if request.scenarios else "derived scenario "
    for name, n in bounds.items():
        if n > limits.traders_per_scenario:
            errors.append(f"{where}{name}: " + limits.over("traders_per_scenario", f"a grid of {n:,} traders"))
    total = sum(bounds.values())
    if total > limits.traders_per_request:
        errors.append("scenarios: " + limits.over("traders_per_request", f"{total:,} traders in all"))
    years = (request.end - request.start).days / 365.25
    if years > limits.years:
        errors.append("end: " + limits.over("years", f"the range {request.start} to {request.end} ({years:.1f} years)"))
    for name, n in bounds.items():
        if n <= limits.traders_per_scenario and n * years > limits.trader_years:
            errors.append(
                f"{where}{name}: "
                + limits.over("trader_years", f"{n:,} traders over {years:.1f} years ({n * years:,.0f} trader-years)")
                + "; shrink the grid or the range"
            )
    return errors


def parse_request(data: Any, source: str = "", limits: Limits | None = None) -> BacktestRequest:
    """Validate a request mapping against the model and the limits (default: from the environment);
    raise RequestError naming every bad field."""
    if not isinstance(data, dict):
        raise RequestError(f"{source or 'request'}: a request must be a mapping of keys to values")
    try:
        request = BacktestRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(_format_errors(exc, source)) from None
    errors = limit_errors(request, limits or Limits.from_env())
    if errors:
        head = f"{source}: request over a limit" if source else "request over a limit"
        raise RequestError(head + "\n  " + "\n  ".join(errors))
    return request


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int):
        super().__init__(key, line)
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML,
    like json.loads, silently keeps the last value), and that a date or time stays the text it
    is: the request's model parses it, so `start: 2024-13-01` is refused naming the field
    (PyYAML's own date constructor raised a bare ValueError, "month must be in 1..12")."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it itself
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _check_shape(text: str, source: str, limits: Limits) -> None:
    """Refuse a document nesting deeper than the depth limit or holding more values than the node
    limit (an alias counts as the values it repeats), from PyYAML's event stream: no recursion and
    no object is built, so a 100,000-deep list costs nothing."""
    depth = nodes = 0
    open_anchors: list[tuple[str | None, int]] = []
    sizes: dict[str, int] = {}
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            nodes += 1
            if depth > limits.request_depth:
                line = event.start_mark.line + 1
                raise RequestError(
                    f"{source}: line {line}: " + limits.over("request_depth", "the document's nesting depth")
                )
            open_anchors.append((event.anchor, nodes))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            anchor, first = open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = nodes - first + 1
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        if nodes > limits.request_nodes:
            raise RequestError(f"{source}: " + limits.over("request_nodes", "the number of values in the document"))


def parse_request_text(text: str, source: str, limits: Limits | None = None) -> BacktestRequest:
    """Validate a YAML or JSON document (YAML is a superset of JSON: one parser serves both)."""
    limits = limits or Limits.from_env()
    size = len(text.encode("utf-8"))
    if size > limits.request_bytes:
        raise RequestError(f"{source}: " + limits.over("request_bytes", f"the document's size ({size:,} bytes)"))
    try:
        _check_shape(text, source, limits)
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as dup:
        raise RequestError(f"{source}: line {dup.line}: key {dup.key!r} is given twice in the same mapping") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RequestError(f"{source}: not valid YAML or JSON{where}") from None
    return parse_request(data, source=source, limits=limits)


def load_request(path: str | Path, limits: Limits | None = None) -> BacktestRequest:
    """Read and validate a YAML or JSON request file (its size is checked before it is read)."""
    limits = limits or Limits.from_env()
    p = Path(path)
    try:
        with p.open("rb") as f:
            size = p.stat().st_size
            if size > limits.request_bytes:
                raise RequestError(f"{p}: " + limits.over("request_bytes", f"the file's size ({size:,} bytes)"))
            # at most one byte more than the limit, whatever the file claims (a pipe, a growing file)
            data = f.read(limits.request_bytes + 1)
    except OSError as exc:
        raise RequestError(f"{p}: cannot read the request file ({exc.strerror})") from None
    if len(data) > limits.request_bytes:
        raise RequestError(f"{p}: " + limits.over("request_bytes", "the file's size"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(f"{p}: not a UTF-8 text file") from None
    return parse_request_text(text, str(p), limits)
