"""Trading-session calendars: which session (if any) each bar belongs to, and the warm-up before `start`.

A calendar has a timezone, an open and a close (local wall-clock times), the weekdays of its
session dates and the time at which the trading day rolls. Session D runs from its open to its
close; a calendar whose open is not before its close opens on the evening of D-1 (the day rolls at
the open, so a bar at or after the open belongs to the next session date). Bars outside every
session belong to none and are not traded. Defaults by asset class:

| calendar             | timezone         | open                | close | session dates | roll     | used for                  |
|----------------------|------------------|---------------------|-------|---------------|----------|---------------------------|
| `forex`              | America/New_York | 17:00 (evening D-1) | 17:00 | Mon-Fri       | 17:00    | forex, metals, `SYN:`      |
| `us-equity`          | America/New_York | 09:30               | 16:00 | Mon-Fri       | midnight | US stocks, indices         |
| `us-equity-extended` | America/New_York | 04:00               | 20:00 | Mon-Fri       | midnight | (option) extended hours    |
| `crypto`             | UTC              | 00:00               | 24:00 | every day     | midnight | crypto                     |
| `calendar-day`       | the ticker's     | 00:00               | 24:00 | every day     | midnight | imports without --session  |

Explicit hours are written `OPEN-CLOSE[/DAYS]` (`08:00-16:30`, `18:00-17:00/mon-fri`) and take
the zone of their context (the import's `--timezone`, or the request's `timezone`). An open not
before the close opens on the previous evening. DAYS names the weekdays of the session DATES:
`daily`, `weekdays` (the default), a range such as `mon-fri` or a list such as `mon,wed,fri`.

Exchange holidays are approximated as "no bars, no session": a session date without any bar
simply does not exist, so the calendar needs no holiday list.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from mochi_assets.market_data.bars import check_timezone
from mochi_assets.market_data.localtime import local_micros
from mochi_resources.errors import RequestError

MINUTES_PER_DAY = 24 * 60
MICROS_PER_MINUTE = 60_000_000
MICROS_PER_DAY = MINUTES_PER_DAY * MICROS_PER_MINUTE
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Extra sessions loaded before the ATR's own need, and calendar days added for holidays.
WARMUP_MARGIN_SESSIONS = 5
WARMUP_HOLIDAY_DAYS = 7

_HOURS = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)(?:/(.+))?$")


@dataclass(frozen=True)
class SessionCalendar:
    """A trading-session calendar (see the module docstring).

    open_min and close_min are minutes after the local midnight of the session date: open_min is
    negative when the session opens the evening before; 0 <= close_min <= 1440; close - open is at
    most one day. days are the weekdays (Monday 0) of the session dates.
    """

    name: str
    timezone: str
    open_min: int
    close_min: int
    days: tuple[int, ...]

    @property
    def roll(self) -> str:
        """Local time at which the session date changes."""
        return _hhmm(self.open_min + MINUTES_PER_DAY) if self.open_min < 0 else "midnight"

    @property
    def spec(self) -> str:
        """The text that names this calendar (a calendar name or explicit hours)."""
        if self.name in NAMED:
            return self.name
        return f"{_hhmm(self.open_min % MINUTES_PER_DAY)}-{_hhmm(self.close_min)}/{_days_text(self.days)}"

    def describe(self) -> str:
        """One line for people: hours, days, zone, roll."""
        evening = " (previous evening)" if self.open_min < 0 else ""
        label = f"{self.name}: " if self.name in NAMED else ""
        return (
            f"{label}{_hhmm(self.open_min % MINUTES_PER_DAY)}{evening} to {_hhmm(self.close_min)} "
            f"{self.timezone}, sessions {_days_text(self.days)}, day rolls at {self.roll}"
        )

    def entry_offset_min(self, entry_time: str) -> int:
        """Minutes after the session date's local midnight at which `entry_time` (HH:MM) falls.

        A session that opens the evening before holds the entry times at or after its open on
        that evening (negative offsets): 18:00 on a forex session D is 18:00 of D-1.
        """
        minutes = _minutes(entry_time, "entry_time")
        if self.open_min < 0 and minutes >= self.open_min + MINUTES_PER_DAY:
            return minutes - MINUTES_PER_DAY
        return minutes

    def warmup_start(self, start: dt.date, sessions: int) -> dt.date:
        """A date early enough that `sessions` sessions (plus a margin) come before `start`."""
        needed = sessions + WARMUP_MARGIN_SESSIONS
        return start - dt.timedelta(days=math.ceil(needed * 7 / len(self.days)) + WARMUP_HOLIDAY_DAYS)

    def local_window(self, first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """UTC [lo, hi) holding every bar of the session dates first..last (and a little more)."""
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(self.timezone)
        lo = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
        hi = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
        return lo, hi


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days_text(days: tuple[int, ...]) -> str:
    if days == tuple(range(7)):
        return "daily"
    if days == tuple(range(5)):
        return "mon-fri"
    return ",".join(WEEKDAYS[d] for d in days)


def _minutes(text: str, field: str, allow_24: bool = False) -> int:
    match = re.fullmatch(r"(\d\d):(\d\d)", text or "")
    if not match:
        raise RequestError(f"{field}: {text!r} is not a time of day as HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise RequestError(f"{field}: {text!r} is not a time of day as HH:MM")
    return hours * 60 + minutes


def _parse_days(text: str, field: str) -> tuple[int, ...]:
    text = text.strip().lower()
    if text == "daily":
        return tuple(range(7))
    if text == "weekdays":
        return tuple(range(5))
    bad = RequestError(
        f"{field}: session days {text!r} are not 'daily', 'weekdays', a range such as 'mon-fri' or a list "
        "such as 'mon,wed,fri'"
    )
    if "-" in text:
        first, _, last = text.partition("-")
        if first not in WEEKDAYS or last not in WEEKDAYS:
            raise bad
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last)
        return tuple(sorted({(a + i) % 7 for i in range((b - a) % 7 + 1)}))
    names = [part.strip() for part in text.split(",")]
    if not names or any(n not in WEEKDAYS for n in names):
        raise bad
    return tuple(sorted({WEEKDAYS.index(n) for n in names}))


NAMED = {
    "forex": ("America/New_York", 17 * 60 - MINUTES_PER_DAY, 17 * 60, tuple(range(5))),
    "us-equity": ("America/New_York", 9 * 60 + 30, 16 * 60, tuple(range(5))),
    "us-equity-extended": ("America/New_York", 4 * 60, 20 * 60, tuple(range(5))),
    "crypto": ("UTC", 0, MINUTES_PER_DAY, tuple(range(7))),
    "calendar-day": (None, 0, MINUTES_PER_DAY, tuple(range(7))),
}

# Asset class (market_data/meta.py, synthetic profiles) -> default calendar.
DEFAULT_BY_CLASS = {
    "forex": "forex",
    "metals": "forex",
    "synthetic": "forex",
    "stocks": "us-equity",
    "indices": "us-equity",
    "crypto": "crypto",
    "imported": "calendar-day",
}


def check_session_spec(spec: str, field: str = "session") -> str:
    """`spec` if it names a calendar or gives valid explicit hours, else RequestError naming `field`."""
    parse_session(spec, "UTC", field=field)
    return spec


def parse_session(spec: str, timezone: str, *, field: str = "session") -> SessionCalendar:
    """The calendar named by `spec` (a name of the table or OPEN-CLOSE[/DAYS] hours in `timezone`)."""
    if not isinstance(spec, str) or not spec.strip():
        raise RequestError(f"{field}: expected a calendar name ({', '.join(NAMED)}) or hours as OPEN-CLOSE[/DAYS]")
    text = spec.strip()
    if text.lower() in NAMED:
        name = text.lower()
        zone, open_min, close_min, days = NAMED[name]
        return SessionCalendar(name, check_timezone(zone or timezone, field), open_min, close_min, days)
    match = _HOURS.match(text)
    if not match:
        raise RequestError(
            f"{field}: {spec!r} is neither a calendar name ({', '.join(NAMED)}) nor hours as OPEN-CLOSE[/DAYS] "
            "(e.g. 08:00-16:30 or 17:00-17:00/mon-fri)"
        )
    open_text, close_text = text[:5], text[6:11]
    open_min = _minutes(open_text, field)
    close_min = _minutes(close_text, field, allow_24=True)
    if open_min >= close_min:
        open_min -= MINUTES_PER_DAY  # opens the evening before the session date
    if close_min - open_min > MINUTES_PER_DAY:
        raise RequestError(f"{field}: {spec!r} is longer than one day")
    days = _parse_days(match.group(5), field) if match.group(5) else tuple(range(5))
    return SessionCalendar("custom", check_timezone(timezone, field), open_min, close_min, days)


def default_session(asset_class: str, timezone: str) -> SessionCalendar:
    """The documented default calendar of an asset class (`timezone` for zone-less calendars)."""
    return parse_session(DEFAULT_BY_CLASS.get(asset_class, "calendar-day"), timezone)


def session_dates(ts: pl.Series, calendar: SessionCalendar) -> pl.Series:
    """The session date of each UTC timestamp of `ts`, null outside every session.

    A bar at local time m (after the local midnight of date L) belongs to session L when
    open <= m < close, else to session L+1 when open <= m - 1 day < close (a session opening the
    evening before); its date must be one of the calendar's weekdays. One vectorized pass in
    exact integer microseconds, local times from `localtime.local_micros`.
    """
    name = ts.name
    physical = ts.dt.cast_time_unit("us").to_physical() if ts.dtype != pl.Null else pl.Series(name, [None] * ts.len(), pl.Int64)
    valid = np.ascontiguousarray(physical.is_not_null().to_numpy())
    utc = physical.fill_null(0).to_numpy()
    local = np.ascontiguousarray(local_micros(utc, calendar.timezone), dtype=np.int64)
    weekdays = np.zeros(7, dtype=np.bool_)
    weekdays[list(calendar.days)] = True
    session, ok = _session_days(local, valid, calendar.open_min * MICROS_PER_MINUTE,
                                calendar.close_min * MICROS_PER_MINUTE, weekdays)
    dates = pl.Series(name, session, dtype=pl.Int32).cast(pl.Date)
    return pl.select(pl.when(pl.Series(ok)).then(dates)).to_series().alias(name)


@njit(cache=True)
def _session_days(local: np.ndarray, valid: np.ndarray, open_us: int, close_us: int,
                  weekdays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`session_dates`' rule in one pass over local microseconds: (session day number since
    1970-01-01, whether the bar is in a session). Integer arithmetic with Python's floor division
    and modulo, as NumPy's `//` and `%` on int64 (the vectorized formulation it replaced)."""
    n = local.shape[0]
    session = np.empty(n, dtype=np.int32)
    ok = np.empty(n, dtype=np.bool_)
    for i in range(n):
        day = local[i] // MICROS_PER_DAY
        clock = local[i] - day * MICROS_PER_DAY
        same_day = open_us <= clock < close_us
        evening = clock - MICROS_PER_DAY
        next_day = (not same_day) and open_us <= evening < close_us
        number = day + 1 if next_day else day
        session[i] = number
        weekday = (number + 3) % 7  # 1970-01-01, day 0, was a Thursday (Monday 0)
        ok[i] = valid[i] and (same_day or next_day) and weekdays[weekday]
    return session, ok


def session_date_expr(calendar: SessionCalendar, column: str = "ts") -> pl.Expr:
    """Expression: `session_dates` of the UTC timestamp column `column`."""
    return pl.col(column).map_batches(
        lambda s: session_dates(s, calendar), return_dtype=pl.Date, is_elementwise=True
    )


def assign_sessions(bars: pl.DataFrame, calendar: SessionCalendar, *,
                    dates: pl.Series | None = None) -> pl.DataFrame:
    """`bars` with a session_date column, without the bars outside every session (sorted by ts).

    `dates`: `session_dates(bars["ts"], calendar)` when the caller has it already (it is not
    computed again). Bars already in ts order are not sorted again.
    """
    if dates is None:
        dates = session_dates(bars.get_column("ts"), calendar)
    elif dates.len() != bars.height:
        raise ValueError("assign_sessions: dates must have one value per bar")
    out = bars.with_columns(dates.alias("session_date")).filter(pl.col("session_date").is_not_null())
    ts = out.get_column("ts")
    if ts.null_count() == 0 and ts.is_sorted():
        return out.with_columns(pl.col("ts").set_sorted())
    return out.sort("ts")


def first_tradable_session(session_dates: list[dt.date] | pl.Series, warmup_sessions: int,
                           start: dt.date) -> dt.date | None:
    """The first session date on or after `start` preceded by `warmup_sessions` sessions, or None."""
    dates = sorted(set(session_dates))
    if len(dates) <= warmup_sessions:
        return None
    ready = dates[warmup_sessions:]
    later = [d for d in ready if d >= start]
    return later[0] if later else None
