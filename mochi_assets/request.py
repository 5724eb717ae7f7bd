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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

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

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


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


class AtrSettings(BaseModel):
    """Indicator settings: Wilder ATR periods on daily bars and the blend weight."""

    model_config = ConfigDict(extra="forbid")

    short: PositiveInt = 14
    long: PositiveInt = 50
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5

    @model_validator(mode="after")
    def _periods(self) -> "AtrSettings":
        if self.long < self.short:
            raise ValueError(f"long: period {self.long} must not be shorter than short {self.short}")
        return self


class ScenarioSpec(BaseModel):
    """One scenario family: a direction and the grid axes that differ from the request's."""

    model_config = ConfigDict(extra="forbid")

    direction: Literal["long", "short"]
    offset_ticks: list[int] | None = None
    stop_atr: list[PositiveFloat] | None = None
    limit_atr: list[PositiveFloat] | None = None
    entry_times: list[str] | None = None
    duration_min: list[PositiveInt] | None = None
    timeout_min: list[PositiveInt] | None = None

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

    is_sessions: PositiveInt | None = None  # None: adaptive (validation/walk_forward.py window_sizes)
    oos_sessions: PositiveInt | None = None
    mode: Literal["rolling", "anchored"] = "rolling"
    selection: Literal["ranking", "sharpe"] = "ranking"
    min_trades: Annotated[int, Field(ge=0)] = 30
    random_paths: PositiveInt = 10_000
    top: PositiveInt = 10
    mc_paths: PositiveInt = 1000
    block_sessions: PositiveInt = 5
    spa_reps: PositiveInt = 1000
    seed: Annotated[int, Field(ge=0)] = 0


class BacktestRequest(BaseModel):
    """A validated backtest request (see the module docstring for keys and defaults)."""

    model_config = ConfigDict(extra="forbid")

    ticker: str
    start: dt.date
    end: dt.date
    timezone: str = "America/New_York"
    atr: AtrSettings = Field(default_factory=AtrSettings)
    entry_times: list[str] = Field(default_factory=lambda: ["09:30"])
    duration_min: PositiveInt | list[PositiveInt] = 240
    timeout_min: PositiveInt | list[PositiveInt] = 30
    cost_ticks: Annotated[float, Field(ge=0.0)] = 2.0
    tick_size: PositiveFloat | None = None
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
        if v not in available_timezones():
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


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
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


def parse_request(data: Any, source: str = "") -> BacktestRequest:
    """Validate a request mapping; raise RequestError naming every bad field."""
    if not isinstance(data, dict):
        raise RequestError(f"{source or 'request'}: a request must be a mapping of keys to values")
    try:
        return BacktestRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(_format_errors(exc, source)) from None


def parse_request_text(text: str, source: str) -> BacktestRequest:
    """Validate a YAML or JSON document (YAML is a superset of JSON: one parser serves both)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RequestError(f"{source}: not valid YAML or JSON{where}") from None
    return parse_request(data, source=source)


def load_request(path: str | Path) -> BacktestRequest:
    """Read and validate a YAML or JSON request file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequestError(f"{p}: cannot read the request file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise RequestError(f"{p}: not a UTF-8 text file") from None
    return parse_request_text(text, str(p))
