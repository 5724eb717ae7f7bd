"""Simulation API: enhanced bars and traders (polars) in, trades (polars or one Parquet file) out.

The rules live in the numba kernels of nb.py; this module validates the tables, turns them into
NumPy arrays (timestamps as int64 microseconds), finds each session's reference bar per entry time
once, and runs the traders in chunks so that memory depends on the chunk size, never on the grid.

Sessions: the bars' session_date says which session a bar belongs to (market_data/sessions.py
assigns it); an entry time is a local time of day of the session calendar, placed inside the
session (for a session that opens the evening before, an entry at or after the open is on that
evening). A session with no bar at or after its entry time has no trade: it never rolls into the
next session, and the report counts such sessions.
"""

from __future__ import annotations

import functools
import os
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mochi_assets import interrupt
from mochi_assets.aggregation.outcomes import OUTCOMES_SCHEMA, compute_outcomes
from mochi_assets.contracts import TRADER_PARAMETERS
from mochi_assets.kernel_threads import run_tasks
from mochi_assets.market_data.sessions import SessionCalendar, parse_session
from mochi_assets.market_data.localtime import local_micros
from mochi_assets.simulation import nb
from mochi_assets.simulation.enums import (
    EXIT_REASONS,
    F_ENTRY_PRICE,
    F_EXIT_PRICE,
    F_PNL,
    FLOAT_COLUMNS,
    I_ENTRY_TS,
    I_EXIT_TS,
    INT_COLUMNS,
    LONG,
    MICROS_PER_DAY,
    MICROS_PER_MINUTE,
    SHORT,
)
from mochi_resources.errors import BarsError, MochiError

TRADE_COLUMNS: list[str] = [
    "trader_id",
    "session_date",
    "entry_ts",
    "entry_price",
    "exit_ts",
    "exit_price",
    "exit_reason",
    "pnl",
    "pnl_ticks",
    "r",
    "mae",
    "mfe",
    "bars_held",
]

BAR_COLUMNS = ["ts", "open", "high", "low", "close", "session_date", "atr"]
TRADER_COLUMNS = ["trader_id", *TRADER_PARAMETERS]

_TS_TYPE = pa.timestamp("us", tz="UTC")


@functools.cache
def _reason_values() -> pa.Array:
    """The exit reasons' dictionary. Built at first use, not at import: pyarrow's `pa.array` imports
    pandas (0.45 s), which a process that neither simulates nor draws never needs."""
    return pa.array(EXIT_REASONS, type=pa.string())


# Columns whose values repeat enough for dictionary encoding to pay; on the timestamps and r it
# falls back after costing several times the plain encoding, and session dates and trader ids
# (long runs of one value) are smaller and faster plain (measured on the benchmark grid).
_DICTIONARY_COLUMNS = [c for c in TRADE_COLUMNS if c not in ("trader_id", "session_date", "entry_ts", "exit_ts", "r")]
# Statistics only where readers prune row groups: by trader and by time.
_STATISTICS_COLUMNS = ["trader_id", "session_date", "entry_ts", "exit_ts"]


def trades_schema() -> pa.Schema:
    """Arrow schema of the trades table (column order of TRADE_COLUMNS)."""
    return pa.schema(
        [
            ("trader_id", pa.int64()),
            ("session_date", pa.date32()),
            ("entry_ts", _TS_TYPE),
            ("entry_price", pa.float64()),
            ("exit_ts", _TS_TYPE),
            ("exit_price", pa.float64()),
            ("exit_reason", pa.string()),
            ("pnl", pa.float64()),
            ("pnl_ticks", pa.float64()),
            ("r", pa.float64()),
            ("mae", pa.float64()),
            ("mfe", pa.float64()),
            ("bars_held", pa.int64()),
        ]
    )


def _writer_schema() -> pa.Schema:
    """trades_schema() with exit_reason as the dictionary of its codes (the streamed tables)."""
    schema = trades_schema()
    i = schema.get_field_index("exit_reason")
    return schema.set(i, pa.field("exit_reason", pa.dictionary(pa.int8(), pa.string())))


@dataclass(frozen=True)
class SimulationReport:
    """What one simulation run did, for Dagster asset metadata."""

    traders: int
    trades: int
    sessions: int
    fills_per_session: float
    exit_reasons: dict[str, int] = field(default_factory=dict)
    ambiguous_bars: int = 0
    # valid sessions without a bar at or after the entry time before the session closes, per entry time
    no_entry_bar: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    # Where the seconds went: setup, then the kernels (worker thread) overlapping the writer.
    setup_seconds: float = 0.0
    simulate_seconds: float = 0.0
    write_seconds: float = 0.0
    # trader_id, trades, outcome_hash, max_drawdown of every trader (aggregation.outcomes), in
    # trader order; not metadata: the trades asset stores it as its trader_outcomes table
    outcomes: pl.DataFrame | None = None

    def as_metadata(self) -> dict[str, float | int | str]:
        """Flat dict: the counts, exit reasons as exits_<reason>, seconds (total and split), peak RSS.

        sessions_without_entry_bar sums, over the entry times, the sessions that had no bar at or
        after the entry time before they closed (no trade for any trader of that entry time).
        """
        meta: dict[str, float | int | str] = {
            "traders": self.traders,
            "trades": self.trades,
            "sessions": self.sessions,
            "fills_per_session": self.fills_per_session,
            "ambiguous_bars": self.ambiguous_bars,
            "sessions_without_entry_bar": sum(self.no_entry_bar.values()),
            "sessions_without_entry_bar_by_time": ", ".join(f"{k}: {v}" for k, v in sorted(self.no_entry_bar.items())),
            "seconds": round(self.seconds, 3),
            "setup_seconds": round(self.setup_seconds, 3),
            "simulate_seconds": round(self.simulate_seconds, 3),
            "write_seconds": round(self.write_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }
        for reason in EXIT_REASONS:
            meta[f"exits_{reason}"] = self.exit_reasons.get(reason, 0)
        return meta


@dataclass
class _Market:
    """Bars as arrays plus everything the kernel needs that does not depend on the trader."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    tab_max: np.ndarray
    tab_min: np.ndarray
    min_step: int  # smallest spacing of consecutive bars, microseconds
    session_day: np.ndarray  # int32 days since epoch of each valid session
    session_atr: np.ndarray
    references: np.ndarray  # int64[n_entry_times, n_sessions]
    entry_slot: dict[str, int]
    no_entry_bar: dict[str, int]


@dataclass
class _Traders:
    trader_id: np.ndarray
    entry_slot: np.ndarray
    direction: np.ndarray
    offset_ticks: np.ndarray
    stop_atr: np.ndarray
    limit_atr: np.ndarray
    duration_us: np.ndarray
    timeout_us: np.ndarray
    cost_ticks: np.ndarray

    def __len__(self) -> int:
        return int(self.trader_id.shape[0])

    def rows(self, start: int, stop: int) -> _Traders:
        return _Traders(**{name: getattr(self, name)[start:stop] for name in self.__dataclass_fields__})


@dataclass
class _Tally:
    trades: int = 0
    ambiguous: int = 0
    setup_seconds: float = 0.0  # validating and preparing the tables
    simulate_seconds: float = 0.0  # kernels, in the worker thread
    reasons: np.ndarray = field(default_factory=lambda: np.zeros(len(EXIT_REASONS), dtype=np.int64))
    # per trader (rows of the traders table): id, trades, outcome fingerprint, maximum drawdown
    trader_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    outcome_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    max_drawdown: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    def outcomes(self) -> pl.DataFrame:
        """The traders' outcome table (aggregation.outcomes): one row per trader, in trader order."""
        return pl.DataFrame(
            {"trader_id": self.trader_id, "trades": self.counts, "outcome_hash": self.outcome_hash,
             "max_drawdown": self.max_drawdown},
            schema=OUTCOMES_SCHEMA,
        )


def _require_columns(frame: pl.DataFrame, columns: list[str], table: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise MochiError(f"{table}: missing column {column!r}")


def _require_no_nulls(frame: pl.DataFrame, columns: list[str], table: str) -> None:
    counts = frame.select(pl.col(columns).null_count()).row(0)
    for column, nulls in zip(columns, counts):
        if nulls:
            raise MochiError(f"{table}: column {column!r} has {nulls} null values")


def _parse_entry_time(text: str) -> int:
    """'HH:MM' -> microseconds after local midnight."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise MochiError(f"traders: entry_time {text!r} is not HH:MM")
    hours, minutes = int(parts[0]), int(parts[1])
    if hours > 23 or minutes > 59:
        raise MochiError(f"traders: entry_time {text!r} is not a time of day")
    return (hours * 60 + minutes) * MICROS_PER_MINUTE


def _session_clock(ts: np.ndarray, session_day: np.ndarray, timezone: str) -> np.ndarray:
    """Local wall-clock time of each bar, microseconds after the local midnight of its session date
    (negative on the evening before a session that opens then)."""
    local = local_micros(ts, timezone)
    return np.ascontiguousarray(local - session_day.astype(np.int64) * MICROS_PER_DAY, dtype=np.int64)


def entry_bars(ts: np.ndarray, session_day: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               entry_times: list[str], calendar: SessionCalendar) -> np.ndarray:
    """The bar each session is entered on: one row per entry time, one column per session.

    ts: bar times (int64 UTC microseconds, sorted); session_day: each bar's session date (days
    since the epoch); starts/ends: the bar range of each session considered. A value is the index
    of the session's first bar at or after the entry time on the calendar's clock, -1 when there
    is none (no trade that session). The scenario grids measure their price moves from these bars.
    """
    clock = _session_clock(ts, session_day, calendar.timezone)
    references = np.empty((len(entry_times), starts.shape[0]), dtype=np.int64)
    for i, text in enumerate(entry_times):
        references[i] = nb.reference_bars_nb(starts, ends, clock, calendar.entry_offset_min(text) * MICROS_PER_MINUTE)
    return references


def _prepare_market(bars: pl.DataFrame, entry_times: list[str], calendar: SessionCalendar) -> _Market:
    _require_columns(bars, BAR_COLUMNS, "bars")
    _require_no_nulls(bars, ["ts", "open", "high", "low", "close", "session_date"], "bars")
    ts_col = bars["ts"]
    if not isinstance(ts_col.dtype, pl.Datetime):
        raise BarsError(f"bars: column 'ts' must be a timestamp, not {ts_col.dtype}")
    if ts_col.dtype.time_zone is None:
        ts_col = ts_col.dt.replace_time_zone("UTC")
    # The physical values of a zone-aware timestamp are UTC whatever its zone.
    ts = np.ascontiguousarray(ts_col.dt.cast_time_unit("us").to_physical().to_numpy(), dtype=np.int64)
    steps = np.diff(ts)
    if ts.shape[0] > 1:
        if (steps <= 0).any():
            row = int(np.argmax(steps <= 0)) + 1
            raise BarsError(f"bars: row {row}: ts is not strictly after the previous bar")

    def floats(name: str) -> np.ndarray:
        return np.ascontiguousarray(bars[name].cast(pl.Float64).to_numpy(), dtype=np.float64)

    open_, high, low, close = floats("open"), floats("high"), floats("low"), floats("close")
    for name, values in (("open", open_), ("high", high), ("low", low), ("close", close)):
        if not np.isfinite(values).all():
            raise BarsError(f"bars: column {name!r} has non-finite values")
    atr = np.asarray(bars["atr"].cast(pl.Float64).to_numpy(), dtype=np.float64)  # nulls become NaN
    session_day = bars["session_date"].cast(pl.Date).cast(pl.Int32).to_numpy()
    if session_day.shape[0] > 1 and (np.diff(session_day) < 0).any():
        raise BarsError("bars: session_date goes backwards while ts goes forward")

    starts, ends = nb.session_bounds_nb(session_day)
    first_atr = atr[starts] if starts.shape[0] else np.empty(0)
    per_bar = np.repeat(first_atr, ends - starts)
    same = (atr == per_bar) | (np.isnan(atr) & np.isnan(per_bar))
    if not same.all():
        row = int(np.argmin(same))
        raise BarsError(f"bars: row {row}: atr differs from the atr of its session_date's first bar")
    # A session trades only with a usable risk unit: null (warm-up) or zero ATR means no trades.
    valid = np.isfinite(first_atr) & (first_atr > 0)
    starts, ends = starts[valid], ends[valid]

    entry_slot = {text: i for i, text in enumerate(entry_times)}
    references = entry_bars(ts, session_day, starts, ends, entry_times, calendar)
    no_entry_bar = {text: int((references[i] < 0).sum()) for text, i in entry_slot.items()}

    tab_max, tab_min = nb.block_tables_nb(high, low)
    return _Market(
        ts=ts,
        open=open_,
        high=high,
        low=low,
        close=close,
        tab_max=tab_max,
        tab_min=tab_min,
        min_step=int(steps.min()) if ts.shape[0] > 1 else 1,
        session_day=np.ascontiguousarray(session_day[starts], dtype=np.int32),
        session_atr=np.ascontiguousarray(first_atr[valid], dtype=np.float64),
        references=references,
        entry_slot=entry_slot,
        no_entry_bar=no_entry_bar,
    )


def _prepare_traders(traders: pl.DataFrame) -> tuple[_Traders, list[str]]:
    _require_columns(traders, TRADER_COLUMNS, "traders")
    _require_no_nulls(traders, TRADER_COLUMNS, "traders")
    traders = traders.sort("trader_id", maintain_order=True)
    ids = traders["trader_id"].cast(pl.Int64).to_numpy()
    if ids.shape[0] > 1 and (np.diff(ids) == 0).any():
        raise MochiError("traders: trader_id values are not unique")
    directions = traders["direction"].cast(pl.String)
    bad = directions.filter(~directions.is_in(["long", "short"]))
    if bad.len():
        raise MochiError(f"traders: direction {bad[0]!r} is not 'long' or 'short'")
    for name in ("stop_atr", "limit_atr", "duration_min", "timeout_min"):
        if (traders[name] <= 0).any():
            raise MochiError(f"traders: {name} must be positive")
    if (traders["cost_ticks"] < 0).any():
        raise MochiError("traders: cost_ticks must not be negative")
    entry_texts = traders["entry_time"].cast(pl.String)
    entry_times = sorted(entry_texts.unique().to_list())
    for text in entry_times:
        _parse_entry_time(text)
    slot = {text: i for i, text in enumerate(entry_times)}
    arrays = _Traders(
        trader_id=np.ascontiguousarray(ids, dtype=np.int64),
        entry_slot=np.array([slot[t] for t in entry_texts.to_list()], dtype=np.int64),
        direction=np.where(directions.to_numpy() == "long", LONG, SHORT).astype(np.int64),
        offset_ticks=np.ascontiguousarray(traders["offset_ticks"].cast(pl.Int64).to_numpy()),
        stop_atr=np.ascontiguousarray(traders["stop_atr"].cast(pl.Float64).to_numpy()),
        limit_atr=np.ascontiguousarray(traders["limit_atr"].cast(pl.Float64).to_numpy()),
        duration_us=traders["duration_min"].cast(pl.Int64).to_numpy() * MICROS_PER_MINUTE,
        timeout_us=traders["timeout_min"].cast(pl.Int64).to_numpy() * MICROS_PER_MINUTE,
        cost_ticks=np.ascontiguousarray(traders["cost_ticks"].cast(pl.Float64).to_numpy()),
    )
    return arrays, entry_times


@dataclass
class _Columns:
    """Trades as the kernels write them (layouts of enums.FLOAT_COLUMNS / INT_COLUMNS), room for
    `capacity` rows. Staging rows are indexed trader * n_sessions + k; packed rows are the table."""

    trader: np.ndarray  # int64 trader_id (packed only)
    floats: np.ndarray  # float64[len(FLOAT_COLUMNS), capacity]
    ints: np.ndarray  # int64[len(INT_COLUMNS), capacity]
    days: np.ndarray  # int32 days since epoch
    reasons: np.ndarray  # int8 EXIT_* codes

    @classmethod
    def empty(cls, capacity: int) -> _Columns:
        # np.empty leaves pages untouched: only rows actually written become resident memory.
        return cls(
            trader=np.empty(capacity, dtype=np.int64),
            floats=np.empty((len(FLOAT_COLUMNS), capacity), dtype=np.float64),
            ints=np.empty((len(INT_COLUMNS), capacity), dtype=np.int64),
            days=np.empty(capacity, dtype=np.int32),
            reasons=np.empty(capacity, dtype=np.int8),
        )

    @property
    def capacity(self) -> int:
        return int(self.days.shape[0])


def _chunk_trades(
    market: _Market,
    chunk: _Traders,
    first: int,
    tick_size: float,
    threads: int,
    staging: _Columns,
    out: _Columns | None,
    tally: _Tally,
    dictionary_reasons: bool,
) -> pa.Table:
    """Run the kernels on one chunk of traders (rows first, first + 1, ... of the traders table):
    its trades as an Arrow table over `out` (a fresh set of columns when None). Counts and the
    traders' outcomes go to the tally."""
    started = time.perf_counter()
    # The thread count is thread-local in numba: carry the caller's setting into this thread.
    numba.set_num_threads(threads)
    # Hand out parallel iterations one by one (numba splits them evenly up front by default):
    # the writer shares a core with one kernel thread, which would otherwise finish last while
    # the other waits.
    with numba.parallel_chunksize(1):
        counts, ambiguous = _simulate_chunk(market, chunk, tick_size, staging)
    if out is None:
        out = _Columns.empty(int(counts.sum()))
    n_sessions = market.session_atr.shape[0]
    done = slice(first, first + len(chunk))
    tally.counts[done] = counts
    # the traders' outcomes from the staging rows, beside the packing (the same rows, in order)
    outcomes = functools.partial(
        compute_outcomes, np.arange(len(chunk), dtype=np.int64) * n_sessions, counts, staging.days,
        staging.ints[I_ENTRY_TS], staging.ints[I_EXIT_TS], staging.floats[F_ENTRY_PRICE],
        staging.floats[F_EXIT_PRICE], staging.floats[F_PNL], tally.outcome_hash[done], tally.max_drawdown[done],
    )
    total = _compact(counts, n_sessions, chunk.trader_id, staging, out, threads, also=[outcomes])
    tally.simulate_seconds += time.perf_counter() - started
    tally.trades += total
    tally.ambiguous += int(ambiguous.sum())
    tally.reasons += np.bincount(out.reasons[:total], minlength=len(EXIT_REASONS))[: len(EXIT_REASONS)]
    return _to_table(out, total, dictionary_reasons)


def _compact(counts: np.ndarray, n_sessions: int, trader_id: np.ndarray, staging: _Columns, out: _Columns,
             threads: int, also: Sequence[Callable[[], object]] = ()) -> int:
    """Pack the staging rows of a chunk (trader t's trades at rows t * n_sessions + 0, 1, ...) into
    rows 0 .. total - 1 of `out`, in trader order and, per trader, in session order, with the
    row's trader_id; return total = counts.sum(). The tasks `also` (kernels that read the staging
    rows) run among the packing's.

    A column per task (pack_column_nb releases the GIL), `threads` at once. (One numba kernel with
    a ``prange`` over the traders copied as fast, but took numba 2.4-3.5 s to compile, paid by the
    first backtest after an install in each of its processes.)"""
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    columns = [(staging.floats[c], out.floats[c]) for c in range(staging.floats.shape[0])]
    columns += [(staging.ints[c], out.ints[c]) for c in range(staging.ints.shape[0])]
    columns += [(staging.days, out.days), (staging.reasons, out.reasons)]
    tasks = [functools.partial(nb.pack_column_nb, counts, n_sessions, offsets, staged, packed)
             for staged, packed in columns]
    tasks.append(functools.partial(nb.fill_trader_nb, counts, offsets, trader_id, out.trader))
    run_tasks([*also, *tasks], threads, "mochi-sim-pack")
    return total


def _simulate_chunk(market: _Market, chunk: _Traders, tick_size: float, staging: _Columns) -> tuple:
    """simulate_traders_nb on one chunk: (counts, ambiguous) per trader; trades in `staging`."""
    return nb.simulate_traders_nb(
        market.ts,
        market.open,
        market.high,
        market.low,
        market.close,
        market.tab_max,
        market.tab_min,
        market.min_step,
        market.session_atr,
        market.session_day,
        market.references,
        chunk.entry_slot,
        chunk.direction,
        chunk.offset_ticks,
        chunk.stop_atr,
        chunk.limit_atr,
        chunk.duration_us,
        chunk.timeout_us,
        chunk.cost_ticks,
        float(tick_size),
        staging.floats,
        staging.ints,
        staging.days,
        staging.reasons,
    )


def _arrow(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """Arrow array over a contiguous NumPy column without copying it."""
    return pa.Array.from_buffers(type_, values.shape[0], [None, pa.py_buffer(values)])


def _to_table(columns: _Columns, rows: int, dictionary_reasons: bool) -> pa.Table:
    """Arrow table (trades schema) over the first `rows` packed rows of `columns`, zero-copy.

    exit_reason is a dictionary array over the kernel's codes when dictionary_reasons, for the
    Parquet writer (which writes it dictionary-encoded without hashing strings); a string column
    otherwise.
    """
    floats = {name: _arrow(columns.floats[i, :rows], pa.float64()) for i, name in enumerate(FLOAT_COLUMNS)}
    ints = {name: columns.ints[i, :rows] for i, name in enumerate(INT_COLUMNS)}
    reasons = pa.DictionaryArray.from_arrays(
        _arrow(columns.reasons[:rows], pa.int8()), _reason_values(), safe=False
    )
    arrays = {
        "trader_id": _arrow(columns.trader[:rows], pa.int64()),
        "session_date": _arrow(columns.days[:rows], pa.date32()),
        "entry_ts": _arrow(ints["entry_ts"], _TS_TYPE),
        "exit_ts": _arrow(ints["exit_ts"], _TS_TYPE),
        "exit_reason": reasons if dictionary_reasons else reasons.cast(pa.string()),
        "bars_held": _arrow(ints["bars_held"], pa.int64()),
        **floats,
    }
    return pa.Table.from_arrays([arrays[name] for name in TRADE_COLUMNS], names=TRADE_COLUMNS)


def _calendar(timezone: str | None, session: SessionCalendar | None) -> SessionCalendar:
    """`session`, else calendar days of `timezone` (each local date one session)."""
    if session is not None:
        return session
    if timezone is None:
        raise MochiError("simulate: give the session calendar or a timezone")
    try:
        return parse_session("calendar-day", timezone)
    except MochiError as exc:
        raise MochiError(f"timezone {timezone!r} is not a known IANA time zone") from exc


def _run(
    bars: pl.DataFrame,
    traders: pl.DataFrame,
    tick_size: float,
    calendar: SessionCalendar,
    chunk_size: int,
    streaming: bool,
) -> tuple[Iterator[tuple[pa.Table, int]], _Market, int, _Tally]:
    """Validate and prepare; return (chunk tables with traders done so far, market, traders, tally).

    While the caller converts and writes chunk i, the kernels (which release the GIL) already
    run chunk i + 1 in a worker thread, so writing does not leave a core idle. At most two
    chunks are in memory. When streaming, the caller must be done with a table when it asks for
    the next one: the two tables' columns are reused in turn (no fresh pages per chunk), and
    exit_reason is dictionary-encoded (_writer_schema()).
    """
    if not tick_size > 0:
        raise MochiError(f"tick_size must be positive, got {tick_size}")
    if chunk_size < 1:
        raise MochiError(f"chunk_size must be at least 1, got {chunk_size}")
    started = time.perf_counter()
    arrays, entry_times = _prepare_traders(traders)
    market = _prepare_market(bars, entry_times, calendar)
    tally = _Tally(
        setup_seconds=time.perf_counter() - started,
        trader_id=arrays.trader_id,
        counts=np.zeros(len(arrays), dtype=np.int64),
        outcome_hash=np.zeros(len(arrays), dtype=np.int64),
        max_drawdown=np.zeros(len(arrays), dtype=np.float64),
    )
    threads = numba.get_num_threads()
    bounds = [(start, min(start + chunk_size, len(arrays))) for start in range(0, len(arrays), chunk_size)]
    # Rows for every trader and session of a chunk, reused by every chunk (only the worker
    # thread writes them).
    capacity = min(chunk_size, len(arrays)) * market.session_atr.shape[0]
    staging = _Columns.empty(capacity)
    spare = [_Columns.empty(capacity), _Columns.empty(capacity)] if streaming else []

    def submit(pool: ThreadPoolExecutor, start: int, stop: int) -> tuple[Future, _Columns | None]:
        out = spare.pop() if streaming else None
        chunk = arrays.rows(start, stop)
        job = pool.submit(_chunk_trades, market, chunk, start, tick_size, threads, staging, out, tally, streaming)
        return job, out

    def chunks() -> Iterator[tuple[pa.Table, int]]:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mochi-sim") as pool:
            pending = submit(pool, *bounds[0]) if bounds else None
            for i, (_, stop) in enumerate(bounds):
                job, out = pending
                table = job.result()
                interrupt.check()  # Ctrl-C or SIGTERM: stop between chunks (the kernels cannot be stopped)
                pending = submit(pool, *bounds[i + 1]) if i + 1 < len(bounds) else None
                yield table, stop
                del table
                if out is not None:
                    spare.append(out)

    return chunks(), market, len(arrays), tally


def simulate(
    bars: pl.DataFrame,
    traders: pl.DataFrame,
    *,
    tick_size: float,
    timezone: str | None = None,
    session: SessionCalendar | None = None,
    chunk_size: int = 512,
) -> pl.DataFrame:
    """Every trade of every trader, in memory: the trades table sorted by trader_id, entry_ts.

    bars: enhanced bars (ts, open, high, low, close, session_date, atr; ts strictly increasing,
    atr constant within a session_date, null in warm-up). traders: the traders table; entry_time
    is a local time of day of the `session` calendar (default: calendar days of `timezone`).
    Empty frame with the trades schema when nothing trades.
    """
    chunks, _, _, _ = _run(bars, traders, tick_size, _calendar(timezone, session), chunk_size, streaming=False)
    tables = [table for table, _ in chunks]
    table = pa.concat_tables(tables) if tables else trades_schema().empty_table()
    return pl.from_arrow(table)


def simulate_to_parquet(
    bars: pl.DataFrame,
    traders: pl.DataFrame,
    path: str | os.PathLike,
    *,
    tick_size: float,
    timezone: str | None = None,
    session: SessionCalendar | None = None,
    chunk_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Stream the trades table (same rows and order as simulate()) to one zstd Parquet file.

    Each chunk of traders becomes row groups as soon as it is simulated; the file appears at
    `path` only when complete (written beside it, then renamed). progress(done, total) is called
    after each chunk. Returns the run's SimulationReport.
    """
    started = time.perf_counter()
    write_seconds = 0.0
    chunks, market, n_traders, tally = _run(bars, traders, tick_size, _calendar(timezone, session), chunk_size,
                                            streaming=True)
    n_sessions = int(market.session_atr.shape[0])
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        # The tables carry exit_reason as a dictionary; without the Arrow schema in the file,
        # readers see the Parquet types, which are those of trades_schema() (string exit_reason).
        with pq.ParquetWriter(
            partial,
            _writer_schema(),
            compression="zstd",
            use_dictionary=_DICTIONARY_COLUMNS,
            write_statistics=_STATISTICS_COLUMNS,
            store_schema=False,
        ) as writer:
            if progress is not None:
                progress(0, n_traders)
            for table, done in chunks:
                if table.num_rows:
                    before = time.perf_counter()
                    # One row group per chunk (the default splits at 1Mi rows, leaving a sliver).
                    writer.write_table(table, row_group_size=table.num_rows)
                    write_seconds += time.perf_counter() - before
                del table
                if progress is not None:
                    progress(done, n_traders)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    denominator = n_traders * n_sessions
    return SimulationReport(
        traders=n_traders,
        trades=tally.trades,
        sessions=n_sessions,
        fills_per_session=tally.trades / denominator if denominator else 0.0,
        exit_reasons={reason: int(tally.reasons[i]) for i, reason in enumerate(EXIT_REASONS)},
        ambiguous_bars=tally.ambiguous,
        no_entry_bar=market.no_entry_bar,
        seconds=time.perf_counter() - started,
        setup_seconds=tally.setup_seconds,
        simulate_seconds=tally.simulate_seconds,
        write_seconds=write_seconds,
        outcomes=tally.outcomes(),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    )
