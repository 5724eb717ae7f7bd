"""A slow, obvious pure-Python simulation of docs/strategy.md, plus table builders.

The kernel is checked against this on many random small cases. It walks the bars one by one with
datetime arithmetic and zoneinfo, sharing nothing with the kernel but the formulas for prices.
Session calendars are written out here by hand (RefCalendar), not taken from sessions.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

UTC = dt.timezone.utc


@dataclass(frozen=True)
class RefCalendar:
    """A session calendar in plain datetime terms: session D runs from `open` on D (on D-1 when
    `previous_evening`) to `close` on D (None: midnight ending D), on the weekdays `days` of D."""

    timezone: str | None  # None: the timezone given by the caller
    open: dt.time
    close: dt.time | None
    previous_evening: bool
    days: frozenset[int]


WEEKDAYS = frozenset(range(5))
REF_CALENDARS = {
    "calendar-day": RefCalendar(None, dt.time(0, 0), None, False, frozenset(range(7))),
    "forex": RefCalendar("America/New_York", dt.time(17, 0), dt.time(17, 0), True, WEEKDAYS),
    "us-equity": RefCalendar("America/New_York", dt.time(9, 30), dt.time(16, 0), False, WEEKDAYS),
    "crypto": RefCalendar("UTC", dt.time(0, 0), None, False, frozenset(range(7))),
}


def calendar_zone(name: str, timezone: str) -> str:
    return REF_CALENDARS[name].timezone or timezone


def _session_span(cal: RefCalendar, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Local naive [open, close) of session `day`."""
    first = day - dt.timedelta(days=1) if cal.previous_evening else day
    start = dt.datetime.combine(first, cal.open)
    end = dt.datetime.combine(day, cal.close) if cal.close is not None else dt.datetime.combine(
        day + dt.timedelta(days=1), dt.time())
    return start, end


def session_of(t: dt.datetime, name: str, timezone: str) -> dt.date | None:
    """The session date of UTC instant t under calendar `name`, or None outside every session."""
    cal = REF_CALENDARS[name]
    local = t.astimezone(ZoneInfo(calendar_zone(name, timezone))).replace(tzinfo=None)
    for day in (local.date(), local.date() + dt.timedelta(days=1)):
        start, end = _session_span(cal, day)
        if start <= local < end and day.weekday() in cal.days:
            return day
    return None


def entry_moment(day: dt.date, entry_time: dt.time, name: str) -> dt.datetime:
    """Local naive moment of `entry_time` inside session `day`: on the opening evening when the
    session opens the evening before and the entry time is at or after the open."""
    cal = REF_CALENDARS[name]
    if cal.previous_evening and entry_time >= cal.open:
        return dt.datetime.combine(day - dt.timedelta(days=1), entry_time)
    return dt.datetime.combine(day, entry_time)


def make_bars(
    ts: list[dt.datetime],
    open_: list[float],
    high: list[float],
    low: list[float],
    close: list[float],
    timezone: str = "UTC",
    atr_by_date: dict[dt.date, float | None] | None = None,
    default_atr: float | None = 1.0,
    session: str = "calendar-day",
) -> pl.DataFrame:
    """Enhanced bars from lists; session_date is the session of ts under the reference calendar
    `session` (calendar days of `timezone` by default); bars outside every session are dropped."""
    dates = [session_of(t, session, timezone) for t in ts]
    keep = [d is not None for d in dates]
    ts, open_, high, low, close, dates = (
        [v for v, k in zip(col, keep) if k] for col in (ts, open_, high, low, close, dates)
    )
    atr_by_date = atr_by_date or {}
    atr = [atr_by_date.get(d, default_atr) for d in dates]
    return pl.DataFrame(
        {
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": [1.0] * len(ts),
            "session_date": dates,
            "atr_short": atr,
            "atr_long": atr,
            "atr": atr,
        },
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
            "session_date": pl.Date,
            "atr_short": pl.Float64,
            "atr_long": pl.Float64,
            "atr": pl.Float64,
        },
    )


def make_traders(rows: list[dict]) -> pl.DataFrame:
    """Traders table from dicts; missing keys take simple defaults."""
    defaults = {
        "scenario": "test",
        "direction": "long",
        "entry_time": "00:00",
        "offset_ticks": 0,
        "stop_atr": 1.0,
        "limit_atr": 1.0,
        "duration_min": 60,
        "timeout_min": 30,
        "cost_ticks": 0.0,
    }
    full = [{"trader_id": i + 1, **defaults, **row} for i, row in enumerate(rows)]
    return pl.DataFrame(
        full,
        schema={
            "trader_id": pl.Int64,
            "scenario": pl.String,
            "direction": pl.String,
            "entry_time": pl.String,
            "offset_ticks": pl.Int64,
            "stop_atr": pl.Float64,
            "limit_atr": pl.Float64,
            "duration_min": pl.Int64,
            "timeout_min": pl.Int64,
            "cost_ticks": pl.Float64,
        },
    )


def reference_trades(
    bars: pl.DataFrame, traders: pl.DataFrame, tick_size: float, timezone: str, session: str = "calendar-day"
) -> tuple[list[dict], int]:
    """(trades as dicts in trades-table order, number of ambiguous exit bars); entry times are
    local times of the reference calendar `session` (calendar days of `timezone` by default)."""
    tz = ZoneInfo(calendar_zone(session, timezone))
    rows = bars.to_dicts()
    n = len(rows)
    sessions: dict[dt.date, list[int]] = {}
    for i, row in enumerate(rows):
        sessions.setdefault(row["session_date"], []).append(i)
    trades: list[dict] = []
    ambiguous_count = 0
    for trader in traders.sort("trader_id").to_dicts():
        is_long = trader["direction"] == "long"
        off = trader["offset_ticks"]
        hours, minutes = (int(x) for x in trader["entry_time"].split(":"))
        entry_time = dt.time(hours, minutes)
        timeout = dt.timedelta(minutes=trader["timeout_min"])
        duration = dt.timedelta(minutes=trader["duration_min"])
        last_exit = -1
        for day, indices in sessions.items():
            atr = rows[indices[0]]["atr"]
            if atr is None or not atr > 0:
                continue
            # the entry moment is inside the session: the reference bar is the session's own
            ref = None
            moment = entry_moment(day, entry_time, session)
            for i in indices:
                if rows[i]["ts"].astimezone(tz).replace(tzinfo=None) >= moment:
                    ref = i
                    break
            if ref is None or ref <= last_exit:
                continue
            p = rows[ref]["open"]
            level = p + off * tick_size if is_long else p - off * tick_size
            above = (off >= 0) == is_long
            fill = None
            last_live = ref  # the last bar at which the entry order is still live
            for j in range(ref, n):
                if rows[j]["ts"] >= rows[ref]["ts"] + timeout:
                    break
                last_live = j
                if (above and rows[j]["high"] >= level) or (not above and rows[j]["low"] <= level):
                    fill = j
                    break
            if fill is None:
                # A live order occupies the trader like a position: later sessions wait until it expires.
                last_exit = last_live
                continue
            o = rows[fill]["open"]
            if (above and o >= level) or (not above and o <= level):
                price = o
            else:
                price = level
            risk = trader["stop_atr"] * atr
            stop = price - risk if is_long else price + risk
            limit = price + trader["limit_atr"] * atr if is_long else price - trader["limit_atr"] * atr

            exit_bar = exit_price = reason = None
            ambiguous = False
            last_inside = fill
            beyond = False
            for k in range(fill + 1, n):
                bar = rows[k]
                if bar["ts"] >= rows[fill]["ts"] + duration:
                    beyond = True
                    break
                last_inside = k
                if is_long:
                    reach_stop, reach_limit = bar["low"] <= stop, bar["high"] >= limit
                    open_past_stop, open_past_limit = bar["open"] <= stop, bar["open"] >= limit
                else:
                    reach_stop, reach_limit = bar["high"] >= stop, bar["low"] <= limit
                    open_past_stop, open_past_limit = bar["open"] >= stop, bar["open"] <= limit
                if not (reach_stop or reach_limit):
                    continue
                exit_bar = k
                if open_past_stop:
                    exit_price, reason = bar["open"], "stop"
                elif open_past_limit:
                    exit_price, reason = bar["open"], "limit"
                elif reach_stop:
                    exit_price, reason = stop, "stop"
                    ambiguous = reach_limit
                else:
                    exit_price, reason = limit, "limit"
                break
            if exit_bar is None:
                if beyond:
                    exit_bar, reason = last_inside, "time"
                else:
                    exit_bar, reason = n - 1, "end"
                exit_price = rows[exit_bar]["close"]

            seen: list[float] = []
            for m in range(fill + 1, exit_bar):
                seen += [rows[m]["high"], rows[m]["low"]]
            if exit_bar > fill:
                if reason in ("stop", "limit"):
                    seen += [rows[exit_bar]["open"], exit_price]
                else:
                    seen += [rows[exit_bar]["high"], rows[exit_bar]["low"]]
            if seen:
                worst = price - min(seen) if is_long else max(seen) - price
                best = max(seen) - price if is_long else price - min(seen)
                mae, mfe = max(0.0, worst), max(0.0, best)
            else:
                mae = mfe = 0.0
            gross = exit_price - price if is_long else price - exit_price
            pnl = gross - trader["cost_ticks"] * tick_size
            trades.append(
                {
                    "trader_id": trader["trader_id"],
                    "session_date": day,
                    "entry_ts": rows[fill]["ts"],
                    "entry_price": price,
                    "exit_ts": rows[exit_bar]["ts"],
                    "exit_price": exit_price,
                    "exit_reason": reason,
                    "pnl": pnl,
                    "pnl_ticks": pnl / tick_size,
                    "r": pnl / risk,
                    "mae": mae,
                    "mfe": mfe,
                    "bars_held": exit_bar - fill,
                }
            )
            ambiguous_count += int(ambiguous)
            last_exit = exit_bar
    return trades, ambiguous_count
